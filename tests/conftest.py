"""Shared test setup: CPU only, no network, caches in temporary folders."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
ASSETS = ROOT / "assets"
PHOTOS = sorted(ASSETS.glob("*.jpg"))

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


def calibrate(model, seed: int = 0):
    """Give a random network realistic activations: He-initialised convolutions, BatchNorm statistics
    measured on the example photos, and a confident classifier (the default init makes every output the same)."""
    import torch
    from PIL import Image
    from torchvision.transforms import v2

    torch.manual_seed(seed)
    transform = v2.Compose([v2.Resize(256, antialias=True), v2.CenterCrop(224), v2.ToImage(),
                            v2.ToDtype(torch.float32, scale=True),
                            v2.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])
    photos = torch.stack([transform(Image.open(p).convert("RGB")) for p in PHOTOS])
    batch = torch.cat([photos, photos.flip(-1), torch.randn(4, 3, 224, 224) * 0.5])
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.Conv2d):
                torch.nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            elif isinstance(m, torch.nn.BatchNorm2d):
                m.reset_running_stats()
                m.momentum = None  # cumulative average over the calibration batch
        model.train()
        model(batch)
        model.eval()
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.momentum = 0.1
        torch.nn.init.normal_(model.fc.weight, std=0.3)
    return model.eval()


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


def dead_endpoint() -> str:
    """An address on which nothing listens: connections are refused at once."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.fixture(scope="session")
def cifar_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small learnable dataset in CIFAR-10's official pickle format."""
    from data.make_cifar import make_dataset

    return make_dataset(tmp_path_factory.mktemp("cifar"), per_class_train=40, per_class_test=20)


def quick_config(cifar_dir: Path, output: Path, **overrides):
    """A CPU run that learns the generated dataset in seconds."""
    from training import TrainConfig

    settings = dict(recipe="finetune", data_dir=str(cifar_dir), weights="none", output=str(output), device="cpu",
                    epochs=3, batch_size=32, image_size=32)
    settings.update(overrides)
    return TrainConfig(**settings)
