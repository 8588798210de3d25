"""The atlas's visualisations against Lucent's ``render_vis`` (Lucid's method in PyTorch), on the same model and
channels: both images scored at the model's input size (224 px), and both times, in the same run.

    pip install --target /tmp/lucent-env torch-lucent==0.1.8 kornia kornia-rs --no-deps
    PYTHONPATH=/tmp/lucent-env python benchmarks/lucent_compare.py [--channels 0,1,2] [--device auto]

Lucent is not a dependency of the app. Two shims let today's kornia and no IPython run it: ``kornia.get_rotation_matrix2d``
and ``kornia.warp_affine`` now live under ``kornia.geometry.transform``, and ``IPython.display`` is only used to show
pictures. Lucent's objective reads the hooked BatchNorm output of the branch's last convolution; this model's ReLUs
are in-place, so for Lucent they are made out-of-place (else its objective would be the post-ReLU output, with no
gradient where the unit is off). Model: the tests' realistic random weights (no real weights offline) unless
``--weights`` names a folder or repo. Last line: JSON.
"""

from __future__ import annotations

import argparse
import sys
import time
import types

from _common import ROOT, print_json, print_table, sync

MODULE, BRANCH = "inception4c", "3x3"


def lucent_render(model, channel: int, steps: int):  # noqa: ANN201 - a tensor, N x 3 x H x W
    import kornia
    import kornia.geometry.transform as kgt
    import torch
    import torch.nn.functional as F

    kornia.get_rotation_matrix2d, kornia.warp_affine = kgt.get_rotation_matrix2d, kgt.warp_affine
    sys.modules.setdefault("IPython", types.ModuleType("IPython"))
    sys.modules.setdefault("IPython.display", types.ModuleType("IPython.display"))
    from lucent.optvis import render

    from googlenet.model import BasicConv2d

    inplace = BasicConv2d.forward
    BasicConv2d.forward = lambda self, x: F.relu(self.bn(self.conv(x)))
    try:
        (image,) = render.render_vis(model, f"{MODULE}_branch2_1_bn:{channel}", thresholds=(steps,), progress=False,
                                     show_image=False)
    finally:
        BasicConv2d.forward = inplace
    return torch.from_numpy(image).permute(0, 3, 1, 2)


def compare(model, channels: list[int], device, lucent_steps: int = 256, steps: int | None = None
            ) -> tuple[list[tuple], dict]:
    """Each channel rendered by the atlas (the app's settings) and by Lucent, scored at 224 px, and timed."""
    from explorer.atlas.view import atlas_settings
    from googlenet.interpret.featurevis import channel_scores as scores
    from googlenet.interpret.featurevis import visualize_tensor

    settings = atlas_settings()
    if steps:
        settings["steps"] = steps
    record = {"module": MODULE, "branch": BRANCH, "settings": settings, "lucent_steps": lucent_steps, "channels": {}}
    rows, ratios, times = [], [], []
    for c in channels:
        sync(str(device))
        t = time.perf_counter()
        ours = visualize_tensor(model, MODULE, BRANCH, [c], **settings)
        sync(str(device))
        ours_s = time.perf_counter() - t
        t = time.perf_counter()
        theirs = lucent_render(model, c, lucent_steps).to(device)
        sync(str(device))
        theirs_s = time.perf_counter() - t
        (ours_act,), (theirs_act,) = scores(model, ours, MODULE, BRANCH, [c]), scores(model, theirs, MODULE, BRANCH, [c])
        ratios.append(ours_act / theirs_act if theirs_act > 0 else float("inf"))
        times.append(ours_s / theirs_s)
        record["channels"][c] = {"atlas_activation": ours_act, "lucent_activation": theirs_act,
                                 "atlas_s": round(ours_s, 2), "lucent_s": round(theirs_s, 2)}
        rows.append((f"{MODULE} {BRANCH} channel {c}: activation at 224 px, seconds",
                     f"{theirs_act:.3f}, {theirs_s:.1f} s (Lucent, {lucent_steps} steps at 128 px)",
                     f"{ours_act:.3f}, {ours_s:.1f} s (atlas)", f"{ratios[-1]:.2f}x act, {times[-1]:.2f}x time"))
    record.update(activation_ratio=round(sum(ratios) / len(ratios), 3), time_ratio=round(sum(times) / len(times), 3))
    return rows, record


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--channels", default="0,1,2")
    parser.add_argument("--lucent-steps", type=int, default=256)
    parser.add_argument("--steps", type=int, default=None, help="the atlas's steps (default: the app's setting)")
    parser.add_argument("--weights", default=None)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    from googlenet.device import select_device

    device = select_device(args.device)
    model = comparison_model(args.weights).to(device)
    rows, record = compare(model, [int(c) for c in args.channels.split(",")], device, args.lucent_steps, args.steps)
    print_table(rows, ratio_label="atlas / Lucent")
    print_json({"model": args.weights or "realistic random weights (tests)", **record})


def comparison_model(weights: str | None):  # noqa: ANN201
    """The named weights, else the tests' realistic random weights (no real weights offline)."""
    if weights:
        from googlenet.weights import load_weights

        return load_weights(weights)[0].eval()
    sys.path.insert(0, str(ROOT / "tests"))
    from helpers import realistic_model

    return realistic_model().eval()


if __name__ == "__main__":
    main()
