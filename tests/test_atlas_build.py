"""The precomputed atlas (``python -m explorer.atlas build``): a resumable build, serving it (views and the branch
grid), refusing an atlas of other weights, and publishing it on the Hub."""

import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from googlenet.interpret.featurevis import visualize_tensor
from conftest import ATLAS_SETTINGS
from helpers import PHOTOS

MODULES, LIMIT = ["inception3a", "inception4a"], 3


@pytest.fixture(scope="module")
def built(converted, cifar_dir, tmp_path_factory):
    """One small atlas (its index and its folder), which the module's tests only read, built with the tests' atlas
    settings (``atlas_env``'s)."""
    from explorer import profile
    from explorer.atlas.build import build

    base = tmp_path_factory.mktemp("atlas-build")
    with pytest.MonkeyPatch.context() as env:
        for name, value in {**ATLAS_SETTINGS, "GOOGLENET_ATLAS_CACHE": str(base / "cache"),
                            "RUNS_DIR": str(base / "runs")}.items():
            env.setenv(name, value)
        profile.current.cache_clear()
        record = build(converted, base / "built", MODULES, ["1x1", "3x3", "5x5", "pool"], size=32, steps=2, batch=2,
                       data_dir=str(cifar_dir), weights="test weights", progress=False, limit=LIMIT)
    profile.current.cache_clear()
    return record, base / "built"


def _files(folder):
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_build_killed_midway_and_resumed_gives_the_same_files(built, atlas_env, converted, tmp_path, cifar_dir,
                                                                 monkeypatch):
    from explorer.atlas import build as atlas

    record, folder = built
    whole = _files(folder)
    assert len(record["channels"]) == 2 * 4 * LIMIT and record["fingerprint"] == atlas_env.fingerprint(converted)
    assert {"vis/inception4a/pool/0002.png", "thumbs/inception3a/1x1/0000.png", "examples/inception3a/5x5/0001.png",
            "atlas.json", "README.md"} <= set(whole) and "progress.json" not in whole
    first = record["channels"]["inception3a/1x1/0"]
    assert len(first["examples"]) == 9 and isinstance(first["score"], float)
    # Channel 1 was built beside channel 0 (batch 2): the same batch rendered here gives its picture, to the 8-bit
    # rounding of the same floats (another batch gives another good picture: test_featurevis.py says why).
    rendered = visualize_tensor(converted, "inception4a", "pool", [0, 1], steps=2, size=32)[1]
    with Image.open(folder / "vis/inception4a/pool/0001.png") as vis:
        assert np.array_equal(np.asarray(vis), (rendered * 255).round().byte().permute(1, 2, 0).numpy())
    real = atlas.scores
    calls = []

    def dies(*args):
        calls.append(1)
        if len(calls) == 5:
            raise KeyboardInterrupt("killed")
        return real(*args)

    monkeypatch.setattr(atlas, "scores", dies)
    shutil.copytree(folder.parent / "cache", tmp_path / "atlas", dirs_exist_ok=True)  # the index, computed once
    again = tmp_path / "again"
    args = dict(size=32, steps=2, batch=2, data_dir=str(cifar_dir), weights="test weights", progress=False,
                limit=LIMIT)
    with pytest.raises(KeyboardInterrupt):
        atlas.build(converted, again, MODULES, ["1x1", "3x3", "5x5", "pool"], **args)
    assert len(json.loads((again / "progress.json").read_text())["channels"]) == 6  # 4 batches: 2 branches of 3
    with pytest.raises(ValueError, match="--resume"):
        atlas.build(converted, again, MODULES, ["1x1", "3x3", "5x5", "pool"], **args)
    monkeypatch.setattr(atlas, "scores", real)
    atlas.build(converted, again, MODULES, ["1x1", "3x3", "5x5", "pool"], resume=True, **args)
    assert _files(again) == whole


def test_the_app_serves_a_matching_atlas_and_ignores_another_models(built, atlas_env, converted, tmp_path, caplog):
    from explorer.atlas.grid import grid, responses
    from explorer.atlas.store import load_atlas
    from explorer.render import channel_note
    from googlenet.inference import inference_copy

    atlas = load_atlas(str(built[1]))
    view = atlas_env.channel_view(converted, "inception4a", "3x3", 1, atlas=atlas)
    assert view.cached == ["precomputed atlas"] and len(view.examples) == 9 and view.visualization.size == (32, 32)
    assert "2 steps at 32 px" in channel_note(view, view.settings["steps"], view.settings["size"])
    assert not list((tmp_path / "atlas").glob("vis-*"))  # nothing optimised
    other = inference_copy(converted, fold=False)
    with torch.no_grad():
        other.inception4a.branch2[1].conv.weight.mul_(-1)
    assert not atlas.describes(other)
    assert atlas_env.channel_view(other, "inception4a", "3x3", 1, atlas=atlas).cached == []  # rendered instead
    patch = Image.new("RGB", (64, 64), (0, 128, 0))
    tiles, order = grid(converted, "inception3a", "pool", atlas, lambda c: None, lambda: [patch] * 32)
    assert order == list(range(32)) and tiles[0][1] == "ch 0"
    with Image.open(atlas.picture("thumbs", "inception3a", "pool", 2)) as thumb:
        assert tiles[2][0].tobytes() == thumb.convert("RGB").tobytes()  # precomputed
    assert tiles[3][0] is patch  # beyond the small atlas: the channel's dataset example
    values = responses(converted, PHOTOS[0], "inception3a", "pool")
    tiles, order = grid(converted, "inception3a", "pool", atlas, lambda c: None, lambda: [patch] * 32, values)
    from googlenet.interpret.branches import capture_branches
    from googlenet.preprocess import prepare_input

    x, _ = prepare_input(PHOTOS[0], converted.preprocessing)
    direct = capture_branches(converted, x, ["inception3a"])["inception3a"]["pool"][0].amax((1, 2))
    assert order == direct.argsort(descending=True).tolist()
    assert tiles[0][1] == f"ch {order[0]}: {float(direct.max()):.2f}"
    with caplog.at_level("WARNING"):
        assert load_atlas(str(tmp_path / "nowhere")) is None
    assert "not used" in caplog.text


def test_an_atlas_is_pushed_to_and_pulled_from_the_hub_as_a_dataset(built, atlas_env, converted, tmp_path,
                                                                      monkeypatch):
    """Through the local fake Hub (HF_ENDPOINT): --push uploads the folder as a dataset repo; GOOGLENET_ATLAS with a
    repo id (and @revision) pulls it through the Hub cache."""
    from conftest import FAKE_HUB
    from explorer.atlas.store import load_atlas, push

    monkeypatch.setenv("HF_TOKEN", "maintainer-token")
    record, folder = built
    assert "commit" in push(folder, "team/atlas")
    commit = FAKE_HUB.refs["datasets/team/atlas"]["main"]
    assert set(FAKE_HUB.repos["datasets/team/atlas"][commit]) == set(_files(folder))
    pulled = load_atlas("team/atlas")
    assert pulled is not None and pulled.describes(converted) and pulled.record == record
    assert pulled.folder != folder and pulled.picture("thumbs", "inception3a", "1x1", 0).is_file()
    assert load_atlas(f"team/atlas@{commit}").record == record
