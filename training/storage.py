"""Files that are never seen half-written: ``atomic_write``, and ``DiskCache``, the one disk cache (atlas views
and indexes, head-only features, checkpoint zips) with a byte and a file budget.

Every writer stages its file under a name of its own (process, thread, random), so two writers of the same
entry never share a temporary file; the last rename wins and both leave a complete entry. A writer killed
midway leaves only a staged file, which ``DiskCache.sweep`` removes at start-up.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

STAGED = ".tmp"  # the suffix of every staged file


def _fsync_dir(path: Path) -> None:
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
        _fsync_dir(path.parent)
    return path


def atomic_write_json(path: str | os.PathLike, obj: object) -> Path:
    return atomic_write(path, json.dumps(obj, indent=2).encode())


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


class DiskCache:
    """Files in a few named parts (folders), evicted least recently used first (a hit counts as use) when
    the whole cache is over ``max_bytes`` or ``max_entries``."""

    def __init__(self, folders: dict[str, Path], max_bytes: int, max_entries: int) -> None:
        self.folders = {k: Path(v) for k, v in folders.items()}
        self.max_bytes, self.max_entries = max_bytes, max_entries
        self._lock = threading.Lock()

    def path(self, part: str, name: str) -> Path:
        if "/" in name or name.startswith("."):
            raise ValueError(f"not a cache entry name: {name!r}")
        return self.folders[part] / name

    def get(self, part: str, name: str) -> Path | None:
        """The entry's file, marked as just used, or None."""
        path = self.path(part, name)
        try:
            os.utime(path)
        except OSError:
            return None
        return path

    def put(self, part: str, name: str, data: bytes | Callable[[Path], None]) -> Path:
        """Store an entry atomically (see ``atomic_write``), then evict beyond the budgets (never this one)."""
        path = atomic_write(self.path(part, name), data, durable=False)
        self.evict(keep=path)
        return path

    def tensors(self, part: str, name: str, compute: Callable[[], dict[str, Any]]) -> tuple[dict[str, Any], bool]:
        """A safetensors entry ({name: tensor}) read from the cache, else ``compute()``d and stored; a damaged entry
        is computed again, never trusted. Returns (tensors, whether they were read from the cache)."""
        from safetensors.torch import load_file, save_file

        if (path := self.get(part, name)) is not None:
            try:
                return load_file(str(path)), True
            except Exception:  # noqa: BLE001 - damaged or truncated
                self.discard(part, name)
        tensors = {k: v.cpu().contiguous() for k, v in compute().items()}
        self.put(part, name, lambda staged: save_file(tensors, str(staged)))
        return tensors, False

    def discard(self, part: str, name: str) -> None:
        """Drop a damaged entry, so it is computed again."""
        self.path(part, name).unlink(missing_ok=True)

    def including(self, part: str, folder: str | os.PathLike) -> DiskCache:
        """The same budgets over one more folder, which may hold files in subfolders (Gradio's upload and output
        cache keeps one folder per file)."""
        return DiskCache({**self.folders, part: Path(folder)}, self.max_bytes, self.max_entries)

    def entries(self) -> list[os.DirEntry]:
        """Every entry's file (staged files, whose names start with '.', are not entries)."""
        out, stack, seen = {}, list(self.folders.values()), set()
        while stack:
            folder = os.path.abspath(stack.pop())
            if folder in seen:  # a part inside another part (zips inside Gradio's cache) is counted once
                continue
            seen.add(folder)
            try:
                listing = list(os.scandir(folder))
            except (FileNotFoundError, NotADirectoryError):
                continue
            for e in listing:
                if e.name.startswith("."):
                    continue
                if e.is_dir(follow_symlinks=False):
                    stack.append(e.path)
                elif e.is_file(follow_symlinks=False):
                    out[e.path] = e
        return list(out.values())

    def usage(self) -> tuple[int, int]:
        """(bytes, files) held now."""
        entries = self.entries()
        return sum(e.stat().st_size for e in entries), len(entries)

    def evict(self, keep: Path | None = None) -> list[str]:
        """Delete the least recently used entries until the cache is within both budgets."""
        with self._lock:
            stats = []
            for e in self.entries():
                try:
                    st = e.stat()
                except FileNotFoundError:
                    continue
                stats.append((st.st_mtime, st.st_size, Path(e.path)))
            stats.sort(key=lambda s: s[0])  # oldest use first
            total, count, removed = sum(s[1] for s in stats), len(stats), []
            for _, size, path in stats:
                if total <= self.max_bytes and count <= self.max_entries:
                    break
                if keep is not None and path == keep:
                    continue
                path.unlink(missing_ok=True)
                if path.parent not in self.folders.values():
                    with contextlib.suppress(OSError):
                        path.parent.rmdir()  # a subfolder left empty
                total, count = total - size, count - 1
                removed.append(path.name)
            return removed

    def sweep(self, older_than: float = 3600.0) -> int:
        """Remove staged files of writers that died (their process is gone, or they are over an hour old)."""
        removed = 0
        for folder in self.folders.values():
            if not folder.is_dir():
                continue
            for staged in folder.glob(f".*{STAGED}"):
                parts = staged.name.rsplit(".", 4)  # .NAME.PID.THREAD.RANDOM.tmp
                pid = int(parts[1]) if len(parts) == 5 and parts[1].isdigit() else -1
                try:
                    old = time.time() - staged.stat().st_mtime > older_than
                except FileNotFoundError:
                    continue
                if pid != os.getpid() and (old or not _pid_alive(pid)):
                    staged.unlink(missing_ok=True)
                    removed += 1
        return removed
