"""What one run is asked to do (``TrainConfig``), checked before anything is written.

``TrainConfig`` holds the run's own settings (data, weights, output, device, ...) plus one optional
override per ``Recipe`` hyperparameter, generated from the recipe's fields: ``TrainConfig(epochs=3)``
overrides the recipe's epochs, and a field added to ``Recipe`` is overridable here and on the CLI at once.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from googlenet import MODULE_NAMES
from googlenet.device import select_device

from . import env
from .checkpoint import find_checkpoint
from .env import runs_dir
from .probe import PROBE_MODULE
from .recipes import HYPERPARAMETERS, RECIPES, Recipe


class TrainingError(Exception):
    """A run could not start or had to stop; the message says why and what to do."""


@dataclass
class RunSettings:
    recipe: str = "finetune"
    data_dir: str = field(default_factory=env.data_dir)
    weights: str | None = None  # a Hub repo id, a folder, "none" (from scratch), or None (the weight chain)
    output: str | None = None  # default: RUNS_DIR/RECIPE-TIMESTAMP
    device: str = "auto"
    train_size: int | None = None  # a stratified subset of the training set
    val_fraction: float = 0.2
    test_size: int | None = None  # test on a stratified subset of the held-out split (None: all of it)
    seed: int = 0
    resume: bool = False
    download: bool = False
    push_to_hub: str | None = None
    evaluate_test: bool = True
    max_seconds: float | None = None  # wall-clock limit: the run then stops as if cancelled, keeping its best
    keep_resume_state: bool = True  # False: drop last/ when the run ends (runs that cannot be resumed)
    cache_features: bool = True  # frozen backbone: train the head on backbone features computed once
    owner: str | None = None  # who started it (an opaque id; the app's retention deletes only the owner's runs)
    address: str | None = None  # where from (an opaque id of the visitor's address)
    probe_index: int | None = None  # the live inside view's picture: CIFAR-10 test picture N (default 0) ...
    probe_image: str | None = None  # ... or a picture file of one's own
    probe_module: str = PROBE_MODULE  # where the live view's Grad-CAM looks


def _resolved_recipe(self: RunSettings) -> Recipe:
    if self.recipe not in RECIPES:
        raise TrainingError(f"Unknown recipe '{self.recipe}'; choose one of {', '.join(RECIPES)}.")
    overrides = {f.name: getattr(self, f.name) for f in HYPERPARAMETERS if getattr(self, f.name) is not None}
    if self.weights is not None and "pretrained" not in overrides:
        overrides["pretrained"] = self.weights.strip().lower() != "none"
    return dataclasses.replace(RECIPES[self.recipe], **overrides)


def _output_dir(self: RunSettings) -> Path:
    return Path(self.output) if self.output else runs_dir() / f"{self.recipe}-{time.strftime('%Y%m%d-%H%M%S')}"


TrainConfig = dataclasses.make_dataclass(
    "TrainConfig", [(f.name, Any, dataclasses.field(default=None)) for f in HYPERPARAMETERS], bases=(RunSettings,),
    namespace={"resolved_recipe": _resolved_recipe, "output_dir": _output_dir,
               "__doc__": "A run's settings; each Recipe hyperparameter may be overridden (None: the recipe's)."})
TrainConfig.__module__ = __name__  # so that it pickles (a ZeroGPU call sends it to a worker process)


def validate(config: TrainConfig) -> Recipe:  # type: ignore[valid-type]
    """Refuse bad settings before anything is written, each with one clear sentence."""
    recipe = config.resolved_recipe()
    problems = recipe.problems()
    if problems:
        raise TrainingError(problems[0])
    if config.train_size is not None and (not isinstance(config.train_size, int) or config.train_size <= 0):
        raise TrainingError(f"The training-set size must be a positive whole number (got {config.train_size}).")
    if config.probe_module not in MODULE_NAMES:
        raise TrainingError(f"Unknown probe module '{config.probe_module}'; choose one of {', '.join(MODULE_NAMES)}.")
    if config.test_size is not None and (not isinstance(config.test_size, int) or config.test_size <= 0):
        raise TrainingError(f"The test-set size must be a positive whole number (got {config.test_size}).")
    if not 0 < config.val_fraction < 1:
        raise TrainingError(f"val_fraction must be between 0 and 1 (got {config.val_fraction}).")
    if not config.download and not Path(config.data_dir).exists():
        raise TrainingError(f"The data directory {config.data_dir} does not exist. Pass --download to fetch CIFAR-10 "
                            "there, or point --data-dir at a folder holding cifar-10-batches-py/.")
    out = config.output_dir()
    if config.resume and find_checkpoint(out / "last") is None:
        raise TrainingError(f"Cannot resume: {out} holds no complete 'last' checkpoint.")
    if not config.resume and out.exists() and any(out.iterdir()):
        raise TrainingError(f"{out} already holds files; choose another --output, or pass --resume to continue "
                            "that run.")
    try:
        select_device(config.device)
    except ValueError as e:
        raise TrainingError(str(e)) from None
    return recipe
