"""Shared test setup: CPU only, no network, caches in temporary folders."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

import tempfile

from fakehub import FakeHub  # noqa: E402

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


@pytest.fixture(autouse=True)
def _isolated_caches(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    base = tmp_path_factory.getbasetemp()
    monkeypatch.setenv("TORCH_HOME", str(base / "torch-home"))


@pytest.fixture(scope="session")
def tv_reference():
    """A torchvision GoogLeNet with random but non-trivial weights (BatchNorm statistics included)."""
    import torch
    from torchvision.models import googlenet

    torch.manual_seed(0)
    model = googlenet(weights=None, aux_logits=True, transform_input=True, init_weights=True)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
    return model.eval()


@pytest.fixture(scope="session")
def converted(tv_reference):
    from googlenet import from_torchvision

    return from_torchvision(tv_reference).eval()


@pytest.fixture(scope="session")
def fake_hub() -> FakeHub:
    return FAKE_HUB


def dead_endpoint() -> str:
    """An address on which nothing listens: connections are refused at once."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"
