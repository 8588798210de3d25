"""The app's own state and policy (``explorer/``), without a server: limits, runs on disk, the slot, the
forked stand-in for ZeroGPU's ``spaces.GPU``."""

import json
import threading
import time

import pytest
import torch

from explorer import gpu, runs
from explorer.limits import LimitError, Limits, check_memory
from explorer.slot import Done, Failed, Step, TrainingSlot, train_events
from helpers import quick_config


def test_limits_refuse_with_their_name_and_env_overrides(monkeypatch):
    cpu = Limits.for_device("cpu")
    with pytest.raises(LimitError, match=r"at most 10 epochs per run \(GOOGLENET_MAX_EPOCHS\)"):
        cpu.check(epochs=1_000_000_000, train_size=100, image_size=32, batch_size=32)
    with pytest.raises(LimitError, match="at most 128 px image size"):
        cpu.check(epochs=1, train_size=100, image_size=512, batch_size=32)
    monkeypatch.setenv("GOOGLENET_MAX_EPOCHS", "500")
    assert Limits.for_device("cpu").epochs == 500 and Limits.for_device("cuda").epochs == 500
    monkeypatch.setenv("GOOGLENET_MAX_EPOCHS", "nonsense")
    assert Limits.for_device("cpu").epochs == 10


def test_memory_estimate_refuses_what_would_not_fit():
    check_memory(64, 32, available=8 << 30)
    with pytest.raises(LimitError, match="needs about .* GiB"):
        check_memory(500, 512, available=16 << 30)  # the 17 GB evaluation of the old code, and more


def test_eval_batches_shrink_with_the_image_size():
    from training.trainer import eval_batch_size

    assert eval_batch_size(32) == 500 and eval_batch_size(512) < eval_batch_size(224) < eval_batch_size(64)


@pytest.fixture()
def runs_root(tmp_path, monkeypatch):
    monkeypatch.setenv("RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setattr(runs, "DOWNLOADS", tmp_path / "downloads")
    return tmp_path / "runs"


def _fake_run(root, name, status, complete=True, age=0.0):
    from googlenet import GoogLeNet

    folder = root / name
    folder.mkdir(parents=True)
    if complete:
        GoogLeNet(num_classes=10, aux_logits=False).save_pretrained(folder)
    (folder / "run.json").write_text(json.dumps({"status": status}))
    stamp = time.time() - age
    import os

    os.utime(folder, (stamp, stamp))
    return folder


def test_sweep_marks_crashed_runs_interrupted_and_usable(runs_root):
    _fake_run(runs_root, "crashed-with-checkpoint", "running")
    _fake_run(runs_root, "crashed-early", "running", complete=False)
    assert sorted(runs.sweep_interrupted()) == ["crashed-early", "crashed-with-checkpoint"]
    assert json.loads((runs_root / "crashed-early" / "run.json").read_text())["status"] == "interrupted"
    assert [r.name for r in runs.list_runs()] == ["crashed-with-checkpoint"]
    assert runs.usable_run("crashed-with-checkpoint").is_dir()
    with pytest.raises(ValueError, match="no finished run called 'crashed-early'"):
        runs.usable_run("crashed-early")


def test_retention_keeps_the_newest_ended_runs(runs_root):
    for k in range(5):
        _fake_run(runs_root, f"run-{k}", "finished", age=100 - k)  # run-4 is the newest
    _fake_run(runs_root, "in-progress", "running", age=1000)
    removed = runs.prune_runs(keep=2)
    assert sorted(removed) == ["run-0", "run-1", "run-2"]
    assert sorted(p.name for p in runs_root.iterdir()) == ["in-progress", "run-3", "run-4"]


def test_checkpoint_zip_is_made_once_per_checkpoint(runs_root):
    folder = _fake_run(runs_root, "zipped", "finished")
    first = runs.checkpoint_zip("zipped")
    made = first.stat().st_mtime_ns
    for _ in range(5):  # many page views and downloads: one file
        assert runs.checkpoint_zip("zipped") == first and first.stat().st_mtime_ns == made
    assert [p.name for p in first.parent.iterdir()] == ["zipped.zip"]
    time.sleep(0.01)
    (folder / "model.safetensors").touch()  # a new best checkpoint: the zip is made again
    assert runs.checkpoint_zip("zipped").stat().st_mtime_ns > made
    runs.clean_downloads()
    assert not first.parent.exists()


def _double(x):
    return 2 * x, torch.tensor([x]).sum().item()


def _counting(n, marker):
    for k in range(n):
        marker.write_text(str(k))
        yield k


def _fails():
    raise ValueError("a clear message")


def test_forked_stand_in_pickles_calls_and_stops_a_closed_generator(tmp_path):
    import os

    assert gpu.forked(_double)(21) == (42, 21)
    assert gpu.forked(os.getpid)() != os.getpid()  # really another process
    with pytest.raises(ValueError, match="a clear message"):
        gpu.forked(_fails)()
    marker = tmp_path / "marker"
    gen = gpu.forked(_counting)(1_000_000, marker)
    assert [next(gen) for _ in range(3)] == [0, 1, 2]
    gen.close()  # the worker stops at its next yield, far from a million
    assert int(marker.read_text()) < 1000


def test_closing_the_gpu_generator_stops_the_run_and_keeps_its_checkpoint(cifar_dir, tmp_path):
    events = gpu.forked(train_events)(quick_config(cifar_dir, tmp_path / "closed", epochs=10))
    for event in events:
        if isinstance(event, Step) and event.epoch == 2:
            break
    events.close()  # returns once the worker has stopped and written its files
    info = json.loads((tmp_path / "closed" / "run.json").read_text())
    assert info["status"] == "cancelled" and info["epochs_done"] == 1


def test_slot_releases_itself_and_tells_a_second_start_to_wait(cifar_dir, tmp_path):
    release = threading.Event()

    def slow_gpu(config):
        yield Step(1, 1, 1, 0.5)
        release.wait(30)  # a long step
        yield Done({"run": "x", "status": "cancelled", "val_accuracy": None, "test_accuracy": None, "epochs": 0}, "")

    ended = []
    slot = TrainingSlot(slow_gpu, on_end=ended.append)
    handle = slot.start(quick_config(cifar_dir, tmp_path / "a"), owner="visitor-1")
    assert not slot.cancel("visitor-2") and slot.cancel("visitor-1")  # only the owner; never waits
    with pytest.raises(Exception, match="still stopping"):
        slot.start(quick_config(cifar_dir, tmp_path / "b"), owner="visitor-2")
    release.set()
    assert handle.ended.wait(30) and ended == ["a"] and not slot.busy
    kinds = [type(e) for e in handle.events()]
    assert kinds[0] is Step and kinds[-1] in (Done, Failed)


def test_train_events_report_a_bad_start_as_failed(cifar_dir, tmp_path):
    events = list(train_events(quick_config(cifar_dir, tmp_path / "bad", batch_size=100_000)))
    assert isinstance(events[-1], Failed) and "larger than the training data" in events[-1].message


@pytest.mark.parametrize("value,message", [
    (None, "epochs is missing"), ("x", "epochs must be a whole number, not 'x'"),
    (2.5, "epochs must be a whole number, not '2.5'"), (float("nan"), "epochs must be a finite number"),
    (0, "epochs must be at least 1"),
])
def test_each_wrong_argument_gets_its_own_message(value, message):
    from explorer.params import as_int

    with pytest.raises(ValueError, match=message):
        as_int(value, "epochs", 1)
    assert as_int("3", "epochs", 1) == 3 and as_int(4.0, "epochs", 1) == 4
