"""What the Fine-tune tab's endpoints about finished runs compute: a run's report (what it gets wrong on its
dataset's test split: saved with the run, or evaluated once on the app's device), its drift map, several runs compared, and
its checkpoint as a zip."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from PIL import Image

from explorer import durations
from explorer.concurrency import KeyedLock, in_background
from explorer.gpu import on_gpu
from explorer.params import as_int, as_text
from explorer.render import compare_table, report_markdown
from explorer.runs import checkpoint_zip, usable_run
from explorer.state import PROFILE, disk_cache
from training.drift import drift_table
from training.plots import compare_drift_figure, compare_figure, confusion_figure, drift_figure
from training.config import TrainingError
from training.report import evaluate_run, report_pictures, write_report
from training.runfolder import RunReport

log = logging.getLogger("inception-explorer")
MAX_COMPARED = 8  # runs in one comparison


@on_gpu(duration=lambda run: durations.report_seconds())
def report_on_device(run: str) -> RunReport:
    """A run's test report, computed on the app's device (a run that ended before its test has none yet)."""
    log.info("evaluating %s for its report", os.path.basename(run))
    return in_background(evaluate_run, run, "test", PROFILE.data_dir, PROFILE.device)


def _run(run: Any) -> str:
    run = as_text(run, "run")
    if not run:
        raise ValueError("Choose a finished run first.")
    return run


def run_report(run: Any) -> tuple[Any, str, list, dict[str, Any]]:
    """A run's confusion matrix, per-class accuracy, most confidently wrong test images, and the report."""
    name = _run(run)
    report = load_report(name, PROFILE.data_dir, report_on_device)
    try:
        pictures = top_loss_pictures(report, report_pictures(usable_run(name).path, report.split, PROFILE.data_dir))
    except (TrainingError, IndexError):
        pictures = []  # the report was saved with the run; its pictures need its dataset on this server
    return (confusion_figure(np.array(report.confusion), report.classes), report_markdown(report), pictures,
            report.as_dict())


def run_drift(run: Any, epoch: Any = 0) -> tuple[Any, str, dict[str, Any]]:
    """A run's drift map as it trained: which modules and branches fine-tuning moved (one epoch's heat maps, the
    last when ``epoch`` is 0, its table, and every epoch's values)."""
    run, epoch = _run(run), as_int(epoch or 0, "epoch", 0)
    record = usable_run(run).drift()
    if record is None:
        raise ValueError(f"The run '{run}' has no drift map: it was trained before drift maps were recorded.")
    return drift_figure(record, epoch), drift_table(record, epoch), record


def compare(names: Any) -> tuple[Any, str, Any]:
    """Several runs side by side: validation curves overlaid, a table of their settings and results, and their
    drift maps."""
    if isinstance(names, str):
        names = [names]
    if not names or not all(isinstance(n, str) for n in names):
        raise ValueError("Choose one or more finished runs to compare.")
    histories, rows = compare_runs(list(dict.fromkeys(names))[:MAX_COMPARED])
    return (compare_figure(histories), compare_table(rows),
            compare_drift_figure({name: usable_run(name).drift() for name in histories}))


def checkpoint_file(run: Any) -> str | None:
    """The chosen run's zip (made once), or None when no run is chosen."""
    run = as_text(run, "run")
    return str(checkpoint_zip(run, disk_cache())) if run else None


_REPORTS = KeyedLock()


def load_report(name: str, data_dir: str, evaluate: Callable[[str], RunReport] | None = None) -> RunReport:
    """A run's report: saved when the run finished, or computed now by ``evaluate(run folder)`` (on the app's
    device) and saved with the run, once: concurrent callers for one run wait for the first and read its file."""
    folder = usable_run(name)
    with _REPORTS(folder.name):
        report = folder.report()
        if report is None:
            report = (evaluate or (lambda path: evaluate_run(path, "test", data_dir)))(str(folder.path))
            write_report(folder.path, report, report_pictures(folder.path, report.split, data_dir))
    return report


def top_loss_pictures(report: RunReport, images: torch.Tensor, size: int = 96) -> list[tuple[Image.Image, str]]:
    """The top losses as (picture, "true → predicted (p)") pairs for a gallery, from the pictures they point into."""
    return [(Image.fromarray(images[t["index"]].permute(1, 2, 0).numpy()).resize((size, size), Image.NEAREST),
             f"{t['true']} → {t['pred']} ({100 * t['prob']:.0f}%)") for t in report.top_losses]


def compare_runs(names: list[str]) -> tuple[dict[str, list[dict]], list[dict]]:
    """Each run's validation history, and one row of settings and results per run."""
    histories, rows = {}, []
    for name in names:
        folder = usable_run(name)
        info = folder.info() or {}
        histories[name] = folder.metrics()
        s = info.get("settings", {})
        rows.append({"run": name, "recipe": info.get("recipe"), "status": info.get("status"),
                     **{k: s.get(k) for k in ("train_size", "epochs", "batch_size", "lr", "image_size",
                                              "freeze_backbone")},
                     "best_val_accuracy": info.get("best_val_accuracy"), "test_accuracy": info.get("test_accuracy")})
    return histories, rows
