"""GPU correctness checks plus the GPU benchmarks, in one run (for a lent GPU machine).

    python benchmarks/gpu_check.py [--skip-bench]

Checks: the CUDA fast path (bfloat16, channels_last, CUDA graphs, GPU-side resize) against the plain
float32 model on CPU (same top-1, probabilities within 1e-2); batched and multi-crop prediction on
CUDA; Inside Inception on CUDA; a short CUDA training run that learns; an absurd batch answered with a
clear out-of-memory message and the device still usable. Then benchmarks/infer.py and train.py.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]


def check(name: str, ok: bool, detail: str = "") -> bool:
    print(f"[{'PASS' if ok else 'FAIL'}] {name} {detail}", flush=True)
    return ok


def main() -> int:
    import torch
    from torchvision.models import googlenet

    from helpers import PHOTOS, calibrate, quick_config  # the tests' realistic random weights and settings
    from data.make_cifar import make_dataset
    from googlenet import from_torchvision
    from googlenet.classify import Classifier
    from googlenet.features import inspect_image
    from training import TrainingError, train

    assert torch.cuda.is_available(), "no CUDA device"
    print(f"torch {torch.__version__}, {torch.cuda.get_device_name()}", flush=True)
    ok = True
    model = from_torchvision(calibrate(googlenet(weights=None, aux_logits=True, transform_input=True,
                                                 init_weights=True)))
    plain = Classifier(model, device="cpu", fast=False)
    t = time.perf_counter()
    gpu = Classifier(model, device="cuda")
    print(f"CUDA classifier ready in {time.perf_counter() - t:.1f} s", flush=True)
    for path in PHOTOS:
        a, b = plain.predict(path, top_k=5), gpu.predict(path, top_k=5)
        diff = max(abs(x[1] - y[1]) for x, y in zip(a, b))
        ok &= check(f"cuda predict {path.name}", a[0][0] == b[0][0] and diff < 1e-2, f"top1 {a[0][0]!r}/{b[0][0]!r} "
                    f"max prob diff {diff:.4f}")
    batch = gpu.predict_batch(PHOTOS[:3], top_k=1)  # padded into the 4-image CUDA graph
    ok &= check("cuda predict_batch (graph bucket padding)",
                [r[0][0] for r in batch] == [gpu.predict(p, top_k=1)[0][0] for p in PHOTOS[:3]])
    big = gpu.predict_batch(PHOTOS * 6, top_k=1)  # 24 images: the eager path
    ok &= check("cuda predict_batch eager (24)", [r[0][0] for r in big[:4]] == [r[0][0] for r in big[4:8]])
    ten = gpu.predict(PHOTOS[0], top_k=1000, crops=10)
    ok &= check("cuda 10-crop distribution", abs(sum(p for _, p in ten) - 1) < 1e-2)
    cuda_model = model.to("cuda")
    result = inspect_image(cuda_model, PHOTOS[1], "inception4c")
    ok &= check("inside inception on cuda", len(result.knockout) == 4 and result.gradcam.size == (224, 224))
    model.to("cpu")

    with tempfile.TemporaryDirectory() as tmp:
        data = make_dataset(Path(tmp) / "cifar", per_class_train=300, per_class_test=20)
        t = time.perf_counter()
        run = train(quick_config(data, Path(tmp) / "run", device="cuda", epochs=4, batch_size=64, image_size=64))
        ok &= check("cuda training learns", run.best_val_accuracy is not None and run.best_val_accuracy > 0.5,
                    f"val {run.best_val_accuracy}, {run.history[-1]['images_per_s']} img/s, "
                    f"{time.perf_counter() - t:.1f} s")
        try:
            train(quick_config(data, Path(tmp) / "oom", device="cuda", epochs=1, batch_size=2900, image_size=512))
            ok &= check("absurd batch -> clear OOM", False, "no error raised")
        except TrainingError as e:
            ok &= check("absurd batch -> clear OOM", "memory" in str(e), str(e))
        x = torch.randn(8, 3, 224, 224, device="cuda")
        with torch.no_grad():
            y = cuda_model.to("cuda").eval()(x)
        torch.cuda.synchronize()
        ok &= check("device usable after OOM", bool(torch.isfinite(y).all()),
                    f"allocated {torch.cuda.memory_allocated() / 2**20:.0f} MiB")
    print(f"checks: {'all passed' if ok else 'SOME FAILED'}", flush=True)
    if "--skip-bench" not in sys.argv:
        for cmd in (["benchmarks/infer.py"], ["benchmarks/train.py", "--compile"]):
            print(f"$ python {' '.join(cmd)}", flush=True)
            subprocess.run([sys.executable, *cmd], cwd=ROOT, check=False)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
