"""The app's own state and policy (``explorer/``), without a server: limits, runs on disk, the slot, the
forked stand-in for ZeroGPU's ``spaces.GPU``."""

import json
import threading
import time

import pytest
import torch

from explorer import gpu, runs
from explorer.batching import classify_batch as batch_classify
from explorer.limits import check_memory
from explorer.profile import LimitError
from explorer.slot import Done, Failed, Step, TrainingSlot, train_events
from helpers import quick_config
from training.runfolder import RunSummary


def test_limits_refuse_with_their_name_and_env_overrides(profile_env):
    cpu = profile_env().limits
    with pytest.raises(LimitError, match=r"at most 10 epochs per run \(GOOGLENET_MAX_EPOCHS\)"):
        cpu.check(epochs=1_000_000_000, train_size=100, image_size=32, batch_size=32)
    with pytest.raises(LimitError, match="at most 128 px image size"):
        cpu.check(epochs=1, train_size=100, image_size=512, batch_size=32)
    assert profile_env(GOOGLENET_MAX_EPOCHS="500").limits.epochs == 500
    assert profile_env(GOOGLENET_MAX_EPOCHS="nonsense").limits.epochs == 10


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
    return tmp_path / "runs"


def _fake_run(root, name, status, complete=True, age=0.0, **record):
    from googlenet import GoogLeNet

    folder = root / name
    folder.mkdir(parents=True)
    if complete:
        GoogLeNet(num_classes=10, aux_logits=False).save_pretrained(folder)
    (folder / "run.json").write_text(json.dumps({"status": status, **record}))
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
    assert runs.usable_run("crashed-with-checkpoint").path.is_dir()
    with pytest.raises(ValueError, match="no finished run called 'crashed-early'"):
        runs.usable_run("crashed-early")


def test_retention_deletes_only_each_visitors_own_oldest_runs(runs_root):
    _fake_run(runs_root, "a-only", "finished", age=500, owner="A", address="home")  # the oldest of all
    for k in range(4):
        _fake_run(runs_root, f"b-{k}", "finished", age=100 - k, owner="B", address="home")  # b-3 is the newest
    _fake_run(runs_root, "b-running", "running", age=1000, owner="B", address="home")
    _fake_run(runs_root, "b-pinned", "finished", age=900, owner="B", address="home")
    _fake_run(runs_root, "from-the-cli", "finished", age=2000)  # no owner: never deleted
    assert runs.prune_runs(per_owner=2, per_address=10, pinned=("b-pinned",)) == ["b-0", "b-1"]
    assert sorted(p.name for p in runs_root.iterdir() if p.is_dir()) == [
        "a-only", "b-2", "b-3", "b-pinned", "b-running", "from-the-cli"]
    for k in range(4):  # many sessions from one address: its cap applies too
        _fake_run(runs_root, f"c-{k}", "finished", age=50 - k, owner=f"C{k}", address="home")
    assert runs.prune_runs(per_owner=2, per_address=4, pinned=("b-pinned",)) == ["a-only", "b-2", "b-3"]


def test_a_browser_keeps_its_id_across_sessions_and_restarts(tmp_path):
    from explorer.owners import Owners, client_address, opaque

    owners = Owners(tmp_path / "secret")
    secret = owners.secret()
    assert len(secret) == 64 and Owners(tmp_path / "secret").secret() == secret  # kept on disk
    assert (tmp_path / "secret").stat().st_mode & 0o077 == 0
    first = owners.identify("session-1", None)
    assert owners.identify("session-2", first) == first and owners.owner("session-2") == first
    assert owners.identify("session-3", "<script>") != "<script>"  # a forged value is not an id
    assert owners.owner("unknown-session") == "unknown-session" and owners.owner(None) == "api"
    assert opaque(first) != first and len(opaque(first)) == 16
    assert client_address("10.0.0.1", "203.0.113.9, 10.0.0.1", trust_forwarded=True) == "203.0.113.9"
    assert client_address("127.0.0.1", "203.0.113.9", trust_forwarded=False) == "127.0.0.1"


def test_checkpoint_zip_is_made_once_per_checkpoint(runs_root):
    folder = _fake_run(runs_root, "zipped", "finished")
    first = runs.checkpoint_zip("zipped")
    made = first.stat().st_ino  # a zip made again is a new file (written aside, renamed into place)
    for _ in range(5):  # many page views and downloads: one file
        assert runs.checkpoint_zip("zipped") == first and first.stat().st_ino == made
    assert [p.name for p in first.parent.iterdir()] == ["zipped.zip"]
    time.sleep(0.01)
    (folder / "model.safetensors").touch()  # a new best checkpoint: the zip is made again
    assert runs.checkpoint_zip("zipped").stat().st_ino != made


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


# ----------------------------------------------------------------------------- the page's logic, without a page

def test_a_runs_events_become_page_updates(tmp_path):
    from explorer.slot import Epoch, Log
    from explorer.stream import KEEP, page_updates

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


def test_batched_classification_shares_one_pass_and_answers_the_rest_alone():
    calls = []

    def predict_batch(model, images, top_k):
        calls.append((model, list(images), top_k))
        return [[("cat", 0.9), ("dog", 0.1)] for _ in images], 12.0, "CPU"

    def one(image, model, top_k, thorough):
        if image is None:
            raise ValueError("Please upload an image first.")
        return {"alone": 1.0}, "alone"

    labels, infos = batch_classify(["a.jpg", "b.jpg", "c.jpg", None], ["", "", "other-run", ""], [1, 2, 5, 5],
                                   [False, False, False, False], predict_batch, one)
    assert calls == [("ImageNet GoogLeNet", ["a.jpg", "b.jpg"], 2)]
    assert labels[0] == {"cat": 0.9} and labels[1] == {"cat": 0.9, "dog": 0.1}
    assert infos[0] == "12 ms for a batch of 2 on CPU" and labels[2] == {"alone": 1.0}
    assert labels[3] == {} and infos[3] == "⚠ Please upload an image first."


def test_render_functions_say_what_happened():
    from explorer import render

    assert render.cell("test_accuracy", 0.4567) == "45.7%" and render.cell("lr", 0.02) == "0.02"
    table = render.compare_table([{"run": "a", "lr": 0.1, "best_val_accuracy": 0.5},
                                  {"run": "b", "lr": None, "best_val_accuracy": 0.25}])
    assert table.splitlines() == ["| run | lr | best_val_accuracy |", "|---|---|---|", "| a | 0.1 | 50.0% |",
                                  "| b |  | 25.0% |"]
    stopped = RunSummary("r", None, "cancelled", None, None, 0, "stopped at the time limit of 600 s")
    assert render.ended_line(stopped) == "Run `r` cancelled: no epoch finished (stopped at the time limit of 600 s)"
    line = render.status_markdown("CPU (2 threads)", "a local folder", None, {"torch": "2"})
    assert line == "**device:** CPU (2 threads) · **weights:** a local folder · torch 2"
    assert "UNTRAINED" in render.status_markdown("CPU", "untrained", "UNTRAINED weights", {})


def test_a_click_on_a_grid_opens_the_channel_shown_there():
    from explorer.views import tile_channel
    from googlenet.features import GRID_HEAD, GRID_LABEL, GRID_PAD, GRID_TILE

    orders = {"3x3": [40, 7, 99, 3]}
    second = (GRID_PAD + GRID_TILE + GRID_PAD + GRID_TILE // 2, GRID_HEAD + GRID_LABEL + GRID_TILE // 2)
    assert tile_channel(orders, "3x3", second) == 7
    assert tile_channel(orders, "5x5", second) is None and tile_channel({}, "3x3", second) is None
    assert tile_channel(orders, "3x3", (1, 1)) is None  # the title


def test_a_run_folder_reads_what_the_loop_wrote(runs_root):
    from training.runfolder import RunFolder

    folder = RunFolder(_fake_run(runs_root, "done", "finished"))
    assert folder.usable and folder.status == "finished" and folder.metrics() == [] and folder.report() is None
    (folder.path / "run.json").write_text("{not json")
    assert folder.info() is None and not folder.usable
    empty = RunFolder(_fake_run(runs_root, "empty", "empty", complete=False))
    assert empty.summary().status == "cancelled" and not empty.usable


def test_a_visitor_is_told_the_problem_as_text_and_never_a_trace():
    from explorer.errors import visitor_message

    assert visitor_message(ValueError("run '<b>x</b>' & co")) == "run '&lt;b&gt;x&lt;/b&gt;' &amp; co"
    hidden = visitor_message(KeyError("/srv/secret/path"))
    assert hidden.startswith("Something went wrong (KeyError)") and "/srv" not in hidden


def test_a_keyed_lock_lets_one_caller_per_key_run_and_others_keys_pass():
    from explorer.keyed import KeyedLock

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


def test_fair_use_admits_one_job_per_visitor_a_few_per_address_and_a_bounded_room():
    from explorer.fairness import FairUse

    now = [0.0]
    fair = FairUse(per_address=2, room=3, ttl=60, clock=lambda: now[0])
    assert fair.admit("atlas", "v1", "home") is None
    assert "already have a channel view running" in fair.admit("atlas", "v1", "home")  # one per visitor and endpoint
    assert fair.admit("report", "v1", "home") is None  # another endpoint: its own ticket
    assert fair.admit("atlas", "v2", "home") is None
    assert "Your address already has 2 of these (channel view)" in fair.admit("atlas", "v3", "home")
    assert "busy with 3 long requests" in fair.admit("atlas", "v4", "office")  # the room is full
    with fair.job("atlas", "v1"):
        pass  # a job gives its ticket back however it ends
    assert fair.admit("atlas", "v4", "office") is None and len(fair) == 3
    now[0] = 61  # tickets of jobs that never ran lapse
    assert len(fair) == 0 and fair.admit("atlas", "v1", "home") is None


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


def test_example_answers_are_computed_once_per_photo_model_and_options(tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    from explorer.examples import ExampleAnswers
    from helpers import PHOTOS, not_examples

    answers, calls = ExampleAnswers(PHOTOS[:2], capacity=2), []

    def compute(tag: str):
        def run() -> str:
            calls.append(tag)
            time.sleep(0.05)
            return tag
        return run

    photo = answers.photo(str(PHOTOS[0]))
    assert photo is not None and answers.photo(str(PHOTOS[2])) is None  # not one of these examples
    assert answers.photo(str(not_examples(tmp_path)[0])) is None and answers.photo(str(tmp_path / "gone")) is None
    with ThreadPoolExecutor(3) as pool:  # three first clicks at once: one computation
        got = list(pool.map(lambda _: answers.answer((photo, "model-a", 5), compute("a")), range(3)))
    assert calls == ["a"] and sorted(c for _, c in got) == [False, True, True]
    assert answers.answer((photo, "model-b", 5), compute("b")) == ("b", False)  # other weights: computed
    assert answers.answer(None, compute("x")) == ("x", False) and answers.answer(None, compute("x"))[1] is False
    answers.answer((photo, "model-c", 5), compute("c"))  # over capacity: the least recently used goes
    assert answers.answer((photo, "model-a", 5), compute("a2")) == ("a2", False)
