"""Every figure of a run: its training curves (shown live in the app and saved with each run as ``curves.png``),
its confusion matrix, its drift map (one epoch's, and several runs' side by side), the probe's views, and several
runs' validation curves compared."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from PIL import Image

from googlenet.draw import overlay, share_chart

from .atomic import atomic_write
from .drift import drift_frame


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


DRIFT_MAPS = (("cka", "linear CKA with the start (1 = unchanged)", "viridis_r"),
              ("weight_drift", "weight drift ‖W − W₀‖/‖W₀‖", "magma_r"))


def _drift_heat(fig: Figure, ax: Any, record: dict[str, Any], frame: dict[str, Any], key: str, title: str, cmap: str,
                vmax: float | None = None, labels: bool = True) -> None:
    modules, branches = record["modules"], record["branches"]
    values = np.array([[frame[key][m][b] for b in branches] for m in modules])
    top = 1.0 if key == "cka" else vmax if vmax is not None else max(float(values.max()), 1e-6)
    image = ax.imshow(values, cmap=cmap, vmin=0.0, vmax=top, aspect="auto")
    ax.set_xticks(range(len(branches)), branches, fontsize=8)
    ax.set_yticks(range(len(modules)), [m.replace("inception", "") for m in modules] if labels else [])
    ax.set_title(title, fontsize=9)
    fig.colorbar(image, ax=ax, shrink=0.8)


def drift_figure(record: dict[str, Any], epoch: int | None = None) -> Figure:
    """The drift map of one epoch (the last by default): linear CKA with the starting model and weight drift, each
    a modules x branches heat map (early modules at the top)."""
    fig = Figure(figsize=(8, 4.2), dpi=100)
    if not record.get("epochs"):
        fig.text(0.5, 0.5, record.get("note", "no epoch yet"), ha="center", va="center")
        return fig
    frame = drift_frame(record, epoch)
    for k, (key, title, cmap) in enumerate(DRIFT_MAPS):
        _drift_heat(fig, fig.add_subplot(1, 2, k + 1), record, frame, key, title, cmap)
    fig.suptitle(f"What fine-tuning moved, epoch {frame['epoch']}", fontsize=10)
    fig.tight_layout()
    return fig


def compare_drift_figure(records: dict[str, dict[str, Any] | None]) -> Figure:
    """Several runs' drift maps (last epoch) side by side: CKA above, weight drift below, on one scale per row so
    the runs can be read against each other; a run without a map shows why."""
    n = max(len(records), 1)
    fig = Figure(figsize=(2.6 * n + 1, 6.4), dpi=100)
    frames = {name: r["epochs"][-1] for name, r in records.items() if r and r.get("epochs")}
    top = max([max(v for bs in f["weight_drift"].values() for v in bs.values()) for f in frames.values()] + [1e-6])
    for col, (name, record) in enumerate(records.items()):
        for row, (key, title, cmap) in enumerate(DRIFT_MAPS):
            ax = fig.add_subplot(2, n, row * n + col + 1)
            if name not in frames:
                ax.axis("off")
                note = (record or {}).get("note", "no drift map recorded")
                ax.text(0.5, 0.5, note.replace(": ", ":\n"), ha="center", va="center", fontsize=8, wrap=True)
                ax.set_title(name if row == 0 else "", fontsize=8)
                continue
            heading = f"{name}, epoch {frames[name]['epoch']}\n{title}" if row == 0 else title
            _drift_heat(fig, ax, record, frames[name], key, heading, cmap, vmax=top, labels=col == 0)
            ax.title.set_fontsize(7)
    fig.tight_layout()
    return fig


def probe_views(record: dict[str, Any], picture: Image.Image | None, side: int = 160
                ) -> tuple[dict[str, float], Figure, Image.Image | None]:
    """The probe's last epoch as the page shows it: its top-3 classes, its branch shares beside the starting
    model's, and its Grad-CAM over the picture (enlarged from 32 px to ``side``)."""
    frame = record["epochs"][-1]
    top = {label: p for label, p in frame["top"]}
    chart = share_chart(frame["shares"], record["start_shares"], (f"epoch {frame['epoch']}", record["start"]))
    cam = None
    if picture is not None:
        cam = overlay(picture.convert("RGB").resize((side, side), Image.Resampling.BICUBIC), np.array(frame["cam"]))
    return top, chart, cam


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
