"""Training recipes: the seed's baseline, the paper's schedule, and fast fine-tuning (the default).

Every value can be overridden (CLI flags, the app's settings, or ``dataclasses.replace``).
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from googlenet.model import IMAGENET_MEAN, IMAGENET_STD

from .data import CIFAR10_MEAN, CIFAR10_STD


@dataclass(frozen=True)
class Recipe:
    name: str
    optimizer: str  # "adam", "adamw" or "sgd"
    lr: float
    batch_size: int
    epochs: int
    image_size: int
    pretrained: bool  # start from the ImageNet weights (new 10-class head) or from scratch
    momentum: float = 0.9
    weight_decay: float = 0.0
    schedule: str = "constant"  # "constant", "step" (x gamma every step_epochs) or "cosine" (after warm-up)
    step_epochs: int = 8
    gamma: float = 0.96
    warmup_epochs: float = 0.0
    aux_weight: float = 0.0  # > 0 trains the auxiliary classifiers, weighted so (the paper: 0.3)
    random_crop: bool = False
    flip: bool = False
    photometric: bool = False
    mixed_precision: bool = False  # bfloat16 autocast + channels_last, on CUDA
    freeze_backbone: bool = False
    label_smoothing: float = 0.0

    @property
    def mean(self) -> tuple[float, ...]:
        return IMAGENET_MEAN if self.pretrained else CIFAR10_MEAN

    @property
    def std(self) -> tuple[float, ...]:
        return IMAGENET_STD if self.pretrained else CIFAR10_STD


RECIPES: dict[str, Recipe] = {
    # The seed document's baseline, exactly: from scratch, Adam 1e-3, batch 32, 15 epochs, 224 px, no augmentation.
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

RECIPE_FIELDS = {f.name for f in fields(Recipe)}
