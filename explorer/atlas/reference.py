"""The reference set a channel's dataset examples come from (a balanced slice of CIFAR-10's test split, of a run's
own dataset's test pictures, or the example photos), and its index: every channel's spatial maximum on every
reference picture and where it is, computed in one pass per model and kept in the disk cache, so a channel's
examples need no second pass."""

from __future__ import annotations

import functools
import json
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from PIL import Image

from explorer.caches import fingerprint
from explorer.profile import EXAMPLE_PHOTOS, current
from explorer.runs import IMAGENET_MODEL, usable_run
from googlenet import GoogLeNet
from googlenet.images import ImageInput
from googlenet.inference import shared_inference_copy
from googlenet.interpret.examples import channel_peaks, patch_at, rank, stem_peaks
from googlenet.preprocess import prepare_input
from training import env
from training.data import CIFAR10_CLASSES, TEST_FILE, dataset_folder, is_available, read_batch
from training.runfolder import RunFolder
from training.sources import run_dataset

TOP_EXAMPLES = 9  # reference pictures shown per channel
PATCH = 96  # px per example patch
_LOCK = threading.Lock()

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


def reference_for(model: str | None, data_dir: str | os.PathLike) -> ReferenceSet:
    """The reference set of a model's dataset examples: for a run that trained on another dataset than CIFAR-10,
    a balanced slice of its own test pictures (so a beans run's channels show beans), else ``reference_set``."""
    if not model or model == IMAGENET_MODEL:
        return reference_set(data_dir)
    folder = usable_run(model)
    record = (folder.info() or {}).get("data") or {}
    if record.get("dataset", "cifar10") == "cifar10":
        return reference_set(data_dir)
    return _run_reference(str(folder.path), int((folder.path / "run.json").stat().st_mtime), str(data_dir),
                          current().atlas_per_class)


@functools.lru_cache(maxsize=2)
def _run_reference(run: str, stamp: int, data_dir: str, per_class: int) -> ReferenceSet:
    folder = RunFolder(run)
    info = folder.info() or {}
    data, parts = run_dataset(info.get("data"), folder.settings(), data_dir, token=False)
    pool = parts.test_idx
    labels = parts.pool_y[pool]
    chosen = [int(pool[i]) for c in range(len(data.classes)) for i in (labels == c).nonzero().flatten()[:per_class]]
    name, version = data.source.get("name", "its dataset"), data.source.get("revision") or data.source.get("sha256")
    return ReferenceSet(f"{name} test split", f"run-{data.source['labels']}-{version}-{len(chosen)}",
                        [Image.fromarray(parts.pool_x[i].permute(1, 2, 0).numpy()) for i in chosen],
                        [f"{data.classes[int(parts.pool_y[i])]} #{i}" for i in chosen])


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

    return env.disk_cache().tensors("atlas", index_name(model, ref), compute)[0]


def index_name(model: GoogLeNet, ref: ReferenceSet, stem: bool = False) -> str:
    """The disk cache's name of a model's index of the reference set (``stem``: the stem's own index)."""
    return f"{'stem-' if stem else ''}peaks-{fingerprint(model)}-{ref.key}.safetensors"


def stored_index(model: GoogLeNet, ref: ReferenceSet, stem: bool = False,
                 keys: list[str] | None = None) -> dict[str, torch.Tensor] | None:
    """An index the disk cache already holds (read in this process: no GPU time declared), else None; only
    ``keys`` of it when given (one branch's of the nine modules')."""
    return env.disk_cache().stored_tensors("atlas", index_name(model, ref, stem), keys)


def index_keys(module: str, branch: str) -> list[str]:
    """What ``strongest`` reads of an index for one branch (``STEM_KEY``: the stem's)."""
    key = f"{module}/{branch}"
    return [key, f"{key}@where", f"{key}@shape"]


STEM_KEY = ("stem", "out")  # the stem's index as ``strongest`` reads it: (module, branch)


def stem_index(model: GoogLeNet, ref: ReferenceSet, report: Report | None = None) -> dict[str, torch.Tensor]:
    """The stem's output over the reference set (each of its 192 channels' spatial maxima and where), under a key
    of its own (no branch index or precomputed atlas holds the stem), read from disk after the first time."""
    def progress(done: int, total: int) -> None:
        if report is not None:
            report(done / total, f"indexing {ref.name} through the stem: {done}/{total} pictures")

    def compute() -> dict[str, torch.Tensor]:
        peaks = stem_peaks(shared_inference_copy(model), ref.pictures, progress=progress)
        key = "/".join(STEM_KEY)
        return {key: peaks.values.half(), f"{key}@where": peaks.where,
                f"{key}@shape": torch.tensor(peaks.shape, dtype=torch.int32)}

    return env.disk_cache().tensors("atlas", index_name(model, ref, stem=True), compute)[0]


def strongest(index: dict[str, torch.Tensor], module: str, branch: str) -> tuple[list[int], list[int], tuple[int, int]]:
    """Each channel's strongest dataset example, from the index: the reference picture where the channel peaks
    highest, where in it (flat) and the map's shape."""
    values, where, shape = (index[k] for k in index_keys(module, branch))
    pictures = values.float().argmax(0)
    return pictures.tolist(), where.gather(0, pictures[None].long())[0].tolist(), tuple(shape.tolist())


def example_tiles(model: GoogLeNet, ref: ReferenceSet, pictures: list[int], where: list[int],
                  shape: tuple[int, int], side: int) -> list[Image.Image]:
    """The patches ``strongest`` names, at ``side`` px: a grid's tiles for channels nobody has optimised."""
    crops = {i: ref.crop(i, model.preprocessing) for i in set(pictures)}  # each picture cut once
    return [patch_at(crops[i], w, shape).resize((side, side), Image.BICUBIC) for i, w in zip(pictures, where)]


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


