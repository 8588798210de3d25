"""Work in other threads and processes (``explorer.concurrency``, ``explorer.gpu``): streamed progress and results
across a thread, one computation per key, and the forked stand-in for ZeroGPU's ``spaces.GPU``."""

import os
import threading
import time

import pytest
import torch

from explorer import gpu
from explorer.concurrency import KeyedLock, in_background, streamed

def _double(x):
    return 2 * x, torch.tensor([x]).sum().item()



def _counting(n, marker):
    for k in range(n):
        marker.write_text(str(k))
        yield k



def _fails():
    raise ValueError("a clear message")



def test_forked_stand_in_pickles_calls_and_stops_a_closed_generator(tmp_path):
    assert gpu.forked(_double)(21) == (42, 21)
    assert gpu.forked(os.getpid)() != os.getpid()  # really another process
    with pytest.raises(ValueError, match="a clear message"):
        gpu.forked(_fails)()
    marker = tmp_path / "marker"
    gen = gpu.forked(_counting)(1_000_000, marker)
    assert [next(gen) for _ in range(3)] == [0, 1, 2]
    gen.close()  # the worker stops at its next yield, far from a million
    assert int(marker.read_text()) < 1000



def test_a_keyed_lock_lets_one_caller_per_key_run_and_others_keys_pass():
    lock, inside, overlaps = KeyedLock(), {}, []
    others = threading.Barrier(3, timeout=10)  # three different keys: all inside at once, or this breaks

    def work(k: int) -> None:
        key = "same" if k < 3 else f"other-{k}"
        with lock(key):
            inside[key] = inside.get(key, 0) + 1
            overlaps.append((key, inside[key]))
            if key == "same":
                time.sleep(0.02)
            else:
                others.wait()
            inside[key] -= 1

    threads = [threading.Thread(target=work, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not others.broken
    assert all(count == 1 for _, count in overlaps)  # never two holders of one key
    assert "same" not in lock and len([k for k, _ in overlaps if k == "same"]) == 3


def test_streamed_work_yields_its_progress_returns_its_result_and_raises_its_error_here():
    def work(emit):
        for k in range(3):
            emit(k)
        return "done"

    stream = streamed(work)
    assert [next(stream) for _ in range(3)] == [0, 1, 2]
    with pytest.raises(StopIteration) as finished:
        next(stream)
    assert finished.value.value == "done"
    assert in_background(lambda a, b: threading.current_thread().name + str(a + b), 1, b=2) != \
        threading.current_thread().name + "3"  # another thread computed it
    assert in_background(lambda: 41 + 1) == 42

    def fails(emit):
        emit("started")
        raise ValueError("a clear message")

    stream = streamed(fails)
    assert next(stream) == "started"
    with pytest.raises(ValueError, match="a clear message"):
        next(stream)


def test_closing_a_stream_tells_its_work_to_stop_and_waits_for_it():
    stop, ended = threading.Event(), []

    def work(emit):
        k = 0
        while not stop.is_set():
            emit(k)
            k += 1
            time.sleep(0.001)
        ended.append(k)

    stream = streamed(work, on_close=stop.set)
    assert next(stream) == 0
    stream.close()  # returns only once the work has ended
    assert stop.is_set() and len(ended) == 1
