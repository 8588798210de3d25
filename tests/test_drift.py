"""The drift map's two measures: linear CKA and weight drift, on their own and on a model with one branch moved."""

import copy
import math

import pytest
import torch

from training.drift import DriftTracker, drift_table, linear_cka


def test_linear_cka_properties():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 40, generator=g)
    q, _ = torch.linalg.qr(torch.randn(40, 40, generator=g))
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
    assert all(v == pytest.approx(1.0, abs=1e-6) for bs in frame["cka"].values() for v in bs.values())
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
        assert all(v == pytest.approx(1.0, abs=1e-6) for v in cka[m].values())
    for b in ("1x1", "5x5", "pool"):  # the same module's other branches see the same input
        assert cka["inception4a"][b] == pytest.approx(1.0, abs=1e-6)
    assert all(min(cka[m].values()) < 1 - 1e-4 for m in ("inception4b", "inception4e", "inception5b"))  # downstream
    assert len(tracker.record()["epochs"]) == 1
    table = drift_table(tracker.record())
    assert "| inception4a |" in table and math.isfinite(cka["inception5b"]["pool"])
