"""Checkpoints that survive a crash at any instant: write aside, then rename into place.

A checkpoint folder is written as ``NAME.tmp`` and swapped in with renames; if the process dies
mid-way, either the old folder or ``NAME.old`` still holds the previous complete checkpoint, and
``find_checkpoint`` returns it.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from googlenet.hub import CONFIG_NAME, WEIGHTS_NAME

from .atomic import atomic_write, fsync_dir

REQUIRED = (CONFIG_NAME, WEIGHTS_NAME)  # a loadable checkpoint (GoogLeNet.from_pretrained)
LAST = "last"  # the folder with the last epoch's checkpoint and its resume state
TRAINING_STATE = "training_state.pt"


def is_complete(folder: Path) -> bool:
    return folder.is_dir() and all((folder / f).is_file() for f in REQUIRED)


def atomic_save_dir(final: Path, write: Callable[[Path], None]) -> None:
    """Run ``write(tmp_folder)``, then put the folder at ``final`` without ever leaving no checkpoint."""
    final = Path(final)
    tmp, old = final.with_name(final.name + ".tmp"), final.with_name(final.name + ".old")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    write(tmp)
    for f in tmp.iterdir():
        with open(f, "rb") as fh:
            os.fsync(fh.fileno())
    if final.exists():
        shutil.rmtree(old, ignore_errors=True)
        os.replace(final, old)
    os.replace(tmp, final)
    fsync_dir(final.parent)
    shutil.rmtree(old, ignore_errors=True)


def find_checkpoint(final: Path) -> Path | None:
    """The newest complete checkpoint: ``final`` or, after a crash mid-swap, ``final.old``."""
    final = Path(final)
    for candidate in (final, final.with_name(final.name + ".old")):
        if is_complete(candidate):
            return candidate
    return None


def copy_model_files(source: Path, folder: Path) -> None:
    """A checkpoint's model files copied to the top of a run folder, each replaced atomically."""
    for name in REQUIRED:
        atomic_write(folder / name, lambda staged, name=name: shutil.copyfile(source / name, staged))


def save_last(run_dir: Path, model: torch.nn.Module, state: dict[str, Any]) -> None:
    """The last epoch's weights and resume state (optimiser, schedule, random state, history), swapped in whole."""
    def write(folder: Path) -> None:
        model.save_pretrained(folder)
        torch.save(state, folder / TRAINING_STATE)

    atomic_save_dir(run_dir / LAST, write)


def load_last(run_dir: Path) -> tuple[Path, dict[str, Any]]:
    """The newest complete ``last`` checkpoint and its resume state, read with ``weights_only=True`` so even a
    tampered file cannot run code."""
    folder = find_checkpoint(run_dir / LAST)
    if folder is None:
        raise FileNotFoundError(f"{run_dir} holds no complete '{LAST}' checkpoint")
    return folder, torch.load(folder / TRAINING_STATE, map_location="cpu", weights_only=True)


def drop_resume_state(run_dir: Path) -> None:
    """Remove ``last/`` (and a crash's ``last.old``/``last.tmp``) once a run can no longer be resumed."""
    for suffix in ("", ".old", ".tmp"):
        shutil.rmtree(run_dir / (LAST + suffix), ignore_errors=True)
