"""Runs as the app sees them: named folders under the runs folder (each read through ``RunFolder``), the
catalogue of models a visitor can use (the ImageNet model plus every usable run), checkpoint zips in the disk
cache, retention and the start-up sweep. What a finished run shows (its report, drift, comparison) is
``results``."""

from __future__ import annotations

import os
import re
import shutil
import threading
import time
import zipfile
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

from googlenet.classify import Classifier
from googlenet.hub import WEIGHTS_NAME
from training import env
from training.runfolder import RUN_FILES, RunFolder, RunSummary
from training.diskcache import DiskCache

IMAGENET_MODEL = "ImageNet GoogLeNet"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def is_run_name(name: object) -> bool:
    """Run names become folder names: letters, digits, '.', '_' and '-' only, no traversal."""
    return isinstance(name, str) and bool(_NAME.match(name)) and ".." not in name


def check_run_name(name: str) -> str:
    if not is_run_name(name):
        raise ValueError(f"'{str(name)[:64]}' is not a valid run name: use up to 64 letters, digits, '.', '_' or '-'.")
    return name


def run_path(name: str) -> Path:
    root = env.runs_dir().resolve()
    path = (root / check_run_name(name)).resolve()
    if path.parent != root:
        raise ValueError(f"'{name}' is not a valid run name.")
    return path


def new_run_name(recipe: str) -> str:
    return f"{recipe}-{time.strftime('%Y%m%d-%H%M%S')}-{os.urandom(2).hex()}"


def _folders() -> list[RunFolder]:
    root = env.runs_dir()
    if not root.is_dir():
        return []
    return [RunFolder(d) for d in root.iterdir() if d.is_dir() and _NAME.match(d.name)]


def list_runs() -> list[RunSummary]:
    """Runs with a usable best checkpoint, newest first."""
    usable = [f for f in _folders() if f.usable]
    usable.sort(key=lambda f: f.path.stat().st_mtime, reverse=True)
    return [f.summary() for f in usable]


def usable_run(name: str) -> RunFolder:
    """A run that can be used (classified with, downloaded, pushed), or a clear error."""
    folder = RunFolder(run_path(name))
    if not folder.usable:
        names = ", ".join(r.name for r in list_runs()[:10]) or "none yet"
        raise ValueError(f"There is no finished run called '{name}'. Finished runs: {names}.")
    return folder


def sweep_interrupted() -> list[str]:
    """At start-up: runs a crash left "running" are marked "interrupted" (usable if they saved a checkpoint)."""
    return [f.name for f in _folders() if f.mark_interrupted()]


def prune_runs(per_owner: int, per_address: int, pinned: tuple[str, ...] = ()) -> list[str]:
    """Retention that never takes one visitor's runs for another's: of the ended runs of each owner, the oldest
    beyond ``per_owner`` are deleted, and of each address's, the oldest beyond ``per_address`` (one script
    opening many sessions). Pinned runs, runs in progress and runs with no owner (the command line's, older
    ones) are never deleted."""
    records = {f: f.info() or {} for f in _folders() if f.name not in pinned}  # each run.json read once
    ended = [f for f, info in records.items() if info.get("status") not in (None, "running")]
    ended.sort(key=lambda f: f.path.stat().st_mtime, reverse=True)
    doomed: dict[str, RunFolder] = {}
    for field, keep in (("owner", per_owner), ("address", per_address)):
        groups: dict[str, list[RunFolder]] = {}
        for f in ended:
            if who := records[f].get(field):
                groups.setdefault(who, []).append(f)
        for folders in groups.values():
            doomed.update((f.name, f) for f in folders[keep:])
    for f in doomed.values():
        shutil.rmtree(f.path, ignore_errors=True)
    if doomed:
        sweep_uploads()
    return sorted(doomed)


UPLOAD_GRACE_SECONDS = 3600  # an upload no run uses yet is kept this long (its run may be about to start)


def uploads_dir() -> Path:
    """Visitors' uploaded datasets, one folder per owner (an opaque id), beside the runs that use them."""
    return env.runs_dir() / ".uploads"


def sweep_uploads(now: float | None = None) -> list[str]:
    """Delete each upload that none of its owner's runs uses any more (and no run could be starting with)."""
    used: set[str] = set()
    for f in _folders():
        spec = ((f.info() or {}).get("data") or {}).get("load", {}).get("spec")
        if spec:
            used.add(str(Path(spec).resolve()))
    gone = []
    now = time.time() if now is None else now
    for path in sorted(uploads_dir().glob("*/*/*.zip")) if uploads_dir().is_dir() else []:
        if str(path.resolve()) not in used and now - path.stat().st_mtime > UPLOAD_GRACE_SECONDS:
            shutil.rmtree(path.parent, ignore_errors=True)  # the upload's own folder (owner/digest/)
            gone.append(path.relative_to(uploads_dir()).as_posix())
    return gone


def runs_bytes() -> int:
    """What every run on disk takes, in bytes."""
    return sum(f.size() for f in _folders())


def checkpoint_zip(name: str, cache: DiskCache | None = None) -> Path:
    """A run's best checkpoint as ``NAME.zip`` in the disk cache (``cache``'s "zips" part), made once and reused
    while the run's files are older than it (a hit marks it as used)."""
    folder = usable_run(name)
    files = [f for f in RUN_FILES if (folder.path / f).is_file()]
    newest = max((folder.path / f).stat().st_mtime for f in files)
    cache, entry = cache or env.disk_cache(), f"{name}.zip"
    made = cache.path("zips", entry)
    if made.is_file() and made.stat().st_mtime >= newest and (hit := cache.get("zips", entry)) is not None:
        return hit

    def write(staged: Path) -> None:
        # Stored, not deflated: weights shrink by about 8% for a second of CPU per zip (measured on GoogLeNet).
        with zipfile.ZipFile(staged, "w", zipfile.ZIP_STORED) as z:
            for f in files:
                z.write(folder.path / f, f"{name}/{f}")

    return cache.put("zips", entry, write)


class ModelCatalog:
    """Model names -> classifiers, built lazily and kept in a small LRU cache."""

    def __init__(self, default: Callable[[], Classifier], device: str | None = None, capacity: int = 4,
                 warm_up: bool = True) -> None:
        self._default_factory = default
        self._default: Classifier | None = None
        self.device, self.warm_up = device, warm_up
        self.capacity = capacity
        self._cache: OrderedDict[str, tuple[float, Classifier]] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def default(self) -> Classifier:
        with self._lock:
            if self._default is None:
                self._default = self._default_factory()
            return self._default

    def names(self) -> list[str]:
        """The ImageNet model, then every finished run, newest first."""
        return [IMAGENET_MODEL] + [r.name for r in list_runs()]

    def get(self, name: str | None) -> Classifier:
        if not name or name == IMAGENET_MODEL:
            return self.default
        path = usable_run(name).path
        stamp = (path / WEIGHTS_NAME).stat().st_mtime
        with self._lock:
            hit = self._cache.get(name)
            if hit and hit[0] == stamp:
                self._cache.move_to_end(name)
                return hit[1]
        clf = Classifier.from_pretrained(str(path), device=self.device, warm_up=self.warm_up)
        with self._lock:
            self._cache[name] = (stamp, clf)
            while len(self._cache) > self.capacity:
                self._cache.popitem(last=False)
        return clf
