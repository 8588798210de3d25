"""The training curves: shown live in the app and saved with each run as ``curves.png``."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from .checkpoint import atomic_write_bytes


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
    buf = io.BytesIO()
    curves_figure(history).savefig(buf, format="png")
    atomic_write_bytes(path, buf.getvalue())
