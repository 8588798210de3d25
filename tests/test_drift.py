"""The drift map's two measures: linear CKA and weight drift, on their own and on a model with one branch moved."""

import copy
import math

import pytest
import torch

from training.drift import DriftTracker, drift_table, linear_cka


# A module the change cannot reach computes the same outputs on the same pictures, so its Gram matrices are the
# same and CKA (in float64) is 1 to float64 rounding, far inside this.
UNCHANGED = 1e-6


def test_linear_cka_properties():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 40, generator=g)
    q, _ = torch.linalg.qr(torch.randn(40, 40, generator=g))
    # Features in float32 (an orthogonal transform rounds them by about 40 u = 2.4e-6, relative); CKA in float64 moves
    # from 1 by the square of that: 1e-9 is far above both roundings.
    assert linear_cka(x, x) == pytest.approx(1.0, abs=1e-9)
    assert linear_cka(x, x @ q) == pytest.approx(1.0, abs=1e-9)  # an orthogonal transform
    assert linear_cka(x, 7.5 * x) == pytest.approx(1.0, abs=1e-9)  # an isotropic scaling
    assert linear_cka(x, x + 3.0) == pytest.approx(1.0, abs=1e-9)  # features are centred
    unrelated = torch.randn(64, 40, generator=g)
    assert linear_cka(x, unrelated) < 0.8
    half = torch.cat([x[:, :20], unrelated[:, 20:]], 1)
    assert linear_cka(x, unrelated) < linear_cka(x, half) < 1.0
    assert linear_cka(torch.randn(8, 3, 4, 4, generator=g), torch.randn(8, 5, 2, 2, generator=g)) <= 1.0  # any shapes


@pytest.fixture(scope="module")
def probe():
    return torch.rand(12, 3, 48, 48, generator=torch.Generator().manual_seed(1))


@pytest.fixture(scope="module")
def start_model(converted):
    """Realistic weights (the conftest's converted torchvision model), copied by each test that changes them."""
    return converted


def test_an_unchanged_model_has_no_drift(probe, start_model):
    model = start_model
    tracker = DriftTracker(model, probe, lambda x: x)
    frame = tracker.measure(model, 1)
    assert all(v == pytest.approx(1.0, abs=UNCHANGED) for bs in frame["cka"].values() for v in bs.values())
    assert all(v == 0.0 for bs in frame["weight_drift"].values() for v in bs.values())


def test_a_reinitialised_branch_drifts_there_and_downstream_only(probe, start_model):
    model = copy.deepcopy(start_model)
    tracker = DriftTracker(model, probe, lambda x: x)
    with torch.no_grad():
        for p in model.inception4a.branch2.parameters():
            p.copy_(torch.randn_like(p) * p.std().clamp_min(1e-3) + 0.1)
    frame = tracker.measure(model, 1)
    drift, cka = frame["weight_drift"], frame["cka"]
    moved = {(m, b) for m, bs in drift.items() for b, v in bs.items() if v > 0}
    assert moved == {("inception4a", "3x3")}
    assert cka["inception4a"]["3x3"] < 0.95
    for m in ("inception3a", "inception3b"):  # upstream: untouched
        assert all(v == pytest.approx(1.0, abs=UNCHANGED) for v in cka[m].values())
    for b in ("1x1", "5x5", "pool"):  # the same module's other branches see the same input
        assert cka["inception4a"][b] == pytest.approx(1.0, abs=UNCHANGED)
    assert all(min(cka[m].values()) < 1 - 1e-4 for m in ("inception4b", "inception4e", "inception5b"))  # downstream
    assert len(tracker.record()["epochs"]) == 1
    table = drift_table(tracker.record())
    assert "| inception4a |" in table and math.isfinite(cka["inception5b"]["pool"])


def test_a_head_only_run_cannot_move_its_branches(probe, start_model):
    """Why a frozen-backbone run shows "backbone frozen" instead of a map: training it moves no branch at all."""
    import dataclasses

    from training.recipes import RECIPES
    from training.trainer import Trainer

    model = copy.deepcopy(start_model)
    model.reset_classifier(10)
    recipe = dataclasses.replace(RECIPES["finetune"], freeze_backbone=True, image_size=32, batch_size=8, lr=0.05)
    trainer = Trainer(model, recipe, torch.device("cpu"), steps_per_epoch=3)
    tracker = DriftTracker(model, probe, trainer.pipeline.eval)
    head = model.fc.weight.detach().clone()
    g = torch.Generator().manual_seed(2)
    for _ in range(3):
        trainer.set_train_mode()
        trainer.train_step(torch.randint(0, 256, (8, 3, 32, 32), generator=g, dtype=torch.uint8),
                           torch.randint(0, 10, (8,), generator=g))
    assert not torch.equal(model.fc.weight, head)  # the head did learn
    frame = tracker.measure(model, 1)
    assert all(v == 0.0 for bs in frame["weight_drift"].values() for v in bs.values())
    assert all(v == pytest.approx(1.0, abs=UNCHANGED) for bs in frame["cka"].values() for v in bs.values())


def test_the_starting_grams_are_computed_once_and_read_back_from_disk(probe, start_model, tmp_path, monkeypatch):
    monkeypatch.setenv("GOOGLENET_CACHE_DIR", str(tmp_path))
    computed = []
    original = DriftTracker._grams
    monkeypatch.setattr(DriftTracker, "_grams", lambda self, m: computed.append(1) or original(self, m))
    first = DriftTracker(start_model, probe, lambda x: x, settings=(48, "imagenet"))
    second = DriftTracker(start_model, probe, lambda x: x, settings=(48, "imagenet"))
    assert len(computed) == 1 and list(tmp_path.glob("drift/grams-*.safetensors"))
    assert all(torch.equal(first.start_grams[m][b], second.start_grams[m][b]) for m in first.start_grams
               for b in first.start_grams[m])
    DriftTracker(start_model, probe, lambda x: x, settings=(64, "imagenet"))  # other settings: computed again
    assert len(computed) == 2


def test_the_probe_is_seen_as_the_run_sees_it_after_every_epoch(start_model):
    from helpers import PHOTOS
    from training.probe import ProbeWatcher, probe_picture

    test_x = torch.randint(0, 256, (5, 3, 32, 32), dtype=torch.uint8)
    picture, what = probe_picture(test_x, 3, None)
    assert torch.equal(picture, test_x[3]) and what == "CIFAR-10 test picture 3"
    mine, what = probe_picture(test_x, 3, str(PHOTOS[0]))  # an upload wins, shrunk to CIFAR-10's size
    assert mine.shape == (3, 32, 32) and mine.dtype == torch.uint8 and what == "your picture"
    with pytest.raises(ValueError, match="between 0 and 4"):
        probe_picture(test_x, 5, None)
    with pytest.raises(ValueError, match="could not be used"):
        probe_picture(test_x, 0, __file__)
    model = copy.deepcopy(start_model)
    watcher = ProbeWatcher(model, mine, lambda x: torch.nn.functional.interpolate(x.float() / 255, size=64),
                           "inception4c", what, "ImageNet")
    first = watcher.look(model, 1)
    assert len(first["top"]) == 3 and first["top"][0][1] >= first["top"][1][1] >= first["top"][2][1]
    assert first["shares"] == watcher.record()["start_shares"]  # nothing trained yet: shares as at the start
    # four shares, each rounded to 5 decimals: at most 4 x 0.5e-5 off, and float32's own rounding below that
    assert all(sum(s.values()) == pytest.approx(1.0, abs=2.1e-5) for s in first["shares"].values())
    assert len(first["cam"]) == 4 and 0 <= min(map(min, first["cam"])) and max(map(max, first["cam"])) <= 1
    with torch.no_grad():
        model.inception4c.branch2[0].conv.weight.mul_(3.0)
    second = watcher.look(model, 2)
    assert second["shares"]["inception4c"] != first["shares"]["inception4c"]
    assert second["shares"]["inception4a"] == first["shares"]["inception4a"]  # upstream: unchanged
    assert [f["epoch"] for f in watcher.record()["epochs"]] == [1, 2]
