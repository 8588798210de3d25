"""Training recipes: a plain baseline ("seed"), the paper's schedule, and fast fine-tuning (the default).

Each ``Recipe`` field is a hyperparameter, described once here: its ``help`` and its rule (``check``).
``TrainConfig``'s overrides and the CLI's flags are generated from these fields, so a new
hyperparameter is one edit, and every one of them can be overridden.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any

from googlenet.model import IMAGENET_MEAN, IMAGENET_STD

from .data import CIFAR10_MEAN, CIFAR10_STD

OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = ("constant", "step", "cosine")
MIN_IMAGE_SIZE, MAX_IMAGE_SIZE = 32, 512


def _positive_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v > 0


def _number(low: float, high: float = math.inf, low_open: bool = False) -> Callable[[Any], bool]:
    def ok(v: Any) -> bool:
        return (isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                and (v > low if low_open else v >= low) and v <= high)
    return ok


def hyper(help: str, check: Callable[[Any], bool] | None = None, rule: str = "", choices: tuple[str, ...] = (),
          label: str = "", **kwargs: Any) -> Any:
    """A recipe field with what the CLI and the validator need to know about it."""
    if choices:
        check, rule = (lambda v: v in choices), f"one of {', '.join(choices)}"
    return field(metadata={"help": help, "check": check, "rule": rule, "choices": choices, "label": label}, **kwargs)


@dataclass(frozen=True)
class Recipe:
    name: str = field(metadata={"help": "the recipe's name", "check": None})
    optimizer: str = hyper("optimiser", choices=OPTIMIZERS)
    lr: float = hyper("learning rate", _number(0, low_open=True), "a positive number", label="The learning rate")
    batch_size: int = hyper("images per step", _positive_int, "a positive whole number")
    epochs: int = hyper("passes over the training images", _positive_int, "a positive whole number")
    image_size: int = hyper("pixels per side the network sees", lambda v: _positive_int(v) and
                            MIN_IMAGE_SIZE <= v <= MAX_IMAGE_SIZE, f"at least {MIN_IMAGE_SIZE} px and at most "
                            f"{MAX_IMAGE_SIZE} px")
    pretrained: bool = hyper("start from the ImageNet weights with a new 10-class head (else from scratch)")
    momentum: float = hyper("SGD momentum", _number(0, 1), "between 0 and 1", default=0.9)
    weight_decay: float = hyper("weight decay", _number(0), "zero or more", default=0.0)
    schedule: str = hyper("learning-rate schedule after warm-up", choices=SCHEDULES, default="constant")
    step_epochs: int = hyper("'step' schedule: epochs between decays", _positive_int, "a positive whole number",
                             default=8)
    gamma: float = hyper("'step' schedule: factor per decay", _number(0, 1, low_open=True), "in (0, 1]",
                         default=0.96)
    warmup_epochs: float = hyper("epochs of linear warm-up", _number(0), "zero or more", default=0.0)
    aux_weight: float = hyper("weight of the auxiliary classifiers' losses (the paper: 0.3; 0 = off)", _number(0),
                              "zero or more", default=0.0)
    random_crop: bool = hyper("the paper's random resized crops (8-100%% of the area)", default=False)
    flip: bool = hyper("random horizontal flips", default=False)
    photometric: bool = hyper("random brightness, contrast and saturation", default=False)
    mixed_precision: bool = hyper("bfloat16 autocast + channels_last on CUDA", default=False)
    freeze_backbone: bool = hyper("train only the new classifier head", default=False)
    label_smoothing: float = hyper("label smoothing", _number(0, 1), "between 0 and 1", default=0.0)

    @property
    def mean(self) -> tuple[float, ...]:
        return IMAGENET_MEAN if self.pretrained else CIFAR10_MEAN

    @property
    def std(self) -> tuple[float, ...]:
        return IMAGENET_STD if self.pretrained else CIFAR10_STD

    def problems(self) -> list[str]:
        """One sentence per field that breaks its rule (empty when the recipe is valid)."""
        return [f"{f.metadata['label'] or f.name.replace('_', ' ')} must be {f.metadata['rule']} "
                f"(got {getattr(self, f.name)!r})."
                for f in fields(self) if f.metadata.get("check") and not f.metadata["check"](getattr(self, f.name))]


HYPERPARAMETERS = tuple(f for f in fields(Recipe) if f.name != "name")

RECIPES: dict[str, Recipe] = {
    # "seed": the plain baseline this project started from (a paper review's PyTorch code): from scratch, Adam 1e-3,
    # batch 32, 15 epochs, 224 px, no augmentation.
    "seed": Recipe("seed", optimizer="adam", lr=1e-3, batch_size=32, epochs=15, image_size=224, pretrained=False),
    # Section 6 of the paper: SGD momentum 0.9, lr x0.96 every 8 epochs, aux losses x0.3, its crops and distortions.
    "paper": Recipe("paper", optimizer="sgd", lr=0.01, batch_size=128, epochs=30, image_size=96, pretrained=False,
                    weight_decay=2e-4, schedule="step", step_epochs=8, gamma=0.96, aux_weight=0.3,
                    random_crop=True, flip=True, photometric=True),
    # Fine-tuning from ImageNet: a short warm-up then cosine, bfloat16 + channels_last on CUDA.
    "finetune": Recipe("finetune", optimizer="sgd", lr=0.02, batch_size=64, epochs=3, image_size=64, pretrained=True,
                       weight_decay=5e-4, schedule="cosine", warmup_epochs=0.3, random_crop=False, flip=True,
                       photometric=False, mixed_precision=True, label_smoothing=0.1),
}
