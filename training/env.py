"""The environment variables the training package reads, all here (the app's own live in ``explorer/profile.py``,
which builds on these; ``training`` never imports ``explorer``): the folders, the weights, the disk cache's
budget, and torchrun's ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK``.

Each name appears once, in ``VARIABLES``; docs/configuration.md's table is checked against it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from googlenet.weights import DEFAULT_REPO_ID

from .diskcache import DiskCache


@dataclass(frozen=True)
class Variable:
    """One environment variable: its name, what it means, and its default (a value, or a sentence)."""

    name: str
    meaning: str
    value: Any = None  # the default, where it is one value
    note: str = ""  # the default in words, where it is not
    aliases: tuple[str, ...] = ()

    @property
    def default(self) -> str:
        return self.note or f"`{self.value}`"

    def read(self, environ: dict[str, str] | None = None) -> str | None:
        """The value set for this variable (or its first alias that is set), else None."""
        env = os.environ if environ is None else environ
        for key in (self.name, *self.aliases):
            value = env.get(key, "").strip()
            if value:
                return value
        return None

    def read_int(self, environ: dict[str, str] | None = None, fallback: int | None = None) -> int:
        """A positive whole number, or the default (``fallback`` where it depends) when unset or not one."""
        raw = self.read(environ) or ""
        return int(raw) if raw.isdigit() and int(raw) > 0 else (self.value if fallback is None else fallback)


WEIGHTS = Variable("GOOGLENET_WEIGHTS", "Hub repo id (`OWNER/NAME` or `OWNER/NAME@revision`) or a local folder made "
                   "with `save_pretrained`", DEFAULT_REPO_ID)
DATA = Variable("CIFAR10_DIR", "the folder that holds `cifar-10-batches-py/`", "./data")
PERSISTENT = Variable("GOOGLENET_PERSISTENT_DIR", "a folder that survives restarts: runs, the disk cache and the "
                      "browser-state secret go under it unless their own variables say otherwise",
                      note="`/data` when it exists and is writable (a Space's persistent storage), else none")
RUNS = Variable("RUNS_DIR", "where fine-tuning runs are saved", "runs",
                note="`GOOGLENET_PERSISTENT_DIR/runs` when there is one, else `runs`")
CACHE = Variable("GOOGLENET_CACHE_DIR", "the disk cache: atlas views and indexes, head-only features, checkpoint "
                 "zips, the pictures visitors carry from page to page (the two aliases below still place their parts)",
                 note="`RUNS_DIR/.cache`")
CACHE_BYTES = Variable("GOOGLENET_CACHE_BYTES", "one budget in bytes for the disk cache and (in the app) Gradio's upload and "
                       "output cache (least recently used out first)",
                       2 << 30)
CACHE_ENTRIES = Variable("GOOGLENET_CACHE_ENTRIES", "the disk cache's budget in files", 4000,
                         aliases=("GOOGLENET_ATLAS_CACHE_ENTRIES",))
ATLAS_CACHE = Variable("GOOGLENET_ATLAS_CACHE", "(alias) where the atlas part of the cache lives",
                       note="`GOOGLENET_CACHE_DIR/atlas`")
FEATURE_CACHE = Variable("GOOGLENET_FEATURE_CACHE", "(alias) where the head-only features part of the cache lives",
                         note="`GOOGLENET_CACHE_DIR/features`")
VARIABLES = (WEIGHTS, DATA, PERSISTENT, RUNS, CACHE, CACHE_BYTES, CACHE_ENTRIES)
SPACES_STORAGE = Path("/data")  # where Hugging Face mounts a Space's persistent storage
ALIASES = (ATLAS_CACHE, FEATURE_CACHE)  # today's names, kept working


def persistent_dir() -> Path | None:
    """The folder that survives a restart: ``GOOGLENET_PERSISTENT_DIR``, else a Space's ``/data`` when it is
    writable, else None (runs then last until the disk is wiped: a Space's next restart)."""
    if (named := PERSISTENT.read()) is not None:
        return Path(named)
    if SPACES_STORAGE.is_dir() and os.access(SPACES_STORAGE, os.W_OK):
        return SPACES_STORAGE
    return None


def runs_dir() -> Path:
    """Where runs live (the CLI and the app share it): ``RUNS_DIR``, else under the persistent folder, else
    ``runs``."""
    if (named := RUNS.read()) is not None:
        return Path(named)
    persistent = persistent_dir()
    return persistent / "runs" if persistent is not None else Path(RUNS.value)


def data_dir() -> str:
    return DATA.read() or DATA.value


def weights() -> str:
    """The weights the fallback chain tries first."""
    return WEIGHTS.read() or WEIGHTS.value


def cache_folders() -> dict[str, Path]:
    """The disk cache's parts: one folder each, under one root unless an alias places a part elsewhere."""
    root = Path(CACHE.read() or runs_dir() / ".cache")
    return {"atlas": Path(ATLAS_CACHE.read() or root / "atlas"),
            "features": Path(FEATURE_CACHE.read() or root / "features"),
            "drift": root / "drift",  # the starting model's probe Gram matrices (training/drift.py)
            "zips": root / "zips",
            "pictures": root / "pictures"}  # the picture each visitor is working on (explorer/pictures.py)


def cache_budget() -> tuple[int, int]:
    """(bytes, files) the disk cache may hold."""
    return CACHE_BYTES.read_int(), CACHE_ENTRIES.read_int()


def disk_cache() -> DiskCache:
    """The one disk cache, as the environment sets it (cheap to build: it is folders and two numbers)."""
    return DiskCache(cache_folders(), *cache_budget())


@dataclass(frozen=True)
class Ranks:
    """This process's place among torchrun's training processes (0 of 1 without torchrun)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def torchrun() -> Ranks:
    """What torchrun set for this process (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``)."""
    return Ranks(int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1")),
                 int(os.environ.get("LOCAL_RANK", "0")))
