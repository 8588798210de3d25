"""The training slot (``explorer.slot``) and a run's stream (``explorer.finetune.page_updates``): one run at a time,
a line that keeps its order, a closed stream that stops its run, and the page updates a run's events become."""

import json
import threading

import pytest

from explorer import gpu
from explorer.finetune import KEEP, page_updates
from explorer.slot import Done, Epoch, Failed, Log, Step, TrainingSlot, train_events
from helpers import quick_config
from training.runfolder import RunSummary

def test_closing_the_gpu_generator_stops_the_run_and_keeps_its_checkpoint(cifar_dir, tmp_path):
    events = gpu.forked(train_events)(quick_config(cifar_dir, tmp_path / "closed", epochs=50, train_size=64, test_size=20))
    for event in events:
        if isinstance(event, Step) and event.epoch == 2:
            break
    events.close()  # returns once the worker has stopped and written its files
    info = json.loads((tmp_path / "closed" / "run.json").read_text())
    # The worker does not wait for the consumer: it may finish the epoch it is in before it reads the close.
    assert info["status"] == "cancelled" and 1 <= info["epochs_done"] <= 2, info
    assert (tmp_path / "closed" / "model.safetensors").is_file()



def test_slot_releases_itself_and_tells_a_second_start_to_wait(cifar_dir, tmp_path):
    release = threading.Event()

    def slow_gpu(config):
        yield Step(1, 1, 1, 0.5)
        release.wait(30)  # a long step
        yield Done(RunSummary("x", tmp_path / "x", "cancelled"))

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



def test_waiting_visitors_keep_their_place_and_one_whose_run_ended_goes_to_the_back(cifar_dir, tmp_path):
    release = threading.Event()

    def held_gpu(config):
        yield Step(1, 1, 1, 0.5)
        release.wait(30)
        yield Done(RunSummary(config.output_dir().name, config.output_dir(), "finished"))

    slot = TrainingSlot(held_gpu, line_size=3)
    handle = slot.start(quick_config(cifar_dir, tmp_path / "a"), owner="A")
    for visitor in "BCD":
        slot.join(visitor)
    with pytest.raises(Exception, match="already waiting"):
        slot.join("B")
    with pytest.raises(Exception, match="3 visitors are already waiting"):
        slot.join("E")
    assert slot.cancel("D") == "line"
    with pytest.raises(Exception, match="still in progress"):
        slot.join("A")
    assert slot.wait_turn("B", 0) == 1 and slot.wait_turn("C", 0) == 2  # the run in progress is ahead of both
    release.set()
    assert handle.ended.wait(30)
    slot.join("A")  # A's run ended: A goes behind B and C
    assert slot.wait_turn("B", 5) == 0 and slot.wait_turn("C", 0) == 1 and slot.wait_turn("A", 0) == 2
    with pytest.raises(Exception, match="waiting in line"):
        slot.start(quick_config(cifar_dir, tmp_path / "a2"), owner="A")  # no jumping the line
    assert slot.cancel("C") == "line" and slot.wait_turn("C", 0) is None and slot.wait_turn("A", 0) == 1
    slot.leave("B")  # B's page closed while waiting
    assert slot.wait_turn("A", 0) == 0



def test_a_runs_events_become_page_updates(tmp_path):
    clock = iter([0.0, 0.1, 0.2, 0.3, 1.0, 1.1, 2.0, 2.1]).__next__
    history = [{"epoch": 1, "train_loss": 2.0, "val_loss": 1.9, "val_accuracy": 0.4}]
    done = RunSummary("r", tmp_path, "finished", 0.4, 0.38, 1, "finished")
    events = [Log("starting"), Step(1, 1, 3, 2.5), Step(1, 2, 3, 2.4), Step(1, 3, 3, 2.2), Epoch(history[0], history),
              Done(done)]
    seen = []
    frames = {"modules": ["inception3a"], "branches": ["1x1"],
              "epochs": [{"epoch": 1, "cka": {"inception3a": {"1x1": 0.9}}, "weight_drift": {"inception3a": {"1x1": 0.1}}}]}
    looks = []
    updates = list(page_updates(events, "r", 1, lambda done_, desc: seen.append((done_, desc)), clock,
                                drift=lambda: frames, probe=lambda: looks.append(1) or ("top", "chart", "cam")))
    assert [u[1] is KEEP for u in updates] == [True, True, True, False, False]  # step 2 came too soon after 1
    assert [u[4] is KEEP for u in updates] == [True, True, True, False, True]  # the drift map when it changed
    assert [u[5:] for u in updates] == [(KEEP,) * 3] * 3 + [("top", "chart", "cam"), (KEEP,) * 3]  # once an epoch
    assert len(looks) == 1
    assert updates[0] == ("Run `r` starting…", KEEP, "starting", None, KEEP, KEEP, KEEP, KEEP)
    assert "step 1/3" in updates[1][0] and "step 3/3" in updates[2][0]  # the last step of an epoch always shows
    assert updates[3][1] is not None and updates[3][2] == "starting"
    assert updates[-1][0] == "Run `r` finished: best validation accuracy 40.0%, test accuracy 38.0%"
    assert updates[-1][3] == {"run": "r", "status": "finished", "val_accuracy": 0.4, "test_accuracy": 0.38,
                              "epochs": 1}
    assert seen[0] == ((1, 3), "epoch 1/1 · loss 2.500") and len(seen) == 3
    with pytest.raises(Exception, match="out of memory"):
        list(page_updates([Failed("out of memory")], "r", 1))
