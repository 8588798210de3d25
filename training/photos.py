"""Your own photos as a data source: a folder or a zip laid out as ``class_name/picture.jpg`` (under at most one
wrapping folder). A zip is checked before anything is read (no absolute path, no ``..``, no link, no bomb) and then
read entry by entry, never extracted, so nothing it names can be written anywhere. Links in a folder are not
followed. Files that are not pictures are skipped and counted."""

from __future__ import annotations

import hashlib
import os
import re
import stat
import zipfile
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import Any

import torch

from googlenet.images import MAX_FILE_BYTES

from .data import DataError
from .imagedata import Decoder, ImageData, Limits, as_tensor, check_classes, read_stored, write_stored

PICTURE_SUFFIXES = {".jpg", ".jpeg", ".png", ".gif", ".webp", ".bmp", ".tif", ".tiff"}


def _photo_entries(names: list[str]) -> list[tuple[str, str]]:
    """[(class, name)]: files laid out as class/picture, under at most one wrapping folder."""
    parts = [PurePosixPath(n).parts for n in names]
    visible = [(n, p) for n, p in zip(names, parts)
               if p and not any(x.startswith(".") or x == "__MACOSX" for x in p)]
    if len({p[0] for _, p in visible}) == 1 and all(len(p) >= 3 for _, p in visible):
        visible = [(n, p[1:]) for n, p in visible]  # the one wrapping folder zipping a folder makes
    return [(p[0], n) for n, p in visible if len(p) == 2]


def _photos(what: str, names: list[str], read: Callable[[str], bytes], side: int, limits: Limits,
            log: Callable[[str], None]) -> ImageData:
    entries = _photo_entries(names)
    if not entries:
        raise DataError(f"{what} holds no pictures laid out as class_name/picture.jpg.")
    classes = sorted({c for c, _ in entries})
    if len(classes) > limits.max_classes:
        raise DataError(f"{what} has {len(classes)} classes (folders); the limit is {limits.max_classes}.")
    index = {c: i for i, c in enumerate(classes)}
    pictures = [(c, n) for c, n in entries if PurePosixPath(n).suffix.lower() in PICTURE_SUFFIXES]
    not_pictures = [n for c, n in entries if PurePosixPath(n).suffix.lower() not in PICTURE_SUFFIXES]
    decoder = Decoder(side, limits, what)
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
    return ImageData(classes, (as_tensor(x), y), None, None,
                     {"skipped": skipped, "pictures": len(y)})


def _read_limited(f: Any) -> bytes | None:
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
            return _read_limited(f)

    data = _photos(f"The folder {root.name}", names, read, side, limits, log)
    data.source.update(dataset=f"folder:{root.name}", name=root.name)
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


def zip_source(path: str | Path, side: int, limits: Limits = Limits(), cache: Path | None = None,
               log: Callable[[str], None] = lambda _: None) -> ImageData:
    """Your own photos in a zip, as class_name/picture.jpg, read entry by entry (never extracted). The decoded
    pictures are kept in ``cache``, keyed by the zip's content and the side, so the same zip is decoded once."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"There is no zip at {path}.")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:24]
    stored = cache / f"zip-{digest}-{side}.safetensors" if cache else None
    if stored is not None and stored.is_file():
        return read_stored(stored)
    with check_zip(path, limits) as archive:
        infos = {i.filename: i for i in archive.infolist() if not i.is_dir()}

        def read(name: str) -> bytes | None:
            if infos[name].file_size > MAX_FILE_BYTES:
                return None
            with archive.open(infos[name]) as f:
                return _read_limited(f)

        data = _photos("The zip", list(infos), read, side, limits, log)
    data.source.update(dataset=f"zip:{path.name}", name=path.name, sha256=digest[:16])
    if stored is not None:
        write_stored(stored, data)
    return data
