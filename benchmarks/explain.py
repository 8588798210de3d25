"""What "Why?" costs, and how accentuation compares with horama's (Hamblin et al.'s own library), in one run.

    python benchmarks/explain.py [--steps 64] [--horama]            # horama: PYTHONPATH=DIR with horama 0.3.0 and
                                                                    # einops (pip install --no-deps --target DIR ...)

On the tests' realistic random weights (no real weights offline) and the example photos:
* ``/explain``'s numbers and masks (the explanation and its pictures), against the goal of 2 s on a CPU;
* the factorisation alone, ours (scikit-learn's algorithm in numpy) against scikit-learn's ``NMF`` on the same 14 x 14 x 528 activation:
  time and relative error;
* one group's visualisation against one channel's (the atlas's view), at the app's atlas settings;
* an accentuation at the app's settings: time, response ratio, RMS change, and the ratio after JPEG at quality 75
  and a 4-pixel shift;
* with ``--horama``: ``horama.accentuation`` on the same photo, channel and steps (its other settings its own:
  a 1,280 px image, 6 crops a step), scored like ours on the whole picture at 224 px.
Last line: JSON with every figure.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

MODULE = "inception4d"
CASES = [(1, "5x5", 3), (2, "1x1", 7), (0, "3x3", 10)]  # (photo, branch, channel)


def timed(fn, repeat: int = 1):
    times, value = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        value = fn()
        times.append(time.perf_counter() - t)
    return value, statistics.median(times)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=None, help="accentuation steps (default: the app's)")
    p.add_argument("--horama", action="store_true", help="also run horama.accentuation (installed aside)")
    args = p.parse_args()

    import numpy as np
    import torch

    from explorer.atlas.view import group_visualization
    from explorer.explain import _group_caption, _mask, _tile
    from explorer.profile import current
    from googlenet.images import to_tensor
    from googlenet.interpret.accentuate import ACCENT_STEPS, accentuate, jpeg_and_shift, response
    from googlenet.interpret.branches import capture_branches
    from googlenet.interpret.explain import explain, nmf, relative_error
    from googlenet.interpret.featurevis import directions_of, visualize
    from googlenet.preprocess import prepare_input
    from helpers import PHOTOS, realistic_model

    steps = args.steps or ACCENT_STEPS
    model = realistic_model().eval()
    device = f"CPU ({torch.get_num_threads()} threads)"
    out: dict = {"device": device, "module": MODULE}

    def explanation():
        found = explain(model, PHOTOS[1], MODULE)
        pictures = [(_mask(found, j), _group_caption(found, j)) for j in range(len(found.groups))]
        tiles = [_tile(found, b, c) for b, c, _ in found.channels_for + found.channels_against]
        return found, pictures, tiles

    explanation()  # warm-up
    (found, _, _), seconds = timed(explanation, repeat=3)
    out["explain_s"] = round(seconds, 3)
    print(f"/explain's numbers and masks (6 groups at {MODULE}): {seconds:.2f} s (goal <= 2 s)")

    x, _ = prepare_input(PHOTOS[2], model.preprocessing)
    act = torch.cat(list(capture_branches(model, x, [MODULE])[MODULE].values()), 1)[0]
    a = act.reshape(act.shape[0], -1).T
    from sklearn.decomposition import NMF

    for k in (6, 12):
        (w, h), ours_s = timed(lambda: nmf(a, k), repeat=3)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            sk = NMF(n_components=k, max_iter=200)
            theirs, sk_s = timed(lambda: sk.fit_transform(a.double().numpy()), repeat=3)
        sk_error = float(np.linalg.norm(a.double().numpy() - theirs @ sk.components_) / a.double().norm())
        out[f"nmf_k{k}"] = {"ours_s": round(ours_s, 4), "ours_error": round(relative_error(a, w, h), 5),
                            "sklearn_s": round(sk_s, 4), "sklearn_error": round(sk_error, 5)}
        print(f"NMF k={k} on {tuple(a.shape)}: ours {1000 * ours_s:.0f} ms, error {relative_error(a, w, h):.4f}; "
              f"scikit-learn {1000 * sk_s:.0f} ms, error {sk_error:.4f}")

    p = current()
    _, channel_s = timed(lambda: visualize(model, MODULE, "3x3", [5], steps=p.atlas_steps, size=p.atlas_size,
                                           input_size=p.atlas_input_size))
    import os
    import tempfile

    os.environ["GOOGLENET_CACHE_DIR"] = tempfile.mkdtemp(prefix="explain-bench-")
    _, group_s = timed(lambda: group_visualization(model, MODULE, found.groups[0].direction))
    out.update(channel_view_s=round(channel_s, 2), group_view_s=round(group_s, 2))
    print(f"one channel's visualisation {channel_s:.1f} s, one group's {group_s:.1f} s "
          f"({p.atlas_steps} steps at {p.atlas_size} px)")

    rows = []
    for photo, branch, channel in CASES:
        direction = directions_of(model, MODULE, branch, [channel])[0]
        done = accentuate(model, PHOTOS[photo], MODULE, branch, direction, steps=steps)
        before, after = response(model, to_tensor([jpeg_and_shift(done.original), jpeg_and_shift(done.accentuated)]),
                                 MODULE, branch, direction).tolist()
        row = {"photo": PHOTOS[photo].name, "target": f"{branch} ch {channel}", "ratio": round(done.ratio, 3),
               "rms": round(done.rms, 4), "after_jpeg_shift": round(after / before, 3),
               "kept": round(math.log(after / before) / math.log(done.ratio), 3), "seconds": round(done.seconds, 2)}
        if args.horama:
            row["horama"] = horama_row(model, PHOTOS[photo], branch, channel, steps)
        rows.append(row)
        print(json.dumps(row))
    out["accentuation"] = {"steps": steps, "cases": rows}
    print(json.dumps(out))
    return 0


def horama_row(model, photo, branch: str, channel: int, steps: int) -> dict:
    """horama's accentuation of the same channel, scored on the whole picture at 224 px as ours is."""
    import numpy as np
    import torch
    import torch.nn.functional as F
    from horama import accentuation

    from googlenet.images import to_tensor
    from googlenet.inference import shared_inference_copy
    from googlenet.interpret.accentuate import jpeg_and_shift, response
    from googlenet.interpret.branches import pre_relu
    from googlenet.interpret.featurevis import directions_of
    from googlenet.preprocess import prepare_input

    net = shared_inference_copy(model)
    mean, std = (torch.tensor(model.preprocessing[k])[:, None, None] for k in ("mean", "std"))
    x, crop = prepare_input(photo, model.preprocessing)

    def objective(images: torch.Tensor) -> torch.Tensor:  # normalised images, as horama hands them over
        return torch.relu(pre_relu(net, MODULE, branch, images.contiguous(memory_format=torch.channels_last)))[
            :, channel].mean()

    started = time.perf_counter()
    image, _ = accentuation(objective, x[0], total_steps=steps, device="cpu")
    seconds = time.perf_counter() - started
    result = F.interpolate(image.detach()[None], size=(224, 224), mode="bilinear", antialias=True)[0]
    pixels = ((result * std + mean).clamp(0, 1).permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    from PIL import Image

    accentuated = Image.fromarray(pixels)
    direction = directions_of(model, MODULE, branch, [channel])[0]
    before, after = response(model, to_tensor([crop, accentuated]), MODULE, branch, direction).tolist()
    rms = float(np.sqrt(np.mean((pixels / 255.0 - np.asarray(crop) / 255.0) ** 2)))
    b2, a2 = response(model, to_tensor([jpeg_and_shift(crop), jpeg_and_shift(accentuated)]), MODULE, branch,
                      direction).tolist()
    return {"ratio": round(after / before, 3), "rms": round(rms, 4), "after_jpeg_shift": round(a2 / b2, 3),
            "seconds": round(seconds, 2)}


if __name__ == "__main__":
    sys.exit(main())
