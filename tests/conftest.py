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


def _one_priority_for_the_whole_suite() -> None:
    """The app runs its expensive work (training, atlas views, explanations) at niceness 10, so that classification
    keeps its share of a CPU server (``training_niceness``). In the suite that work is on the critical path (the app
    servers' tests wait for it, and the slot test for a forked run) while the other worker's tests ran at 0 and
    starved it: beside two busy processes, a forked run reached its second epoch in 82 s instead of 1.4 s. Every
    process of the suite (servers, workers, Chromium: they inherit it) runs at 10, one level for all. Linux sets
    niceness per thread: this runs before this process starts any."""
    try:
        now = os.getpriority(os.PRIO_PROCESS, 0)
        if now < 10:
            os.nice(10 - now)
    except (AttributeError, OSError):  # not Linux or macOS: nothing to level
        pass


_one_priority_for_the_whole_suite()

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
if os.environ.get("PYTEST_XDIST_WORKER"):  # two workers on two cores: one thread each computes more than two
    os.environ.setdefault("OMP_NUM_THREADS", "1")

# After the environment above: it imports gradio_client, and so huggingface_hub.
from appserver import app_env, client, hub_recorder, prepared, server  # noqa: E402,F401  (the app's servers)


def _one_ssl_context_per_setting() -> None:
    """gradio_client opens a new httpx client for every request (an upload, a stream, each file it downloads), and
    each client loads the system's certificates: about 50 ms of CPU each, which came to a third of the CPU time of
    the app tests, though every server here is plain http on 127.0.0.1. An SSL context is reusable, so one per
    setting serves them all (httpx builds it in this one function)."""
    import functools

    import httpx._transports.default as transports

    transports.create_ssl_context = functools.lru_cache(maxsize=8)(transports.create_ssl_context)


_one_ssl_context_per_setting()


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


# The modules that take longest, handed out first (longest first balances two workers best); the rest in their order.
LONGEST_FIRST = ("test_training", "test_hosting", "test_slot", "test_featurevis", "test_explain", "test_atlas_build")


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items):
    """The app servers' tests (whatever module they are in) first, the in-process server's then the forked one's:
    each server starts once, and the forked one after the first has stopped, as the app restarted. With
    pytest-xdist (``--dist loadgroup``) they are one group, run in that order by one worker; every other module is a
    group of its own, so its module fixtures are made once, the longest handed out first."""
    def mode(item) -> str | None:
        callspec = getattr(item, "callspec", None)
        return callspec.params.get("app_env") if callspec else None

    def order(item) -> tuple[int, int]:
        name = item.module.__name__
        return {"in-process": 0, "forked-gpu": 1, None: 2}[mode(item)], \
            LONGEST_FIRST.index(name) if name in LONGEST_FIRST else len(LONGEST_FIRST)

    items.sort(key=order)
    for item in items:
        item.add_marker(pytest.mark.xdist_group("app-servers" if mode(item) else item.module.__name__))


# The atlas's settings in tests: a few steps on small pictures, a small reference set.
ATLAS_SETTINGS = {"GOOGLENET_ATLAS_STEPS": "6", "GOOGLENET_ATLAS_SIZE": "32", "GOOGLENET_ATLAS_INPUT_SIZE": "0",
                  "GOOGLENET_ATLAS_PER_CLASS": "5"}


@pytest.fixture
def atlas_env(tmp_path, profile_env):
    from types import SimpleNamespace

    from explorer.atlas.reference import example_index, reference_set
    from explorer.atlas.view import channel_view
    from explorer.caches import fingerprint

    profile_env(GOOGLENET_ATLAS_CACHE=str(tmp_path / "atlas"), RUNS_DIR=str(tmp_path / "runs"), **ATLAS_SETTINGS)
    return SimpleNamespace(channel_view=channel_view, fingerprint=fingerprint, reference_set=reference_set,
                           example_index=example_index)
