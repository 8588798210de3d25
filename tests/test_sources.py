"""Data sources (training/sources.py): Hub datasets through the fake Hub, CIFAR-10's two sources, your own photos in
a folder or a zip, and every refusal with its message."""

from __future__ import annotations

import io
import json
import os
import stat
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from data.make_parquet import cifar10_copy, leaves, parquet, pictures_of, png
from helpers import quick_config
from training import train
from training.__main__ import main
from training.data import DataError
from training.imagedata import Limits, label_fingerprint
from training.photos import check_zip
from training.sources import cifar10_source, load_source, run_splits

BEANS = ["angular_leaf_spot", "bean_rust", "healthy"]


@pytest.fixture(scope="module")
def leaves_repo(fake_hub):
    """team/leaves: v1 has three classes with all three splits; main (later) has four classes and no validation."""
    v1 = fake_hub.add_commit("datasets/team/leaves", leaves(BEANS, {"train": 12, "validation": 5, "test": 5}),
                             ref="v1")
    main_commit = fake_hub.add_commit("datasets/team/leaves", leaves([*BEANS, "leaf_spot"], {"train": 8, "test": 4},
                                                                     seed=5))
    return {"v1": v1, "main": main_commit}


def test_a_hub_dataset_by_revision_trains_from_the_cli_with_its_own_classes(leaves_repo, fake_hub, tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["--dataset", "team/leaves@v1", "--data-dir", str(tmp_path / "data"), "--weights", "none",
                 "--output", str(out), "--device", "cpu", "--epochs", "2", "--batch-size", "12", "--image-size", "32"])
    assert code == 0, capsys.readouterr().err
    info = json.loads((out / "run.json").read_text())
    assert info["data"]["dataset"] == "team/leaves" and info["data"]["revision"] == leaves_repo["v1"]
    assert info["data"]["labels"] == label_fingerprint(BEANS)
    assert info["data"]["held_out"] == {"test": "the test split", "validation": "the validation split"}
    assert info["settings"]["train_size"] == 36 and info["settings"]["val_size"] == 15
    report = json.loads((out / "report.json").read_text())
    assert report["classes"] == BEANS and np.asarray(report["confusion"]).shape == (3, 3)
    assert int(np.asarray(report["confusion"]).sum()) == 15

    from googlenet.classify import Classifier
    clf = Classifier.from_pretrained(str(out), device="cpu")
    assert clf.class_names == BEANS
    top = clf.predict_batch(pictures_of(np.array([0, 1, 2])), top_k=1)
    assert all(p[0][0] in BEANS for p in top)

    from training.publish import push_run
    push_run(out, "me/leaves-model", token="hf_test")  # the model card names the dataset and its revision
    card = fake_hub.repos["me/leaves-model"][fake_hub.refs["me/leaves-model"]["main"]]["README.md"].decode()
    assert f"fine-tuned on the Hub dataset `team/leaves` at revision `{leaves_repo['v1']}`" in card
    assert "datasets:\n- team/leaves\n" in card and "`angular_leaf_spot`, `bean_rust`, `healthy`" in card


def test_a_missing_split_is_a_stratified_part_of_train_and_the_run_says_which(leaves_repo, tmp_path):
    data = load_source("team/leaves", data_dir=tmp_path, image_size=48)  # main: four classes, no validation
    assert data.classes == [*BEANS, "leaf_spot"] and data.val is None and data.source["revision"] == leaves_repo["main"]
    assert data.train[0].shape == (32, 3, 48, 48) and data.train[0].dtype == torch.uint8
    parts = run_splits(data, 0.25, seed=3)
    assert parts.described["validation"] == "a stratified 25% of train"
    assert torch.bincount(parts.val_y, minlength=4).tolist() == [2, 2, 2, 2]
    assert len(parts.train_y) == 24 and len(parts.test_idx) == 16


def test_a_hub_dataset_is_read_offline_from_the_cache(leaves_repo, tmp_path, monkeypatch):
    import huggingface_hub.constants as constants

    online = load_source("team/leaves@v1", data_dir=tmp_path, image_size=32)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    offline = load_source("team/leaves@v1", data_dir=tmp_path, image_size=32)  # no decoded copy: parquet again
    assert offline.source["revision"] == online.source["revision"] == leaves_repo["v1"]
    assert torch.equal(offline.train[0], online.train[0]) and torch.equal(offline.test[1], online.test[1])
    with pytest.raises(DataError, match="could not be reached .* no copy of 'team/never-downloaded'"):
        load_source("team/never-downloaded", data_dir=tmp_path, image_size=32)


def test_decoded_pictures_are_kept_and_read_back_unchanged(leaves_repo, tmp_path, fake_hub):
    first = load_source("team/leaves@v1", data_dir=tmp_path, image_size=32, cache=tmp_path / "decoded")
    assert len(list((tmp_path / "decoded").glob("hub-*.safetensors"))) == 1
    before = len(fake_hub.requests)
    again = load_source("team/leaves@v1", data_dir=tmp_path, image_size=32, cache=tmp_path / "decoded")
    assert not any("resolve" in r for r in fake_hub.requests[before:])  # no parquet file was read again
    assert again.classes == first.classes and again.source == first.source
    for a, b in zip((*first.train, *first.val, *first.test), (*again.train, *again.val, *again.test)):
        assert torch.equal(a, b)


def test_cifar10_from_a_hub_parquet_copy_equals_the_python_batches(cifar_dir, fake_hub, tmp_path):
    fake_hub.add_commit("datasets/mirror/cifar10-copy", cifar10_copy(cifar_dir))
    batches = load_source("cifar10", data_dir=cifar_dir, image_size=64)
    hub = cifar10_source(tmp_path / "empty", download=True, cache=None, hub_id="mirror/cifar10-copy")
    assert hub.source["from"] == "mirror/cifar10-copy" and batches.source["from"] == "python batches"
    assert hub.classes == batches.classes and label_fingerprint(hub.classes) == batches.source["labels"]
    for a, b in zip((*batches.train, *batches.test), (*hub.train, *hub.test)):
        assert a.dtype == b.dtype and torch.equal(a, b)
    x, y = run_splits(batches, 0.2, seed=7), run_splits(hub, 0.2, seed=7)
    assert torch.equal(x.test_idx, y.test_idx) and torch.equal(x.val_x, y.val_x) and torch.equal(x.val_y, y.val_y)
    assert x.described == y.described == {"validation": "a stratified 20% of test", "test": "the rest of test"}


def test_cifar10_without_batches_or_a_hub_copy_says_what_to_do(tmp_path):
    with pytest.raises(DataError, match="does not exist, and the Hub cache holds no copy of uoft-cs/cifar10. Pass "
                                        "--download"):
        load_source("cifar10", data_dir=tmp_path / "nowhere", image_size=32)


# ----------------------------------------------------------------------------- your own photos

def _photos(folder: Path, classes: dict[str, int], extra: dict[str, bytes] | None = None) -> Path:
    for k, (name, n) in enumerate(classes.items()):
        (folder / name).mkdir(parents=True, exist_ok=True)
        for i, picture in enumerate(pictures_of(np.full(n, k), side=(30 + 5 * k, 40), seed=k)):
            (folder / name / f"{i}.png").write_bytes(png(picture))
    for name, data in (extra or {}).items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    return folder


def _zip(path: Path, entries: dict[str, bytes], links: tuple[str, ...] = ()) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in entries.items():
            z.writestr(name, data)
        for name in links:
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            z.writestr(info, "/etc/passwd")
    return path


def test_a_folder_of_photos_is_read_with_non_pictures_skipped_and_counted(tmp_path):
    folder = _photos(tmp_path / "pets", {"cat": 6, "dog": 7},
                     {"cat/notes.txt": b"not a picture", "dog/broken.jpg": b"\xff\xd8 not really", ".DS_Store": b"x"})
    logged = []
    data = load_source(str(folder), data_dir=tmp_path, image_size=40, log=logged.append)
    assert data.classes == ["cat", "dog"] and data.train[0].shape == (13, 3, 40, 40)
    assert torch.bincount(data.train[1]).tolist() == [6, 7]
    assert data.source["skipped"] == 2 and data.source["dataset"] == "folder:pets"
    assert logged == ["The folder pets: skipped 2 files that are not pictures"]
    parts = run_splits(data, 0.2, seed=0)
    assert parts.described == {"test": "a stratified 20% of train", "validation": "a stratified 20% of train"}
    assert len(parts.test_idx) + len(parts.val_y) + len(parts.train_y) == 13
    result = train(quick_config(tmp_path, tmp_path / "run", dataset=str(folder), epochs=1, batch_size=4))
    assert result.status == "finished"
    assert "skipped 2 files that are not pictures" in (tmp_path / "run" / "train.log").read_text()


def test_a_zip_of_photos_trains_and_names_its_classes(tmp_path):
    folder = _photos(tmp_path / "photos", {"cat": 8, "dog": 8, "owl": 8})
    entries = {f"my photos/{p.relative_to(folder).as_posix()}": p.read_bytes() for p in folder.rglob("*.png")}
    archive = _zip(tmp_path / "pets.zip", entries)  # one wrapping folder, as zipping a folder makes
    out = tmp_path / "run"
    result = train(quick_config(tmp_path, out, dataset=str(archive), epochs=1, batch_size=8))
    assert result.status == "finished"
    info = json.loads((out / "run.json").read_text())
    assert info["data"]["dataset"] == "zip:pets.zip" and info["data"]["labels"] == label_fingerprint(["cat", "dog", "owl"])
    assert json.loads((out / "report.json").read_text())["classes"] == ["cat", "dog", "owl"]


@pytest.mark.parametrize("entries, links, message", [
    ({"../evil/0.png": b"x", "cat/1.png": b"x"}, (), "'../evil/0.png' is a '..' that leaves its folder"),
    ({"/etc/cron.d/evil.png": b"x"}, (), "'/etc/cron.d/evil.png' is an absolute path"),
    ({"cat/1.png": b"x"}, ("dog/link.png",), "'dog/link.png' is a link"),
    ({"cat/zeros.png": bytes(30 << 20)}, (), "refused as a zip bomb"),
    ({"cat/a.txt": b"text", "dog/b.txt": b"text"}, (), "holds no picture that could be decoded \\(2 files skipped\\)"),
])
def test_a_dangerous_or_empty_zip_is_refused_and_nothing_is_written(tmp_path, entries, links, message):
    (tmp_path / "upload").mkdir()
    archive = _zip(tmp_path / "upload" / "photos.zip", entries, links)
    before = sorted(p for p in tmp_path.rglob("*"))
    with pytest.raises(DataError, match=message):
        load_source(str(archive), data_dir=tmp_path / "upload", image_size=32)
    assert sorted(p for p in tmp_path.rglob("*")) == before
    assert not Path("/etc/cron.d/evil.png").exists()


def test_zip_limits_on_size_and_entries(tmp_path):
    archive = _zip(tmp_path / "many.zip", {f"c{i % 2}/{i}.png": b"x" for i in range(12)})
    with pytest.raises(DataError, match="holds 12 entries; the limit is 10"):
        check_zip(archive, Limits(max_zip_files=10))
    with pytest.raises(DataError, match="The zip is 0 MB; the limit is 0 MB"):
        check_zip(archive, Limits(max_zip_bytes=100))
    (tmp_path / "fake.zip").write_bytes(b"PK not a zip")
    with pytest.raises(DataError, match="not a readable zip"):
        check_zip(tmp_path / "fake.zip")


# ----------------------------------------------------------------------------- what a dataset must hold

def _repo(fake_hub, name: str, files: dict[str, bytes]) -> str:
    fake_hub.add_commit(f"datasets/bad/{name}", files)
    return f"bad/{name}"


@pytest.mark.parametrize("case, message", [
    ("no-label", "has no usable label column; name one with --label-column \\(columns: image\\)"),
    ("one-class", "has 1 class: healthy; a classifier needs at least 2"),
    ("too-few", "has too few pictures in 2 classes: a \\(3\\), b \\(3\\); each needs at least 5"),
    ("no-train", "has no parquet files for the split 'train' \\(it has: test\\)"),
])
def test_a_dataset_that_cannot_train_says_exactly_why(fake_hub, tmp_path, case, message):
    labels = np.repeat(np.arange(2), 3)
    files = {"no-label": {"data/train-0.parquet": parquet(pictures_of(labels), [], None, label_column=None)},
             "one-class": leaves(["healthy"], {"train": 6}),
             "too-few": {"data/train-0.parquet": parquet(pictures_of(labels), ["a", "a", "a", "b", "b", "b"], None)},
             "no-train": leaves(BEANS, {"test": 5})}[case]
    with pytest.raises(DataError, match=message):
        load_source(_repo(fake_hub, case, files), data_dir=tmp_path, image_size=32)


def test_string_labels_become_sorted_classes_and_columns_can_be_named(fake_hub, tmp_path):
    labels = ["tulip", "rose", "daisy"] * 5
    files = {"train.parquet": parquet(pictures_of(np.arange(15) % 3), labels, None, image_column="photo",
                                      label_column="flower"),
             "extra/notes.parquet": b"ignored: not a split"}
    repo = _repo(fake_hub, "flowers", files)
    data = load_source(repo, data_dir=tmp_path, image_size=32, label_column="flower")
    assert data.classes == ["daisy", "rose", "tulip"] and data.source["image_column"] == "photo"
    assert [data.classes[i] for i in data.train[1][:3].tolist()] == ["tulip", "rose", "daisy"]
    with pytest.raises(DataError, match="has no column 'kind'; its columns are photo, flower"):
        load_source(repo, data_dir=tmp_path, image_size=32, label_column="kind")


def test_a_dataset_over_the_download_budget_is_refused_before_downloading(leaves_repo, fake_hub, tmp_path):
    before = len(fake_hub.requests)
    with pytest.raises(DataError, match=r"The dataset 'team/leaves' is \d+ MB on the Hub; the limit is 0 MB"):
        load_source("team/leaves@v1", data_dir=tmp_path, image_size=32, limits=Limits(max_download_bytes=1000))
    assert not any("resolve" in r for r in fake_hub.requests[before:])


def test_a_bad_dataset_id_is_refused_before_anything_runs(tmp_path):
    with pytest.raises(DataError, match="is not a Hub dataset id"):
        load_source("not a/dataset id!", data_dir=tmp_path, image_size=32)


def test_a_picture_over_10_mb_is_refused_before_decoding(tmp_path):
    from googlenet.images import MAX_FILE_BYTES, ImageError, load_image

    big = io.BytesIO()
    big.write(png(np.zeros((8, 8, 3), np.uint8)))
    data = big.getvalue() + bytes(MAX_FILE_BYTES)  # a valid PNG followed by padding: decodable, but too large
    with pytest.raises(ImageError, match="at most 10 MB"):
        load_image(data)
    (tmp_path / "big.png").write_bytes(data)
    with pytest.raises(ImageError, match=r"big.png is too large \(10.0 MB\); a picture may be at most 10 MB"):
        load_image(tmp_path / "big.png")
    assert load_image(data[:MAX_FILE_BYTES]).size == (8, 8)
    assert os.path.getsize(tmp_path / "big.png") > MAX_FILE_BYTES
