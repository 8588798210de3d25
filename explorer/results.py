"""What the Fine-tune tab's endpoints about finished runs compute: a run's report (what it gets wrong on CIFAR-10's
test split), its drift map, several runs compared, and its checkpoint as a zip."""

from __future__ import annotations

import logging
import os
from typing import Any

import numpy as np

from explorer import durations
from explorer.concurrency import in_background
from explorer.gpu import on_gpu
from explorer.params import as_int, as_text
from explorer.render import compare_table, report_markdown
from explorer.runs import checkpoint_zip, compare_runs, load_report, top_loss_pictures, usable_run
from explorer.state import PROFILE, disk_cache
from training.data import DataError
from training.drift import drift_table
from training.plots import compare_drift_figure, compare_figure, confusion_figure, drift_figure
from training.report import RunReport, evaluate_run

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
    report = load_report(_run(run), PROFILE.data_dir, report_on_device)
    try:
        pictures = top_loss_pictures(report, PROFILE.data_dir)
    except DataError:
        pictures = []  # the report was saved with the run; the pictures need CIFAR-10 on this server
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
