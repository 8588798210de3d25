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
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode

import torch
from PIL import Image

from googlenet import GoogLeNet
from googlenet.atlas import _folded, channel_activation, channel_maxima, check_channel, peak_patch, rank, visualize
from googlenet.features import overlay, prepare_input
from googlenet.images import ImageInput
from googlenet.model import BRANCH_KEYS, MODULE_NAMES
from explorer.runs import IMAGENET_MODEL
from training.checkpoint import atomic_write_bytes
from training.config import runs_dir
from training.data import CIFAR10_CLASSES, TEST_FILE, dataset_folder, is_available, read_batch

STEPS = int(os.environ.get("GOOGLENET_ATLAS_STEPS", "256"))
SIZE = int(os.environ.get("GOOGLENET_ATLAS_SIZE", "128"))
SEED = 0
EXAMPLES = 9
PATCH = 96  # px per example patch
# CIFAR-10 test pictures per class in the reference set (0: the device's default, 100 on a GPU, 30 on a CPU,
# where indexing 300 pictures at 224 px takes about 15 s once per model).
PER_CLASS = int(os.environ.get("GOOGLENET_ATLAS_PER_CLASS", "0"))
CACHE_ENTRIES = int(os.environ.get("GOOGLENET_ATLAS_CACHE_ENTRIES", "4000"))  # files kept, newest first
PHOTOS = Path(__file__).resolve().parents[1] / "assets"

Report = Callable[[float, str], None]  # (fraction done, what is happening)


def cache_dir() -> Path:
    return Path(os.environ.get("GOOGLENET_ATLAS_CACHE") or runs_dir() / ".atlas")


@dataclass
class ReferenceSet:
    """The pictures dataset examples come from: a balanced slice of CIFAR-10's test split, or the photos."""

    name: str
    key: str  # what the index depends on besides the model
    pictures: list[ImageInput]
    captions: list[str]


def reference_set(data_dir: str | os.PathLike, device: str = "cpu") -> ReferenceSet:
    """The reference set; read from disk once per data folder version, not on every view."""
    test = dataset_folder(data_dir) / TEST_FILE
    stamp = int(test.stat().st_mtime) if is_available(data_dir) else None
    return _reference_set(str(data_dir), stamp, PER_CLASS or (100 if device == "cuda" else 30))


@functools.lru_cache(maxsize=2)
def _reference_set(data_dir: str, stamp: int | None, per_class: int) -> ReferenceSet:
    if stamp is not None:
        images, labels = read_batch(dataset_folder(data_dir) / TEST_FILE)
        chosen = [i for c in range(len(CIFAR10_CLASSES))
                  for i in (labels == c).nonzero().flatten()[:per_class].tolist()]
        return ReferenceSet("CIFAR-10 test split", f"cifar10-{len(chosen)}-{stamp}",
                            [Image.fromarray(images[i].permute(1, 2, 0).numpy()) for i in chosen],
                            [f"{CIFAR10_CLASSES[int(labels[i])]} #{i}" for i in chosen])
    photos = sorted(PHOTOS.glob("*.jpg"))
    return ReferenceSet("example photos", "photos-" + "-".join(p.stem for p in photos)[:80],
                        [str(p) for p in photos], [p.stem.replace("_", " ") for p in photos])


_FINGERPRINTS: weakref.WeakKeyDictionary[GoogLeNet, str] = weakref.WeakKeyDictionary()
_LOCK = threading.Lock()


def fingerprint(model: GoogLeNet) -> str:
    """The backbone's hash (computed once per model object): a cache key that changes with the weights."""
    with _LOCK:
        if model not in _FINGERPRINTS:
            h = model.backbone_fingerprint()
            h.update(json.dumps(model.preprocessing, sort_keys=True).encode())
            _FINGERPRINTS[model] = h.hexdigest()[:20]
        return _FINGERPRINTS[model]


def _prune(folder: Path) -> None:
    files = sorted((p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")),
                   key=lambda p: p.stat().st_mtime, reverse=True)
    for old in files[CACHE_ENTRIES:]:
        old.unlink(missing_ok=True)


def _save_png(path: Path, image: Image.Image) -> None:
    import io

    buf = io.BytesIO()
    image.save(buf, format="PNG")
    atomic_write_bytes(path, buf.getvalue())


def _load_png(path: Path) -> Image.Image | None:
    try:
        with Image.open(path) as im:
            return im.convert("RGB")
    except (OSError, ValueError):
        path.unlink(missing_ok=True)  # damaged: computed again
        return None


def example_index(model: GoogLeNet, ref: ReferenceSet, report: Report | None = None) -> dict[str, torch.Tensor]:
    """{"module/branch": N x C spatial maxima} over the reference set, read from disk after the first time."""
    from safetensors.torch import load_file, save_file

    path = cache_dir() / f"index-{fingerprint(model)}-{ref.key}.safetensors"
    if path.is_file():
        try:
            return load_file(str(path))
        except Exception:  # noqa: BLE001 - a damaged index is rebuilt, never trusted
            path.unlink(missing_ok=True)
    started = time.perf_counter()

    def progress(done: int, total: int) -> None:
        if report is not None:
            left = (time.perf_counter() - started) / done * (total - done)
            report(done / total, f"indexing {ref.name} for this model: {done}/{total} pictures, about {left:.0f} s left")

    maxima = channel_maxima(_folded(model), ref.pictures, progress=progress)  # folded: the same values, faster
    index = {f"{m}/{b}": v.half().contiguous() for m, bs in maxima.items() for b, v in bs.items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    staged = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    save_file(index, str(staged))
    os.replace(staged, path)
    return index


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

    def note(self) -> str:
        cached = f" (from the cache: {', '.join(self.cached)})" if self.cached else ""
        where = ", and where it fires on your picture" if self.where is not None else \
            " (upload a picture to see where it fires on it)"
        return (f"**{self.module} · {self.branch} · channel {self.channel}**: an image optimised to excite it "
                f"({STEPS} steps at {SIZE} px, Lucid's method), the {len(self.examples)} pictures of the "
                f"{self.reference} that excite it most (the patch where it peaks){where}. "
                f"{self.seconds:.1f} s{cached}.")


def _visualization(model: GoogLeNet, module: str, branch: str, channel: int, report: Report | None,
                   cached: list[str]) -> Image.Image:
    path = cache_dir() / f"vis-{fingerprint(model)}-{module}-{branch}-{channel}-{STEPS}-{SIZE}-{SEED}.png"
    if path.is_file() and (image := _load_png(path)) is not None:
        cached.append("visualisation")
        return image
    started = time.perf_counter()

    def progress(step: int, steps: int) -> None:
        if report is not None and (step == 1 or step % 8 == 0 or step == steps):
            left = (time.perf_counter() - started) / step * (steps - step)
            report(step / steps, f"optimising the image: step {step}/{steps}, about {left:.0f} s left "
                                 f"(the first view of a channel; later views come from the cache)")

    (image,) = visualize(model, module, branch, [channel], steps=STEPS, size=SIZE, seed=SEED, progress=progress)
    path.parent.mkdir(parents=True, exist_ok=True)
    _save_png(path, image)
    _prune(path.parent)
    return image


def _examples(model: GoogLeNet, ref: ReferenceSet, module: str, branch: str, channel: int, report: Report | None,
              cached: list[str]) -> list[tuple[Image.Image, str]]:
    stem = cache_dir() / f"ex-{fingerprint(model)}-{ref.key}-{module}-{branch}-{channel}"
    strip_path, captions_path = stem.with_suffix(".png"), stem.with_suffix(".json")
    if strip_path.is_file() and captions_path.is_file():
        strip = _load_png(strip_path)
        try:
            captions = json.loads(captions_path.read_text())
        except (OSError, ValueError):
            captions = None
        if strip is not None and captions:
            cached.append("examples")
            return [(strip.crop((k * PATCH, 0, (k + 1) * PATCH, PATCH)), c) for k, c in enumerate(captions)]
    scores = example_index(model, ref, report)[f"{module}/{branch}"][:, channel]
    best = rank(scores, EXAMPLES)
    patches = [peak_patch(model, ref.pictures[i], module, branch, channel).resize((PATCH, PATCH), Image.BICUBIC)
               for i, _ in best]
    captions = [f"{ref.captions[i]}: {score:.2f}" for i, score in best]
    strip = Image.new("RGB", (PATCH * len(patches), PATCH), "white")
    for k, p in enumerate(patches):
        strip.paste(p, (k * PATCH, 0))
    strip_path.parent.mkdir(parents=True, exist_ok=True)
    _save_png(strip_path, strip)
    atomic_write_bytes(captions_path, json.dumps(captions).encode())
    return list(zip(patches, captions))


def where_it_fires(model: GoogLeNet, image: ImageInput, module: str, branch: str, channel: int) -> Image.Image:
    """The channel's output over the network's crop of ``image`` (scaled to its own maximum)."""
    x, crop = prepare_input(image, model.preprocessing)
    act = channel_activation(model, x.to(next(model.parameters()).device), module, branch)[0, channel]
    return overlay(crop, act.float().cpu().numpy(), vmax=float(act.max()) or 1.0)


def channel_view(model: GoogLeNet, module: str, branch: str, channel: int, image: ImageInput | None = None,
                 data_dir: str | os.PathLike = "./data", report: Report | None = None) -> ChannelView:
    """One channel's atlas page; the slow parts (visualisation, index) report progress with an estimate."""
    channel = int(channel)
    check_channel(model, module, branch, [channel])
    started = time.perf_counter()
    cached: list[str] = []
    ref = reference_set(data_dir, next(model.parameters()).device.type)
    view = ChannelView(module, branch, channel, _visualization(model, module, branch, channel, report, cached),
                       _examples(model, ref, module, branch, channel, report, cached), ref.name, cached=cached)
    if image is not None:
        view.where = where_it_fires(model, image, module, branch, channel)
    view.seconds = time.perf_counter() - started
    return view


def channel_events(model: GoogLeNet, module: str, branch: str, channel: int, image: ImageInput | None,
                   data_dir: str | os.PathLike) -> Iterator[tuple[float, str] | ChannelView]:
    """``channel_view`` as a generator: (fraction, message) progress pairs, then the view. A generator
    crosses a process boundary (ZeroGPU's worker) where a callback cannot."""
    import queue

    events: queue.Queue = queue.Queue()
    outcome: dict[str, object] = {}

    def work() -> None:
        try:
            outcome["view"] = channel_view(model, module, branch, channel, image, data_dir,
                                           report=lambda f, m: events.put((f, m)))
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



TABS = ("classify", "inside", "finetune", "architecture")


def view_query(model: str, module: str, branch: str, channel: int) -> str:
    """The URL query that reopens a channel's view (``?tab=inside&module=...``)."""
    params = {"tab": "inside", **({"model": model} if model and model != IMAGENET_MODEL else {}),
              "module": module, "branch": branch, "channel": int(channel)}
    return "?" + urlencode(params)


def parse_view(params: dict[str, str]) -> dict[str, object]:
    """What a page's URL asks to show; anything unknown or malformed is left out (the page's defaults)."""
    view: dict[str, object] = {}
    if params.get("tab") in TABS:
        view["tab"] = params["tab"]
    if params.get("module") in MODULE_NAMES:
        view["module"] = params["module"]
    if params.get("branch") in BRANCH_KEYS:
        view["branch"] = params["branch"]
    if str(params.get("channel", "")).isdigit() and int(params["channel"]) < 1024:
        view["channel"] = int(params["channel"])
    if isinstance(params.get("model"), str) and 0 < len(params["model"]) <= 80:
        view["model"] = params["model"]
    return view
