"""Files that are never seen half-written: ``atomic_write`` stages a file under a name of its own (process, thread,
random), then renames it into place, so readers see the old file or the new one, and two writers of the same file
never share a temporary one (the last rename wins; both leave a complete file). A writer killed midway leaves only a
staged file, which ``DiskCache.sweep`` removes at start-up."""

from __future__ import annotations

import json
import os
import threading
import uuid
from collections.abc import Callable
from pathlib import Path

STAGED = ".tmp"  # the suffix of every staged file


def fsync_dir(path: Path) -> None:
    """Make a rename in ``path`` durable (where the file system allows it)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def staged_name(path: Path) -> Path:
    """A temporary name beside ``path``, unique to this writer, that names its process (for the sweep)."""
    return path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.{uuid.uuid4().hex[:8]}{STAGED}")


def atomic_write(path: str | os.PathLike, data: bytes | Callable[[Path], None], durable: bool = True) -> Path:
    """Write ``data`` (bytes, or a function that writes a file at the path it is given) to ``path``: readers see
    the old file or the new one, never part of one. ``durable`` also syncs it to disk (checkpoints, records)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    staged = staged_name(path)
    try:
        if callable(data):
            data(staged)
        else:
            with open(staged, "wb") as f:
                f.write(data)
        if durable:
            with open(staged, "rb+") as f:
                os.fsync(f.fileno())
        os.replace(staged, path)
    finally:
        staged.unlink(missing_ok=True)
    if durable:
        fsync_dir(path.parent)
    return path


def atomic_write_json(path: str | os.PathLike, obj: object) -> Path:
    """``obj`` as indented JSON, written atomically and durably."""
    return atomic_write(path, json.dumps(obj, indent=2).encode())
