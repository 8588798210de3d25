"""Where a run's pictures come from, and the one shape every source takes for the engine (``ImageData``).

- ``cifar10``: its python batches in ``--data-dir`` when they are there (``data.py``); else ``uoft-cs/cifar10`` from
  the Hub (or the Hub cache, offline); else, with ``download``, the Hub and then the Toronto archive as the fallback.
- ``OWNER/NAME[@revision]``: an image-classification dataset on the Hub, its parquet files read through the Hub
  cache with pyarrow (no ``datasets``: docs/training.md says what was measured). Images are decoded here.
- a folder or a ``.zip`` of your own photos, laid out as ``class_name/picture.jpg``. A zip is read in place, entry
  by entry, and never extracted, so nothing it names can be written anywhere.

Every picture goes through the classifier's safe image path (file size and pixel count checked before decoding,
EXIF orientation, any mode to RGB) and is stored once as uint8 at one square side. Nothing is unpickled here.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageOps

from googlenet.images import MAX_FILE_BYTES, ImageError, load_image

from .atomic import atomic_write
from .data import CIFAR10_CLASSES, HUB_CIFAR10, DataError, is_available, load_cifar10, stratified_split

CIFAR10 = "cifar10"
SPLIT_NAMES = {"train": "train", "training": "train", "validation": "validation", "valid": "validation",
               "val": "validation", "dev": "validation", "test": "test", "testing": "test"}
PICTURE_SUFFIXES = {".jpg", ".jpeg", ".png", ".gif", ".webp", ".bmp", ".tif", ".tiff"}
VAL_FRACTION = 0.2  # held out for validation (of CIFAR-10's test split; of train where a dataset has no such split)
DECODED = "decoded"  # the folder in the data directory that keeps decoded Hub datasets (safetensors)
MIN_SIDE, MAX_SIDE = 32, 224  # the stored side: the run's image size within these bounds (or a smaller native side)
_REPO = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}/[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")


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


def label_fingerprint(classes: list[str]) -> str:
    """The class names in their order, hashed: two runs whose label numbers mean the same classes share it."""
    return hashlib.sha256(json.dumps(list(classes)).encode()).hexdigest()[:16]


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


# ----------------------------------------------------------------------------- decoding

def stored_side(image_size: int) -> int:
    return max(MIN_SIDE, min(MAX_SIDE, int(image_size)))


def _picture(data: bytes, side: int) -> np.ndarray:
    """One picture's bytes -> side x side x 3 uint8 (centre-cropped square), through the safe image path."""
    img = load_image(data)
    if img.size != (side, side):
        img = ImageOps.fit(img, (side, side), Image.Resampling.BICUBIC)
    return np.asarray(img, dtype=np.uint8)


class _Decoder:
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
                out[len(labels)] = _picture(data, self.side)
            except ImageError:
                self.skipped.append(name)
                continue
            labels.append(label)
        return out[: len(labels)], labels


def _tensor(pictures: np.ndarray) -> torch.Tensor:
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


# ----------------------------------------------------------------------------- your own photos

def _photo_entries(names: list[str]) -> tuple[str, list[tuple[str, str]]]:
    """(prefix, [(class, name)]): files laid out as class/picture, under at most one wrapping folder."""
    parts = [PurePosixPath(n).parts for n in names]
    visible = [(n, p) for n, p in zip(names, parts)
               if p and not any(x.startswith(".") or x == "__MACOSX" for x in p)]
    prefix = ""
    tops = {p[0] for _, p in visible}
    if len(tops) == 1 and all(len(p) >= 3 for _, p in visible):
        prefix = next(iter(tops))
        visible = [(n, p[1:]) for n, p in visible]
    return prefix, [(p[0], n) for n, p in visible if len(p) == 2]


def _photos(what: str, names: list[str], read: Callable[[str], bytes], side: int, limits: Limits,
            log: Callable[[str], None]) -> ImageData:
    _, entries = _photo_entries(names)
    if not entries:
        raise DataError(f"{what} holds no pictures laid out as class_name/picture.jpg.")
    classes = sorted({c for c, _ in entries})
    if len(classes) > limits.max_classes:
        raise DataError(f"{what} has {len(classes)} classes (folders); the limit is {limits.max_classes}.")
    index = {c: i for i, c in enumerate(classes)}
    pictures = [(c, n) for c, n in entries if PurePosixPath(n).suffix.lower() in PICTURE_SUFFIXES]
    not_pictures = [n for c, n in entries if PurePosixPath(n).suffix.lower() not in PICTURE_SUFFIXES]
    decoder = _Decoder(side, limits, what)
    x, labels = decoder.decode(((n, read(n), index[c]) for c, n in pictures), len(pictures))
    skipped = len(decoder.skipped) + len(not_pictures)
    if not len(x):
        raise DataError(f"{what} holds no picture that could be decoded ({skipped} files skipped).")
    y = torch.tensor(labels, dtype=torch.int64)
    present = sorted(set(labels))
    if len(present) < len(classes):  # folders whose files were all skipped
        empty = [classes[i] for i in range(len(classes)) if i not in present]
        raise DataError(f"{what} has no usable pictures in {', '.join(empty[:5])}.")
    check_classes(classes, y, what, limits)
    if skipped:
        log(f"{what}: skipped {skipped} file{'s' if skipped != 1 else ''} that are not pictures")
    return ImageData(classes, (_tensor(x), y), None, None,
                     {"skipped": skipped, "pictures": len(y)})


def _read_limited(f: Any, name: str) -> bytes | None:
    data = f.read(MAX_FILE_BYTES + 1)
    return None if len(data) > MAX_FILE_BYTES else data


def folder_source(folder: str | Path, side: int, limits: Limits = Limits(),
                  log: Callable[[str], None] = lambda _: None) -> ImageData:
    """Your own photos in a folder, as class_name/picture.jpg. Links are not followed."""
    root = Path(folder)
    if not root.is_dir():
        raise DataError(f"{root} is not a folder.")
    names = []
    for here, dirs, files in os.walk(root):  # links to folders are not followed; links to files are skipped
        dirs.sort()
        for f in sorted(files):
            if not (Path(here) / f).is_symlink():
                names.append((Path(here) / f).relative_to(root).as_posix())
        if len(names) > limits.max_zip_files:
            raise DataError(f"{root} holds more than {limits.max_zip_files:,} files; the limit is "
                            f"{limits.max_zip_files:,}.")

    def read(name: str) -> bytes | None:
        with open(root / name, "rb") as f:
            return _read_limited(f, name)

    data = _photos(f"The folder {root.name}", names, read, side, limits, log)
    data.source.update(dataset=f"folder:{root.name}")
    return data


def check_zip(path: str | Path, limits: Limits = Limits()) -> zipfile.ZipFile:
    """Open a zip of photos after refusing what could escape or explode: absolute paths, ``..``, links, too many
    files, too many bytes, and a compression ratio no photo has. Nothing is extracted."""
    path = Path(path)
    size = path.stat().st_size
    if size > limits.max_zip_bytes:
        raise DataError(f"The zip is {size / 2**20:.0f} MB; the limit is {limits.max_zip_bytes / 2**20:.0f} MB.")
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as e:
        raise DataError(f"The upload is not a readable zip ({e}).") from None
    infos = archive.infolist()
    if len(infos) > limits.max_zip_files:
        archive.close()
        raise DataError(f"The zip holds {len(infos):,} entries; the limit is {limits.max_zip_files:,}.")
    for info in infos:
        name = info.filename
        pure = PurePosixPath(name.replace("\\", "/"))
        problem = ("an absolute path" if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name) else
                   "a '..' that leaves its folder" if ".." in pure.parts else
                   "a link" if stat.S_ISLNK(info.external_attr >> 16) else None)
        if problem:
            archive.close()
            raise DataError(f"The zip is refused: its entry '{name[:80]}' is {problem}.")
    unpacked = sum(i.file_size for i in infos)
    packed = sum(i.compress_size for i in infos)
    if unpacked > limits.max_zip_unpacked_bytes:
        archive.close()
        raise DataError(f"The zip would unpack to {unpacked / 2**20:,.0f} MB; the limit is "
                        f"{limits.max_zip_unpacked_bytes / 2**20:,.0f} MB.")
    if unpacked > limits.max_zip_ratio * max(packed, 1) and unpacked > (1 << 20):
        archive.close()
        raise DataError(f"The zip is refused as a zip bomb: it would unpack {unpacked / max(packed, 1):,.0f} times "
                        f"its size (photos barely compress; the limit is {limits.max_zip_ratio:.0f}).")
    return archive


def zip_source(path: str | Path, side: int, limits: Limits = Limits(),
               log: Callable[[str], None] = lambda _: None) -> ImageData:
    """Your own photos in a zip, as class_name/picture.jpg, read entry by entry (never extracted)."""
    with check_zip(path, limits) as archive:
        infos = {i.filename: i for i in archive.infolist() if not i.is_dir()}

        def read(name: str) -> bytes | None:
            if infos[name].file_size > MAX_FILE_BYTES:
                return None
            with archive.open(infos[name]) as f:
                return _read_limited(f, name)

        data = _photos("The zip", list(infos), read, side, limits, log)
    data.source.update(dataset=f"zip:{Path(path).name}",
                       sha256=hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16])
    return data


# ----------------------------------------------------------------------------- the Hub

def parse_hub_id(spec: str) -> tuple[str, str | None]:
    """``OWNER/NAME[@revision]`` -> (repo id, revision), or DataError."""
    repo, _, revision = spec.strip().partition("@")
    if not _REPO.match(repo) or ".." in repo:
        raise DataError(f"'{spec[:100]}' is not a Hub dataset id; write OWNER/NAME or OWNER/NAME@revision.")
    return repo, (revision or None)


def split_of(filename: str) -> str | None:
    """The split a parquet file holds, from the Hub's layouts: data/train-00000-of-00001.parquet,
    plain_text/test-….parquet, default/validation/0000.parquet."""
    parts = PurePosixPath(filename).parts
    if not filename.endswith(".parquet"):
        return None
    stem = re.split(r"[-_.]", parts[-1], maxsplit=1)[0].lower()
    if stem in SPLIT_NAMES:
        return SPLIT_NAMES[stem]
    if len(parts) > 1 and parts[-2].lower() in SPLIT_NAMES:
        return SPLIT_NAMES[parts[-2].lower()]
    return None


def _hub_files(repo: str, revision: str | None, local_only: bool = False
               ) -> tuple[str, dict[str, int | None], Path | None]:
    """(commit, {parquet file: size on the Hub}, cached snapshot folder when offline or ``local_only``)."""
    from huggingface_hub import HfApi, snapshot_download
    from huggingface_hub.errors import (LocalEntryNotFoundError, OfflineModeIsEnabled, RepositoryNotFoundError,
                                        RevisionNotFoundError)
    try:
        if local_only:
            raise OfflineModeIsEnabled("local only")
        info = HfApi().dataset_info(repo, revision=revision, files_metadata=True)
        return str(info.sha), {s.rfilename: s.size for s in info.siblings or [] if s.rfilename.endswith(".parquet")}, \
            None
    except RepositoryNotFoundError:
        raise DataError(f"There is no dataset '{repo}' on the Hub (or it is private or gated).") from None
    except RevisionNotFoundError:
        raise DataError(f"The dataset '{repo}' has no revision '{revision}'.") from None
    except Exception as e:  # offline or unreachable: the Hub cache, if it holds this revision
        try:
            folder = Path(snapshot_download(repo, repo_type="dataset", revision=revision, local_files_only=True))
        except (LocalEntryNotFoundError, OfflineModeIsEnabled, OSError, ValueError):
            raise DataError(f"The Hub could not be reached ({type(e).__name__}) and its cache has no copy of "
                            f"'{repo}'{'@' + revision if revision else ''}.") from None
        return folder.name, {p.relative_to(folder).as_posix(): None for p in folder.rglob("*.parquet")}, folder


def _features(schema: Any) -> dict[str, Any]:
    """The ``datasets`` features recorded in a parquet file's metadata ({} when none)."""
    meta = (schema.metadata or {}).get(b"huggingface")
    try:
        return json.loads(meta)["info"]["features"] if meta else {}
    except (ValueError, KeyError, TypeError):
        return {}


def _columns(schema: Any, image_column: str | None, label_column: str | None, what: str) -> tuple[str, str]:
    import pyarrow as pa
    features = _features(schema)
    names = list(schema.names)

    def is_image(n: str) -> bool:
        f = features.get(n) or {}
        t = schema.field(n).type
        return f.get("_type") == "Image" or (pa.types.is_struct(t) and t.get_field_index("bytes") >= 0)

    def is_label(n: str) -> bool:
        f = features.get(n) or {}
        t = schema.field(n).type
        return f.get("_type") == "ClassLabel" or pa.types.is_integer(t) or pa.types.is_string(t) or \
            pa.types.is_large_string(t)

    for given, kind in ((image_column, "image"), (label_column, "label")):
        if given and given not in names:
            raise DataError(f"{what} has no column '{given}'; its columns are {', '.join(names)}.")
    images = [image_column] if image_column else [n for n in names if is_image(n)]
    if len(images) != 1:
        raise DataError(f"{what} has {'no image column' if not images else 'several image columns: ' + ', '.join(images)}"
                        f"; name one with --image-column (columns: {', '.join(names)}).")
    if label_column:
        return images[0], label_column
    classlabels = [n for n in names if (features.get(n) or {}).get("_type") == "ClassLabel"]
    named = [n for n in names if n.lower() in ("label", "labels", "class", "category") and is_label(n)]
    labels = classlabels or named or [n for n in names if n != images[0] and is_label(n)]
    if len(labels) != 1:
        raise DataError(f"{what} has {'no usable label column' if not labels else 'several label columns: ' + ', '.join(labels)}"
                        f"; name one with --label-column (columns: {', '.join(names)}).")
    return images[0], labels[0]


def hub_source(spec: str, side: int, limits: Limits = Limits(), *, image_column: str | None = None,
               label_column: str | None = None, train_split: str = "train", test_split: str = "test",
               cache: Path | None = None, local_only: bool = False,
               log: Callable[[str], None] = lambda _: None) -> ImageData:
    """An image-classification dataset on the Hub, by ``OWNER/NAME[@revision]``, through the Hub cache (only the
    cache with ``local_only``). The decoded tensors are kept in ``cache`` (keyed by the commit), so a second run
    does not decode again."""
    import pyarrow.parquet as pq
    from huggingface_hub import hf_hub_download

    repo, revision = parse_hub_id(spec)
    commit, files, offline = _hub_files(repo, revision, local_only)
    wanted = {"train": train_split, "validation": "validation", "test": test_split}
    by_split: dict[str, list[str]] = {}
    for f in sorted(files):
        s = split_of(f)
        name = PurePosixPath(f).name.split("-")[0].split(".")[0].lower()
        for role, given in wanted.items():
            if s == SPLIT_NAMES.get(given.lower(), given.lower()) or name == given.lower():
                by_split.setdefault(role, []).append(f)
                break
    if "train" not in by_split:
        found = sorted({split_of(f) or PurePosixPath(f).name for f in files})
        raise DataError(f"The dataset '{repo}' has no parquet files for the split '{train_split}'"
                        f"{' (it has: ' + ', '.join(found) + ')' if found else ' (it has no parquet files)'}; "
                        "name one with --train-split.")
    chosen = [f for fs in by_split.values() for f in fs]
    size = sum(files[f] or 0 for f in chosen)
    if size > limits.max_download_bytes:
        raise DataError(f"The dataset '{repo}' is {size / 2**20:,.0f} MB on the Hub; the limit is "
                        f"{limits.max_download_bytes / 2**20:,.0f} MB.")
    what = f"The dataset '{repo}'"
    key = hashlib.sha256(json.dumps([repo, commit, chosen, image_column, label_column, side]).encode()).hexdigest()[:20]
    stored = cache / f"hub-{key}.safetensors" if cache else None
    if stored is not None and stored.is_file():
        return _read_stored(stored)
    # Downloaded by the revision as given, so that the cache records it (refs/) and it can be read offline later;
    # the snapshot folder is named by its commit, which must be the one whose files were counted.
    paths = {f: (offline / f if offline else Path(hf_hub_download(repo, f, repo_type="dataset",
                                                                  revision=revision or "main")))
             for f in chosen}
    if not offline and any(commit not in p.parts for p in paths.values()):
        raise DataError(f"The dataset '{repo}' changed on the Hub while it was downloading; start again.")
    tables = {role: [pq.read_table(paths[f]) for f in fs] for role, fs in by_split.items()}
    schema = tables["train"][0].schema
    img_col, lab_col = _columns(schema, image_column, label_column, what)
    feature = _features(schema).get(lab_col) or {}
    names = feature.get("names")
    columns = {role: ([v for t in ts for v in t.column(img_col).to_pylist()],
                      [v for t in ts for v in t.column(lab_col).to_pylist()]) for role, ts in tables.items()}
    if names:
        classes = [str(n) for n in names]
    elif all(isinstance(v, str) for v in columns["train"][1]):
        classes = sorted({v for v in columns["train"][1]})
        log(f"{what}: {len(classes)} classes from the string labels of '{lab_col}', in alphabetical order")
    else:
        values = sorted({int(v) for v in columns["train"][1] if v is not None})
        classes = [str(v) for v in range(max(values) + 1)] if values else []
        log(f"{what}: '{lab_col}' has numbers without class names; the classes are named by number")
    index = {c: i for i, c in enumerate(classes)}
    total = sum(len(c[0]) for c in columns.values())
    if total > limits.max_pictures:
        raise DataError(f"{what} has {total:,} pictures; the limit is {limits.max_pictures:,}.")
    decoder = _Decoder(side, limits, what)
    splits: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    dropped = 0
    for role, (images, labels) in columns.items():
        ys = [index.get(v) if isinstance(v, str) else
              (int(v) if v is not None and 0 <= int(v) < len(classes) else None) for v in labels]
        keep = [i for i, y in enumerate(ys) if y is not None]
        dropped += len(ys) - len(keep)
        x, kept = decoder.decode(((f"{role} {i}", _image_bytes(images[i]), ys[i]) for i in keep), len(keep))
        splits[role] = (_tensor(x), torch.tensor(kept, dtype=torch.int64))
    check_classes(classes, splits["train"][1], what, limits)
    skipped = len(decoder.skipped)
    if skipped or dropped:
        log(f"{what}: skipped {skipped} pictures that could not be decoded and {dropped} rows without a known label")
    data = ImageData(classes, splits["train"], splits.get("validation"), splits.get("test"),
                     {"dataset": repo, "revision": commit, "image_column": img_col, "label_column": lab_col,
                      "splits": {r: sorted({split_of(f) or f for f in fs}) for r, fs in by_split.items()},
                      "skipped": skipped + dropped})
    if stored is not None:
        _write_stored(stored, data)
    return data


def _image_bytes(value: Any) -> bytes | None:
    """A parquet Image cell ({"bytes", "path"}) or raw bytes -> the file's bytes (None: not a picture)."""
    if isinstance(value, dict):
        value = value.get("bytes")
    if not isinstance(value, (bytes, bytearray)) or len(value) > MAX_FILE_BYTES:
        return None
    return bytes(value)


def _write_stored(path: Path, data: ImageData) -> None:
    from safetensors.torch import save

    tensors = {"train_x": data.train[0], "train_y": data.train[1]}
    for role, part in (("val", data.val), ("test", data.test)):
        if part is not None:
            tensors[f"{role}_x"], tensors[f"{role}_y"] = part
    meta = {"classes": json.dumps(data.classes), "source": json.dumps(data.source),
            "val_from_test": json.dumps(data.val_from_test)}
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, save({k: v.contiguous() for k, v in tensors.items()}, metadata=meta))


def _read_stored(path: Path) -> ImageData:
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        meta = f.metadata()
        t = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open has no __iter__)
    part = (lambda r: (t[f"{r}_x"], t[f"{r}_y"]) if f"{r}_x" in t else None)
    return ImageData(json.loads(meta["classes"]), (t["train_x"], t["train_y"]), part("val"), part("test"),
                     json.loads(meta["source"]), json.loads(meta["val_from_test"]))


# ----------------------------------------------------------------------------- CIFAR-10, and choosing a source

def _cifar10_from_batches(data_dir: str | Path) -> ImageData:
    d = load_cifar10(data_dir)
    return ImageData(d.classes, (d.train_x, d.train_y), None, (d.test_x, d.test_y),
                     {"dataset": CIFAR10, "from": "python batches"}, val_from_test=True)


def cifar10_source(data_dir: str | Path, download: bool, cache: Path | None,
                   log: Callable[[str], None] = lambda _: None, hub_id: str = HUB_CIFAR10) -> ImageData:
    """CIFAR-10: the python batches in ``data_dir`` when there; else the Hub copy from the Hub cache; else, with
    ``download`` only, the Hub copy downloaded, or the Toronto archive when the Hub cannot be read. The same
    pictures in the same order give the same tensors from either source."""
    from .data import DOWNLOAD_SIZE_TEXT, missing_data
    from .data import download as toronto_download

    if is_available(data_dir):
        return _cifar10_from_batches(data_dir)
    try:
        hub = hub_source(hub_id, MIN_SIDE, Limits(), image_column="img", label_column="label", cache=cache,
                         local_only=not download, log=log)
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
                log: Callable[[str], None] = lambda _: None) -> ImageData:
    """``cifar10``, ``OWNER/NAME[@revision]``, a folder, or a .zip -> ``ImageData`` with ``source["labels"]``."""
    spec = (spec or CIFAR10).strip()
    side = stored_side(image_size)
    if spec.lower() == CIFAR10:
        data = cifar10_source(data_dir, download, cache, log)
    elif is_photo_source(spec):
        path = Path(spec).expanduser()
        if path.suffix.lower() == ".zip":
            if not path.is_file():
                raise DataError(f"There is no zip at {spec}.")
            data = zip_source(path, side, limits, log)
        else:
            data = folder_source(path, side, limits, log)
    else:
        data = hub_source(spec, side, limits, image_column=image_column, label_column=label_column,
                          train_split=train_split, test_split=test_split, cache=cache, log=log)
    data.source["labels"] = label_fingerprint(data.classes)
    data.source.setdefault("name", "CIFAR-10" if data.source.get("dataset") == CIFAR10 else
                           str(data.source.get("dataset", spec)).replace("folder:", "").replace("zip:", ""))
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
                limits: Limits = Limits()) -> tuple[ImageData, RunSplits]:
    """A finished run's dataset and its splits, as it trained on them (``record``: run.json's ``data``; a run that
    recorded none trained on CIFAR-10)."""
    load = dict((record or {}).get("load") or {"spec": CIFAR10})
    data = load_source(load.pop("spec"), data_dir=data_dir, image_size=int(settings.get("image_size", MIN_SIDE)),
                       cache=Path(data_dir) / DECODED, limits=limits, **load)
    if record and record.get("labels") and record["labels"] != data.source["labels"]:
        raise DataError(f"The run's dataset now has other classes than it trained on ({', '.join(data.classes[:5])}"
                        "...); its report cannot be made again.")
    return data, run_splits(data, float(settings.get("val_fraction", VAL_FRACTION)), int(settings.get("seed", 0)))
