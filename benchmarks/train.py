"""Training throughput of the engine against the obvious PyTorch pipeline (the recipe "seed"'s), in the same run.

    python benchmarks/train.py [--quick] [--image-size 224] [--batch-size 256] [--compile]

Baseline (the code this project started from): a Dataset of PIL images through ToTensor -> Resize -> Normalize, one image
at a time in a DataLoader, batch 32, float32, Adam 1e-3, the same GoogLeNet. Project: the engine's
Trainer (uint8 data resident on the device, batched augmentation there, bfloat16 + channels_last on
CUDA). Synthetic CIFAR-shaped data: throughput does not depend on the pixels. Also a 3-epoch
frozen-backbone run at 64 px with cached features against the same run without them
(``--head-only-only`` for that alone). Last line: JSON with baseline_img_s, project_img_s, ratio and
head_only_ratio.
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import numpy as np
import torch
from _common import print_json, print_table, sync


def seed_baseline(images: np.ndarray, labels: np.ndarray, size: int, device: torch.device, steps: int) -> float:
    from PIL import Image
    from torch.utils.data import DataLoader, Dataset
    from torchvision import transforms

    from googlenet import GoogLeNet

    class PilCifar(Dataset):
        def __init__(self) -> None:
            self.tf = transforms.Compose([transforms.ToTensor(), transforms.Resize(size),
                                          transforms.Normalize([0.49, 0.48, 0.45], [0.25, 0.24, 0.26])])

        def __len__(self) -> int:
            return len(labels)

        def __getitem__(self, i: int):  # noqa: ANN204
            return self.tf(Image.fromarray(images[i].transpose(1, 2, 0))), int(labels[i])

    torch.manual_seed(0)
    model = GoogLeNet(num_classes=10, aux_logits=False).to(device).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loader = DataLoader(PilCifar(), batch_size=32, shuffle=True)
    seen, t0 = 0, None
    for step, (x, y) in enumerate(loader):
        if step == 3:  # after warm-up
            sync(str(device))
            t0, seen = time.perf_counter(), 0
        x, y = x.to(device), y.to(device)
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        seen += len(y)
        if step >= steps + 3:
            break
    sync(str(device))
    return seen / (time.perf_counter() - t0)


def project(images: np.ndarray, labels: np.ndarray, size: int, batch: int, device: torch.device, steps: int,
            compile: bool) -> float:
    from googlenet import GoogLeNet
    from training.trainer import Trainer
    from training.recipes import RECIPES

    recipe = dataclasses.replace(RECIPES["finetune"], image_size=size, batch_size=batch, pretrained=False)
    torch.manual_seed(0)
    model = GoogLeNet(num_classes=10, aux_logits=False)
    trainer = Trainer(model, recipe, device, steps_per_epoch=steps + 10, compile=compile)
    trainer.set_train_mode()
    x_all = torch.from_numpy(images).to(device)
    y_all = torch.from_numpy(labels).to(device)
    g = torch.Generator().manual_seed(0)
    warm = 5 if compile else 3

    def batch_indices() -> torch.Tensor:
        return torch.randint(0, len(labels), (batch,), generator=g).to(device)

    for _ in range(warm):
        idx = batch_indices()
        trainer.train_step(x_all[idx], y_all[idx])
    sync(str(device))
    t0 = time.perf_counter()
    for _ in range(steps):
        idx = batch_indices()
        loss = trainer.train_step(x_all[idx], y_all[idx])
    float(loss)
    sync(str(device))
    return steps * batch / (time.perf_counter() - t0)


def head_only(device: torch.device, size: int = 64, train_size: int = 1000, epochs: int = 3
              ) -> tuple[float, float, float]:
    """Seconds for a 3-epoch frozen-backbone fine-tune at ``size`` px: with cached features when the cache
    is cold (the first run computes them) and warm (every later run with the same weights, size and
    data), then without the cache."""
    import sys
    import tempfile
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from data.make_cifar import make_dataset
    from training import TrainConfig, train

    root = Path(tempfile.mkdtemp(prefix="bench-head-"))
    data = make_dataset(root / "cifar", per_class_train=train_size // 10, per_class_test=40)
    import os

    os.environ["GOOGLENET_FEATURE_CACHE"] = str(root / "features")
    seconds = []
    for name, cached in (("cold", True), ("warm", True), ("uncached", False)):
        config = TrainConfig(recipe="finetune", data_dir=str(data), weights="none", pretrained=True,
                             output=str(root / name), device=str(device), epochs=epochs, batch_size=64,
                             image_size=size, freeze_backbone=True, cache_features=cached, evaluate_test=False)
        t0 = time.perf_counter()
        train(config)
        seconds.append(time.perf_counter() - t0)
    return seconds[0], seconds[1], seconds[2]


def drift_overhead(device: torch.device, size: int = 96, train_size: int = 2000, epochs: int = 2
                   ) -> tuple[float, float]:
    """Seconds for a full fine-tune with the drift map and the probe's inside view after every epoch, and the same
    run without them (the GPU default's recipe and image size; on a CPU a fifth of its images and two epochs)."""
    import sys
    import tempfile
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from data.make_cifar import make_dataset
    from training import TrainConfig, loop, train

    root = Path(tempfile.mkdtemp(prefix="bench-drift-"))
    data = make_dataset(root / "cifar", per_class_train=train_size // 10, per_class_test=40)
    tracker, watcher = loop._drift_tracker, loop._probe_watcher
    seconds = []
    # A small run first: the first run in a process pays one-time costs (loading, kernel set-up) that would
    # otherwise count against whichever run came first.
    train(TrainConfig(recipe="finetune", data_dir=str(data), weights="none", pretrained=True, output=str(root / "warm"),
                      device=str(device), epochs=1, batch_size=64, train_size=256, image_size=size,
                      freeze_backbone=False, evaluate_test=False))
    for name, with_drift in (("without", False), ("with", True)):
        loop._drift_tracker = tracker if with_drift else (lambda *args: None)
        loop._probe_watcher = watcher if with_drift else (lambda *args: None)
        config = TrainConfig(recipe="finetune", data_dir=str(data), weights="none", pretrained=True,
                             output=str(root / name), device=str(device), epochs=epochs, batch_size=64,
                             image_size=size, freeze_backbone=False, evaluate_test=False)
        t0 = time.perf_counter()
        try:
            train(config)
        finally:
            loop._drift_tracker, loop._probe_watcher = tracker, watcher
        seconds.append(time.perf_counter() - t0)
    return seconds[1], seconds[0]  # (with, without)


def first_default_run(data_dir: str | None = None, test_size: int | None = "profile") -> dict[str, float]:
    """The app's default fine-tune, the first time, on a fresh ``python app.py`` (this machine's profile), timed
    through gradio_client from the moment it is submitted; CIFAR-10-format data of the real size (50,000 training
    and 10,000 test pictures, generated unless ``data_dir`` holds some). ``test_size=None`` tests on the whole
    held-out split, as the default did before (for the accuracy comparison)."""
    import os
    import sys
    import tempfile
    from pathlib import Path

    tests = Path(__file__).resolve().parents[1] / "tests"
    sys.path.insert(0, str(tests))
    from data.make_cifar import make_dataset
    from gradio_client import Client
    from helpers import running_app, write_realistic_weights

    root = Path(tempfile.mkdtemp(prefix="bench-first-"))
    if data_dir is None:
        data_dir = str(make_dataset(root / "cifar", per_class_train=5000, per_class_test=1000))
    write_realistic_weights(root / "weights")
    env = {"GOOGLENET_WEIGHTS": str(root / "weights"), "CIFAR10_DIR": data_dir, "RUNS_DIR": str(root / "runs"),
           "CUDA_VISIBLE_DEVICES": os.environ.get("CUDA_VISIBLE_DEVICES", ""), "HF_HUB_OFFLINE": "1",
           "GRADIO_TEMP_DIR": str(root / "gradio")}
    if test_size != "profile":
        env["GOOGLENET_TEST_SIZE"] = str(test_size or 0)
    with running_app(env, timeout=300) as url:
        client = Client(url, verbose=False)
        t0 = time.perf_counter()
        result = client.predict(api_name="/finetune")[3]
        seconds = time.perf_counter() - t0
    return {"seconds": round(seconds, 1), "val_accuracy": result["val_accuracy"],
            "test_accuracy": result["test_accuracy"]}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="32 px on CPU, few steps (under 60 s on 2 cores)")
    parser.add_argument("--image-size", type=int)
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--steps", type=int)
    parser.add_argument("--compile", action="store_true", help="also time the torch.compile'd engine")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--head-only-only", action="store_true", help="only the cached-features comparison")
    parser.add_argument("--drift-only", action="store_true", help="only the drift map's overhead")
    parser.add_argument("--first-run-only", action="store_true",
                        help="only the app's first default fine-tune on real-size data, against the old test set")
    parser.add_argument("--cifar-dir", help="real CIFAR-10 for --first-run-only (default: generated, real size)")
    args = parser.parse_args()
    if args.first_run_only:
        now, before = first_default_run(args.cifar_dir), first_default_run(args.cifar_dir, test_size=None)
        print_table([("first default fine-tune through the app (s)", f"{before['seconds']:.1f} (8,000 test pictures)",
                      f"{now['seconds']:.1f} (the default)", f"{before['seconds'] / now['seconds']:.2f}x"),
                     ("  its test accuracy", f"{before['test_accuracy']:.4f}", f"{now['test_accuracy']:.4f}", "")],
                     ratio_label="ratio (before/now time)")
        print_json({"first_run_s": now["seconds"], "first_run_test_accuracy": now["test_accuracy"],
                    "first_run_val_accuracy": now["val_accuracy"], "before_first_run_s": before["seconds"],
                    "before_test_accuracy": before["test_accuracy"]})
        return
    from googlenet.device import select_device

    device = select_device(args.device)
    cuda = device.type == "cuda"
    size = args.image_size or (32 if args.quick or not cuda else 224)
    batch = args.batch_size or (256 if cuda else 64)
    steps = args.steps or (5 if args.quick else 20)
    with_s, without_s = drift_overhead(device)
    drift_rows = [("full fine-tune, 2000 images, 96 px, 2 epochs (s)", f"{without_s:.1f} (neither)",
                   f"{with_s:.1f} (drift map and probe each epoch)", f"{with_s / without_s:.3f}x")]
    drift = {"drift_with_s": round(with_s, 2), "drift_without_s": round(without_s, 2),
             "drift_overhead": round(with_s / without_s - 1, 4)}
    if args.drift_only:
        print_table(drift_rows, ratio_label="ratio (with/without)")
        print_json(drift)
        return
    cold_s, warm_s, uncached_s = head_only(device)
    head_rows = [("3-epoch frozen-backbone run, 1000 images, 64 px (s)", f"{uncached_s:.1f} (backbone every epoch)",
                  f"{warm_s:.1f} (features cached)", f"{uncached_s / warm_s:.1f}x"),
                 ("  the same, the run that fills the cache (s)", f"{uncached_s:.1f}", f"{cold_s:.1f}",
                  f"{uncached_s / cold_s:.1f}x")]
    head = {"head_only_cached_s": round(warm_s, 2), "head_only_first_run_s": round(cold_s, 2),
            "head_only_uncached_s": round(uncached_s, 2), "head_only_ratio": round(uncached_s / warm_s, 2),
            "head_only_first_run_ratio": round(uncached_s / cold_s, 2)}
    if args.head_only_only:
        print_table(head_rows, ratio_label="ratio (uncached/cached time)")
        print_json(head)
        return
    rng = np.random.default_rng(0)
    n = 4096
    images = rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8)
    labels = rng.integers(0, 10, n).astype(np.int64)
    base = seed_baseline(images, labels, size, device, steps=max(steps, 10) if cuda else steps)
    ours = project(images, labels, size, batch, device, steps, compile=False)
    name = torch.cuda.get_device_name() if cuda else f"CPU ({torch.get_num_threads()} threads)"
    rows = [(f"train images/s at {size} px on {name}", f"{base:.0f} (batch 32, fp32)",
             f"{ours:.0f} (batch {batch}{', bf16' if cuda else ''})", f"{ours / base:.1f}x")]
    result = {"baseline_img_s": round(base, 1), "project_img_s": round(ours, 1), "ratio": round(ours / base, 2),
              "image_size": size, "batch_size": batch, "device": name}
    if args.compile:
        compiled = project(images, labels, size, batch, device, steps, compile=True)
        rows.append((f"train images/s at {size} px, torch.compile", f"{base:.0f}", f"{compiled:.0f}",
                     f"{compiled / base:.1f}x"))
        result["project_compiled_img_s"] = round(compiled, 1)
        if compiled > ours:
            result.update(project_img_s=round(compiled, 1), ratio=round(compiled / base, 2))
    rows.extend(head_rows + drift_rows)
    result.update(head | drift)
    print_table(rows, ratio_label="ratio (project/baseline)")
    print_json(result)


if __name__ == "__main__":
    main()
