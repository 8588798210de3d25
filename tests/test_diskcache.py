"""The one disk cache and ``atomic_write``: least recently used out first, writers that never collide, and
the leftovers of a writer killed midway swept away."""

import multiprocessing
import os
import signal
import time
from pathlib import Path

import pytest

from training.atomic import atomic_write
from training.diskcache import DiskCache


def _cache(tmp_path, max_bytes=10_000, max_entries=3) -> DiskCache:
    return DiskCache({"a": tmp_path / "a", "b": tmp_path / "b"}, max_bytes, max_entries)


def _aged(cache: DiskCache, part: str, name: str, data: bytes, age: float) -> None:
    path = cache.put(part, name, data)
    os.utime(path, (time.time() - age, time.time() - age))


def test_eviction_is_least_recently_used_and_a_hit_counts_as_use(tmp_path):
    cache = _cache(tmp_path)
    _aged(cache, "a", "one", b"1", age=40)
    _aged(cache, "b", "two", b"2", age=30)  # the budget spans every part
    _aged(cache, "a", "three", b"3", age=20)
    assert cache.get("a", "one") is not None  # used just now: "two" is the least recently used
    cache.put("a", "four", b"4")
    assert cache.get("b", "two") is None
    assert all(cache.get(p, n) for p, n in (("a", "one"), ("a", "three"), ("a", "four")))
    assert cache.usage() == (3, 3)


def test_the_byte_budget_evicts_too_but_never_the_entry_just_written(tmp_path):
    cache = _cache(tmp_path, max_bytes=100, max_entries=100)
    _aged(cache, "a", "old", b"x" * 60, age=10)
    cache.put("a", "new", b"y" * 60)
    assert cache.get("a", "old") is None and cache.get("a", "new").read_bytes() == b"y" * 60
    cache.put("a", "huge", b"z" * 500)  # alone over the budget: kept (the caller is about to read it)
    assert cache.get("a", "huge") is not None and cache.get("a", "new") is None


def test_an_upload_another_writer_is_filling_is_left_alone_until_it_is_an_hours_leftover(tmp_path):
    """Gradio streams an upload into ``tmp...`` in its folder, then moves it into a subfolder: a sweep midway
    must not delete it (the upload would end in a server error), nor count it, but an hour-old one is a leftover."""
    gradio = tmp_path / "gradio"
    cache = _cache(tmp_path, max_bytes=100, max_entries=100).including("gradio", gradio, writing="tmp")
    _aged(cache, "a", "old", b"x" * 60, age=10)
    (gradio / "f00d").mkdir(parents=True)
    (gradio / "f00d" / "done.zip").write_bytes(b"d" * 30)  # an upload Gradio finished: an entry like any other
    streaming = gradio / "tmpab12cd34"
    streaming.write_bytes(b"u" * 500)  # over the whole budget alone
    assert cache.evict() == [] and streaming.exists() and cache.usage() == (90, 2)
    os.utime(streaming, (time.time() - 3601, time.time() - 3601))
    assert cache.evict() == ["tmpab12cd34"] and not streaming.exists() and cache.usage() == (90, 2)


def _write_many(root: str, marker: bytes, count: int) -> None:
    cache = DiskCache({"a": __import__("pathlib").Path(root)}, 1 << 30, 1000)
    for _ in range(count):
        cache.put("a", "same", marker * 50_000)


def test_two_processes_writing_the_same_entry_leave_one_whole_file(tmp_path):
    ctx = multiprocessing.get_context("fork")
    writers = [ctx.Process(target=_write_many, args=(str(tmp_path / "a"), m, 40)) for m in (b"A", b"B")]
    for w in writers:
        w.start()
    while any(w.is_alive() for w in writers):  # a reader never sees a mixed or partial file
        try:
            data = (tmp_path / "a" / "same").read_bytes()
        except FileNotFoundError:
            continue
        assert data in (b"A" * 50_000, b"B" * 50_000)
    for w in writers:
        w.join()
        assert w.exitcode == 0
    assert [p.name for p in (tmp_path / "a").iterdir()] == ["same"]  # no staged file left behind


def _killed_midway(path: str) -> None:
    def write(staged):
        with open(staged, "wb") as f:
            f.write(b"half")
            f.flush()
            os.kill(os.getpid(), signal.SIGKILL)  # dies with its staged file on disk

    atomic_write(path, write)


def test_the_sweep_removes_what_a_killed_writer_left_and_nothing_else(tmp_path):
    cache = _cache(tmp_path)
    cache.put("a", "kept", b"whole")
    proc = multiprocessing.get_context("fork").Process(target=_killed_midway, args=(str(tmp_path / "a" / "lost"),))
    proc.start()
    proc.join()
    assert proc.exitcode == -signal.SIGKILL
    staged = [p for p in (tmp_path / "a").iterdir() if p.name.startswith(".")]
    assert len(staged) == 1 and cache.get("a", "lost") is None
    assert cache.usage() == (5, 1)  # a staged file is not an entry
    assert cache.sweep() == 1
    assert [p.name for p in (tmp_path / "a").iterdir()] == ["kept"]


def test_atomic_write_replaces_whole_files_and_cleans_up_a_failed_writer(tmp_path):
    target = tmp_path / "deep" / "file.json"
    atomic_write(target, b"first")
    atomic_write(target, lambda p: p.write_bytes(b"second"))
    assert target.read_bytes() == b"second"
    with pytest.raises(RuntimeError):
        atomic_write(target, lambda p: (p.write_bytes(b"partial"), (_ for _ in ()).throw(RuntimeError("disk"))))
    assert target.read_bytes() == b"second" and sorted(os.listdir(target.parent)) == ["file.json"]


def test_a_picture_shown_to_two_visitors_at_once_is_never_read_half_written(tmp_path, monkeypatch):
    """Gradio names output pictures by content; a second visitor's identical picture must not truncate the file
    the first visitor's browser is reading."""
    import threading

    import numpy as np
    from PIL import Image

    monkeypatch.setenv("RUNS_DIR", str(tmp_path / "runs"))
    from gradio import processing_utils

    import ui.common  # noqa: F401  (it installs the atomic save)

    picture = Image.fromarray(np.random.default_rng(0).integers(0, 255, (384, 384, 3), dtype=np.uint8))
    path = Path(processing_utils.save_pil_to_cache(picture, str(tmp_path / "gradio")))
    size, seen, stop = path.stat().st_size, set(), threading.Event()

    def write() -> None:
        while not stop.is_set():
            processing_utils.save_pil_to_cache(picture, str(tmp_path / "gradio"))
            path.unlink(missing_ok=True)  # so the next save writes it again

    writer = threading.Thread(target=write)
    writer.start()
    for _ in range(20000):
        try:
            seen.add(path.stat().st_size)
        except FileNotFoundError:
            pass
    stop.set()
    writer.join()
    assert seen == {size}, f"partial sizes seen: {sorted(seen - {size})}"


def test_stored_tensors_reads_only_what_is_there_whole(tmp_path):
    import torch

    cache = _cache(tmp_path, max_bytes=1 << 20)
    assert cache.stored_tensors("a", "index.safetensors") is None  # nothing computed
    stored, hit = cache.tensors("a", "index.safetensors", lambda: {"x": torch.arange(4.0)})
    assert not hit and torch.equal(cache.stored_tensors("a", "index.safetensors")["x"], torch.arange(4.0))
    cache.path("a", "index.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{")  # truncated
    assert cache.stored_tensors("a", "index.safetensors") is None
