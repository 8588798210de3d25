"""One shape for a run: ``RunFolder`` owns a run folder's file names, its status and reading its record,
metrics and report; ``RunSummary`` is what a run that ended is, from ``train()`` or from its folder alike, and
``RunReport`` what it gets wrong (the records; ``report.py`` computes the report).
The training loop writes through it; the app, the training slot, the report and the catalogue read
through it."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .atomic import atomic_write_json
from .checkpoint import REQUIRED, is_complete
from .config import TrainingError

USABLE = ("finished", "cancelled", "interrupted")  # with a best checkpoint, a run can classify
REPORT_FILES = ("report.json", "confusion.png", "top_losses.png")  # what the finished run gets wrong


@dataclass
class RunSummary:
    """A run that ended (or, read from disk, any run): its status and results."""

    name: str
    path: Path
    status: str  # running, finished, cancelled (also stopped at its time limit), interrupted, empty
    best_val_accuracy: float | None = None
    test_accuracy: float | None = None
    epochs: int = 0
    message: str = ""
    history: list[dict[str, Any]] = field(default_factory=list)  # per-epoch metrics, when known

    def api(self) -> dict[str, Any]:
        """The ``result`` the app's ``/finetune`` returns."""
        return {"run": self.name, "status": self.status, "val_accuracy": self.best_val_accuracy,
                "test_accuracy": self.test_accuracy, "epochs": self.epochs}


@dataclass
class RunReport:
    """What a finished run gets wrong on a split (``report.json``; ``report.py`` computes it)."""

    classes: list[str]
    confusion: list[list[int]]  # rows: true class, columns: predicted class
    accuracy: float
    per_class: list[float]
    top_losses: list[dict[str, Any]]  # {index, true, pred, prob}: most confidently wrong first
    split: str = "test"

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class RunFolder:
    """A run's folder: ``run.json`` (its record), ``metrics.json``, ``curves.png``, ``train.log``, the best
    checkpoint at the top, ``last/`` while it can be resumed, and its report."""

    INFO, METRICS, CURVES, LOG = "run.json", "metrics.json", "curves.png", "train.log"
    DRIFT, DRIFT_MAP = "drift.json", "drift.png"  # which branches fine-tuning moved (training/drift.py)
    PROBE, PROBE_PICTURE = "probe.json", "probe.png"  # the live inside view of one picture (training/probe.py)
    REPORT, CONFUSION, TOP_LOSSES = REPORT_FILES

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    @property
    def name(self) -> str:
        return self.path.name

    def _json(self, name: str, kind: type) -> Any:
        """A JSON file of the run as ``kind`` (dict or list), or None when it is missing, unreadable or not one."""
        try:
            value = json.loads((self.path / name).read_text())
        except (OSError, ValueError):
            return None
        return value if isinstance(value, kind) else None

    def info(self) -> dict[str, Any] | None:
        """The run's record, or None when it is missing or unreadable."""
        return self._json(self.INFO, dict)

    def write_info(self, info: dict[str, Any]) -> None:
        atomic_write_json(self.path / self.INFO, info)

    def start(self) -> dict[str, Any] | None:
        """The weights the run started from, as it recorded them: ``{"weights": "none"}`` from scratch, else
        ``{"weights": label, "fingerprint": the starting backbone's}`` (label: ``repo@commit``, "a local folder",
        torchvision's or "untrained"); None for a run that recorded no start (made before runs recorded it)."""
        start = (self.info() or {}).get("start")
        return start if isinstance(start, dict) and isinstance(start.get("weights"), str) else None

    @property
    def status(self) -> str | None:
        return (self.info() or {}).get("status")

    @property
    def complete(self) -> bool:
        """It holds a loadable best checkpoint."""
        return is_complete(self.path)

    @property
    def usable(self) -> bool:
        """It can classify, be downloaded and be pushed."""
        return self.complete and self.status in USABLE

    def settings(self) -> dict[str, Any]:
        settings = (self.info() or {}).get("settings")
        if not isinstance(settings, dict):
            raise TrainingError(f"{self.name} has no readable run.json with its settings.")
        return settings

    def metrics(self) -> list[dict[str, Any]]:
        return self._json(self.METRICS, list) or []

    def drift(self) -> dict[str, Any] | None:
        """The run's drift map (every epoch's), or None when it has none or it is unreadable."""
        return self._json(self.DRIFT, dict)

    def write_drift(self, record: dict[str, Any]) -> None:
        atomic_write_json(self.path / self.DRIFT, record)

    def probe(self) -> dict[str, Any] | None:
        """The probe picture's view after every epoch so far, or None."""
        return self._json(self.PROBE, dict)

    def write_probe(self, record: dict[str, Any]) -> None:
        atomic_write_json(self.path / self.PROBE, record)

    def write_metrics(self, history: list[dict[str, Any]]) -> None:
        atomic_write_json(self.path / self.METRICS, history)

    def report(self) -> RunReport | None:
        """The report saved when the run finished, or None (missing, damaged or from another version)."""
        try:
            return RunReport(**json.loads((self.path / self.REPORT).read_text()))
        except (OSError, ValueError, TypeError):
            return None

    def summary(self) -> RunSummary:
        info = self.info() or {}
        status = info.get("status", "cancelled")
        return RunSummary(self.name, self.path, "cancelled" if status == "empty" else status,
                          info.get("best_val_accuracy"), info.get("test_accuracy"), int(info.get("epochs_done", 0)),
                          info.get("message", "cancelled before the first epoch finished; nothing was saved"))

    def size(self) -> int:
        """Bytes on disk."""
        return sum(f.stat().st_size for f in self.path.rglob("*") if f.is_file())

    def mark_interrupted(self) -> bool:
        """A run a crash left "running" is marked "interrupted" (usable if it saved a checkpoint)."""
        info = self.info()
        if not info or info.get("status") != "running":
            return False
        info.update(status="interrupted", message="the server stopped while this run was training")
        self.write_info(info)
        return True


# What a run shares (download, Hub push): the checkpoint, its record, its curves and its report.
RUN_FILES = (*REQUIRED, RunFolder.METRICS, RunFolder.INFO, RunFolder.CURVES, *REPORT_FILES)
