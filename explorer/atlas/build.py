"""``python -m explorer.atlas build``: every channel of every branch of the chosen modules, rendered many channels
per batch, indexed once, written as a versioned atlas folder (``store``) that the app serves and that can be
published on the Hub as a dataset.

    python -m explorer.atlas build --out atlas/ [--weights W] [--modules inception3a,inception3b] [--branches 3x3]
                                   [--size 128] [--steps 128] [--batch 32] [--resume] [--push OWNER/NAME]

Each channel's image depends only on the model, the channel, the settings and the seed
(``googlenet.featurevis``), so a build killed and resumed gives the same files as one that was not: finished
channels are kept in ``progress.json`` and skipped, and ``atlas.json`` is written (with no clock time in it) when
every channel is done.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from PIL import Image

from explorer.atlas.reference import example_index, example_strip, reference_set
from explorer.atlas.store import CARD, INDEX, PROGRESS, SEED, THUMB, VERSION, channel_file, dataset_card, push, save_png
from explorer.caches import fingerprint
from googlenet import MODULE_NAMES, GoogLeNet
from googlenet.images import to_pictures
from googlenet.interpret.featurevis import DEFAULT_SIZE, DEFAULT_STEPS, METHOD, visualize_tensor
from googlenet.interpret.featurevis import channel_scores as scores  # a name here: a test interrupts a build through it
from googlenet.model import BRANCH_KEYS
from training.atomic import atomic_write, atomic_write_json


def build(model: GoogLeNet, out: Path, modules: list[str], branches: list[str], size: int = DEFAULT_SIZE, steps: int = DEFAULT_STEPS,
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
    count = {(m, b): min(model.branch_width(m, b), limit or 10**6) for m in modules for b in branches}
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


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m explorer.atlas", description="Precompute a channel atlas.")
    sub = p.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="render every channel of the chosen modules and branches")
    b.add_argument("--weights", default=None, help="Hub repo id, folder or 'none' (default: the app's weights)")
    b.add_argument("--out", required=True, help="the atlas folder")
    b.add_argument("--modules", default=",".join(MODULE_NAMES), help="comma-separated (default: all nine)")
    b.add_argument("--branches", default=",".join(BRANCH_KEYS), help="comma-separated (default: all four)")
    b.add_argument("--size", type=int, default=DEFAULT_SIZE)
    b.add_argument("--steps", type=int, default=DEFAULT_STEPS)
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
