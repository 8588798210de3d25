"""One channel's view as the app serves it: its visualisation, the reference pictures that excite it most (the
patch where it peaks, with its score) and, given a picture, where the channel fires on it. From a precomputed atlas
when one describes the model, else rendered on demand and kept in the disk cache, keyed by the model's backbone
fingerprint and the settings.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from PIL import Image

from explorer.atlas.reference import ReferenceSet, Report, example_index, example_strip, reference_set, split_strip
from explorer.atlas.store import SEED, THUMB, Atlas, save_png
from explorer.caches import fingerprint
from explorer.concurrency import streamed
from explorer.profile import current
from googlenet import GoogLeNet
from googlenet.draw import overlay
from googlenet.images import ImageInput, to_pictures
from googlenet.interpret.examples import channel_activation
from googlenet.interpret.featurevis import METHOD, channel_seed, visualize, visualize_directions
from googlenet.preprocess import prepare_input
from training import env
from training.diskcache import DiskCache


def _load_png(cache: DiskCache, name: str) -> Image.Image | None:
    """A cached picture (with its text), or None; a damaged entry is dropped, to be computed again."""
    path = cache.get("atlas", name)
    if path is None:
        return None
    try:
        with Image.open(path) as im:
            im.load()
            picture = im.convert("RGB")
            picture.info.update(im.text)
            return picture
    except (OSError, ValueError):
        cache.discard("atlas", name)
        return None


@dataclass
class ChannelView:
    """What the atlas shows for one channel."""

    module: str
    branch: str
    channel: int
    visualization: Image.Image
    examples: list[tuple[Image.Image, str]]
    reference: str
    where: Image.Image | None = None
    seconds: float = 0.0
    cached: list[str] = field(default_factory=list)  # which parts came from the disk cache
    settings: dict[str, Any] | None = None  # a precomputed atlas's (else the app's on-demand settings)


def atlas_settings() -> dict[str, Any]:
    """How the app renders a view on demand (a precomputed atlas records its own)."""
    p = current()
    return {"steps": p.atlas_steps, "size": p.atlas_size, "input_size": p.atlas_input_size}


def _vis_name(model: GoogLeNet, module: str, branch: str, channel: int) -> str:
    p = current()
    return (f"vis-{fingerprint(model)}-{module}-{branch}-{channel}-{p.atlas_steps}-{p.atlas_size}-"
            f"{p.atlas_input_size}-{SEED}-{METHOD}.png")


def rendered_thumbnail(model: GoogLeNet, module: str, branch: str, channel: int, side: int = THUMB) -> Image.Image | None:
    """A channel's visualisation at ``side`` px if a view of it was computed already (else None); no computing."""
    cache = env.disk_cache()
    name = _vis_name(model, module, branch, channel)
    if not cache.path("atlas", name).is_file():
        return None
    image = _load_png(cache, name)
    return image.resize((side, side), Image.BICUBIC) if image is not None else None


def _cached_picture(name: str, what: str, render: Callable[[Callable[[int, int], None]], Image.Image],
                    report: Report | None, cached: list[str]) -> Image.Image:
    """A picture from the disk cache's atlas part, or ``render(progress)`` once (reporting each step with the time
    left) and kept there."""
    cache = env.disk_cache()
    if (image := _load_png(cache, name)) is not None:
        cached.append("visualisation")
        return image
    started = time.perf_counter()

    def progress(step: int, steps: int) -> None:
        if report is not None and (step == 1 or step % 8 == 0 or step == steps):
            left = (time.perf_counter() - started) / step * (steps - step)
            report(step / steps, f"optimising {what}: step {step}/{steps}, about {left:.0f} s left")

    image = render(progress)
    cache.put("atlas", name, save_png(image))
    return image


def _visualization(model: GoogLeNet, module: str, branch: str, channel: int, report: Report | None,
                   cached: list[str]) -> Image.Image:
    p = current()
    return _cached_picture(
        _vis_name(model, module, branch, channel), "the image (the first view of a channel; later views come from "
        "the cache)", lambda progress: visualize(model, module, branch, [channel], steps=p.atlas_steps,
                                                 size=p.atlas_size, seed=SEED, progress=progress,
                                                 input_size=p.atlas_input_size)[0], report, cached)


def group_visualization(model: GoogLeNet, module: str, direction: Any, report: Report | None = None,
                        cached: list[str] | None = None) -> Image.Image:
    """An image optimised to excite a mix of ``module``'s output channels (a neuron group's ``direction``), with the
    atlas's optimiser and the app's atlas settings, cached on disk like a channel's visualisation."""
    p = current()
    weights = torch.as_tensor(np.asarray(direction, dtype=np.float32))
    digest = hashlib.sha256(np.round(weights.numpy(), 4).tobytes()).hexdigest()[:16]
    name = (f"group-{fingerprint(model)}-{module}-{digest}-{p.atlas_steps}-{p.atlas_size}-{p.atlas_input_size}-{SEED}-"
            f"{METHOD}.png")
    return _cached_picture(name, "the group's image", lambda progress: to_pictures(visualize_directions(
        model, module, None, weights[None], [channel_seed(SEED, int(digest[:6], 16))], p.atlas_steps, p.atlas_size,
        SEED, progress, p.atlas_input_size))[0], report, cached if cached is not None else [])


def _examples(model: GoogLeNet, ref: ReferenceSet, module: str, branch: str, channel: int, report: Report | None,
              cached: list[str]) -> list[tuple[Image.Image, str]]:
    """The strip of the top examples' patches, one cache entry with the captions in its PNG text."""
    cache, name = env.disk_cache(), f"ex-{fingerprint(model)}-{ref.key}-{module}-{branch}-{channel}.png"
    if (strip := _load_png(cache, name)) is not None:
        try:
            captions = json.loads(strip.info.get("captions", ""))
        except ValueError:
            captions = None
        if captions:
            cached.append("examples")
            return split_strip(strip, captions)
    strip, captions = example_strip(model, ref, example_index(model, ref, report), module, branch, channel)
    cache.put("atlas", name, save_png(strip, {"captions": json.dumps(captions)}))
    return split_strip(strip, captions)


def where_it_fires(model: GoogLeNet, image: ImageInput, module: str, branch: str, channel: int) -> Image.Image:
    """The channel's output over the network's crop of ``image`` (scaled to its own maximum)."""
    x, crop = prepare_input(image, model.preprocessing)
    act = channel_activation(model, x.to(next(model.parameters()).device), module, branch)[0, channel]
    return overlay(crop, act.float().cpu().numpy(), vmax=float(act.max()) or 1.0)


def channel_view(model: GoogLeNet, module: str, branch: str, channel: int, image: ImageInput | None = None,
                 data_dir: str | os.PathLike | None = None, report: Report | None = None,
                 atlas: Atlas | None = None, reference: ReferenceSet | None = None) -> ChannelView:
    """One channel's atlas page; the slow parts (visualisation, index) report progress with an estimate. A
    precomputed ``atlas`` that describes the model and holds the channel serves it with
    no optimisation."""
    channel = int(channel)
    model.check_branch(module, branch, [channel])
    started = time.perf_counter()
    cached: list[str] = []
    if atlas is not None and atlas.has(module, branch, channel) and atlas.describes(model):
        with Image.open(atlas.picture("vis", module, branch, channel)) as vis, \
                Image.open(atlas.picture("examples", module, branch, channel)) as strip:
            view = ChannelView(module, branch, channel, vis.convert("RGB"),
                               split_strip(strip.convert("RGB"), atlas.captions(module, branch, channel)),
                               atlas.record["reference"]["name"], cached=["precomputed atlas"],
                               settings=atlas.record["settings"])
    else:
        ref = reference or reference_set(data_dir or current().data_dir)
        view = ChannelView(module, branch, channel, _visualization(model, module, branch, channel, report, cached),
                           _examples(model, ref, module, branch, channel, report, cached), ref.name, cached=cached)
    if image is not None:
        view.where = where_it_fires(model, image, module, branch, channel)
    view.seconds = time.perf_counter() - started
    return view


def channel_events(model: GoogLeNet, module: str, branch: str, channel: int, image: ImageInput | None,
                   data_dir: str | os.PathLike, atlas: Atlas | None = None,
                   reference: ReferenceSet | None = None) -> Iterator[tuple[float, str] | ChannelView]:
    """``channel_view`` as a generator, in a thread at the lower priority (classification keeps its share of the
    CPU): (fraction, message) progress pairs, then the view. A generator crosses a process boundary (ZeroGPU's
    worker) where a callback cannot."""
    view = yield from streamed(lambda emit: channel_view(model, module, branch, channel, image, data_dir,
                                                         report=lambda f, m: emit((f, m)), atlas=atlas,
                                                         reference=reference),
                               name=f"channel view {module}/{branch}/{channel}")
    yield view
