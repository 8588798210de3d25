"""Runs as the app sees them (``explorer.runs``): folders on disk, the start-up sweep, retention that never takes
one visitor's runs for another's, and checkpoint zips made once."""

import json
import os
import time

import pytest

from explorer import runs
from googlenet import GoogLeNet
from training.runfolder import RunFolder

@pytest.fixture()
def runs_root(tmp_path, monkeypatch):
    monkeypatch.setenv("RUNS_DIR", str(tmp_path / "runs"))
    return tmp_path / "runs"



def _fake_run(root, name, status, complete=True, age=0.0, **record):
    folder = root / name
    folder.mkdir(parents=True)
    if complete:
        GoogLeNet(num_classes=10, aux_logits=False).save_pretrained(folder)
    (folder / "run.json").write_text(json.dumps({"status": status, **record}))
    stamp = time.time() - age
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



def test_a_run_folder_reads_what_the_loop_wrote(runs_root):
    folder = RunFolder(_fake_run(runs_root, "done", "finished"))
    assert folder.usable and folder.status == "finished" and folder.metrics() == [] and folder.report() is None
    (folder.path / "run.json").write_text("{not json")
    assert folder.info() is None and not folder.usable
    empty = RunFolder(_fake_run(runs_root, "empty", "empty", complete=False))
    assert empty.summary().status == "cancelled" and not empty.usable
def _upload(owner: str, digest: str, age: float):
    path = runs.uploads_dir() / owner / digest / "photos.zip"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"PK")
    stamp = time.time() - age
    os.utime(path, (stamp, stamp))
    return path


def test_an_upload_is_deleted_with_the_last_run_that_used_it_and_never_another_visitors(runs_root):
    a_used, a_shared = _upload("A", "a1", 7200), _upload("A", "a2", 7200)
    b_old, b_new = _upload("B", "b1", 7200), _upload("B", "b2", 60)  # b2: its run may be starting now
    _fake_run(runs_root, "a-run", "finished", age=300, owner="A", data={"load": {"spec": str(a_used)}})
    for k in range(2):  # two of A's runs used a2: it stays while either is kept
        _fake_run(runs_root, f"a-shared-{k}", "finished", age=200 - k, owner="A", data={"load": {"spec": str(a_shared)}})
    _fake_run(runs_root, "b-run", "finished", age=100, owner="B", data={"load": {"spec": str(b_old)}})
    _fake_run(runs_root, "b-newer", "finished", age=50, owner="B", data={"load": {"spec": "cifar10"}})
    assert runs.prune_runs(per_owner=2, per_address=10) == ["a-run"]  # deleted: its upload with it
    assert not a_used.exists() and not a_used.parent.exists()
    assert a_shared.is_file() and b_old.is_file() and b_new.is_file()  # used by kept runs; too recent to be unused
    assert runs.prune_runs(per_owner=1, per_address=10) == ["a-shared-0", "b-run"]
    assert not b_old.exists() and a_shared.is_file()  # a-shared-1 still uses A's
    assert runs.sweep_uploads(now=time.time() + 7200) == ["B/b2/photos.zip"]
    assert a_shared.is_file()
