"""Shared test setup: CPU only, no network, caches in temporary folders."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from fakehub import FakeHub  # noqa: E402
from helpers import calibrate  # noqa: E402

# huggingface_hub reads HF_ENDPOINT and HF_HOME when imported, so the fake Hub starts before any test module.
FAKE_HUB = FakeHub().start()
os.environ["HF_ENDPOINT"] = FAKE_HUB.url
os.environ["HF_HOME"] = tempfile.mkdtemp(prefix="hf-home-")
os.environ.pop("HF_HUB_OFFLINE", None)
os.environ.pop("HF_TOKEN", None)
os.environ["GOOGLENET_WEIGHTS"] = "nobody/not-published-here"
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ["CUDA_VISIBLE_DEVICES"] = ""

# After the environment above: it imports gradio_client, and so huggingface_hub.
from appserver import app_env, client, hub_recorder, prepared, server  # noqa: E402,F401  (the app's servers)


@pytest.fixture(autouse=True)
def _isolated_caches(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    base = tmp_path_factory.getbasetemp()
    monkeypatch.setenv("TORCH_HOME", str(base / "torch-home"))


@pytest.fixture
def profile_env(monkeypatch: pytest.MonkeyPatch):
    """Set environment variables and rebuild the server profile from them (and again after the test)."""
    from explorer import profile

    def apply(**variables: str) -> "profile.Profile":
        for name, value in variables.items():
            monkeypatch.setenv(name, value)
        profile.current.cache_clear()
        return profile.current()

    yield apply
    monkeypatch.undo()
    profile.current.cache_clear()


@pytest.fixture(scope="session")
def tv_reference():
    """A torchvision GoogLeNet with random but realistic weights."""
    from torchvision.models import googlenet

    return calibrate(googlenet(weights=None, aux_logits=True, transform_input=True, init_weights=True))


@pytest.fixture(scope="session")
def converted(tv_reference):
    from googlenet import from_torchvision

    return from_torchvision(tv_reference).eval()


@pytest.fixture(scope="session")
def fake_hub() -> FakeHub:
    return FAKE_HUB


@pytest.fixture(scope="session")
def cifar_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small learnable dataset in CIFAR-10's official pickle format."""
    from data.make_cifar import make_dataset

    return make_dataset(tmp_path_factory.mktemp("cifar"), per_class_train=40, per_class_test=20)


# The app's servers (tests/appserver.py) are shared by every module: each test that uses them runs against the
# in-process server, and those marked ``both_modes`` (or ``restarted``: only) also against the forked one.
def pytest_generate_tests(metafunc):
    if "app_env" in metafunc.fixturenames:
        marked = metafunc.definition.get_closest_marker
        modes = ["forked-gpu"] if marked("restarted") else ["in-process", "forked-gpu"] if marked("both_modes") \
            else ["in-process"]
        metafunc.parametrize("app_env", modes, indirect=True, scope="session")


def pytest_collection_modifyitems(items):
    """The tests without a server first, then the in-process server's, then the forked one's (whatever module they
    are in): each server starts once, and the forked one after the first has stopped, as the app restarted."""
    def rank(item) -> int:
        callspec = getattr(item, "callspec", None)
        return {None: 0, "in-process": 1, "forked-gpu": 2}[callspec.params.get("app_env") if callspec else None]

    items.sort(key=rank)


@pytest.fixture
def atlas_env(tmp_path, profile_env):
    from types import SimpleNamespace

    from explorer.atlas.reference import example_index, reference_set
    from explorer.atlas.view import channel_view
    from explorer.caches import fingerprint

    profile_env(GOOGLENET_ATLAS_CACHE=str(tmp_path / "atlas"), GOOGLENET_ATLAS_STEPS="6", GOOGLENET_ATLAS_SIZE="32",
                GOOGLENET_ATLAS_INPUT_SIZE="0",
                GOOGLENET_ATLAS_PER_CLASS="5", RUNS_DIR=str(tmp_path / "runs"))
    return SimpleNamespace(channel_view=channel_view, fingerprint=fingerprint, reference_set=reference_set,
                           example_index=example_index)
