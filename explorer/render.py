"""What the page shows as text: Markdown for the status line, timings, run summaries, reports and comparisons.
Plain functions of plain values, so each is unit-tested without a server."""

from __future__ import annotations

from typing import Any

from training.report import RunReport
from training.runfolder import RunSummary
from training.data import DOWNLOAD_SIZE_TEXT


def status_markdown(device: str, weights: str, warning: str | None, versions: dict[str, str],
                    storage: str = "") -> str:
    """The status line: where the app runs, which weights it uses (a loud warning when untrained), versions, and
    whether runs outlive a restart (said only when they do not)."""
    shown = f"**weights:** {weights}"
    if warning:
        shown = f"<span style='color:#b00020;font-weight:bold'>⚠ {warning}</span>"
    listed = ", ".join(f"{k} {v}" for k, v in versions.items())
    return f"**device:** {device} · {shown} · {listed}" + (f" · **storage:** {storage}" if storage else "")


def classify_info(ms: float, device: str, crops: int, model: str) -> str:
    return f"{ms:.0f} ms on {device} · {'10 crops' if crops == 10 else '1 centre crop'} · {model}"


def step_line(name: str, epoch: int, epochs: int, step: int, steps: int, loss: float) -> str:
    return f"Run `{name}`: epoch {epoch}/{epochs}, step {step}/{steps}, loss {loss:.3f}"


def ended_line(summary: RunSummary) -> str:
    """One line for a run that ended: its best validation and test accuracy, and why it stopped early."""
    acc = summary.best_val_accuracy
    line = (f"Run `{summary.name}` {summary.status}: best validation accuracy {100 * acc:.1f}%" if acc is not None
            else f"Run `{summary.name}` {summary.status}: no epoch finished")
    if summary.test_accuracy is not None:
        line += f", test accuracy {100 * summary.test_accuracy:.1f}%"
    if summary.message not in ("finished", ""):
        line += f" ({summary.message})"
    return line


def report_markdown(report: RunReport) -> str:
    """Test accuracy, then a table of per-class accuracy."""
    rows = "\n".join(f"| {name} | {100 * acc:.1f}% |" for name, acc in zip(report.classes, report.per_class))
    return f"**Test accuracy {100 * report.accuracy:.1f}%**\n\n| class | accuracy |\n|---|---|\n{rows}"


def cell(key: str, value: Any) -> str:
    if value is None:
        return ""
    if key.endswith("accuracy"):
        return f"{100 * value:.1f}%"
    return f"{value:g}" if isinstance(value, float) else str(value)


def compare_table(rows: list[dict[str, Any]]) -> str:
    """One row per run: its settings and results (accuracies as percentages)."""
    keys = list(rows[0])
    head = "| " + " | ".join(keys) + " |\n|" + "---|" * len(keys)
    return head + "\n" + "\n".join("| " + " | ".join(cell(k, r[k]) for k in keys) + " |" for r in rows)


NO_DATA = f"CIFAR-10 is not on this server yet: press Download CIFAR-10 first ({DOWNLOAD_SIZE_TEXT})."


def data_status(available: bool) -> str:
    return "CIFAR-10 is ready on this server." if available else NO_DATA


ARCHITECTURE_NOTES = ("Parameters count convolution and linear weights in K = 1024 (the paper's unit); ops are "
                      "multiply-adds in millions, traced with a 224 px forward pass. ⚠ marks rows where the paper's "
                      "own figure disagrees with its architecture by more than 2%.")
