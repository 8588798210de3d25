"""The training engine shared by the CLI and the app: data on the device, batched augmentation,
recipes, callbacks, cancellation, crash-safe checkpoints, resume, and DistributedDataParallel."""

from __future__ import annotations

import dataclasses
import gc
import io
import json
import math
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from matplotlib.figure import Figure
from torch import nn

from googlenet import GoogLeNet
from googlenet.device import select_device
from googlenet.hub import WeightsError, parse_weights_spec, resolve_weights
from googlenet.model import default_preprocessing

from .augment import AugmentConfig, BatchPipeline
from .checkpoint import (
    atomic_save_dir, atomic_write_bytes, atomic_write_json, find_checkpoint, load_training_state, copy_model_files, save_training_state,
)
from .data import Cifar10, DataError, download, is_available, load_cifar10, stratified_split, stratified_subset
from .recipes import RECIPES, Recipe

RUN_FILES = ("metrics.json", "run.json", "curves.png", "config.json", "model.safetensors")


class TrainingError(Exception):
    """A run could not start or had to stop; the message says why and what to do."""


class Cancelled(Exception):
    pass


class Callbacks:
    """Override what you need; the CLI prints with tqdm, the app streams to the page."""

    def on_log(self, message: str) -> None: ...

    def on_step(self, epoch: int, step: int, steps: int, loss: float) -> None: ...

    def on_epoch(self, metrics: dict[str, Any], history: list[dict[str, Any]]) -> None: ...


@dataclass
class TrainConfig:
    recipe: str = "finetune"
    data_dir: str = field(default_factory=lambda: os.environ.get("CIFAR10_DIR", "./data"))
    weights: str | None = None  # a Hub repo id, a folder, "none" (from scratch), or None (the recipe's default)
    output: str | None = None
    device: str = "auto"
    epochs: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    image_size: int | None = None
    train_size: int | None = None
    freeze_backbone: bool | None = None
    random_crop: bool | None = None
    flip: bool | None = None
    photometric: bool | None = None
    optimizer: str | None = None
    aux_weight: float | None = None
    val_fraction: float = 0.2
    seed: int = 0
    resume: bool = False
    download: bool = False
    push_to_hub: str | None = None
    evaluate_test: bool = True

    def resolved_recipe(self) -> Recipe:
        if self.recipe not in RECIPES:
            raise TrainingError(f"Unknown recipe '{self.recipe}'; choose one of {', '.join(RECIPES)}.")
        overrides = {k: getattr(self, k) for k in ("epochs", "batch_size", "lr", "image_size", "freeze_backbone",
                                                   "random_crop", "flip", "photometric", "optimizer", "aux_weight")
                     if getattr(self, k) is not None}
        if self.weights is not None:
            overrides["pretrained"] = self.weights.strip().lower() != "none"
        return dataclasses.replace(RECIPES[self.recipe], **overrides)


@dataclass
class RunResult:
    run_dir: Path
    status: str  # "finished" or "cancelled"
    history: list[dict[str, Any]]
    best_val_accuracy: float | None
    test_accuracy: float | None
    message: str


def validate(config: TrainConfig) -> Recipe:
    """Refuse bad settings before anything is written, each with one clear sentence."""
    r = config.resolved_recipe()

    def bad(msg: str) -> None:
        raise TrainingError(msg)

    if not isinstance(r.epochs, int) or r.epochs <= 0:
        bad(f"epochs must be a positive whole number (got {r.epochs}).")
    if not isinstance(r.lr, (int, float)) or not math.isfinite(r.lr) or r.lr <= 0:
        bad(f"The learning rate must be a positive number (got {r.lr}).")
    if not isinstance(r.batch_size, int) or r.batch_size <= 0:
        bad(f"The batch size must be a positive whole number (got {r.batch_size}).")
    if not isinstance(r.image_size, int) or r.image_size < 32:
        bad(f"The image size must be at least 32 px (got {r.image_size}).")
    if r.image_size > 512:
        bad(f"The image size must be at most 512 px (got {r.image_size}).")
    if config.train_size is not None and config.train_size <= 0:
        bad(f"The training-set size must be positive (got {config.train_size}).")
    if r.optimizer not in ("adam", "adamw", "sgd"):
        bad(f"Unknown optimizer '{r.optimizer}'; use adam, adamw or sgd.")
    if not 0 < config.val_fraction < 1:
        bad(f"val_fraction must be between 0 and 1 (got {config.val_fraction}).")
    if not config.download and not Path(config.data_dir).exists():
        bad(f"The data directory {config.data_dir} does not exist. Pass --download to fetch CIFAR-10 there, or "
            "point --data-dir at a folder holding cifar-10-batches-py/.")
    if config.output:
        out = Path(config.output)
        if config.resume:
            if find_checkpoint(out / "last") is None:
                bad(f"Cannot resume: {out} holds no complete 'last' checkpoint.")
        elif out.exists() and any(out.iterdir()):
            bad(f"{out} already holds files; choose another --output, or pass --resume to continue that run.")
    try:
        select_device(config.device)
    except ValueError as e:
        bad(str(e))
    return r


def _lr_factor(recipe: Recipe, step: int, steps_per_epoch: int) -> float:
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


class _Dist:
    """torchrun's environment: rank, world size, and the process group (NCCL on GPUs, gloo on CPU)."""

    def __init__(self, device: torch.device) -> None:
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        self.enabled = self.world > 1
        if self.enabled and not torch.distributed.is_initialized():
            backend = "nccl" if device.type == "cuda" else "gloo"
            if device.type == "cuda":
                torch.cuda.set_device(self.local_rank)
            torch.distributed.init_process_group(backend=backend)

    @property
    def main(self) -> bool:
        return self.rank == 0

    def mean(self, value: float, device: torch.device) -> float:
        if not self.enabled:
            return value
        t = torch.tensor([value], device=device, dtype=torch.float64)
        torch.distributed.all_reduce(t)
        return float(t) / self.world

    def close(self) -> None:
        if self.enabled and torch.distributed.is_initialized():
            torch.distributed.barrier()
            torch.distributed.destroy_process_group()


def build_model(recipe: Recipe, config: TrainConfig, classes: list[str], log: Any) -> GoogLeNet:
    """A 10-class GoogLeNet: from scratch (paper layout), or an ImageNet backbone with a new head."""
    preprocessing = default_preprocessing(recipe.image_size, recipe.image_size)
    preprocessing.update(mean=list(recipe.mean), std=list(recipe.std))
    aux = recipe.aux_weight > 0
    if not recipe.pretrained:
        return GoogLeNet(num_classes=len(classes), aux_logits=aux, variant="paper", class_names=classes,
                         preprocessing=preprocessing)
    if config.weights and config.weights.lower() != "none":
        repo, revision = parse_weights_spec(config.weights)
        try:
            base = GoogLeNet.from_pretrained(repo, revision=revision)
        except WeightsError as e:
            raise TrainingError(f"Could not load the starting weights: {e}") from None
        source = base.weights_source
    else:
        base, info = resolve_weights()
        source = info.description
        if info.kind == "untrained":
            log(f"WARNING: {info.warning} Fine-tuning starts from random weights.")
    log(f"starting weights: {source}")
    model = GoogLeNet(num_classes=len(classes), aux_logits=aux, variant=base.variant,
                      transform_input=base.transform_input, class_names=classes, preprocessing=preprocessing)
    backbone = {k: v for k, v in base.state_dict().items() if not k.startswith(("fc.", "aux1.fc2", "aux2.fc2"))}
    model.load_state_dict(backbone, strict=False)
    return model


def curves_figure(history: list[dict[str, Any]]) -> Figure:
    """Loss and validation accuracy per epoch (the app shows it live; runs save it as curves.png)."""
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


def _plot_curves(history: list[dict[str, Any]], path: Path) -> None:
    buf = io.BytesIO()
    curves_figure(history).savefig(buf, format="png")
    atomic_write_bytes(path, buf.getvalue())


class Trainer:
    """One model, optimiser and data pipeline on one device; ``train_step`` is what benchmarks time."""

    def __init__(self, model: GoogLeNet, recipe: Recipe, device: torch.device, steps_per_epoch: int,
                 dist: _Dist | None = None, seed: int = 0, compile: bool = False) -> None:
        self.recipe, self.device = recipe, device
        self.amp = recipe.mixed_precision and device.type == "cuda"
        if device.type == "cuda":
            torch.backends.cudnn.benchmark = True
        self.model = model.to(device)
        if self.amp:
            self.model = self.model.to(memory_format=torch.channels_last)
        if recipe.freeze_backbone:
            for name, p in self.model.named_parameters():
                p.requires_grad = name.startswith(("fc.", "aux1.fc2", "aux2.fc2"))
        params = [p for p in self.model.parameters() if p.requires_grad]
        if recipe.optimizer == "sgd":
            self.optimizer = torch.optim.SGD(params, lr=recipe.lr, momentum=recipe.momentum,
                                             weight_decay=recipe.weight_decay, nesterov=recipe.momentum > 0)
        elif recipe.optimizer == "adamw":
            self.optimizer = torch.optim.AdamW(params, lr=recipe.lr, weight_decay=recipe.weight_decay)
        else:
            self.optimizer = torch.optim.Adam(params, lr=recipe.lr, weight_decay=recipe.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda s: _lr_factor(recipe, s, steps_per_epoch))
        self.dist = dist
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
        with self._autocast():
            out = self.net(x)
            if isinstance(out, tuple):
                loss = F.cross_entropy(out[0], y, label_smoothing=self.recipe.label_smoothing)
                if self.recipe.aux_weight > 0 and out[1] is not None:
                    loss = loss + self.recipe.aux_weight * (F.cross_entropy(out[1], y) + F.cross_entropy(out[2], y))
            else:
                loss = F.cross_entropy(out, y, label_smoothing=self.recipe.label_smoothing)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.scheduler.step()
        return loss.detach()

    @torch.no_grad()
    def evaluate(self, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 500,
                 cancel: threading.Event | None = None) -> tuple[float, float]:
        """(mean loss, accuracy) on uint8 images, with the plain model (no DDP sync needed)."""
        self.model.eval()
        total_loss, correct = 0.0, 0
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


def _free_memory(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def _is_oom(e: BaseException) -> bool:
    return isinstance(e, torch.cuda.OutOfMemoryError) or (
        isinstance(e, RuntimeError) and ("out of memory" in str(e).lower() or "can't allocate" in str(e).lower()))


def train(config: TrainConfig, callbacks: Callbacks | None = None,
          cancel: threading.Event | None = None) -> RunResult:
    """Run (or resume) one training run; raises ``TrainingError`` with a clear message on failure.

    A cancelled run returns with status "cancelled" and keeps its last complete checkpoint.
    """
    cb = callbacks or Callbacks()
    cancel = cancel or threading.Event()
    recipe = validate(config)
    device = select_device(config.device)
    dist = _Dist(device)
    if dist.enabled and device.type == "cuda":
        device = torch.device("cuda", dist.local_rank)
    run_dir = Path(config.output or f"runs/{config.recipe}-{time.strftime('%Y%m%d-%H%M%S')}")
    log_lines: list[str] = []

    def log(message: str) -> None:
        if dist.main:
            log_lines.append(message)
            cb.on_log(message)

    try:
        return _train(config, recipe, device, dist, run_dir, cb, cancel, log)
    except (DataError, WeightsError) as e:
        raise TrainingError(str(e)) from None
    except Exception as e:
        if _is_oom(e):
            _free_memory(device)
            raise TrainingError(f"Out of {'GPU' if device.type == 'cuda' else ''} memory with batch size "
                                f"{recipe.batch_size} at {recipe.image_size} px. Use a smaller batch size or image "
                                "size; the device has been released.".replace("  ", " ")) from None
        raise
    finally:
        if dist.main and log_lines and run_dir.exists():
            with open(run_dir / "train.log", "a", encoding="utf-8") as f:
                f.write("\n".join(log_lines) + "\n")
        dist.close()


def _train(config: TrainConfig, recipe: Recipe, device: torch.device, dist: _Dist, run_dir: Path,
           cb: Callbacks, cancel: threading.Event, log: Any) -> RunResult:
    if config.download and not is_available(config.data_dir):
        if dist.main:
            log(f"downloading CIFAR-10 into {config.data_dir} ...")
            download(config.data_dir)
        if dist.enabled:
            torch.distributed.barrier()
    data: Cifar10 = load_cifar10(config.data_dir)
    train_idx = stratified_subset(data.train_y, config.train_size, config.seed) if config.train_size else \
        torch.arange(len(data.train_y))
    val_idx, test_idx = stratified_split(data.test_y, config.val_fraction, config.seed)
    per_rank = len(train_idx) // dist.world
    if recipe.batch_size > per_rank:
        raise TrainingError(f"The batch size ({recipe.batch_size}) is larger than the training data "
                            f"({per_rank} images{' per process' if dist.enabled else ''}); use a smaller batch size "
                            "or a larger training set.")
    steps_per_epoch = per_rank // recipe.batch_size
    train_x = data.train_x[train_idx].to(device)
    train_y = data.train_y[train_idx].to(device)
    val_x, val_y = data.test_x[val_idx].to(device), data.test_y[val_idx].to(device)

    torch.manual_seed(config.seed)  # the same settings give the same run
    model = build_model(recipe, config, data.classes, log)
    trainer = Trainer(model, recipe, device, steps_per_epoch, dist, config.seed)
    history: list[dict[str, Any]] = []
    best_val: float | None = None
    start_epoch = 1
    if config.resume:
        last = find_checkpoint(run_dir / "last")
        assert last is not None  # validate() checked
        resumed = GoogLeNet.from_pretrained(last)
        model.load_state_dict(resumed.state_dict())
        state = load_training_state(last / "training_state.pt")
        trainer.optimizer.load_state_dict(state["optimizer"])
        trainer.scheduler.load_state_dict(state["scheduler"])
        trainer.pipeline.generator.set_state(state["generator"])
        history = json.loads(state["history"])
        best_val = state["best_val"]
        start_epoch = int(state["epoch"]) + 1
        log(f"resuming {run_dir} after epoch {start_epoch - 1}")
    if dist.main:
        run_dir.mkdir(parents=True, exist_ok=True)
    settings = {**dataclasses.asdict(recipe), "train_size": len(train_idx), "val_size": len(val_idx),
                "test_size": len(test_idx), "seed": config.seed, "device": str(device), "world_size": dist.world}
    run_info = {"status": "running", "recipe": recipe.name, "settings": settings, "created": time.time()}
    if dist.main:
        atomic_write_json(run_dir / "run.json", run_info)
    log(f"{recipe.name}: {len(train_idx)} training images, {len(val_idx)} validation, {recipe.epochs} epochs of "
        f"{steps_per_epoch} steps, batch {recipe.batch_size}, {recipe.image_size} px on {device}"
        + (f" x {dist.world} processes" if dist.enabled else ""))

    status, message = "finished", "finished"
    try:
        for epoch in range(start_epoch, recipe.epochs + 1):
            trainer.set_train_mode()
            g = torch.Generator().manual_seed(config.seed * 1000 + epoch)
            order = torch.randperm(len(train_idx), generator=g)[: per_rank * dist.world]
            order = order[dist.rank::dist.world].to(device)
            started = time.perf_counter()
            losses = []
            for step in range(steps_per_epoch):
                if cancel.is_set():
                    raise Cancelled()
                idx = order[step * recipe.batch_size:(step + 1) * recipe.batch_size]
                loss = trainer.train_step(train_x[idx], train_y[idx])
                value = float(loss)
                if not math.isfinite(value):
                    raise TrainingError(f"The loss became {value} at epoch {epoch}, step {step + 1}: the run diverged. "
                                        "Lower the learning rate and start again.")
                losses.append(value)
                cb.on_step(epoch, step + 1, steps_per_epoch, value)
            seconds = time.perf_counter() - started
            train_loss = dist.mean(sum(losses) / len(losses), device)
            val_loss, val_acc = trainer.evaluate(val_x, val_y, cancel=cancel)
            metrics = {"epoch": epoch, "train_loss": round(train_loss, 5), "val_loss": round(val_loss, 5),
                       "val_accuracy": round(val_acc, 5),
                       "images_per_s": round(steps_per_epoch * recipe.batch_size * dist.world / seconds, 1),
                       "lr": trainer.optimizer.param_groups[0]["lr"], "seconds": round(seconds, 2)}
            history.append(metrics)
            improved = best_val is None or val_acc > best_val
            best_val = val_acc if improved else best_val
            if dist.main:
                _save_epoch(run_dir, model, trainer, history, best_val, epoch, improved, recipe)
            log(f"epoch {epoch}/{recipe.epochs}: train loss {train_loss:.4f}, val loss {val_loss:.4f}, "
                f"val accuracy {100 * val_acc:.1f}%, {metrics['images_per_s']:.0f} images/s"
                + (" (best so far, saved)" if improved else ""))
            cb.on_epoch(metrics, list(history))
    except Cancelled:
        status = "cancelled"
        message = (f"cancelled; the last complete checkpoint (epoch {history[-1]['epoch']}) is kept" if history
                   else "cancelled before the first epoch finished; nothing was saved")
        log(message)

    test_acc = None
    if status == "finished" and config.evaluate_test and dist.main and find_checkpoint(run_dir):
        best = GoogLeNet.from_pretrained(run_dir)
        model.load_state_dict(best.state_dict())
        _, test_acc = trainer.evaluate(data.test_x[test_idx].to(device), data.test_y[test_idx].to(device))
        log(f"test accuracy of the best checkpoint: {100 * test_acc:.1f}% on {len(test_idx)} images")
    if dist.main and run_dir.exists():
        run_info.update(status=status if history else "empty", finished=time.time(), best_val_accuracy=best_val,
                        test_accuracy=test_acc, epochs_done=len(history), message=message)
        atomic_write_json(run_dir / "run.json", run_info)
    if status == "finished" and config.push_to_hub and dist.main:
        log(f"pushed the best checkpoint: {push_run(run_dir, config.push_to_hub)}")
    return RunResult(run_dir, status, history, best_val, test_acc, message)


def _save_epoch(run_dir: Path, model: GoogLeNet, trainer: Trainer, history: list[dict[str, Any]], best_val: float,
                epoch: int, improved: bool, recipe: Recipe) -> None:
    model.training_info = {"recipe": dataclasses.asdict(recipe), "epoch": epoch,
                           "val_accuracy": history[-1]["val_accuracy"]}

    def write_last(folder: Path) -> None:
        model.save_pretrained(folder)
        save_training_state(folder / "training_state.pt", {
            "optimizer": trainer.optimizer.state_dict(), "scheduler": trainer.scheduler.state_dict(),
            "generator": trainer.pipeline.generator.get_state(), "history": json.dumps(history),
            "best_val": best_val, "epoch": epoch})

    atomic_save_dir(run_dir / "last", write_last)
    if improved:
        copy_model_files(run_dir / "last", run_dir)
    atomic_write_json(run_dir / "metrics.json", history)
    _plot_curves(history, run_dir / "curves.png")


def push_run(run_dir: Path, repo_id: str, token: str | None = None) -> str:
    """Upload a run's best checkpoint; the token is passed through and never logged or stored."""
    from googlenet.hub import is_valid_repo_id

    if not is_valid_repo_id(repo_id or ""):
        raise TrainingError(f"'{repo_id}' is not a valid OWNER/NAME repo id.")
    from huggingface_hub import HfApi

    api = HfApi(token=token or None)
    try:
        api.create_repo(repo_id, exist_ok=True)
        info = api.upload_folder(repo_id=repo_id, folder_path=str(run_dir), allow_patterns=[
            "config.json", "model.safetensors", "metrics.json", "curves.png", "run.json"])
    except Exception as e:
        raise TrainingError(f"Pushing to {repo_id} failed ({type(e).__name__}); check that the token has write "
                            f"access. The run itself is safe in {run_dir}.") from None
    return str(getattr(info, "commit_url", info))
