"""Where a run's pictures come from, chosen by one string, and how a run splits them.

- ``cifar10``: its python batches in ``--data-dir`` when they are there (``data.py``); else ``uoft-cs/cifar10`` from
  the Hub cache; else, with ``download``, the Hub's copy and then the Toronto archive as the fallback.
- ``OWNER/NAME[@revision]``: an image-classification dataset on the Hub (``hubdata.py``).
- a folder or a ``.zip`` of your own photos, laid out as ``class_name/picture.jpg`` (``photos.py``).

Each becomes one ``ImageData`` (``imagedata.py``); ``run_splits`` makes a run's train, validation and test parts of
it, and ``run_dataset`` reads a finished run's again, as it trained on them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .data import CIFAR10_CLASSES, HUB_CIFAR10, DataError, is_available, load_cifar10, stratified_split
from .hubdata import hub_source
from .imagedata import MIN_SIDE, ImageData, Limits, label_fingerprint, stored_side
from .photos import folder_source, zip_source

CIFAR10 = "cifar10"
VAL_FRACTION = 0.2  # held out for validation (of CIFAR-10's test split; of train where a dataset has no such split)
DECODED = "decoded"  # the folder in the data directory that keeps decoded datasets (safetensors)


def decoded_dir(data_dir: str | Path) -> Path:
    """Where decoded datasets are kept: beside the data they came from, one folder for every source."""
    return Path(data_dir) / DECODED


@dataclass
class RunSplits:
    """The run's three parts. ``pool_x``/``pool_y`` is the split the test pictures are drawn from, and ``test_idx``
    points into it (the report's top losses name pictures by that index)."""

    train_x: torch.Tensor
    train_y: torch.Tensor
    val_x: torch.Tensor
    val_y: torch.Tensor
    pool_x: torch.Tensor
    pool_y: torch.Tensor
    test_idx: torch.Tensor
    described: dict[str, str]


def run_splits(data: ImageData, val_fraction: float, seed: int) -> RunSplits:
    """Train, validation and test from the source's splits; a missing split is a stratified part of train (for
    CIFAR-10, validation is ``val_fraction`` of its test split), chosen with the run's seed."""
    train_x, train_y = data.train
    if data.val_from_test and data.test is not None:
        pool_x, pool_y = data.test
        val_idx, test_idx = stratified_split(pool_y, val_fraction, seed)
        return RunSplits(train_x, train_y, pool_x[val_idx], pool_y[val_idx], pool_x, pool_y, test_idx,
                         {"validation": f"a stratified {val_fraction:.0%} of test", "test": "the rest of test"})
    described = {}
    if data.test is None:
        test_idx, rest = stratified_split(train_y, val_fraction, seed)
        pool_x, pool_y = train_x, train_y
        train_x, train_y = train_x[rest], train_y[rest]
        described["test"] = f"a stratified {val_fraction:.0%} of train"
    else:
        pool_x, pool_y = data.test
        test_idx = torch.arange(len(pool_y))
        described["test"] = "the test split"
    if data.val is None:
        val_idx, rest = stratified_split(train_y, val_fraction, seed + 1)
        val_x, val_y = train_x[val_idx], train_y[val_idx]
        train_x, train_y = train_x[rest], train_y[rest]
        described["validation"] = f"a stratified {val_fraction:.0%} of train"
    else:
        val_x, val_y = data.val
        described["validation"] = "the validation split"
    return RunSplits(train_x, train_y, val_x, val_y, pool_x, pool_y, test_idx, described)


def _cifar10_from_batches(data_dir: str | Path) -> ImageData:
    d = load_cifar10(data_dir)
    return ImageData(d.classes, (d.train_x, d.train_y), None, (d.test_x, d.test_y),
                     {"dataset": CIFAR10, "from": "python batches"}, val_from_test=True)


def cifar10_source(data_dir: str | Path, download: bool, cache: Path | None,
                   log: Callable[[str], None] = lambda _: None, hub_id: str = HUB_CIFAR10,
                   token: bool | str | None = None) -> ImageData:
    """CIFAR-10: the python batches in ``data_dir`` when there; else the Hub copy from the Hub cache; else, with
    ``download`` only, the Hub copy downloaded, or the Toronto archive when the Hub cannot be read. The same
    pictures in the same order give the same tensors from either source."""
    from .data import DOWNLOAD_SIZE_TEXT, missing_data
    from .data import download as toronto_download

    if is_available(data_dir):
        return _cifar10_from_batches(data_dir)
    try:
        hub = hub_source(hub_id, MIN_SIDE, Limits(), image_column="img", label_column="label", cache=cache,
                         local_only=not download, token=token, log=log)
    except DataError as e:
        if not download:
            raise DataError(missing_data(data_dir)) from None
        log(f"the Hub copy of CIFAR-10 could not be read ({e}); downloading the Toronto archive "
            f"({DOWNLOAD_SIZE_TEXT}) ...")
        toronto_download(data_dir)
        return _cifar10_from_batches(data_dir)
    hub.val_from_test = True
    hub.source = {**hub.source, "dataset": CIFAR10, "from": hub_id}
    if hub.classes != CIFAR10_CLASSES:
        log(f"the Hub copy names CIFAR-10's classes {hub.classes}")
    return hub


def is_photo_source(spec: str) -> bool:
    return spec.startswith((".", "/", "~")) or spec.lower().endswith(".zip") or Path(spec).exists()


def load_source(spec: str, *, data_dir: str | Path, image_size: int, download: bool = False,
                cache: Path | None = None, limits: Limits = Limits(), image_column: str | None = None,
                label_column: str | None = None, train_split: str = "train", test_split: str = "test",
                token: bool | str | None = None, log: Callable[[str], None] = lambda _: None) -> ImageData:
    """``cifar10``, ``OWNER/NAME[@revision]``, a folder, or a .zip -> ``ImageData`` with ``source["labels"]``
    (``token``: for the Hub, as ``hub_source`` takes it)."""
    spec = (spec or CIFAR10).strip()
    side = stored_side(image_size)
    if spec.lower() == CIFAR10:
        data = cifar10_source(data_dir, download, cache, log, token=token)
    elif is_photo_source(spec):
        path = Path(spec).expanduser()
        data = zip_source(path, side, limits, cache, log) if path.suffix.lower() == ".zip" else \
            folder_source(path, side, limits, log)
    else:
        data = hub_source(spec, side, limits, image_column=image_column, label_column=label_column,
                          train_split=train_split, test_split=test_split, cache=cache, token=token, log=log)
    data.source["labels"] = label_fingerprint(data.classes)
    data.source.setdefault("name", "CIFAR-10" if data.source.get("dataset") == CIFAR10 else data.source["dataset"])
    return data


def reload_arguments(config: Any, data: ImageData) -> dict[str, Any]:
    """What ``load_source`` needs to read a run's dataset again (its report is regenerated from it): a Hub dataset
    by the commit it trained on, an upload by its path."""
    spec = (config.dataset or CIFAR10).strip()
    if data.source.get("revision") and spec.lower() != CIFAR10:
        spec = f"{data.source['dataset']}@{data.source['revision']}"
    elif is_photo_source(spec):
        spec = str(Path(spec).expanduser().resolve())
    return {"spec": spec, "image_column": config.image_column, "label_column": config.label_column,
            "train_split": config.train_split, "test_split": config.test_split}


def run_dataset(record: dict[str, Any] | None, settings: dict[str, Any], data_dir: str | Path,
                limits: Limits = Limits(), token: bool | str | None = None) -> tuple[ImageData, RunSplits]:
    """A finished run's dataset and its splits, as it trained on them (``record``: run.json's ``data``; a run that
    recorded none trained on CIFAR-10)."""
    load = dict((record or {}).get("load") or {"spec": CIFAR10})
    data = load_source(load.pop("spec"), data_dir=data_dir, image_size=int(settings.get("image_size", MIN_SIDE)),
                       cache=decoded_dir(data_dir), limits=limits, token=token, **load)
    if record and record.get("labels") and record["labels"] != data.source["labels"]:
        raise DataError(f"The run's dataset now has other classes than it trained on ({', '.join(data.classes[:5])}"
                        "...); its report cannot be made again.")
    return data, run_splits(data, float(settings.get("val_fraction", VAL_FRACTION)), int(settings.get("seed", 0)))
