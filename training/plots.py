"""The training curves: shown live in the app and saved with each run as ``curves.png``."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from .storage import atomic_write


def curves_figure(history: list[dict[str, Any]]) -> Figure:
    """Loss and validation accuracy per epoch."""
    fig = Figure(figsize=(8, 3.2), dpi=100)
    ax1, ax2 = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    epochs = [h["epoch"] for h in history]
    ax1.plot(epochs, [h["train_loss"] for h in history], "o-", label="train loss")
    ax1.plot(epochs, [h["val_loss"] for h in history], "o-", label="val loss")
    ax1.set_xlabel("epoch")
    ax1.legend()
    ax2.plot(epochs, [100 * h["val_accuracy"] for h in history], "o-", color="green")
    ax2.set_xlabel("epoch")
    ax2.set_ylabel("val accuracy (%)")
    ax2.set_ylim(0, 100)
    fig.tight_layout()
    return fig


def save_curves(history: list[dict[str, Any]], path: Path) -> None:
    save_figure(curves_figure(history), path)


def confusion_figure(confusion: np.ndarray, classes: list[str]) -> Figure:
    """Counts with rows = true class and columns = predicted class; the diagonal is what it gets right."""
    fig = Figure(figsize=(6.4, 5.6), dpi=100)
    ax = fig.add_subplot(1, 1, 1)
    ax.imshow(confusion, cmap="Blues")
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(len(classes)), classes, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    top = confusion.max() or 1
    for (i, j), n in np.ndenumerate(confusion):
        if n:
            ax.text(j, i, str(n), ha="center", va="center", fontsize=7, color="white" if n > top / 2 else "black")
    fig.tight_layout()
    return fig


def drift_figure(record: dict[str, Any], epoch: int | None = None) -> Figure:
    """The drift map of one epoch (the last by default): linear CKA with the starting model and weight drift, each
    a modules x branches heat map (early modules at the top)."""
    frames = record.get("epochs") or []
    fig = Figure(figsize=(8, 4.2), dpi=100)
    if not frames:
        fig.text(0.5, 0.5, record.get("note", "no epoch yet"), ha="center", va="center")
        return fig
    frame = frames[-1] if epoch is None else next(f for f in frames if f["epoch"] == epoch)
    modules, branches = record["modules"], record["branches"]
    for k, (key, title, cmap, top) in enumerate((("cka", "linear CKA with the start (1 = unchanged)", "viridis_r", 1.0),
                                                 ("weight_drift", "weight drift ‖W − W₀‖/‖W₀‖", "magma_r", None))):
        values = np.array([[frame[key][m][b] for b in branches] for m in modules])
        ax = fig.add_subplot(1, 2, k + 1)
        image = ax.imshow(values, cmap=cmap, vmin=0.0, vmax=top if top is not None else max(float(values.max()), 1e-6),
                          aspect="auto")
        ax.set_xticks(range(len(branches)), branches)
        ax.set_yticks(range(len(modules)), [m.replace("inception", "") for m in modules])
        ax.set_title(title, fontsize=9)
        fig.colorbar(image, ax=ax, shrink=0.8)
    fig.suptitle(f"What fine-tuning moved, epoch {frame['epoch']}", fontsize=10)
    fig.tight_layout()
    return fig


def save_figure(fig: Figure, path: Path) -> None:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    atomic_write(path, buf.getvalue())


def compare_figure(histories: dict[str, list[dict[str, Any]]]) -> Figure:
    """Several runs' validation accuracy per epoch, overlaid."""
    fig = Figure(figsize=(8, 3.6), dpi=100)
    ax = fig.add_subplot(1, 1, 1)
    for name, history in histories.items():
        ax.plot([h["epoch"] for h in history], [100 * h["val_accuracy"] for h in history], "o-", label=name)
    ax.set_xlabel("epoch")
    ax.set_ylabel("val accuracy (%)")
    ax.set_ylim(0, 100)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    return fig
