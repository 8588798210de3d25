"""Helpers shared by the tests and the GPU check script (importing this starts nothing)."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ASSETS = ROOT / "assets"
PHOTOS = sorted(ASSETS.glob("*.jpg"))


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
