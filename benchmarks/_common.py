"""Timing helpers shared by the benchmarks: medians of interleaved rounds, so baseline and project see
the same machine load."""

from __future__ import annotations

import io
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def sync(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def time_pair(baseline: Callable[[], object], project: Callable[[], object], rounds: int, iters: int,
              device: str = "cpu", warmup: int = 2) -> tuple[float, float]:
    """Median milliseconds per call of each, measured in alternating rounds."""
    for _ in range(warmup):
        baseline()
        project()
    sync(device)
    b_times, p_times = [], []
    for _ in range(rounds):
        for fn, out in ((baseline, b_times), (project, p_times)):
            sync(device)
            t = time.perf_counter()
            for _ in range(iters):
                fn()
            sync(device)
            out.append((time.perf_counter() - t) / iters * 1000)
    return statistics.median(b_times), statistics.median(p_times)


def one_megapixel_photo():
    """An asset photo upscaled to about 1 megapixel (1224x816), and its JPEG encoding."""
    from PIL import Image

    img = Image.open(ROOT / "assets" / "coffee.jpg").convert("RGB").resize((1224, 816), Image.BICUBIC)
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=90)
    return img, buf.getvalue()


def print_table(rows: list[tuple[str, str, str, str]], ratio_label: str = "ratio (baseline/project time)") -> None:
    header = ("case", "baseline", "project", ratio_label)
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(4)]
    for r in [header, tuple("-" * w for w in widths), *rows]:
        print("  ".join(str(c).ljust(w) for c, w in zip(r, widths)))


def print_json(result: dict) -> None:
    print(json.dumps(result))
