"""Channel atlas speed: one channel's first view, a cached view, and the optimisation step against the
obvious way of writing it, in the same run; batched rendering, a branch's grid from a precomputed atlas and
ordered by a photo; with ``--lucent``, the comparison with Lucent (``lucent_compare.py``).

    python benchmarks/atlas.py [--steps 32] [--device auto] [--lucent] [--batched-only]

Baseline ("whole network", as Lucent does it): the full network runs every step, a forward hook takes
the branch's pre-ReLU output, ``loss.backward()`` fills every parameter's gradient, BatchNorm unfolded.
Project (``googlenet.interpret.featurevis.visualize``): the network stops at the module, BatchNorm folded, the gradient
for the image alone. Also the stop alone: the project's folded network run to the end each step.
Module: inception4c (the middle of the network), branch 3x3, one channel, 128 px seen at 224 px. Last line: JSON.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time

from _common import ROOT, print_json, print_table, sync

MODULE, BRANCH, CHANNEL, SIZE = "inception4c", "3x3", 17, 128


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=32, help="optimisation steps per arm for the step timing")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--lucent", action="store_true",
                        help="also render inception4c 3x3 channels 0-2 with Lucent (installed aside: see lucent_compare.py)")
    parser.add_argument("--batched-only", action="store_true",
                        help="only the precomputed atlas's figures: batched rendering, a grid, ordering by a picture")
    args = parser.parse_args()
    os.environ.setdefault("GOOGLENET_ATLAS_CACHE", tempfile.mkdtemp(prefix="atlas-bench-"))
    os.environ.setdefault("RUNS_DIR", tempfile.mkdtemp(prefix="atlas-bench-runs-"))
    import torch
    import torch.nn.functional as F
    from torchvision.models import googlenet as tv_googlenet

    from explorer.atlas import view as app_atlas
    from explorer.profile import current
    from googlenet import from_torchvision
    from googlenet.inference import shared_inference_copy
    from googlenet.interpret.featurevis import random_transform, visualize
    from googlenet.interpret.fourier import FourierImage
    from googlenet.device import select_device

    device = select_device(args.device)
    torch.manual_seed(0)
    model = from_torchvision(tv_googlenet(weights=None, aux_logits=True, transform_input=True,
                                          init_weights=True)).eval().to(device)
    name = torch.cuda.get_device_name() if device.type == "cuda" else f"CPU ({torch.get_num_threads()} threads)"
    shared_inference_copy(model)  # made once per model in the app too
    batched_rows, batched = precomputed_atlas(model, device, args.steps)
    if args.batched_only:
        print_table(batched_rows, ratio_label="ratio (one at a time/batched)")
        print_json({"device": name, **batched})
        return

    # The first view of a channel (visualisation, 256 steps, and the examples) and then the cached view.
    t = time.perf_counter()
    app_atlas.channel_view(model, MODULE, BRANCH, CHANNEL, data_dir=os.path.join(str(ROOT), "no-cifar-here"))
    sync(str(device))
    first_s = time.perf_counter() - t
    t = time.perf_counter()
    (image,) = visualize(model, MODULE, BRANCH, [CHANNEL], steps=current().atlas_steps, size=SIZE)
    sync(str(device))
    one_channel_s = time.perf_counter() - t
    cached = []
    for _ in range(10):
        t = time.perf_counter()
        view = app_atlas.channel_view(model, MODULE, BRANCH, CHANNEL, data_dir=os.path.join(str(ROOT), "no-cifar"))
        cached.append(1000 * (time.perf_counter() - t))
    assert view.cached == ["visualisation", "examples"], view.cached
    cached_ms = statistics.median(cached)

    # Per optimisation step: baseline (whole network, Lucent-style) against the project, same parameterisation.
    pre = model.preprocessing
    mean = torch.tensor(pre["mean"], device=device)[None, :, None, None]
    std = torch.tensor(pre["std"], device=device)[None, :, None, None]

    def whole_network_step_time(net: torch.nn.Module, param_grads: bool) -> float:
        net.requires_grad_(param_grads)
        captured = {}
        last = getattr(net, MODULE).branch2[-1]
        handle = last.bn.register_forward_hook(lambda _m, _i, out: captured.__setitem__("y", out))
        rng = random.Random(0)
        img = FourierImage([torch.Generator().manual_seed(0)], SIZE, device)
        opt = torch.optim.Adam([img.spectrum], lr=0.1)
        try:
            sync(str(device))
            t0 = time.perf_counter()
            for _ in range(args.steps):
                opt.zero_grad()
                x = F.interpolate(random_transform(img(), [rng], rng), size=(224, 224), mode="bilinear")
                net((x - mean) / std)  # seen at 224 px, as the project's images are (and Lucent's)
                loss = -captured["y"][0, CHANNEL].mean()
                loss.backward()
                opt.step()
            sync(str(device))
            return (time.perf_counter() - t0) / args.steps
        finally:
            handle.remove()
            net.requires_grad_(True)
            net.zero_grad(set_to_none=True)

    def project_step_time() -> float:
        sync(str(device))
        t0 = time.perf_counter()
        visualize(model, MODULE, BRANCH, [CHANNEL], steps=args.steps, size=SIZE)
        sync(str(device))
        return (time.perf_counter() - t0) / args.steps

    whole = whole_network_step_time(model, param_grads=True)
    ours = project_step_time()
    folded = shared_inference_copy(model)
    folded_whole = whole_network_step_time(folded, param_grads=False)
    folded.requires_grad_(False)
    ours_again = project_step_time()  # interleaved: the same machine load on both sides
    ours = min(ours, ours_again)

    rows = [
        (f"one optimisation step, {MODULE} {BRANCH}, {SIZE} px seen at 224 px, on {name} (ms)", f"{1000 * whole:.1f} (whole network, "
         "Lucent-style)", f"{1000 * ours:.1f} (stop at the module)", f"{whole / ours:.2f}x"),
        ("  the stop alone: the same folded network run to the end (ms)", f"{1000 * folded_whole:.1f}",
         f"{1000 * ours:.1f}", f"{folded_whole / ours:.2f}x"),
        (f"one channel, {current().atlas_steps} steps at {SIZE} px (s)", "-", f"{one_channel_s:.2f}", "-"),
        ("first view of a channel: visualisation + examples (s)", "-", f"{first_s:.2f}", "-"),
        ("cached view (ms)", "-", f"{cached_ms:.1f}", "-"),
    ]
    rows += batched_rows
    lucent = {}
    if args.lucent:
        from lucent_compare import compare, comparison_model

        lucent_rows, lucent = compare(comparison_model(None).to(device), [0, 1, 2], device)
        rows += lucent_rows
    print_table(rows, ratio_label="ratio (baseline/project time)")
    print_json({"device": name, "one_channel_s": round(one_channel_s, 2), "first_view_s": round(first_s, 2),
                "cached_view_ms": round(cached_ms, 2), "step_ms": round(1000 * ours, 2),
                "whole_network_step_ms": round(1000 * whole, 2), "ratio": round(whole / ours, 2),
                "folded_whole_network_step_ms": round(1000 * folded_whole, 2),
                "stop_only_ratio": round(folded_whole / ours, 2), "steps": current().atlas_steps, "size": SIZE,
                "module": MODULE, **batched, **({"lucent": lucent} if lucent else {})})


def precomputed_atlas(model, device, steps: int, channels: int = 16) -> tuple[list[tuple], dict]:
    """Channels per minute one at a time and batched (``channels`` of inception4c 3x3, ``steps`` steps at 128 px,
    scaled to 256 steps); a 256-channel grid served from a precomputed atlas; the same grid ordered by a photo."""
    import json
    from pathlib import Path

    import torch
    from PIL import Image

    from explorer.atlas.grid import grid, responses
    from explorer.atlas.store import THUMB, Atlas, channel_file
    from explorer.caches import fingerprint
    from googlenet.interpret.featurevis import visualize_tensor
    photo = sorted((ROOT / "assets").glob("*.jpg"))[0]

    wanted = list(range(channels))
    sync(str(device))
    t = time.perf_counter()
    for c in wanted:
        visualize_tensor(model, MODULE, BRANCH, [c], steps=steps, size=SIZE)
    sync(str(device))
    alone = (time.perf_counter() - t) / channels * 256 / steps
    t = time.perf_counter()
    visualize_tensor(model, MODULE, BRANCH, wanted, steps=steps, size=SIZE)
    sync(str(device))
    together = (time.perf_counter() - t) / channels * 256 / steps
    # A grid of every channel of the branch from an atlas folder (its thumbnails; the index as a build writes it).
    folder = Path(tempfile.mkdtemp(prefix="atlas-grid-"))
    count = model.branch_width(MODULE, BRANCH)
    rng = torch.Generator().manual_seed(0)
    for c in range(count):
        path = folder / channel_file("thumbs", MODULE, BRANCH, c)
        path.parent.mkdir(parents=True, exist_ok=True)
        pixels = torch.randint(0, 256, (THUMB, THUMB, 3), generator=rng, dtype=torch.uint8).numpy()
        Image.fromarray(pixels).save(path)
    record = {"version": 1, "fingerprint": fingerprint(model), "settings": {},
              "channels": {f"{MODULE}/{BRANCH}/{c}": {"score": 0.0, "examples": []} for c in range(count)}}
    (folder / "atlas.json").write_text(json.dumps(record))
    atlas = Atlas(folder, record)
    served = []
    for _ in range(5):
        t = time.perf_counter()
        grid(model, MODULE, BRANCH, atlas, lambda c: None)
        served.append(1000 * (time.perf_counter() - t))
    ordered = []
    for _ in range(3):
        t = time.perf_counter()
        grid(model, MODULE, BRANCH, atlas, lambda c: None, responses(model, photo, MODULE, BRANCH).tolist())
        ordered.append(1000 * (time.perf_counter() - t))
    rows = [(f"channels per minute, {MODULE} {BRANCH}, 256 steps at {SIZE} px", f"{60 / alone:.1f} (one at a time)",
             f"{60 / together:.1f} (batches of {channels})", f"{alone / together:.2f}x"),
            (f"grid of all {count} channels from a precomputed atlas (ms)", "-", f"{statistics.median(served):.0f}",
             "-"),
            ("  the same grid ordered by a photo's responses (ms)", "-", f"{statistics.median(ordered):.0f}", "-")]
    return rows, {"channels_per_min_alone": round(60 / alone, 2), "channels_per_min_batched": round(60 / together, 2),
                  "batched_speedup": round(alone / together, 2), "grid_from_atlas_ms": round(statistics.median(served), 1),
                  "grid_ordered_ms": round(statistics.median(ordered), 1)}


if __name__ == "__main__":
    sys.exit(main())
