"""The Fine-tune page's datasets: CIFAR-10 (the default), a Hub image-classification dataset by its id, or a zip of
the visitor's own photos. Each is read, checked and decoded here, in the main process (on ZeroGPU before the GPU
function, which then only trains), within the server's disk budget for datasets.

An upload is kept in its owner's folder (``runs.uploads_dir()``), named by its content, and deleted with the last
of that owner's runs that used it (``runs.sweep_uploads``). A visitor can only name an upload by sending it: no
endpoint takes another visitor's upload, lists uploads, or deletes one.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from explorer.admission import opaque
from explorer.params import as_int, as_text
from explorer.render import NO_DATA, dataset_markdown
from explorer.runs import uploads_dir
from explorer.state import PROFILE
from training.atomic import atomic_write
from training.data import HUB_CIFAR10, TEST_PICTURES, DataError, is_available
from training.hubdata import hub_cached, parse_hub_id
from training.imagedata import ImageData, Limits
from training.photos import check_zip
from training.sources import (CIFAR10, VAL_FRACTION, RunSplits, cifar10_source, decoded_dir, is_photo_source,
                              load_source, run_splits)

PREVIEW_PER_CLASS = 4
PREVIEW_CLASSES = 12


def _tree_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and not p.is_symlink()) \
        if folder.is_dir() else 0


def data_bytes() -> int:
    """What datasets take on this server: decoded copies, uploads, and the Hub cache's dataset repos."""
    used = _tree_bytes(decoded_dir(PROFILE.data_dir)) + _tree_bytes(uploads_dir())
    try:
        from huggingface_hub import scan_cache_dir

        used += sum(r.size_on_disk for r in scan_cache_dir().repos if r.repo_type == "dataset")
    except Exception:  # no Hub cache yet (or an unreadable one): nothing of it to count
        pass
    return used


def limits() -> Limits:
    """The source limits, with the Hub download limited to what is left of the datasets' disk budget."""
    left = max(0, PROFILE.data_bytes - data_bytes())
    return dataclasses.replace(Limits(), max_download_bytes=left)


def store_upload(photos: Any, owner: str) -> Path:
    """The visitor's zip, checked (no path leaves its folder, no bomb) and kept under their own folder by its
    content's hash and its name; the same zip twice is kept once."""
    path = Path(as_text(photos, "photos"))
    if not path.is_file():
        raise DataError("The zip of photos did not arrive; upload it again.")
    check_zip(path, Limits()).close()
    used = data_bytes()
    if used + path.stat().st_size > PROFILE.data_bytes:
        raise DataError(f"The server's disk for datasets is full ({used / 2**20:,.0f} of "
                        f"{PROFILE.data_bytes / 2**20:,.0f} MB); please try again later.")
    with path.open("rb") as f:  # streamed: a 200 MB zip is not held in memory
        digest = hashlib.file_digest(f, "sha256").hexdigest()[:24]
    name = re.sub(r"[^A-Za-z0-9._-]", "_", path.stem)[:60].lstrip(".") or "photos"
    target = uploads_dir() / opaque(owner) / digest / f"{name}.zip"  # its name, as the page shows it
    if not target.is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(target, lambda staged: shutil.copyfile(path, staged))
    return target


def dataset_spec(dataset: Any, photos: Any, owner: str) -> str:
    """What ``TrainConfig.dataset`` gets: "cifar10", a checked Hub id, or the visitor's stored zip."""
    if photos not in (None, ""):
        return str(store_upload(photos, owner))
    spec = as_text(dataset, "dataset") or CIFAR10
    if spec.lower() == CIFAR10:
        return CIFAR10
    if is_photo_source(spec):
        raise DataError("A dataset is cifar10 or a Hub dataset id (OWNER/NAME[@revision]); your own photos come as "
                        "an uploaded zip.")
    parse_hub_id(spec)
    return spec


CIFAR10_SIZES = {"train": 50_000, "validation": 2_000, "test": 8_000, "pool": TEST_PICTURES}


def cifar10_ready() -> bool:
    """CIFAR-10's python batches are in the data folder, or the Hub's copy is in the Hub cache."""
    return is_available(PROFILE.data_dir) or hub_cached(HUB_CIFAR10)


def _require_cifar10() -> None:
    """CIFAR-10 is fetched by its own button, never as a side effect of a run or a preview."""
    if not cifar10_ready():
        raise DataError(NO_DATA)


def download_cifar10() -> str:
    """CIFAR-10 onto the server (the Hub's copy, else the Toronto archive), decoded once; says which."""
    data = cifar10_source(PROFILE.data_dir, download=True, cache=decoded_dir(PROFILE.data_dir), token=False)
    return data.source.get("from", "")


def prepare(spec: str, image_size: int, image_column: Any = None, label_column: Any = None,
            progress: Any = lambda *a: None) -> tuple[str, dict[str, int]]:
    """Read a Hub dataset (downloaded within the budget) or an upload and decode it once, here in the main
    process. Returns the spec the run trains on (a Hub dataset pinned to the commit just read, whose decoded copy
    the run then reads without asking the Hub) and the sizes of the run's parts, and of the split the probe index
    counts in ("pool"). CIFAR-10 is only checked: it must be on the server (its own button)."""
    if spec == CIFAR10:
        _require_cifar10()
        return spec, dict(CIFAR10_SIZES)
    data = load(spec, image_size, image_column, label_column, progress)
    if data.source.get("revision"):
        spec = f"{data.source['dataset']}@{data.source['revision']}"
    return spec, sizes(data)


def load(spec: str, image_size: int, image_column: Any = None, label_column: Any = None,
         progress: Any = lambda *a: None) -> ImageData:
    """A Hub dataset or an upload, read without the server's token (a visitor chose it), decoded and kept."""
    progress(0, "reading the dataset (downloaded and decoded once, then kept)…")
    return load_source(spec, data_dir=PROFILE.data_dir, image_size=image_size, cache=decoded_dir(PROFILE.data_dir),
                       limits=limits(),
                       image_column=as_text(image_column, "image_column") or None,
                       label_column=as_text(label_column, "label_column") or None, token=False)


def _part_sizes(parts: RunSplits) -> dict[str, int]:
    return {"train": len(parts.train_y), "validation": len(parts.val_y), "test": len(parts.test_idx),
            "pool": len(parts.pool_y)}


def sizes(data: ImageData) -> dict[str, int]:
    """The sizes of a run's parts of ``data`` (with the app's split), and of the split its test is drawn from."""
    return _part_sizes(run_splits(data, VAL_FRACTION, 0))


def preview(data: ImageData) -> tuple[str, list[tuple[Image.Image, str]]]:
    """The dataset's classes and sizes as the run will split them, and a few pictures of each class."""
    parts = run_splits(data, VAL_FRACTION, 0)
    text = dataset_markdown(data.source.get("name", "the dataset"), data.source.get("revision"), data.classes,
                            _part_sizes(parts), parts.described, data.side, int(data.source.get("skipped", 0)))
    x, y = data.train
    strip = []
    for c, cls in enumerate(data.classes[:PREVIEW_CLASSES]):
        for i in (y == c).nonzero().flatten()[:PREVIEW_PER_CLASS].tolist():
            strip.append((Image.fromarray(np.ascontiguousarray(x[i].permute(1, 2, 0).numpy())), cls))
    return text, strip


def describe(dataset: Any, photos: Any, owner: str, image_size: Any, image_column: Any = None,
             label_column: Any = None, progress: Any = lambda *a: None) -> tuple[str, list[tuple[Image.Image, str]]]:
    """``/dataset``: what a run on this dataset would train on, before it starts."""
    size = as_int(image_size, "image_size") if image_size not in (None, "") else PROFILE.finetune.image_size
    spec = dataset_spec(dataset, photos, owner)
    if spec == CIFAR10:
        _require_cifar10()
        data = load_source(CIFAR10, data_dir=PROFILE.data_dir, image_size=size, cache=decoded_dir(PROFILE.data_dir),
                           token=False)
    else:
        data = load(spec, size, image_column, label_column, progress)
    return preview(data)
