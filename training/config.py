"""What one run is asked to do (``TrainConfig``), checked before anything is written (``validate``).

``TrainConfig(epochs=3)`` overrides the recipe's epochs; a field added to ``Recipe`` becomes a CLI flag at once
and is added here as an override (a test fails until it is).
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path

from googlenet import GoogLeNet
from googlenet.device import select_device

from . import env
from .checkpoint import LAST, find_checkpoint
from .data import DataError
from .env import runs_dir
from .probe import PROBE_MODULE
from .recipes import HYPERPARAMETERS, RECIPES, Recipe
from .hubdata import parse_hub_id
from .sources import CIFAR10, VAL_FRACTION, is_photo_source


class TrainingError(Exception):
    """A run could not start or had to stop; the message says why and what to do."""




@dataclass
class TrainConfig:
    """A run's settings: its own (data, weights, output, device, ...), then one optional override per ``Recipe``
    hyperparameter (None: the recipe's value; ``recipes.py`` says what each means, and generates the CLI's flags
    from the same fields; a test checks that these overrides are exactly the recipe's hyperparameters)."""

    recipe: str = "finetune"
    dataset: str = CIFAR10  # "cifar10", a Hub dataset OWNER/NAME[@revision], or a folder or .zip of photos
    image_column: str | None = None  # a Hub dataset's columns and splits, when they cannot be found by themselves
    label_column: str | None = None
    train_split: str = "train"
    test_split: str = "test"
    anonymous_hub: bool = False  # read Hub datasets without this machine's token (the app: visitors' choices)
    data_dir: str = field(default_factory=env.data_dir)
    weights: str | None = None  # a Hub repo id, a folder, "none" (from scratch), or None (the weight chain)
    output: str | None = None  # default: RUNS_DIR/RECIPE-TIMESTAMP
    device: str = "auto"
    train_size: int | None = None  # a stratified subset of the training set
    val_fraction: float = VAL_FRACTION
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
    # Overrides of the recipe's hyperparameters.
    optimizer: str | None = None
    lr: float | None = None
    batch_size: int | None = None
    epochs: int | None = None
    image_size: int | None = None
    pretrained: bool | None = None
    momentum: float | None = None
    weight_decay: float | None = None
    schedule: str | None = None
    step_epochs: int | None = None
    gamma: float | None = None
    warmup_epochs: float | None = None
    aux_weight: float | None = None
    random_crop: bool | None = None
    flip: bool | None = None
    photometric: bool | None = None
    mixed_precision: bool | None = None
    freeze_backbone: bool | None = None
    label_smoothing: float | None = None

    def resolved_recipe(self) -> Recipe:
        """The recipe with this run's overrides (and ``pretrained`` from ``weights`` when that says "none")."""
        if self.recipe not in RECIPES:
            raise TrainingError(f"Unknown recipe '{self.recipe}'; choose one of {', '.join(RECIPES)}.")
        overrides = {f.name: getattr(self, f.name) for f in HYPERPARAMETERS if getattr(self, f.name) is not None}
        if self.weights is not None and "pretrained" not in overrides:
            overrides["pretrained"] = self.weights.strip().lower() != "none"
        return dataclasses.replace(RECIPES[self.recipe], **overrides)

    def output_dir(self) -> Path:
        return Path(self.output) if self.output else runs_dir() / f"{self.recipe}-{time.strftime('%Y%m%d-%H%M%S')}"


def validate(config: TrainConfig) -> Recipe:
    """Refuse bad settings before anything is written, each with one clear sentence."""
    recipe = config.resolved_recipe()
    problems = recipe.problems()
    if problems:
        raise TrainingError(problems[0])
    if config.train_size is not None and (not isinstance(config.train_size, int) or config.train_size <= 0):
        raise TrainingError(f"The training-set size must be a positive whole number (got {config.train_size}).")
    try:
        GoogLeNet.check_modules([config.probe_module])
    except ValueError as e:
        raise TrainingError(f"The probe module: {e}") from None
    if config.test_size is not None and (not isinstance(config.test_size, int) or config.test_size <= 0):
        raise TrainingError(f"The test-set size must be a positive whole number (got {config.test_size}).")
    if not 0 < config.val_fraction < 1:
        raise TrainingError(f"val_fraction must be between 0 and 1 (got {config.val_fraction}).")
    out = config.output_dir()
    if config.resume and find_checkpoint(out / LAST) is None:
        raise TrainingError(f"Cannot resume: {out} holds no complete 'last' checkpoint.")
    if not config.resume and out.exists() and any(out.iterdir()):
        raise TrainingError(f"{out} already holds files; choose another --output, or pass --resume to continue "
                            "that run.")
    if (config.dataset or CIFAR10).strip().lower() != CIFAR10 and not is_photo_source(config.dataset):
        try:
            parse_hub_id(config.dataset)
        except DataError as e:
            raise TrainingError(str(e)) from None
    try:
        select_device(config.device)
    except ValueError as e:
        raise TrainingError(str(e)) from None
    return recipe
