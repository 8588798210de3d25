"""A precomputed atlas: every channel of every branch of the chosen modules, rendered many channels per batch,
indexed once, written as a versioned folder that the app serves (and that can be published on the Hub as a dataset).

    python -m explorer.atlas build --out atlas/ [--weights W] [--modules inception3a,inception3b] [--branches 3x3]
                                   [--size 128] [--steps 256] [--batch 32] [--resume] [--push OWNER/NAME]

The folder (``VERSION`` 1)::

    atlas.json                       model fingerprint, weights, settings, method, reference set, and per channel its
                                     score (its image's mean pre-ReLU activation, the image resized to the model's
                                     input size) and its examples' captions
    vis/MODULE/BRANCH/NNNN.png       the visualisation, ``size`` px
    thumbs/MODULE/BRANCH/NNNN.png    the same at ``THUMB`` px
    examples/MODULE/BRANCH/NNNN.png  a strip of the reference patches that excite it most
    README.md                        the dataset card

Each channel's image depends only on the model, the channel, the settings and the seed (``googlenet.atlas``), so a
build killed and resumed gives the same files as one that was not: finished channels are kept in ``progress.json``
and skipped, and ``atlas.json`` is written (with no clock time in it) when every channel is done.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from explorer.channels import SEED, example_strip, example_index, fingerprint, reference_set, save_png
from googlenet import MODULE_NAMES, GoogLeNet
from googlenet.atlas import METHOD, to_pictures, visualize_tensor
from googlenet.atlas import channel_scores as scores  # a module name here: a test interrupts a build through it
from googlenet.model import BRANCH_KEYS
from training.storage import atomic_write, atomic_write_json

log = logging.getLogger("inception-explorer")
VERSION = 1
THUMB = 64
INDEX, PROGRESS, CARD = "atlas.json", "progress.json", "README.md"


def channel_file(kind: str, module: str, branch: str, channel: int) -> str:
    """The path of one channel's picture inside an atlas folder (``kind``: vis, thumbs or examples)."""
    return f"{kind}/{module}/{branch}/{int(channel):04d}.png"


def build(model: GoogLeNet, out: Path, modules: list[str], branches: list[str], size: int = 128, steps: int = 128,
          batch: int = 32, resume: bool = False, data_dir: str | None = None, weights: str = "",
          progress: bool = True, limit: int | None = None) -> dict[str, Any]:
    """Render and index an atlas into ``out``; returns its index (what ``atlas.json`` holds). ``limit``: only the
    first channels of each branch (a quick atlas, or a test)."""
    from tqdm import tqdm

    model.eval()
    modules, branches = GoogLeNet.check_modules(modules), [b for b in BRANCH_KEYS if b in branches]
    if not branches:
        raise ValueError(f"Choose branches among {', '.join(BRANCH_KEYS)}.")
    settings = {"size": size, "steps": steps, "input_size": model.preprocessing["crop"], "seed": SEED,
                "method": METHOD, "limit": limit}
    ref = reference_set(data_dir) if data_dir else reference_set(_data_dir())
    head = {"version": VERSION, "fingerprint": fingerprint(model), "weights": weights, "settings": settings,
            "reference": {"name": ref.name, "key": ref.key, "pictures": len(ref.pictures)},
            "modules": modules, "branches": branches}
    out.mkdir(parents=True, exist_ok=True)
    done: dict[str, Any] = {}
    if (out / PROGRESS).exists() or (out / INDEX).exists():
        if not resume:
            raise ValueError(f"{out} already holds an atlas; pass --resume to continue it, or choose another --out.")
        saved = json.loads((out / PROGRESS).read_text()) if (out / PROGRESS).exists() else \
            json.loads((out / INDEX).read_text())
        if {k: saved.get(k) for k in head} != head:
            raise ValueError(f"{out} holds an atlas of other weights or settings; choose another --out.")
        done = saved.get("channels", {})
    index = example_index(model, ref)  # every module and branch from one pass over the reference set
    count = {(m, b): min(model.check_branch(m, b), limit or 10**6) for m in modules for b in branches}
    todo = [(m, b, c) for (m, b), n in count.items() for c in range(n) if f"{m}/{b}/{c}" not in done]
    total = sum(count.values())
    bar = tqdm(total=total, initial=total - len(todo), unit="channel", desc="atlas", disable=not progress)
    for m, b, group in _groups(todo, batch):
        images = visualize_tensor(model, m, b, group, steps=steps, size=size, seed=SEED)
        values = scores(model, images, m, b, group)
        for picture, c, score in zip(to_pictures(images), group, values):
            thumb = picture.resize((THUMB, THUMB), Image.BICUBIC)
            atomic_write(out / channel_file("vis", m, b, c), save_png(picture, compress_level=6), durable=False)
            atomic_write(out / channel_file("thumbs", m, b, c), save_png(thumb, compress_level=6),
                         durable=False)
            strip, captions = example_strip(model, ref, index, m, b, c)
            atomic_write(out / channel_file("examples", m, b, c), save_png(strip, compress_level=6), durable=False)
            done[f"{m}/{b}/{c}"] = {"score": score, "examples": captions}
        atomic_write_json(out / PROGRESS, {**head, "channels": done})
        bar.update(len(group))
    bar.close()
    record = {**head, "channels": {k: done[k] for k in sorted(done, key=_order)}}
    atomic_write_json(out / INDEX, record)
    atomic_write(out / CARD, dataset_card(record).encode())
    (out / PROGRESS).unlink(missing_ok=True)
    return record


def _order(key: str) -> tuple[int, int, int]:
    m, b, c = key.split("/")
    return MODULE_NAMES.index(m), BRANCH_KEYS.index(b), int(c)


def _groups(todo: list[tuple[str, str, int]], batch: int):  # noqa: ANN202
    """Consecutive channels of one branch, at most ``batch`` at a time."""
    group: list[int] = []
    for k, (m, b, c) in enumerate(todo):
        group.append(c)
        last = k + 1 == len(todo) or todo[k + 1][:2] != (m, b)
        if last or len(group) == batch:
            yield m, b, group
            group = []


def _data_dir() -> str:
    from training import env

    return env.data_dir()


def dataset_card(record: dict[str, Any]) -> str:
    """The Hub dataset card of an atlas."""
    s = record["settings"]
    n = len(record["channels"])
    return f"""---
tags: [feature-visualization, googlenet, inception, interpretability, inception-explorer]
license: bsd-3-clause  # as the weights it is made from (torchvision's)
---
# GoogLeNet channel atlas

{n} channels of {", ".join(record["modules"])} (branches {", ".join(record["branches"])}) of the GoogLeNet whose
backbone fingerprint is `{record["fingerprint"]}` (weights: `{record["weights"] or "not recorded"}`), made by
Inception Explorer with `python -m explorer.atlas build`.

Each channel has an image optimised to excite it ({s["steps"]} steps at {s["size"]} px, seed {s["seed"]}, method
`{s["method"]}`: a Fourier-parameterised image with decorrelated colour and random transforms, as in Lucid), a
{THUMB} px thumbnail, and a strip of the reference pictures ({record["reference"]["name"]}) that excite it most.
`atlas.json` holds, per channel, its image's mean pre-ReLU activation with the image resized to the model's input
size, and the reference pictures' captions. Set `GOOGLENET_ATLAS` to this repo to serve it from the app.
"""


# ----------------------------------------------------------------------------- serving


@dataclass
class Atlas:
    """A precomputed atlas folder, as the app serves it."""

    folder: Path
    record: dict[str, Any]

    @property
    def fingerprint(self) -> str:
        return self.record["fingerprint"]

    def has(self, module: str, branch: str, channel: int) -> bool:
        return f"{module}/{branch}/{int(channel)}" in self.record["channels"]

    def picture(self, kind: str, module: str, branch: str, channel: int) -> Path:
        return self.folder / channel_file(kind, module, branch, channel)

    def captions(self, module: str, branch: str, channel: int) -> list[str]:
        return self.record["channels"][f"{module}/{branch}/{int(channel)}"]["examples"]

    def describes(self, model: GoogLeNet) -> bool:
        return fingerprint(model) == self.fingerprint


def load_atlas(spec: str | None) -> Atlas | None:
    """The atlas ``GOOGLENET_ATLAS`` names (a folder, or a Hub dataset repo ``OWNER/NAME[@revision]``, through the
    Hub cache), or None with one log line when there is none or it cannot be read."""
    if not spec:
        return None
    try:
        folder = Path(spec)
        if not folder.is_dir():
            from huggingface_hub import snapshot_download

            from googlenet.hub import parse_weights_spec

            repo_id, revision = parse_weights_spec(spec)
            folder = Path(snapshot_download(repo_id, repo_type="dataset", revision=revision))
        record = json.loads((folder / INDEX).read_text())
        if record.get("version") != VERSION or not isinstance(record.get("channels"), dict):
            raise ValueError(f"not an atlas of version {VERSION}")
        return Atlas(folder, record)
    except Exception as e:  # noqa: BLE001 - the app works without an atlas; say why once
        log.warning("atlas %s not used: %s", spec, str(e)[:200])
        return None


def push(out: Path, repo_id: str, token: str | None = None) -> str:
    """Upload an atlas folder as a Hub dataset repo (the maintainer's step; the token from their login)."""
    from googlenet.publish import push_folder

    return push_folder(out, repo_id, token, repo_type="dataset", allow_patterns=[INDEX, CARD, "vis/**", "thumbs/**",
                                                                                  "examples/**"],
                       commit_message="GoogLeNet channel atlas (Inception Explorer)")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m explorer.atlas", description="Precompute a channel atlas.")
    sub = p.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="render every channel of the chosen modules and branches")
    b.add_argument("--weights", default=None, help="Hub repo id, folder or 'none' (default: the app's weights)")
    b.add_argument("--out", required=True, help="the atlas folder")
    b.add_argument("--modules", default=",".join(MODULE_NAMES), help="comma-separated (default: all nine)")
    b.add_argument("--branches", default=",".join(BRANCH_KEYS), help="comma-separated (default: all four)")
    b.add_argument("--size", type=int, default=128)
    b.add_argument("--steps", type=int, default=128)
    b.add_argument("--batch", type=int, default=32, help="channels optimised together")
    b.add_argument("--channels", type=int, default=None, help="only the first N channels of each branch")
    b.add_argument("--data-dir", default=None, help="CIFAR-10 for the reference set (default: $CIFAR10_DIR)")
    b.add_argument("--resume", action="store_true", help="continue the build in --out")
    b.add_argument("--push", metavar="REPO_ID", help="then upload it as a Hub dataset repo (token: HF_TOKEN)")
    args = p.parse_args(argv)
    from googlenet.weights import load_weights
    from training import env

    try:
        model, source = load_weights(args.weights or env.weights())
        started = time.perf_counter()
        record = build(model, Path(args.out), args.modules.split(","), args.branches.split(","), args.size,
                       args.steps, args.batch, args.resume, args.data_dir, weights=source.description,
                       limit=args.channels)
        print(f"{len(record['channels'])} channels in {args.out} ({time.perf_counter() - started:.0f} s)")
        if args.push:
            print(f"pushed: {push(Path(args.out), args.push)}")
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())


# ----------------------------------------------------------------------------- a branch's grid


def responses(model: GoogLeNet, image: Any, module: str, branch: str) -> torch.Tensor:
    """Each channel's response to a picture: the spatial maximum of its output (as ``capture_branches`` gives it)."""
    from googlenet.features import capture_branches
    from googlenet.preprocess import prepare_input

    x, _ = prepare_input(image, model.preprocessing)
    out = capture_branches(model, x.to(next(model.parameters()).device), [module])[module][branch]
    return out[0].flatten(1).max(1).values.float().cpu()


def placeholder(channel: int) -> Image.Image:
    """The tile of a channel nobody has rendered yet: its number on grey (a click renders it)."""
    from PIL import ImageDraw

    tile = Image.new("RGB", (THUMB, THUMB), (200, 200, 200))
    ImageDraw.Draw(tile).text((THUMB // 2, THUMB // 2), str(channel), fill=(60, 60, 60), anchor="mm")
    return tile


def grid(model: GoogLeNet, module: str, branch: str, atlas: Atlas | None, rendered: Any,
         values: Any = None) -> tuple[list[tuple[Any, str]], list[int]]:
    """Every channel of a branch as (thumbnail, caption) tiles, and the channel of each tile: from the precomputed
    ``atlas`` when it describes ``model``, else ``rendered(channel)`` (a view already computed, or None: a numbered
    placeholder). In channel order, or by ``values`` (``responses`` to a picture), strongest first."""
    count = model.check_branch(module, branch)
    order = list(range(count))
    captions = {c: f"ch {c}" for c in order}  # short: a tile is narrow
    if values is not None:
        order = sorted(order, key=lambda c: -float(values[c]))
        captions = {c: f"ch {c}: {float(values[c]):.2f}" for c in order}
    use_atlas = atlas is not None and atlas.describes(model)
    tiles = []
    for c in order:
        if use_atlas and atlas.has(module, branch, c):
            with Image.open(atlas.picture("thumbs", module, branch, c)) as thumb:
                tile: Any = thumb.convert("RGB")  # a picture, not a path: the atlas folder is not the server's to serve
        else:
            tile = rendered(c) or placeholder(c)
        tiles.append((tile, captions[c]))
    return tiles, order
