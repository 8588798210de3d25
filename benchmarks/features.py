"""Rendering speed of one module's four branch grids and overlays (goal: at most 0.5 s on 2 CPU cores),
against the obvious matplotlib version (a 4x16 subplot grid with imshow) as the baseline.

    python benchmarks/features.py [--quick] [--module inception4c]

The last line is JSON: baseline_ms, project_ms, ratio (baseline / project), goal_met.
"""

from __future__ import annotations

import argparse
import io

import torch
from _common import ROOT, print_json, print_table, time_pair


def matplotlib_baseline(outputs: dict[str, torch.Tensor], crop, n: int = 16) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(5, n, figsize=(n * 1.2, 6.5))
    for row, (key, out) in enumerate(outputs.items()):
        a = out[0]
        for col, ch in enumerate(a.mean((1, 2)).topk(n).indices.tolist()):
            axes[row, col].imshow(a[ch].numpy(), cmap="magma")
            axes[row, col].set_title(f"{key} ch {ch}", fontsize=6)
            axes[row, col].axis("off")
    for col, out in enumerate(outputs.values()):
        axes[4, col].imshow(crop)
        axes[4, col].imshow(out[0].mean(0).numpy(), cmap="jet", alpha=0.5,
                            extent=(0, crop.width, crop.height, 0))
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--module", default="inception4c")
    args = parser.parse_args()
    from googlenet import GoogLeNet
    from googlenet.draw import render_module
    from googlenet.interpret.branches import capture_branches
    from googlenet.preprocess import prepare_input

    torch.manual_seed(0)
    model = GoogLeNet(aux_logits=False).eval()
    x, crop = prepare_input(ROOT / "assets" / "cat.jpg", model.preprocessing)
    outputs = capture_branches(model, x, [args.module])[args.module]
    rounds, iters = (3, 1) if args.quick else (5, 3)
    b, p = time_pair(lambda: matplotlib_baseline(outputs, crop), lambda: render_module(crop, outputs), rounds, iters)
    print_table([(f"render 4 grids + 4 overlays, {args.module} (ms)", f"{b:.0f}", f"{p:.0f}", f"{b / p:.1f}x")])
    print_json({"baseline_ms": round(b, 1), "project_ms": round(p, 1), "ratio": round(b / p, 1),
                "goal_ms": 500, "goal_met": p <= 500, "threads": torch.get_num_threads()})


if __name__ == "__main__":
    main()
