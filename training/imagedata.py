"""The one shape every data source takes for the engine (``ImageData``), what a source may hold (``Limits``), and
the pieces every source shares: decoding pictures through the classifier's safe image path into one uint8 array,
the class checks, and a decoded dataset kept on disk (safetensors) so that it is decoded once."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageOps

from googlenet.images import ImageError, load_image

from .atomic import atomic_write
from .data import DataError

MIN_SIDE, MAX_SIDE = 32, 224  # the stored side: the run's image size within these bounds (CIFAR-10 keeps 32 px)


@dataclass(frozen=True)
class Limits:
    """What one source may hold; each is checked with its own message (the app's come from its profile)."""

    max_pictures: int = 70_000  # CIFAR-10's 60,000 fit
    max_decoded_bytes: int = 1 << 30
    min_classes: int = 2
    max_classes: int = 100
    min_per_class: int = 5
    max_download_bytes: int = 2 << 30  # a Hub dataset's parquet files, by their size on the Hub
    max_zip_bytes: int = 200 << 20
    max_zip_unpacked_bytes: int = 1 << 30
    max_zip_files: int = 5_000
    max_zip_ratio: float = 50.0  # uncompressed / compressed over the whole zip: more is a bomb (JPEGs are ~1)


@dataclass
class ImageData:
    """What the engine trains on: N x 3 x S x S uint8 pictures and int64 labels per split, with the class names.
    ``val`` and ``test`` are None where the source has no such split (``run_splits`` says what stands in)."""

    classes: list[str]
    train: tuple[torch.Tensor, torch.Tensor]
    val: tuple[torch.Tensor, torch.Tensor] | None
    test: tuple[torch.Tensor, torch.Tensor] | None
    source: dict[str, Any] = field(default_factory=dict)  # what run.json records: dataset, revision, labels, ...
    val_from_test: bool = False  # CIFAR-10's rule: validation is a stratified part of its test split

    @property
    def side(self) -> int:
        return int(self.train[0].shape[-1])


def label_fingerprint(classes: list[str]) -> str:
    """The class names in their order, hashed: two runs whose label numbers mean the same classes share it."""
    return hashlib.sha256(json.dumps(list(classes)).encode()).hexdigest()[:16]


def stored_side(image_size: int) -> int:
    return max(MIN_SIDE, min(MAX_SIDE, int(image_size)))


def picture_array(data: bytes, side: int) -> np.ndarray:
    """One picture's bytes -> side x side x 3 uint8 (centre-cropped square), through the safe image path."""
    img = load_image(data)
    if img.size != (side, side):
        img = ImageOps.fit(img, (side, side), Image.Resampling.BICUBIC)
    return np.asarray(img, dtype=np.uint8)


class Decoder:
    """Decodes pictures into one preallocated array, within the picture and byte limits; counts what it skips."""

    def __init__(self, side: int, limits: Limits, what: str) -> None:
        self.side, self.limits, self.what = side, limits, what
        self.skipped: list[str] = []

    def decode(self, items: Iterable[tuple[str, bytes | None, int]], count: int) -> tuple[np.ndarray, list[int]]:
        """``items`` yields (name, bytes, label); bytes None, or bytes that are not a picture, are skipped and
        counted. Returns the pictures and the labels of those kept."""
        need = count * self.side * self.side * 3
        if count > self.limits.max_pictures:
            raise DataError(f"{self.what} has {count:,} pictures; the limit is {self.limits.max_pictures:,}.")
        if need > self.limits.max_decoded_bytes:
            raise DataError(f"{self.what} would take {need / 2**20:,.0f} MB decoded at {self.side} px; the limit is "
                            f"{self.limits.max_decoded_bytes / 2**20:,.0f} MB.")
        out = np.empty((count, self.side, self.side, 3), np.uint8)
        labels: list[int] = []
        for name, data, label in items:
            try:
                if data is None:
                    raise ImageError(name)
                out[len(labels)] = picture_array(data, self.side)
            except ImageError:
                self.skipped.append(name)
                continue
            labels.append(label)
        return out[: len(labels)], labels


def as_tensor(pictures: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(pictures.transpose(0, 3, 1, 2)))


def check_classes(classes: list[str], labels: torch.Tensor, what: str, limits: Limits) -> None:
    """Refuse a dataset with too few or too many classes, or too few pictures of one, saying which."""
    if len(classes) < limits.min_classes:
        raise DataError(f"{what} has {len(classes)} class{'es' if len(classes) != 1 else ''}"
                        f"{': ' + classes[0] if classes else ''}; a classifier needs at least {limits.min_classes}.")
    if len(classes) > limits.max_classes:
        raise DataError(f"{what} has {len(classes)} classes; the limit is {limits.max_classes}.")
    counts = torch.bincount(labels, minlength=len(classes)).tolist()
    few = [f"{c} ({n})" for c, n in zip(classes, counts) if n < limits.min_per_class]
    if few:
        raise DataError(f"{what} has too few pictures in {len(few)} class{'es' if len(few) > 1 else ''}: "
                        f"{', '.join(few[:5])}{' ...' if len(few) > 5 else ''}; each needs at least "
                        f"{limits.min_per_class}.")


def write_stored(path: Path, data: ImageData) -> None:
    from safetensors.torch import save

    tensors = {"train_x": data.train[0], "train_y": data.train[1]}
    for role, part in (("val", data.val), ("test", data.test)):
        if part is not None:
            tensors[f"{role}_x"], tensors[f"{role}_y"] = part
    meta = {"classes": json.dumps(data.classes), "source": json.dumps(data.source),
            "val_from_test": json.dumps(data.val_from_test)}
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, save({k: v.contiguous() for k, v in tensors.items()}, metadata=meta))


def read_stored(path: Path) -> ImageData:
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        meta = f.metadata()
        t = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open has no __iter__)
    part = (lambda r: (t[f"{r}_x"], t[f"{r}_y"]) if f"{r}_x" in t else None)
    return ImageData(json.loads(meta["classes"]), (t["train_x"], t["train_y"]), part("val"), part("test"),
                     json.loads(meta["source"]), json.loads(meta["val_from_test"]))


