"""Helpers shared by the tests and the GPU check script (importing this starts nothing)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ASSETS = ROOT / "assets"
PHOTOS = sorted(ASSETS.glob("*.jpg"))


FLOAT32_UNIT_ROUNDOFF = 2.0 ** -24


def float32_bound(layers: int, terms: int) -> float:
    """How far two float32 computations of one network may differ, relative to the magnitudes involved, whatever
    order each kernel sums in (another CPU's kernels, another batch size, BatchNorm folded): a sum of ``terms``
    products is exact to ``terms`` unit roundoffs of the sum of their magnitudes (Higham, "Accuracy and Stability
    of Numerical Algorithms", 3.1), and ``layers`` such sums in sequence add up."""
    return layers * terms * FLOAT32_UNIT_ROUNDOFF


# How far our network may be from torchvision's on the same weights, or a folded copy from the model, relative to the
# largest magnitude compared (other kernels, other summation orders). Measured at most 1.1e-5 for branch outputs
# and 3e-6 for logits, under oneDNN's default kernels, with ONEDNN_MAX_CPU_ISA=SSE41 and with
# ATEN_CPU_CAPABILITY=default (AMD EPYC): 1e-4 leaves ten times that. (``float32_bound`` for a whole GoogLeNet,
# 22 layers of sums of up to 1,728 terms, is 2.3e-3: the guarantee, far from what happens.)
RELATIVE = 1e-4


def close(got, expected, relative: float = RELATIVE) -> bool:
    """``got`` within ``relative`` of ``expected``'s largest magnitude, everywhere."""
    return float((got - expected).abs().max()) <= relative * float(expected.abs().max())


def not_examples(folder: Path) -> list[Path]:
    """The photos with one byte more (decoders ignore it after JPEG's end marker): the same pictures, which the
    app's example cache does not know, so every call computes (concurrency tests, load benchmarks)."""
    folder.mkdir(parents=True, exist_ok=True)
    copies = [folder / f"fresh-{p.name}" for p in PHOTOS]
    for photo, copy in zip(PHOTOS, copies):
        copy.write_bytes(photo.read_bytes() + b"\0")
    return copies


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


def realistic_model():
    """Our GoogLeNet converted from a calibrated torchvision one: random, but with realistic activations."""
    from torchvision.models import googlenet

    from googlenet import from_torchvision

    return from_torchvision(calibrate(googlenet(weights=None, aux_logits=True, transform_input=True,
                                                init_weights=True)))


def write_realistic_weights(folder: Path) -> Path:
    """``realistic_model()`` saved where ``GOOGLENET_WEIGHTS`` can point (no published weights are reachable)."""
    realistic_model().save_pretrained(folder)
    return folder


def run_threads(work, count: int) -> None:
    """``work(k)`` for k in range(count), all at once in threads; returns when every one has ended."""
    import threading

    threads = [threading.Thread(target=work, args=(k,)) for k in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def dead_endpoint() -> str:
    """An address on which nothing listens: connections are refused at once."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def quick_config(cifar_dir: Path, output: Path, **overrides):
    """A CPU run that learns the generated dataset in seconds."""
    from training import TrainConfig

    settings = dict(recipe="finetune", data_dir=str(cifar_dir), weights="none", output=str(output), device="cpu",
                    epochs=3, batch_size=32, image_size=32)
    settings.update(overrides)
    return TrainConfig(**settings)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def running_app(env: dict[str, str] | None = None, timeout: float = 120.0, script: str = "app.py") -> Iterator[str]:
    """``python app.py`` (``start_server``) for the duration of a ``with`` block; yields its URL."""
    proc, url = start_server(env, timeout, script)
    try:
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


@contextmanager
def demo_app(folder: Path, weights: str | None = None, url: str | None = None, **env: str) -> Iterator[str]:
    """The app as the benchmarks and screenshots show it, in ``folder``: ``weights`` (a Hub repo id or a folder),
    else the tests' realistic random weights offline, and a small generated CIFAR-10 stand-in; or ``url``, an app
    already running. Yields its URL."""
    if url:
        yield url
        return
    from data.make_cifar import make_dataset

    make_dataset(folder / "cifar", per_class_train=60, per_class_test=30)
    offline = {} if weights else {"HF_HUB_OFFLINE": "1"}
    weights = weights or str(write_realistic_weights(folder / "weights"))
    with running_app({"GOOGLENET_WEIGHTS": weights, "CIFAR10_DIR": str(folder / "cifar"),
                      "RUNS_DIR": str(folder / "runs"), **offline, **env}) as started:
        yield started


def start_server(env: dict[str, str] | None = None, timeout: float = 120.0,
                 script: str = "app.py") -> tuple[subprocess.Popen, str]:
    """``python app.py`` (or ``script``, relative to the repository) on a free local port; returns once it answers
    HTTP."""
    port = free_port()
    full_env = {**os.environ, "GRADIO_SERVER_NAME": "127.0.0.1", "GRADIO_SERVER_PORT": str(port),
                "GRADIO_ANALYTICS_ENABLED": "False", **(env or {})}
    log = open(full_env.get("APP_LOG", os.devnull), "ab")
    proc = subprocess.Popen([sys.executable, script], cwd=ROOT, env=full_env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the app exited with code {proc.returncode} before it was ready")
        try:
            urllib.request.urlopen(url, timeout=2)
            return proc, url
        except Exception:
            time.sleep(0.3)
    proc.kill()
    raise RuntimeError(f"the app did not answer on {url} within {timeout:.0f} s")
