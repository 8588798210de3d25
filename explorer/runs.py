"""Runs as the app sees them: named folders under ``RUNS_DIR``, the catalogue of models a visitor can
use (the ImageNet model plus every usable run), downloads, retention and the start-up sweep."""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import threading
import time
import zipfile
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from googlenet.classify import Classifier
from training.checkpoint import RUN_FILES, atomic_write_json, is_complete
from training.config import runs_dir
from training.data import TEST_FILE, dataset_folder, load_cifar10, read_batch
from training.report import RunReport, evaluate_run, write_report

IMAGENET_MODEL = "ImageNet GoogLeNet"
USABLE = ("finished", "cancelled", "interrupted")  # with a best checkpoint, a run can classify
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
DOWNLOADS = Path(tempfile.gettempdir()) / "inception-explorer-downloads"  # the app's one folder for zips


def check_run_name(name: str) -> str:
    """Run names become folder names: letters, digits, '.', '_' and '-' only, no traversal."""
    if not isinstance(name, str) or not _NAME.match(name) or ".." in name:
        raise ValueError(f"'{name}' is not a valid run name: use up to 64 letters, digits, '.', '_' or '-'.")
    return name


def run_path(name: str) -> Path:
    root = runs_dir().resolve()
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


def _read_run(folder: Path) -> dict | None:
    try:
        info = json.loads((folder / "run.json").read_text())
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) else None


def list_runs() -> list[RunSummary]:
    """Runs with a usable best checkpoint, newest first."""
    root = runs_dir()
    out = []
    if not root.is_dir():
        return out
    for d in root.iterdir():
        if not d.is_dir() or not _NAME.match(d.name) or not is_complete(d):
            continue
        info = _read_run(d)
        if info is None or info.get("status") not in USABLE:
            continue
        out.append(RunSummary(d.name, d, info["status"], info.get("best_val_accuracy"), info.get("test_accuracy"),
                              int(info.get("epochs_done", 0))))
    return sorted(out, key=lambda r: r.path.stat().st_mtime, reverse=True)


def usable_run(name: str) -> Path:
    """The folder of a run that can be used (classified with, downloaded, pushed), or a clear error."""
    path = run_path(name)
    info = _read_run(path) if path.is_dir() else None
    if not is_complete(path) or info is None or info.get("status") not in USABLE:
        names = ", ".join(r.name for r in list_runs()[:10]) or "none yet"
        raise ValueError(f"There is no finished run called '{name}'. Finished runs: {names}.")
    return path


def sweep_interrupted() -> list[str]:
    """At start-up: runs a crash left "running" are marked "interrupted" (usable if they saved a checkpoint)."""
    root, swept = runs_dir(), []
    if not root.is_dir():
        return swept
    for d in root.iterdir():
        info = _read_run(d) if d.is_dir() else None
        if info and info.get("status") == "running":
            info.update(status="interrupted", message="the server stopped while this run was training")
            atomic_write_json(d / "run.json", info)
            swept.append(d.name)
    return swept


def prune_runs(keep: int, protect: str | None = None) -> list[str]:
    """Delete the oldest ended runs beyond ``keep`` (never ``protect``, the run in progress)."""
    root = runs_dir()
    if not root.is_dir():
        return []
    ended = [d for d in root.iterdir() if d.is_dir() and _NAME.match(d.name) and d.name != protect
             and (_read_run(d) or {}).get("status") not in (None, "running")]
    ended.sort(key=lambda d: d.stat().st_mtime, reverse=True)
    removed = []
    for d in ended[keep:]:
        shutil.rmtree(d, ignore_errors=True)
        removed.append(d.name)
    return removed


def clean_downloads() -> None:
    shutil.rmtree(DOWNLOADS, ignore_errors=True)


def checkpoint_zip(name: str) -> Path:
    """A run's best checkpoint as a zip, made once and reused while the checkpoint is unchanged."""
    path = usable_run(name)
    target = DOWNLOADS / f"{name}.zip"
    newest = max((path / f).stat().st_mtime for f in RUN_FILES if (path / f).is_file())
    if target.is_file() and target.stat().st_mtime >= newest:
        return target
    DOWNLOADS.mkdir(parents=True, exist_ok=True)
    staged = target.with_name(f".{name}.{os.getpid()}.{threading.get_ident()}.tmp")
    with zipfile.ZipFile(staged, "w", zipfile.ZIP_DEFLATED) as z:
        for f in RUN_FILES:
            if (path / f).is_file():
                z.write(path / f, f"{name}/{f}")
    os.replace(staged, target)
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
        path = usable_run(name)
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


def run_report(name: str, data_dir: str) -> RunReport:
    """A run's report: saved when the run finished, or computed now (and saved) for older runs."""
    path = usable_run(name)
    saved = path / "report.json"
    if saved.is_file():
        try:
            return RunReport(**json.loads(saved.read_text()))
        except (OSError, ValueError, TypeError):
            pass  # damaged or from another version: compute it again
    report = evaluate_run(path, "test", data_dir)
    write_report(path, report, load_cifar10(data_dir).test_x)
    return report


def top_loss_pictures(report: RunReport, data_dir: str, size: int = 96) -> list[tuple[Image.Image, str]]:
    """The top losses as (picture, "true → predicted (p)") pairs for a gallery."""
    images = read_batch(dataset_folder(data_dir) / TEST_FILE)[0]
    return [(Image.fromarray(images[t["index"]].permute(1, 2, 0).numpy()).resize((size, size), Image.NEAREST),
             f"{t['true']} → {t['pred']} ({100 * t['prob']:.0f}%)") for t in report.top_losses]


def compare_runs(names: list[str]) -> tuple[dict[str, list[dict]], list[dict]]:
    """Each run's validation history, and one row of settings and results per run."""
    histories, rows = {}, []
    for name in names:
        path = usable_run(name)
        info = _read_run(path) or {}
        try:
            histories[name] = json.loads((path / "metrics.json").read_text())
        except (OSError, ValueError):
            histories[name] = []
        s = info.get("settings", {})
        rows.append({"run": name, "recipe": info.get("recipe"), "status": info.get("status"),
                     **{k: s.get(k) for k in ("train_size", "epochs", "batch_size", "lr", "image_size",
                                              "freeze_backbone")},
                     "best_val_accuracy": info.get("best_val_accuracy"), "test_accuracy": info.get("test_accuracy")})
    return histories, rows
