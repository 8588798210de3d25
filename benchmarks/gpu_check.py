"""GPU correctness checks plus the GPU benchmarks, in one run (for a lent GPU machine).

    python benchmarks/gpu_check.py [--skip-bench]

First, in a fresh process, ZeroGPU's process model on real CUDA (``--zerogpu`` alone): the main process
never initialises CUDA, and every GPU function runs in a forked worker (``explorer.gpu.forked``, the
stand-in for ``spaces.GPU``) that classifies, draws feature maps, renders an atlas channel and fine-tunes.

Checks: the CUDA fast path (bfloat16, channels_last, CUDA graphs, GPU-side resize) against the plain
float32 model on CPU (same top-1, probabilities within 1e-2); batched and multi-crop prediction on
CUDA; Inside Inception on CUDA; a short CUDA training run that learns; an absurd batch answered with a
clear out-of-memory message and the device still usable. Then benchmarks/infer.py and train.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]


DEVICE = os.environ.get("GPU_CHECK_DEVICE", "cuda")  # "cpu": a dry run of the script's logic on a machine without one
os.environ.setdefault("GOOGLENET_ATLAS_CACHE", tempfile.mkdtemp(prefix="atlas-"))
os.environ.setdefault("RUNS_DIR", tempfile.mkdtemp(prefix="runs-"))


def check(name: str, ok: bool, detail: str = "") -> bool:
    print(f"[{'PASS' if ok else 'FAIL'}] {name} {detail}", flush=True)
    return ok


def zerogpu() -> int:
    """The forked-worker model on real CUDA: per-call cost of a fresh worker against a warm process."""
    import torch

    from data.make_cifar import make_dataset
    from explorer.gpu import forked
    from explorer.slot import Done, Epoch, train_events
    from googlenet.classify import Classifier
    from googlenet.interpret.featurevis import visualize
    from googlenet.interpret.inside import inspect_image
    from helpers import PHOTOS, quick_config, realistic_model

    model = realistic_model()
    expected = Classifier(model, device="cpu", fast=False).predict(PHOTOS[0], top_k=1)[0][0]

    def classify(path):
        name = torch.cuda.get_device_name() if DEVICE == "cuda" else "H(cpu dry run)"
        return Classifier(model, device=DEVICE).predict(path, top_k=1)[0][0], name

    def features(path):
        return len(inspect_image(model.to(DEVICE), path, "inception4c").knockout)

    def atlas():
        return visualize(model.to(DEVICE), "inception4c", "3x3", [3], steps=32, size=128)[0].size

    ok = True
    for name, fn, args, want in (("classify", classify, (PHOTOS[0],), None), ("feature maps", features, (PHOTOS[0],), 4),
                                 ("atlas channel", atlas, (), (128, 128))):
        t = time.perf_counter()
        out = forked(fn)(*args)
        fresh = time.perf_counter() - t
        good = out[0] == expected and "H" in out[1] if name == "classify" else out == want
        ok &= check(f"forked worker: {name} on CUDA", good, f"{out!r}, fresh worker {fresh:.2f} s")
    ok &= check("main process never initialised CUDA", not torch.cuda.is_initialized())
    with tempfile.TemporaryDirectory() as tmp:
        data = make_dataset(Path(tmp) / "cifar", per_class_train=100, per_class_test=10)
        t = time.perf_counter()
        events = list(forked(train_events)(quick_config(data, Path(tmp) / "run", device=DEVICE, epochs=2,
                                                        batch_size=64, image_size=64, keep_resume_state=False)))
        done = [e for e in events if isinstance(e, Done)]
        ok &= check("forked worker: fine-tune on CUDA", bool(done) and any(isinstance(e, Epoch) for e in events),
                    f"{len(events)} events, {time.perf_counter() - t:.1f} s, {done[-1].summary if done else events[-1]}")
    ok &= check("main process never initialised CUDA (after fine-tuning)", not torch.cuda.is_initialized())
    # A warm process for comparison: the same calls in this process, CUDA initialised and the model resident.
    clf = Classifier(model, device=DEVICE)
    clf.predict(PHOTOS[0])
    t = time.perf_counter()
    for _ in range(10):
        clf.predict(PHOTOS[0], top_k=1)
    if DEVICE == "cuda":
        torch.cuda.synchronize()
    print(f"warm process classify: {(time.perf_counter() - t) / 10 * 1000:.2f} ms per call", flush=True)
    return 0 if ok else 1


def main() -> int:
    import torch
    from helpers import PHOTOS, quick_config, realistic_model  # the tests' realistic random weights and settings
    from data.make_cifar import make_dataset
    from googlenet.classify import Classifier
    from googlenet.interpret.inside import inspect_image
    from training import TrainingError, train

    assert torch.cuda.is_available(), "no CUDA device"
    ok = subprocess.run([sys.executable, __file__, "--zerogpu"], cwd=ROOT).returncode == 0
    print(f"torch {torch.__version__}, {torch.cuda.get_device_name()}", flush=True)
    model = realistic_model()
    plain = Classifier(model, device="cpu", fast=False)
    t = time.perf_counter()
    gpu = Classifier(model, device=DEVICE)
    print(f"CUDA classifier ready in {time.perf_counter() - t:.1f} s", flush=True)
    for path in PHOTOS:
        a, b = plain.predict(path, top_k=5), gpu.predict(path, top_k=5)
        diff = max(abs(x[1] - y[1]) for x, y in zip(a, b))
        ok &= check(f"cuda predict {path.name}", a[0][0] == b[0][0] and diff < 1e-2, f"top1 {a[0][0]!r}/{b[0][0]!r} "
                    f"max prob diff {diff:.4f}")
    f32 = Classifier(model, device=DEVICE, fast=False)
    for path in PHOTOS:  # which part of the fast path moves the probabilities: the GPU resize or bfloat16
        x = plain.preprocess(path)[None]
        ref = plain.probabilities(x)[0]

        def gap(probs) -> float:
            return float((probs[0].float().cpu() - ref).abs().max())

        print(f"  {path.name}: fp32 cuda, CPU resize {gap(f32.probabilities(x.to(DEVICE))):.4f} | fp32 cuda, GPU "
              f"resize {gap(f32.probabilities(f32.preprocess(path)[None])):.4f} | bf16, CPU resize "
              f"{gap(gpu.probabilities(x.to(DEVICE))):.4f} | top-1 p {float(ref.max()):.3f}", flush=True)
    batch = gpu.predict_batch(PHOTOS[:3], top_k=1)  # padded into the 4-image CUDA graph
    ok &= check("cuda predict_batch (graph bucket padding)",
                [r[0][0] for r in batch] == [gpu.predict(p, top_k=1)[0][0] for p in PHOTOS[:3]])
    big = gpu.predict_batch(PHOTOS * 6, top_k=1)  # 24 images: the eager path
    ok &= check("cuda predict_batch eager (24)", [r[0][0] for r in big[:4]] == [r[0][0] for r in big[4:8]])
    ten = gpu.predict(PHOTOS[0], top_k=1000, crops=10)
    ok &= check("cuda 10-crop distribution", abs(sum(p for _, p in ten) - 1) < 1e-2)
    cuda_model = model.to(DEVICE)
    result = inspect_image(cuda_model, PHOTOS[1], "inception4c")
    ok &= check("inside inception on cuda", len(result.knockout) == 4 and result.gradcam.size == (224, 224))
    from explorer.atlas.view import channel_view
    from explorer.profile import current

    SIZE = current().atlas_size

    t = time.perf_counter()
    view = channel_view(gpu.model_on_device(), "inception4c", "3x3", 5, PHOTOS[0], data_dir=ROOT / "no-cifar")
    ok &= check("atlas channel view on cuda", view.visualization.size == (SIZE, SIZE) and view.where is not None
                and len(view.examples) == min(9, len(PHOTOS)), f"first view {time.perf_counter() - t:.2f} s")
    model.to("cpu")

    with tempfile.TemporaryDirectory() as tmp:
        data = make_dataset(Path(tmp) / "cifar", per_class_train=300, per_class_test=20)
        t = time.perf_counter()
        run = train(quick_config(data, Path(tmp) / "run", device=DEVICE, epochs=4, batch_size=64, image_size=64))
        ok &= check("cuda training learns", run.best_val_accuracy is not None and run.best_val_accuracy > 0.5,
                    f"val {run.best_val_accuracy}, {run.history[-1]['images_per_s']} img/s, "
                    f"{time.perf_counter() - t:.1f} s")
        try:
            train(quick_config(data, Path(tmp) / "oom", device=DEVICE, epochs=1, batch_size=2900, image_size=512))
            ok &= check("absurd batch -> clear OOM", False, "no error raised")
        except TrainingError as e:
            ok &= check("absurd batch -> clear OOM", "memory" in str(e), str(e))
        x = torch.randn(8, 3, 224, 224, device=DEVICE)
        with torch.no_grad():
            y = cuda_model.to(DEVICE).eval()(x)
        torch.cuda.synchronize()
        ok &= check("device usable after OOM", bool(torch.isfinite(y).all()),
                    f"allocated {torch.cuda.memory_allocated() / 2**20:.0f} MiB")
    print(f"checks: {'all passed' if ok else 'SOME FAILED'}", flush=True)
    if "--skip-bench" not in sys.argv:
        for cmd in (["benchmarks/atlas.py", "--steps", "64"], ["benchmarks/infer.py"],
                    ["benchmarks/train.py", "--compile"]):
            print(f"$ python {' '.join(cmd)}", flush=True)
            subprocess.run([sys.executable, *cmd], cwd=ROOT, check=False)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(zerogpu() if "--zerogpu" in sys.argv else main())
