"""Image-classification datasets on the Hub as a data source: ``OWNER/NAME[@revision]``, its parquet files found by
the Hub's layouts, downloaded through the Hub cache (offline from it) within a size limit known before downloading,
read with pyarrow, its image and label columns found from the ``datasets`` features in the files' metadata, and its
pictures decoded once through the safe image path. Nothing is unpickled."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import Any

import torch

from googlenet.images import MAX_FILE_BYTES

from .data import DataError
from .imagedata import Decoder, ImageData, Limits, as_tensor, check_classes, read_stored, write_stored

SPLIT_NAMES = {"train": "train", "training": "train", "validation": "validation", "valid": "validation",
               "val": "validation", "dev": "validation", "test": "test", "testing": "test"}
_REPO = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}/[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")


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


def hub_files(repo: str, revision: str | None, local_only: bool = False, token: bool | str | None = None
               ) -> tuple[str, dict[str, int | None], Path | None]:
    """(commit, {parquet file: size on the Hub}, cached snapshot folder when offline or ``local_only``)."""
    from huggingface_hub import HfApi, snapshot_download
    from huggingface_hub.errors import (LocalEntryNotFoundError, OfflineModeIsEnabled, RepositoryNotFoundError,
                                        RevisionNotFoundError)

    def cached(why: str) -> tuple[str, dict[str, int | None], Path]:
        """The Hub cache's copy of this revision, if it holds one."""
        try:
            folder = Path(snapshot_download(repo, repo_type="dataset", revision=revision, local_files_only=True))
        except (LocalEntryNotFoundError, OfflineModeIsEnabled, OSError, ValueError):
            raise DataError(f"{why} and its cache has no copy of '{repo}'{'@' + revision if revision else ''}.") \
                from None
        return folder.name, {p.relative_to(folder).as_posix(): None for p in folder.rglob("*.parquet")}, folder

    if local_only:
        return cached("The Hub was not asked")
    try:
        info = HfApi().dataset_info(repo, revision=revision, files_metadata=True, token=token)
    except RepositoryNotFoundError:
        raise DataError(f"There is no dataset '{repo}' on the Hub (or it is private or gated).") from None
    except RevisionNotFoundError:
        raise DataError(f"The dataset '{repo}' has no revision '{revision}'.") from None
    except Exception as e:  # offline or unreachable: the Hub cache, if it holds this revision
        return cached(f"The Hub could not be reached ({type(e).__name__})")
    return str(info.sha), {s.rfilename: s.size for s in info.siblings or [] if s.rfilename.endswith(".parquet")}, None


def hub_cached(repo: str, revision: str | None = None) -> bool:
    """Whether the Hub cache holds parquet files of ``repo`` at ``revision`` (main), without asking the Hub."""
    try:
        return bool(hub_files(repo, revision, local_only=True)[1])
    except DataError:
        return False


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

    for given in (image_column, label_column):
        if given and given not in names:
            raise DataError(f"{what} has no column '{given[:100]}'; its columns are {', '.join(names)}.")
    images = [image_column] if image_column else [n for n in names if is_image(n)]
    if len(images) != 1:
        found = "no image column" if not images else "several image columns: " + ", ".join(images)
        raise DataError(f"{what} has {found}; name one with --image-column (columns: {', '.join(names)}).")
    if label_column:
        return images[0], label_column
    classlabels = [n for n in names if (features.get(n) or {}).get("_type") == "ClassLabel"]
    named = [n for n in names if n.lower() in ("label", "labels", "class", "category") and is_label(n)]
    labels = classlabels or named or [n for n in names if n != images[0] and is_label(n)]
    if len(labels) != 1:
        found = "no usable label column" if not labels else "several label columns: " + ", ".join(labels)
        raise DataError(f"{what} has {found}; name one with --label-column (columns: {', '.join(names)}).")
    return images[0], labels[0]


def _by_split(repo: str, files: dict[str, int | None], train_split: str, test_split: str) -> dict[str, list[str]]:
    """{"train"|"validation"|"test": its parquet files}, by the Hub's layouts or the split names given."""
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
    return by_split


def _classes(names: list[Any] | None, labels: list[Any], column: str, what: str,
             log: Callable[[str], None]) -> list[str]:
    """The class names: the ClassLabel's, else the string labels sorted, else the numbers themselves."""
    if names:
        return [str(n) for n in names]
    if all(isinstance(v, str) for v in labels):
        classes = sorted(set(labels))
        log(f"{what}: {len(classes)} classes from the string labels of '{column}', in alphabetical order")
        return classes
    values = sorted({int(v) for v in labels if v is not None})
    log(f"{what}: '{column}' has numbers without class names; the classes are named by number")
    return [str(v) for v in range(max(values) + 1)] if values else []


def _decode(columns: dict[str, tuple[list[Any], list[Any]]], classes: list[str], side: int, limits: Limits,
            what: str, log: Callable[[str], None]) -> tuple[dict[str, tuple[torch.Tensor, torch.Tensor]], int]:
    """Each split's pictures decoded and its labels as class numbers; rows without a known label are dropped.
    Returns the splits and how many rows were skipped or dropped."""
    index = {c: i for i, c in enumerate(classes)}
    total = sum(len(c[0]) for c in columns.values())
    if total > limits.max_pictures:
        raise DataError(f"{what} has {total:,} pictures; the limit is {limits.max_pictures:,}.")
    decoder = Decoder(side, limits, what)
    splits: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    dropped = 0
    for role, (images, labels) in columns.items():
        ys = [index.get(v) if isinstance(v, str) else
              (int(v) if v is not None and 0 <= int(v) < len(classes) else None) for v in labels]
        keep = [i for i, y in enumerate(ys) if y is not None]
        dropped += len(ys) - len(keep)
        x, kept = decoder.decode(((f"{role} {i}", _image_bytes(images[i]), ys[i]) for i in keep), len(keep))
        splits[role] = (as_tensor(x), torch.tensor(kept, dtype=torch.int64))
    check_classes(classes, splits["train"][1], what, limits)
    if decoder.skipped or dropped:
        log(f"{what}: skipped {len(decoder.skipped)} pictures that could not be decoded and {dropped} rows without "
            "a known label")
    return splits, len(decoder.skipped) + dropped


def _download(repo: str, revision: str | None, commit: str, chosen: list[str], offline: Path | None,
              token: bool | str | None) -> dict[str, Path]:
    """The chosen files' paths in the Hub cache. Downloaded by the revision as given, so that the cache records it
    (refs/) and it can be read offline later; the snapshot folder is named by its commit, which must be the one
    whose files were counted."""
    from huggingface_hub import hf_hub_download

    if offline is not None:
        return {f: offline / f for f in chosen}
    paths = {f: Path(hf_hub_download(repo, f, repo_type="dataset", revision=revision or "main", token=token))
             for f in chosen}
    if any(commit not in p.parts for p in paths.values()):
        raise DataError(f"The dataset '{repo}' changed on the Hub while it was downloading; start again.")
    return paths


def hub_source(spec: str, side: int, limits: Limits = Limits(), *, image_column: str | None = None,
               label_column: str | None = None, train_split: str = "train", test_split: str = "test",
               cache: Path | None = None, local_only: bool = False, token: bool | str | None = None,
               log: Callable[[str], None] = lambda _: None) -> ImageData:
    """An image-classification dataset on the Hub, by ``OWNER/NAME[@revision]``, through the Hub cache (only the
    cache with ``local_only``). The decoded tensors are kept in ``cache``, keyed by the commit: a second run, or
    a run pinned to the commit a check read, neither asks the Hub nor decodes again. ``token``: huggingface_hub's
    (None: the machine's own; the app passes False, so a visitor's dataset is never read with the server's)."""
    import pyarrow.parquet as pq

    repo, revision = parse_hub_id(spec)
    wanted_key = [repo, image_column, label_column, train_split, test_split, side]

    def stored_at(commit: str) -> Path | None:
        key = hashlib.sha256(json.dumps([*wanted_key, commit]).encode()).hexdigest()[:24]
        return cache / f"hub-{key}.safetensors" if cache else None

    if revision and re.fullmatch(r"[0-9a-f]{40}", revision) and (pinned := stored_at(revision)) and pinned.is_file():
        return read_stored(pinned)
    commit, files, offline = hub_files(repo, revision, local_only, token)
    by_split = _by_split(repo, files, train_split, test_split)
    chosen = [f for fs in by_split.values() for f in fs]
    size = sum(files[f] or 0 for f in chosen)
    if size > limits.max_download_bytes:
        raise DataError(f"The dataset '{repo}' is {size / 2**20:,.0f} MB on the Hub; the limit is "
                        f"{limits.max_download_bytes / 2**20:,.0f} MB.")
    stored = stored_at(commit)
    if stored is not None and stored.is_file():
        return read_stored(stored)
    paths = _download(repo, revision, commit, chosen, offline, token)
    tables = {role: [pq.read_table(paths[f]) for f in fs] for role, fs in by_split.items()}
    what = f"The dataset '{repo}'"
    schema = tables["train"][0].schema
    img_col, lab_col = _columns(schema, image_column, label_column, what)
    columns = {role: ([v for t in ts for v in t.column(img_col).to_pylist()],
                      [v for t in ts for v in t.column(lab_col).to_pylist()]) for role, ts in tables.items()}
    classes = _classes((_features(schema).get(lab_col) or {}).get("names"), columns["train"][1], lab_col, what, log)
    splits, skipped = _decode(columns, classes, side, limits, what, log)
    data = ImageData(classes, splits["train"], splits.get("validation"), splits.get("test"),
                     {"dataset": repo, "revision": commit, "image_column": img_col, "label_column": lab_col,
                      "splits": {r: sorted({split_of(f) or f for f in fs}) for r, fs in by_split.items()},
                      "skipped": skipped})
    if stored is not None:
        write_stored(stored, data)
    return data


def _image_bytes(value: Any) -> bytes | None:
    """A parquet Image cell ({"bytes", "path"}) or raw bytes -> the file's bytes (None: not a picture)."""
    if isinstance(value, dict):
        value = value.get("bytes")
    if not isinstance(value, (bytes, bytearray)) or len(value) > MAX_FILE_BYTES:
        return None
    return bytes(value)


