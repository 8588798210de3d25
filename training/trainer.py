"""One training step and one evaluation on one device, and what they need: the starting model, the
learning-rate schedule, the distributed setup under torchrun, and the memory a run will take."""

from __future__ import annotations

import gc
import math
import threading
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from googlenet import GoogLeNet
from googlenet.hub import WeightsError
from googlenet.model import default_preprocessing
from googlenet.weights import load_weights

from . import env
from .augment import AugmentConfig, BatchPipeline
from .env import Ranks, torchrun
from .config import TrainingError
from .recipes import Recipe

# Activation memory of one image at 224 px, float32, in training: the outputs of every convolution,
# BatchNorm and pool sum to 31.5 MB (measured with forward hooks, both layouts), and autograd holds
# about as much again (saved inputs, gradient buffers during backward). It scales with the image's area.
TRAIN_ACTIVATION_BYTES_224 = 59_000_000
EVAL_ACTIVATION_BYTES_224 = 6_000_000  # the largest few tensors alive at once without autograd
MODEL_STATE_BYTES = 7_000_000 * 4 * 4  # weights, gradients and two optimiser moments


class Cancelled(Exception):
    """The run was asked to stop (a visitor's Cancel, a closed page, a time limit)."""


def train_memory_bytes(batch_size: int, image_size: int) -> int:
    """A run's estimated peak memory: activations of one training batch plus the model's state."""
    return int(batch_size * TRAIN_ACTIVATION_BYTES_224 * (image_size / 224) ** 2) + MODEL_STATE_BYTES


def eval_batch_size(image_size: int, budget_bytes: int = 1 << 30) -> int:
    """Evaluation batches sized so their activations stay within ``budget_bytes`` whatever the image size."""
    return max(1, min(500, int(budget_bytes / (EVAL_ACTIVATION_BYTES_224 * (image_size / 224) ** 2))))


def lr_factor(recipe: Recipe, step: int, steps_per_epoch: int) -> float:
    """The schedule: linear warm-up, then constant, step decay (the paper's x0.96 every 8 epochs) or cosine."""
    total = recipe.epochs * steps_per_epoch
    warm = int(recipe.warmup_epochs * steps_per_epoch)
    if step < warm:
        return (step + 1) / warm
    if recipe.schedule == "step":
        return recipe.gamma ** ((step // steps_per_epoch) // recipe.step_epochs)
    if recipe.schedule == "cosine":
        progress = (step - warm) / max(1, total - warm)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
    return 1.0


class Distributed:
    """torchrun's environment: rank, world size, and the process group (NCCL on GPUs, gloo on CPU)."""

    def __init__(self, device: torch.device, ranks: Ranks | None = None) -> None:
        ranks = ranks or torchrun()
        self.world, self.rank, self.local_rank = ranks.world, ranks.rank, ranks.local_rank
        self.enabled = self.world > 1
        self.device = torch.device("cuda", self.local_rank) if self.enabled and device.type == "cuda" else device
        if self.enabled and not torch.distributed.is_initialized():
            if device.type == "cuda":
                torch.cuda.set_device(self.local_rank)
            torch.distributed.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")

    @property
    def main(self) -> bool:
        return self.rank == 0

    def mean(self, value: float) -> float:
        if not self.enabled:
            return value
        t = torch.tensor([value], device=self.device, dtype=torch.float64)
        torch.distributed.all_reduce(t)
        return float(t) / self.world

    def barrier(self) -> None:
        if self.enabled:
            torch.distributed.barrier()

    def close(self) -> None:
        if self.enabled and torch.distributed.is_initialized():
            torch.distributed.barrier()
            torch.distributed.destroy_process_group()


FROM_SCRATCH = {"weights": "none"}  # the start a run from scratch records (training/runfolder.py, RunFolder.start)


def build_model(recipe: Recipe, weights: str | None, classes: list[str],
                log: Callable[[str], None]) -> tuple[GoogLeNet, dict[str, str]]:
    """A GoogLeNet for ``classes``: from scratch (paper layout), or an ImageNet backbone with a new head; and the
    start the run records: ``FROM_SCRATCH``, or the weights' label and their backbone's fingerprint as loaded
    (what the app compares a run with, to show what fine-tuning rewired)."""
    preprocessing = default_preprocessing(recipe.image_size, recipe.image_size)
    preprocessing.update(mean=list(recipe.mean), std=list(recipe.std))
    if not recipe.pretrained:
        return GoogLeNet(num_classes=len(classes), aux_logits=recipe.aux_weight > 0, variant="paper",
                         class_names=classes, preprocessing=preprocessing), dict(FROM_SCRATCH)
    try:
        model, source = load_weights(None if weights is None or weights.lower() == "none" else weights,
                                     chain_start=env.weights())
    except WeightsError as e:
        raise TrainingError(f"Could not load the starting weights: {e}") from None
    if source.warning:
        log(f"WARNING: {source.warning} Fine-tuning starts from random weights.")
    log(f"starting weights: {source.description}")
    start = {"weights": source.description, "fingerprint": model.backbone_fingerprint()}
    if recipe.aux_weight <= 0 or model.aux1 is None:
        model.aux_logits, model.aux1, model.aux2 = False, None, None
    model.reset_classifier(len(classes), classes)
    model.preprocessing = preprocessing
    model.weights_source = source.description
    return model, start


def free_memory(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def is_out_of_memory(e: BaseException) -> bool:
    return isinstance(e, torch.cuda.OutOfMemoryError) or (
        isinstance(e, RuntimeError) and ("out of memory" in str(e).lower() or "can't allocate" in str(e).lower()))


class Trainer:
    """One model, optimiser and data pipeline on one device; ``train_step`` is what benchmarks time."""

    def __init__(self, model: GoogLeNet, recipe: Recipe, device: torch.device, steps_per_epoch: int,
                 dist: Distributed | None = None, seed: int = 0, compile: bool = False) -> None:
        self.recipe, self.device = recipe, device
        self.amp = recipe.mixed_precision and device.type == "cuda"
        if device.type == "cuda":
            torch.backends.cudnn.benchmark = True
        self.model = model.to(device)
        if self.amp:
            self.model = self.model.to(memory_format=torch.channels_last)
        if recipe.freeze_backbone:
            heads = {id(p) for layer in self.model.classifier_heads() for p in layer.parameters()}
            for p in self.model.parameters():
                p.requires_grad = id(p) in heads
        params = [p for p in self.model.parameters() if p.requires_grad]
        if recipe.optimizer == "sgd":
            self.optimizer = torch.optim.SGD(params, lr=recipe.lr, momentum=recipe.momentum,
                                             weight_decay=recipe.weight_decay, nesterov=recipe.momentum > 0)
        else:
            optimizer = torch.optim.AdamW if recipe.optimizer == "adamw" else torch.optim.Adam
            self.optimizer = optimizer(params, lr=recipe.lr, weight_decay=recipe.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda s: lr_factor(recipe, s, steps_per_epoch))
        self.net: nn.Module = self.model
        if dist is not None and dist.enabled:
            self.net = nn.parallel.DistributedDataParallel(
                self.model, device_ids=[device.index] if device.type == "cuda" else None)
        if compile:
            self.net = torch.compile(self.net)
        aug = AugmentConfig(image_size=recipe.image_size, random_crop=recipe.random_crop, flip=recipe.flip,
                            photometric=recipe.photometric)
        self.pipeline = BatchPipeline(aug, recipe.mean, recipe.std, device, seed=seed + (dist.rank if dist else 0))

    def _autocast(self):  # noqa: ANN202
        return torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.amp)

    def set_train_mode(self) -> None:
        self.model.train()
        if self.recipe.freeze_backbone:  # frozen layers keep their ImageNet statistics
            for m in self.model.modules():
                if isinstance(m, nn.BatchNorm2d):
                    m.eval()

    def train_step(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """One optimiser step on a uint8 batch; returns the loss (a device tensor, not synchronised)."""
        x = self.pipeline.train(images)
        if self.amp:
            x = x.contiguous(memory_format=torch.channels_last)
        y = labels.to(self.device, non_blocking=True)
        smoothing = self.recipe.label_smoothing
        with self._autocast():
            out = self.net(x)
            if isinstance(out, tuple):
                loss = F.cross_entropy(out[0], y, label_smoothing=smoothing)
                if self.recipe.aux_weight > 0 and out[1] is not None:
                    loss = loss + self.recipe.aux_weight * (F.cross_entropy(out[1], y) + F.cross_entropy(out[2], y))
            else:
                loss = F.cross_entropy(out, y, label_smoothing=smoothing)
        return self.step(loss)

    def step(self, loss: torch.Tensor) -> torch.Tensor:
        """Backward, one optimiser and schedule step; returns the detached loss."""
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.scheduler.step()
        return loss.detach()

    @torch.no_grad()
    def evaluate(self, images: torch.Tensor, labels: torch.Tensor, cancel: threading.Event | None = None
                 ) -> tuple[float, float]:
        """(mean loss, accuracy) on uint8 images, with the plain model (no DDP sync needed)."""
        self.model.eval()
        total_loss, correct = 0.0, 0
        batch_size = eval_batch_size(self.recipe.image_size)
        for i in range(0, len(labels), batch_size):
            if cancel is not None and cancel.is_set():
                raise Cancelled()
            x = self.pipeline.eval(images[i:i + batch_size])
            if self.amp:
                x = x.contiguous(memory_format=torch.channels_last)
            y = labels[i:i + batch_size].to(self.device)
            with self._autocast():
                logits = self.model(x).float()
            total_loss += float(F.cross_entropy(logits, y, reduction="sum"))
            correct += int((logits.argmax(1) == y).sum())
        n = max(1, len(labels))
        return total_loss / n, correct / n
