"""Runs as the app sees them: named folders under ``RUNS_DIR``, one training job at a time, and the
catalogue of models a visitor can classify with (the ImageNet model plus every finished run)."""

from __future__ import annotations

import json
import os
import queue
import re
import shutil
import tempfile
import threading
import time
import zipfile
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from googlenet.classify import Classifier

from .checkpoint import is_complete
from .engine import Callbacks, RunResult, TrainConfig, TrainingError, train

IMAGENET_MODEL = "ImageNet GoogLeNet"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def runs_dir() -> Path:
    return Path(os.environ.get("RUNS_DIR", "runs"))


def check_run_name(name: str) -> str:
    """Run names become folder names: letters, digits, '.', '_' and '-' only, no traversal."""
    if not isinstance(name, str) or not _NAME.match(name) or ".." in name:
        raise ValueError(f"'{name}' is not a valid run name: use up to 64 letters, digits, '.', '_' or '-'.")
    return name


def run_path(name: str, root: Path | None = None) -> Path:
    root = (root or runs_dir()).resolve()
    path = (root / check_run_name(name)).resolve()
    if path.parent != root:
        raise ValueError(f"'{name}' is not a valid run name.")
    return path


def new_run_name(recipe: str) -> str:
    return f"{recipe}-{time.strftime('%Y%m%d-%H%M%S')}-{os.urandom(2).hex()}"


@dataclass
class RunSummary:
    name: str
    path: Path
    status: str
    best_val_accuracy: float | None
    test_accuracy: float | None
    epochs: int


def list_runs(root: Path | None = None) -> list[RunSummary]:
    """Runs with a usable best checkpoint, newest first (finished, or cancelled after an epoch)."""
    root = root or runs_dir()
    out = []
    if not root.is_dir():
        return out
    for d in root.iterdir():
        if not d.is_dir() or not _NAME.match(d.name) or not is_complete(d):
            continue
        try:
            info = json.loads((d / "run.json").read_text())
        except (OSError, ValueError):
            continue
        if info.get("status") not in ("finished", "cancelled"):
            continue
        out.append(RunSummary(d.name, d, info["status"], info.get("best_val_accuracy"), info.get("test_accuracy"),
                              int(info.get("epochs_done", 0))))
    return sorted(out, key=lambda r: r.path.stat().st_mtime, reverse=True)


def checkpoint_zip(name: str, root: Path | None = None) -> Path:
    """The best checkpoint of a run as a zip in a temporary folder (what the download button serves)."""
    path = run_path(name, root)
    if not is_complete(path):
        raise ValueError(f"Run '{name}' has no checkpoint to download.")
    target = Path(tempfile.mkdtemp(prefix="googlenet-run-")) / f"{name}.zip"
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as z:
        for f in ("config.json", "model.safetensors", "metrics.json", "run.json", "curves.png"):
            if (path / f).is_file():
                z.write(path / f, f"{name}/{f}")
    return target


class ModelCatalog:
    """Model names -> classifiers, built lazily and kept in a small LRU cache."""

    def __init__(self, default: Callable[[], Classifier], device: str | None = None, capacity: int = 4) -> None:
        self._default_factory = default
        self._default: Classifier | None = None
        self.device = device
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
        return [IMAGENET_MODEL] + [r.name for r in list_runs()]

    def get(self, name: str | None) -> Classifier:
        if not name or name == IMAGENET_MODEL:
            return self.default
        path = run_path(name)
        if not is_complete(path):
            raise ValueError(f"There is no finished run called '{name}'. Choose one of: {', '.join(self.names())}.")
        stamp = (path / "model.safetensors").stat().st_mtime
        with self._lock:
            hit = self._cache.get(name)
            if hit and hit[0] == stamp:
                self._cache.move_to_end(name)
                return hit[1]
        clf = Classifier.from_pretrained(str(path), device=self.device)
        with self._lock:
            self._cache[name] = (stamp, clf)
            while len(self._cache) > self.capacity:
                self._cache.popitem(last=False)
        return clf


class RunBusy(Exception):
    """Another visitor's run holds the device."""


@dataclass
class Update:
    kind: str  # "log", "step", "epoch", "done", "error"
    data: dict[str, Any]


class _QueueCallbacks(Callbacks):
    def __init__(self, q: queue.Queue) -> None:
        self.q = q
        self._last = 0.0

    def on_log(self, message: str) -> None:
        self.q.put(Update("log", {"message": message}))

    def on_step(self, epoch: int, step: int, steps: int, loss: float) -> None:
        now = time.monotonic()
        if now - self._last > 0.25 or step == steps:  # at most four updates a second
            self._last = now
            self.q.put(Update("step", {"epoch": epoch, "step": step, "steps": steps, "loss": loss}))

    def on_epoch(self, metrics: dict[str, Any], history: list[dict[str, Any]]) -> None:
        self.q.put(Update("epoch", {"metrics": metrics, "history": history}))


class TrainingSlot:
    """One training run on the device at a time; the visitor who started it may cancel it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.owner: str | None = None
        self.cancel_event: threading.Event | None = None
        self.run_name: str | None = None

    @property
    def busy(self) -> bool:
        return self.owner is not None

    def cancel(self, owner: str) -> bool:
        with self._lock:
            if self.owner is None or self.owner != owner or self.cancel_event is None:
                return False
            self.cancel_event.set()
            return True

    def run(self, config: TrainConfig, owner: str) -> Iterator[Update]:
        """Start a run (or raise ``RunBusy``) and yield its updates until it ends."""
        with self._lock:
            if self.owner is not None:
                raise RunBusy("A fine-tuning run is already in progress on this server; only one runs at a time. "
                              "Please try again when it has finished.")
            self.owner = owner
            self.cancel_event = threading.Event()
            self.run_name = Path(config.output).name if config.output else None
        q: queue.Queue[Update] = queue.Queue()
        cancel = self.cancel_event

        def work() -> None:
            try:
                result: RunResult = train(config, _QueueCallbacks(q), cancel)
                q.put(Update("done", {"result": result}))
            except TrainingError as e:
                q.put(Update("error", {"message": str(e)}))
            except Exception as e:  # never lose the app to a run: report, keep serving
                q.put(Update("error", {"message": f"The run stopped unexpectedly ({type(e).__name__}: {e})."}))

        thread = threading.Thread(target=work, name="training", daemon=True)
        try:
            thread.start()
            while True:
                update = q.get()
                yield update
                if update.kind in ("done", "error"):
                    break
        finally:
            if thread.is_alive():  # the visitor went away: stop the run at the next step
                cancel.set()
                thread.join(timeout=60)
            with self._lock:
                self.owner = self.cancel_event = self.run_name = None


def remove_incomplete(name: str, root: Path | None = None) -> None:
    """Drop the folder of a run that never saved a checkpoint (a failed start leaves nothing behind)."""
    path = run_path(name, root)
    if path.is_dir() and not is_complete(path) and not (path / "last").exists():
        shutil.rmtree(path, ignore_errors=True)
