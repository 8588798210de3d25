"""The one disk cache: atlas views and indexes, head-only features, the drift map's Gram matrices and checkpoint
zips, in a few named parts (folders) under one byte and one file budget, least recently used out first. ``training``
(head-only features, drift) and ``explorer`` (the atlas, zips, Gradio's cache) both keep their files here; its
folders and budgets are ``env.py``'s variables."""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .atomic import STAGED, atomic_write

LEFTOVER_S = 3600.0  # a file still being written (staged, or filled in place by another) is left over after this


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

    def __init__(self, folders: dict[str, Path], max_bytes: int, max_entries: int,
                 writing: dict[str, str] | None = None) -> None:
        self.folders = {k: Path(v) for k, v in folders.items()}
        self.max_bytes, self.max_entries = max_bytes, max_entries
        self.writing = dict(writing or {})  # part -> the name prefix of files another writer fills in place there
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

    def stored_tensors(self, part: str, name: str, keys: list[str] | None = None) -> dict[str, Any] | None:
        """A safetensors entry if the cache holds it whole, else None (nothing is computed); only ``keys`` of it
        when given (the rest is not read)."""
        from safetensors import safe_open

        if (path := self.get(part, name)) is None:
            return None
        try:
            with safe_open(str(path), "pt") as f:
                return {k: f.get_tensor(k) for k in (f.keys() if keys is None else keys)}
        except Exception:  # noqa: BLE001 - damaged, truncated, or without a key asked for: as if absent
            return None

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

    def including(self, part: str, folder: str | os.PathLike, writing: str | None = None) -> DiskCache:
        """The same budgets over one more folder, which may hold files in subfolders (Gradio's upload and output
        cache keeps one folder per file). ``writing``: the name prefix of the files another writer fills in place
        directly in ``folder`` (Gradio streams an upload into ``tmp...`` there, then moves it into a subfolder);
        such a file is not an entry for an hour, since deleting it would break its upload midway."""
        return DiskCache({**self.folders, part: Path(folder)}, self.max_bytes, self.max_entries,
                         self.writing | ({part: writing} if writing else {}))

    def entries(self) -> list[os.DirEntry]:
        """Every entry's file (staged files, whose names start with '.', and files another writer is filling in
        place are not entries)."""
        out, stack, seen, now = {}, list(self.folders.values()), set(), time.time()
        filled = {os.path.abspath(self.folders[part]): prefix for part, prefix in self.writing.items()}
        while stack:
            folder = os.path.abspath(stack.pop())
            if folder in seen:  # a part inside another part (zips inside Gradio's cache) is counted once
                continue
            seen.add(folder)
            try:
                listing = list(os.scandir(folder))
            except (FileNotFoundError, NotADirectoryError):
                continue
            prefix = filled.get(folder)
            for e in listing:
                if e.name.startswith("."):
                    continue
                if e.is_dir(follow_symlinks=False):
                    stack.append(e.path)
                elif e.is_file(follow_symlinks=False) and not (prefix and e.name.startswith(prefix)
                                                               and self._young(e, now)):
                    out[e.path] = e
        return list(out.values())

    @staticmethod
    def _young(entry: os.DirEntry, now: float) -> bool:
        """Written to within the last hour (a file that vanished meanwhile is not an entry either)."""
        try:
            return now - entry.stat().st_mtime < LEFTOVER_S
        except OSError:
            return True

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

    def sweep(self, older_than: float = LEFTOVER_S) -> int:
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
