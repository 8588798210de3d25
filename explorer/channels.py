"""The channel atlas as the app serves it: the reference pictures, the disk caches, and one channel's view.

A view is a channel's visualisation, the reference pictures that excite it most (the patch where it peaks,
with its score) and, given a picture, where the channel fires on it. Visualisations and example strips are
cached on disk by the model's backbone fingerprint and the settings; the reference set's index (every
channel's spatial maximum on every reference picture) is computed once per model and kept on disk too.
"""

from __future__ import annotations

import functools
import json
import os
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from PIL import Image, PngImagePlugin

from explorer.priority import lower_priority
from explorer.profile import EXAMPLE_PHOTOS, current
from googlenet import GoogLeNet
from googlenet.atlas import METHOD, channel_activation, channel_peaks, patch_at, rank, shared_inference_copy, visualize
from googlenet.features import overlay
from googlenet.images import ImageInput
from googlenet.preprocess import prepare_input
from training import env
from training.data import CIFAR10_CLASSES, TEST_FILE, dataset_folder, is_available, read_batch
from training.storage import DiskCache

SEED = 0
TOP_EXAMPLES = 9  # reference pictures shown per channel
PATCH = 96  # px per example patch

Report = Callable[[float, str], None]  # (fraction done, what is happening)


@dataclass
class ReferenceSet:
    """The pictures dataset examples come from: a balanced slice of CIFAR-10's test split, or the photos."""

    name: str
    key: str  # what the index depends on besides the model
    pictures: list[ImageInput]
    captions: list[str]
    _crops: OrderedDict = field(default_factory=OrderedDict, repr=False)

    def crop(self, i: int, preprocessing: dict) -> Image.Image:
        """Picture ``i`` as the network sees it (its crop), kept for the most recent 64: the pictures that excite
        many channels are cut again and again otherwise."""
        key = (i, json.dumps(preprocessing, sort_keys=True, default=str))
        with _LOCK:
            if key in self._crops:
                self._crops.move_to_end(key)
                return self._crops[key]
        crop = prepare_input(self.pictures[i], preprocessing)[1]
        with _LOCK:
            self._crops[key] = crop
            while len(self._crops) > 64:
                self._crops.popitem(last=False)
        return crop


def reference_set(data_dir: str | os.PathLike) -> ReferenceSet:
    """The reference set; read from disk once per data folder version, not on every view."""
    test = dataset_folder(data_dir) / TEST_FILE
    stamp = int(test.stat().st_mtime) if is_available(data_dir) else None
    return _reference_set(str(data_dir), stamp, current().atlas_per_class)


@functools.lru_cache(maxsize=2)
def _reference_set(data_dir: str, stamp: int | None, per_class: int) -> ReferenceSet:
    if stamp is not None:
        images, labels = read_batch(dataset_folder(data_dir) / TEST_FILE)
        chosen = [i for c in range(len(CIFAR10_CLASSES))
                  for i in (labels == c).nonzero().flatten()[:per_class].tolist()]
        return ReferenceSet("CIFAR-10 test split", f"cifar10-{len(chosen)}-{stamp}",
                            [Image.fromarray(images[i].permute(1, 2, 0).numpy()) for i in chosen],
                            [f"{CIFAR10_CLASSES[int(labels[i])]} #{i}" for i in chosen])
    photos = EXAMPLE_PHOTOS
    return ReferenceSet("example photos", "photos-" + "-".join(p.stem for p in photos)[:80],
                        [str(p) for p in photos], [p.stem.replace("_", " ") for p in photos])


_FINGERPRINTS: weakref.WeakKeyDictionary[GoogLeNet, str] = weakref.WeakKeyDictionary()
_LOCK = threading.Lock()


def fingerprint(model: GoogLeNet) -> str:
    """``model.backbone_fingerprint()``, computed once per model object (hashing the weights takes a while)."""
    with _LOCK:
        if model not in _FINGERPRINTS:
            _FINGERPRINTS[model] = model.backbone_fingerprint()
        return _FINGERPRINTS[model]


def save_png(image: Image.Image, text: dict[str, str] | None = None, compress_level: int = 1) -> Callable[[Path], None]:
    """A writer for ``atomic_write``/``DiskCache.put``; level 1 (the cache's) is 4x faster than the default and ~15%
    larger, a published atlas uses 6."""
    def write(path: Path) -> None:
        info = PngImagePlugin.PngInfo()
        for k, v in (text or {}).items():
            info.add_text(k, v)
        image.save(path, format="PNG", pnginfo=info, compress_level=compress_level)
    return write


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


def example_index(model: GoogLeNet, ref: ReferenceSet, report: Report | None = None) -> dict[str, torch.Tensor]:
    """{"module/branch": N x C spatial maxima, "module/branch@where": where each is (flat), "module/branch@shape":
    the map's (h, w)} over the reference set, read from disk after the first time."""
    started = time.perf_counter()

    def progress(done: int, total: int) -> None:
        if report is not None:
            left = (time.perf_counter() - started) / done * (total - done)
            report(done / total, f"indexing {ref.name} for this model: {done}/{total} pictures, about {left:.0f} s left")

    def compute() -> dict[str, torch.Tensor]:
        # folded: the same values, faster
        peaks = channel_peaks(shared_inference_copy(model), ref.pictures, progress=progress)
        index = {}
        for m, bs in peaks.items():
            for b, p in bs.items():
                index |= {f"{m}/{b}": p.values.half(), f"{m}/{b}@where": p.where,
                          f"{m}/{b}@shape": torch.tensor(p.shape, dtype=torch.int32)}
        return index

    return env.disk_cache().tensors("atlas", f"peaks-{fingerprint(model)}-{ref.key}.safetensors", compute)[0]


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

    def note(self) -> str:
        cached = f" (from the cache: {', '.join(self.cached)})" if self.cached else ""
        where = ", and where it fires on your picture" if self.where is not None else \
            " (upload a picture to see where it fires on it)"
        steps, size = (self.settings["steps"], self.settings["size"]) if self.settings else \
            (current().atlas_steps, current().atlas_size)
        return (f"**{self.module} · {self.branch} · channel {self.channel}**: an image optimised to excite it "
                f"({steps} steps at {size} px, Lucid's method), the {len(self.examples)} pictures of the "
                f"{self.reference} that excite it most (the patch where it peaks){where}. "
                f"{self.seconds:.1f} s{cached}.")


def atlas_settings() -> dict[str, Any]:
    """How the app renders a view on demand (a precomputed atlas records its own)."""
    p = current()
    return {"steps": p.atlas_steps, "size": p.atlas_size, "input_size": p.atlas_input_size}


def _vis_name(model: GoogLeNet, module: str, branch: str, channel: int) -> str:
    p = current()
    return (f"vis-{fingerprint(model)}-{module}-{branch}-{channel}-{p.atlas_steps}-{p.atlas_size}-"
            f"{p.atlas_input_size}-{SEED}-{METHOD}.png")


def rendered_thumbnail(model: GoogLeNet, module: str, branch: str, channel: int, side: int = 64) -> Image.Image | None:
    """A channel's visualisation at ``side`` px if a view of it was computed already (else None); no computing."""
    cache = env.disk_cache()
    name = _vis_name(model, module, branch, channel)
    if not cache.path("atlas", name).is_file():
        return None
    image = _load_png(cache, name)
    return image.resize((side, side), Image.BICUBIC) if image is not None else None


def _visualization(model: GoogLeNet, module: str, branch: str, channel: int, report: Report | None,
                   cached: list[str]) -> Image.Image:
    steps, size = current().atlas_steps, current().atlas_size
    cache, name = env.disk_cache(), _vis_name(model, module, branch, channel)
    if (image := _load_png(cache, name)) is not None:
        cached.append("visualisation")
        return image
    started = time.perf_counter()

    def progress(step: int, steps: int) -> None:
        if report is not None and (step == 1 or step % 8 == 0 or step == steps):
            left = (time.perf_counter() - started) / step * (steps - step)
            report(step / steps, f"optimising the image: step {step}/{steps}, about {left:.0f} s left "
                                 f"(the first view of a channel; later views come from the cache)")

    (image,) = visualize(model, module, branch, [channel], steps=steps, size=size, seed=SEED, progress=progress,
                         input_size=current().atlas_input_size)
    cache.put("atlas", name, save_png(image))
    return image


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


def split_strip(strip: Image.Image, captions: list[str]) -> list[tuple[Image.Image, str]]:
    return [(strip.crop((k * PATCH, 0, (k + 1) * PATCH, PATCH)), c) for k, c in enumerate(captions)]


def example_strip(model: GoogLeNet, ref: ReferenceSet, index: dict[str, torch.Tensor], module: str, branch: str,
                  channel: int) -> tuple[Image.Image, list[str]]:
    """The reference pictures that excite the channel most, as one strip of patches (where it peaks) and their
    captions, from the index (no second pass)."""
    key = f"{module}/{branch}"
    best = rank(index[key][:, channel], TOP_EXAMPLES)
    shape = tuple(index[f"{key}@shape"].tolist())
    patches = [patch_at(ref.crop(i, model.preprocessing), int(index[f"{key}@where"][i, channel]), shape)
               .resize((PATCH, PATCH), Image.BICUBIC) for i, _ in best]
    strip = Image.new("RGB", (PATCH * len(patches), PATCH), "white")
    for k, p in enumerate(patches):
        strip.paste(p, (k * PATCH, 0))
    return strip, [f"{ref.captions[i]}: {score:.2f}" for i, score in best]


def where_it_fires(model: GoogLeNet, image: ImageInput, module: str, branch: str, channel: int) -> Image.Image:
    """The channel's output over the network's crop of ``image`` (scaled to its own maximum)."""
    x, crop = prepare_input(image, model.preprocessing)
    act = channel_activation(model, x.to(next(model.parameters()).device), module, branch)[0, channel]
    return overlay(crop, act.float().cpu().numpy(), vmax=float(act.max()) or 1.0)


def channel_view(model: GoogLeNet, module: str, branch: str, channel: int, image: ImageInput | None = None,
                 data_dir: str | os.PathLike | None = None, report: Report | None = None,
                 atlas: Any = None) -> ChannelView:
    """One channel's atlas page; the slow parts (visualisation, index) report progress with an estimate. A
    precomputed ``atlas`` (``explorer.atlas.Atlas``) that describes the model and holds the channel serves it with
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
        ref = reference_set(data_dir or current().data_dir)
        view = ChannelView(module, branch, channel, _visualization(model, module, branch, channel, report, cached),
                           _examples(model, ref, module, branch, channel, report, cached), ref.name, cached=cached)
    if image is not None:
        view.where = where_it_fires(model, image, module, branch, channel)
    view.seconds = time.perf_counter() - started
    return view


def channel_events(model: GoogLeNet, module: str, branch: str, channel: int, image: ImageInput | None,
                   data_dir: str | os.PathLike, atlas: Any = None) -> Iterator[tuple[float, str] | ChannelView]:
    """``channel_view`` as a generator: (fraction, message) progress pairs, then the view. A generator
    crosses a process boundary (ZeroGPU's worker) where a callback cannot."""
    import queue

    events: queue.Queue = queue.Queue()
    outcome: dict[str, object] = {}

    def work() -> None:
        lower_priority()  # classification keeps its share of the CPU
        try:
            outcome["view"] = channel_view(model, module, branch, channel, image, data_dir,
                                           report=lambda f, m: events.put((f, m)), atlas=atlas)
        except BaseException as e:  # noqa: BLE001 - re-raised in the caller's thread
            outcome["error"] = e
        events.put(None)

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    while (event := events.get()) is not None:
        yield event
    thread.join()
    if "error" in outcome:
        raise outcome["error"]  # type: ignore[misc]
    yield outcome["view"]  # type: ignore[misc]
