"""``train()``: one run, read top to bottom. The pieces it calls live in files named for what they hold:
``config`` (settings and their checks), ``data``, ``trainer`` (the step, evaluation, model, torchrun),
``checkpoint`` (crash-safe files) and ``plots``."""

from __future__ import annotations

import dataclasses
import json
import math
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from googlenet import GoogLeNet
from googlenet.device import select_device
from googlenet.hub import WeightsError

from . import headonly
from .checkpoint import LAST, copy_model_files, drop_resume_state, find_checkpoint, load_last, save_last
from .config import TrainConfig, TrainingError, validate
from .data import DataError, stratified_subset
from .drift import PROBE_SIZE, DriftTracker
from .probe import ProbeWatcher, probe_picture
from .plots import drift_figure, save_curves, save_figure
from .recipes import Recipe
from .report import predictions, report_from, write_report
from .publish import push_run
from .runfolder import RunFolder, RunSummary
from .sources import decoded_dir, load_source, reload_arguments, run_splits
from .atomic import atomic_write
from .trainer import Cancelled, Distributed, Trainer, build_model, free_memory, is_out_of_memory


class Callbacks:
    """Override what you need; the CLI prints with tqdm, the app streams to the page."""

    def on_log(self, message: str) -> None: ...

    def on_step(self, epoch: int, step: int, steps: int, loss: float) -> None: ...

    def on_epoch(self, metrics: dict[str, Any], history: list[dict[str, Any]]) -> None: ...


def train(config: TrainConfig, callbacks: Callbacks | None = None,
          cancel: threading.Event | None = None) -> RunSummary:
    """Run (or resume) one training run; raises ``TrainingError`` with a clear message on failure.

    A cancelled run (or one stopped at ``max_seconds``) returns with status "cancelled" and keeps its
    best and last complete checkpoints.
    """
    recipe = validate(config)
    dist = Distributed(select_device(config.device))
    run = _RunWriter(config.output_dir(), dist.main, callbacks or Callbacks())
    stop = _Stop(cancel or threading.Event(), config.max_seconds)
    try:
        data = _Data(config, recipe, dist, run.log)
        steps = data.steps_per_epoch(recipe.batch_size)
        torch.manual_seed(config.seed)  # the same settings give the same run
        model, start = build_model(recipe, config.weights, data.classes, run.log)
        data.head_only = config.cache_features and headonly.applies(recipe) and not dist.enabled
        trainer = (headonly.HeadTrainer if data.head_only else Trainer)(model, recipe, dist.device, steps, dist,
                                                                        config.seed)
        if data.head_only:  # the frozen backbone runs once per picture, not once per picture and epoch
            data.use_features(model, recipe, run.log, stop.check)
        progress = _resume(run.path, model, trainer, run.log) if config.resume else _Progress()
        shown = _probe_input(data, config, dist)  # a bad probe is refused before anything is written
        run.start(recipe, data, config, dist, start)
        drift = _drift_tracker(model, trainer, data, config, dist, run)
        probe = _probe_watcher(model, trainer, shown, config, run) if shown is not None else None
        try:
            for epoch in range(progress.epoch + 1, recipe.epochs + 1):
                _epoch(epoch, model, trainer, data, config, stop, run, progress, drift, probe)
            status, message = "finished", "finished"
        except Cancelled as e:
            status, message = "cancelled", progress.cancel_message(str(e))
            run.log(message)
        tested = status == "finished" and config.evaluate_test and dist.main
        test_acc = _test(run.path, model, trainer, data, run.log) if tested else None
        run.finish(status, message, progress, test_acc, keep_resume_state=config.keep_resume_state)
        if status == "finished" and config.push_to_hub and dist.main:
            run.log(f"pushed the best checkpoint: {push_run(run.path, config.push_to_hub, token=None)}")
        return RunSummary(run.path.name, run.path, status, progress.best_val, test_acc, len(progress.history), message,
                          progress.history)
    except (DataError, WeightsError) as e:
        raise TrainingError(str(e)) from None
    except Exception as e:
        if not is_out_of_memory(e):
            raise
        free_memory(dist.device)
        where = "GPU memory" if dist.device.type == "cuda" else "memory"
        raise TrainingError(f"Out of {where} with batch size {recipe.batch_size} at {recipe.image_size} px. Use a "
                            "smaller batch size or image size; the device has been released.") from None
    finally:
        run.close()
        dist.close()


def _epoch(epoch: int, model: GoogLeNet, trainer: Trainer, data: _Data, config: TrainConfig, stop: _Stop,
           run: _RunWriter, progress: _Progress, drift: DriftTracker | None, probe: ProbeWatcher | None) -> None:
    """One epoch: train, validate, checkpoint, then the drift map and the probe's view; ``Cancelled`` to stop."""
    recipe, dist = trainer.recipe, data.dist
    started = time.perf_counter()
    train_loss = dist.mean(_train_epoch(trainer, data, epoch, data.steps_per_epoch(recipe.batch_size), config.seed,
                                        dist, stop, run))
    seconds = time.perf_counter() - started
    val_loss, val_acc = trainer.evaluate(data.val_x, data.val_y, stop.event)
    improved = progress.record({
        "epoch": epoch, "train_loss": round(train_loss, 5), "val_loss": round(val_loss, 5),
        "val_accuracy": round(val_acc, 5), "images_per_s": round(data.per_rank_images(recipe.batch_size)
                                                                 * dist.world / seconds, 1),
        "lr": trainer.optimizer.param_groups[0]["lr"], "seconds": round(seconds, 2)})
    run.save_epoch(model, trainer, progress, improved, recipe)
    if drift is not None:
        drift.measure(model, epoch)
        run.folder.write_drift(drift.record())
    if probe is not None:
        probe.look(model, epoch)
        run.folder.write_probe(probe.record())
    run.on_epoch(progress, recipe.epochs, improved)
    stop.check()


# ----------------------------------------------------------------------------- the pieces train() calls

class _Stop:
    """Cancel (a visitor, a closed page) or the wall-clock limit: checked before every step."""

    def __init__(self, event: threading.Event, max_seconds: float | None) -> None:
        self.event = event
        self.deadline = time.monotonic() + max_seconds if max_seconds else math.inf
        self.max_seconds = max_seconds

    def check(self) -> None:
        if self.event.is_set():
            raise Cancelled("cancelled")
        if time.monotonic() > self.deadline:
            raise Cancelled(f"stopped at the time limit of {self.max_seconds:.0f} s")


class _Data:
    """The run's pictures on its device (``sources``): the (sub)set to train on, the validation split, the
    held-out test split, and the split the test pictures are drawn from (``all_test_x``)."""

    def __init__(self, config: TrainConfig, recipe: Recipe, dist: Distributed, log: Any) -> None:
        if dist.enabled and not dist.main:
            dist.barrier()  # the main process downloads and decodes first; the others then read its cache
        source = load_source(config.dataset, data_dir=config.data_dir, image_size=recipe.image_size,
                             download=config.download, cache=decoded_dir(config.data_dir), log=log,
                             image_column=config.image_column, label_column=config.label_column,
                             train_split=config.train_split, test_split=config.test_split,
                             token=False if config.anonymous_hub else None)
        if dist.enabled and dist.main:
            dist.barrier()
        parts = run_splits(source, config.val_fraction, config.seed)
        train_idx = stratified_subset(parts.train_y, config.train_size, config.seed) if config.train_size else \
            torch.arange(len(parts.train_y))
        self.test_idx = parts.test_idx
        if config.test_size and config.test_size < len(self.test_idx):
            self.test_idx = self.test_idx[stratified_subset(parts.pool_y[self.test_idx], config.test_size,
                                                            config.seed)]
        device, self.dist, self.classes = dist.device, dist, source.classes
        self.source = {**source.source, "held_out": parts.described, "load": reload_arguments(config, source)}
        self.train_x, self.train_y = parts.train_x[train_idx].to(device), parts.train_y[train_idx].to(device)
        self.val_x, self.val_y = parts.val_x.to(device), parts.val_y.to(device)
        self.test_x, self.test_y = parts.pool_x[self.test_idx], parts.pool_y[self.test_idx]
        self.all_test_x = parts.pool_x  # the report's top losses point into the split the test is drawn from
        self.per_rank = len(train_idx) // dist.world
        self.head_only = False  # set when the backbone is frozen and its features are cached

    def use_features(self, model: GoogLeNet, recipe: Recipe, log: Any, check: Any) -> None:
        """Train and validate on the frozen backbone's cached features instead of pictures."""
        self.train_x = headonly.cached_features(model, self.train_x, recipe, self.train_y.device, log, check=check)
        self.val_x = headonly.cached_features(model, self.val_x, recipe, self.val_y.device, log, train=False,
                                              check=check)

    def steps_per_epoch(self, batch_size: int) -> int:
        if batch_size > self.per_rank:
            raise TrainingError(f"The batch size ({batch_size}) is larger than the training data ({self.per_rank} "
                                f"images{' per process' if self.dist.enabled else ''}); use a smaller batch size or "
                                "a larger training set.")
        return self.per_rank // batch_size

    def per_rank_images(self, batch_size: int) -> int:
        return self.steps_per_epoch(batch_size) * batch_size

    def sizes(self) -> dict[str, int]:
        return {"train_size": len(self.train_y), "val_size": len(self.val_y), "test_size": len(self.test_y)}

    def epoch_order(self, epoch: int, seed: int) -> torch.Tensor:
        """This rank's shuffled indices for one epoch; the same for the same seed and epoch (so resume matches)."""
        g = torch.Generator().manual_seed(seed * 1000 + epoch)
        order = torch.randperm(len(self.train_y), generator=g)[: self.per_rank * self.dist.world]
        return order[self.dist.rank::self.dist.world].to(self.train_x.device)


def _train_epoch(trainer: Trainer, data: _Data, epoch: int, steps: int, seed: int, dist: Distributed, stop: _Stop,
                 run: _RunWriter) -> float:
    """One pass over this rank's share of the data; returns the mean training loss."""
    trainer.set_train_mode()
    order, batch, losses = data.epoch_order(epoch, seed), trainer.recipe.batch_size, []
    for step in range(steps):
        stop.check()
        idx = order[step * batch:(step + 1) * batch]
        value = float(trainer.train_step(data.train_x[idx], data.train_y[idx]))
        if not math.isfinite(value):
            raise TrainingError(f"The loss became {value} at epoch {epoch}, step {step + 1}: the run diverged. Lower "
                                "the learning rate and start again.")
        losses.append(value)
        run.callbacks.on_step(epoch, step + 1, steps, value)
    return sum(losses) / len(losses)


@dataclass
class _Progress:
    """What a run has done so far; saved with every checkpoint so that ``--resume`` continues exactly."""

    history: list[dict[str, Any]] = field(default_factory=list)
    best_val: float | None = None

    @property
    def epoch(self) -> int:
        return self.history[-1]["epoch"] if self.history else 0

    def record(self, metrics: dict[str, Any]) -> bool:
        """Add an epoch's metrics; True when its validation accuracy is the best so far."""
        self.history.append(metrics)
        improved = self.best_val is None or metrics["val_accuracy"] > self.best_val
        if improved:
            self.best_val = metrics["val_accuracy"]
        return improved

    def cancel_message(self, reason: str) -> str:
        if self.history:
            return f"{reason}; the last complete checkpoint (epoch {self.epoch}) is kept"
        return f"{reason} before the first epoch finished; nothing was saved"


def _resume(run_dir: Path, model: GoogLeNet, trainer: Trainer, log: Any) -> _Progress:
    """Weights, optimiser, schedule, augmentation random state and history from the last checkpoint."""
    folder, state = load_last(run_dir)
    model.load_state_dict(GoogLeNet.from_pretrained(folder).state_dict())
    trainer.optimizer.load_state_dict(state["optimizer"])
    trainer.scheduler.load_state_dict(state["scheduler"])
    trainer.pipeline.generator.set_state(state["generator"])
    torch.set_rng_state(state["torch_rng"])  # dropout continues exactly where it stopped
    progress = _Progress(json.loads(state["history"]), state["best_val"])
    log(f"resuming {run_dir} after epoch {progress.epoch}")
    return progress


def _drift_tracker(model: GoogLeNet, trainer: Trainer, data: _Data, config: TrainConfig, dist: Distributed,
                   run: _RunWriter) -> DriftTracker | None:
    """The run's drift map, measured after every epoch; none for a frozen backbone (it cannot move: that is
    written down instead), a resumed run (its starting weights are gone) or several processes."""
    if not dist.main:
        return None
    if data.head_only or trainer.recipe.freeze_backbone:
        run.folder.write_drift({"note": "backbone frozen: only the classifier trains, so no branch can move"})
        return None
    if config.resume or dist.enabled:
        return None
    recipe = trainer.recipe
    return DriftTracker(model, data.all_test_x[:PROBE_SIZE].to(dist.device), trainer.pipeline.eval,
                        settings=(recipe.image_size, recipe.mean, recipe.std))


def _probe_input(data: _Data, config: TrainConfig, dist: Distributed) -> tuple[torch.Tensor, str] | None:
    """The run's probe picture and its description; none for a resumed run or several processes, like the drift
    map."""
    if not dist.main or config.resume or dist.enabled:
        return None
    try:
        return probe_picture(data.all_test_x, config.probe_index, config.probe_image, data.source["name"])
    except ValueError as e:
        raise TrainingError(str(e)) from None


def _probe_watcher(model: GoogLeNet, trainer: Trainer, shown: tuple[torch.Tensor, str], config: TrainConfig,
                   run: _RunWriter) -> ProbeWatcher:
    """The live inside view of the run's probe picture (also for a frozen backbone: its head still learns)."""
    picture, description = shown
    image = Image.fromarray(picture.permute(1, 2, 0).numpy())
    atomic_write(run.path / RunFolder.PROBE_PICTURE, lambda staged: image.save(staged, format="PNG"))
    start = "ImageNet" if trainer.recipe.pretrained else "the random start"
    return ProbeWatcher(model, picture, trainer.pipeline.eval, config.probe_module, description, start)


def _test(run_dir: Path, model: GoogLeNet, trainer: Trainer, data: _Data, log: Any) -> float | None:
    """The best checkpoint on the held-out test split (never seen during the run): its accuracy, and the
    report of what it gets wrong (report.json, confusion.png, top_losses.png), from the same predictions."""
    best = find_checkpoint(run_dir)
    if best is None:
        return None
    model.load_state_dict(GoogLeNet.from_pretrained(best).state_dict())
    if data.head_only:  # the frozen backbone's test features are cached too: only the head runs
        probs = trainer.probabilities(headonly.cached_features(model, data.test_x, trainer.recipe, trainer.device,
                                                              log, train=False))
    else:
        probs = predictions(model, data.test_x, trainer.device)
    report = report_from(probs, data.test_y, data.test_idx, data.classes)
    write_report(run_dir, report, data.all_test_x)
    return report.accuracy


class _RunWriter:
    """Writes the run's folder as it trains (rank 0 only): record, checkpoints, metrics, curves, log."""

    def __init__(self, path: Path, main: bool, callbacks: Callbacks) -> None:
        self.folder = RunFolder(path)
        self.path, self.main, self.callbacks = self.folder.path, main, callbacks
        self.lines: list[str] = []
        self.info: dict[str, Any] = {}

    def log(self, message: str) -> None:
        if self.main:
            self.lines.append(message)
            self.callbacks.on_log(message)

    def start(self, recipe: Recipe, data: _Data, config: TrainConfig, dist: Distributed,
              start: dict[str, str]) -> None:
        settings = {**dataclasses.asdict(recipe), **data.sizes(), "seed": config.seed,
                    "val_fraction": config.val_fraction, "device": str(dist.device),
                    "world_size": dist.world}
        if config.resume and self.folder.info() is not None:
            start = self.folder.start()  # a resumed run keeps its first start (None: it recorded none)
        self.info = {"status": "running", "recipe": recipe.name, "settings": settings, "created": time.time(),
                     **({"start": start} if start else {}), "data": data.source,
                     **{k: getattr(config, k) for k in ("owner", "address") if getattr(config, k)}}
        if self.main:
            self.path.mkdir(parents=True, exist_ok=True)
            self.folder.write_info(self.info)
        steps = data.steps_per_epoch(recipe.batch_size)
        self.log(f"{recipe.name}: {data.sizes()['train_size']} training images, {data.sizes()['val_size']} validation, "
                 f"{recipe.epochs} epochs of {steps} steps, batch {recipe.batch_size}, {recipe.image_size} px on "
                 f"{dist.device}" + (f" x {dist.world} processes" if dist.enabled else ""))

    def save_epoch(self, model: GoogLeNet, trainer: Trainer, progress: _Progress, improved: bool,
                   recipe: Recipe) -> None:
        if not self.main:
            return
        model.training_info = {"recipe": dataclasses.asdict(recipe), "epoch": progress.epoch,
                               "val_accuracy": progress.history[-1]["val_accuracy"]}
        save_last(self.path, model, {
            "optimizer": trainer.optimizer.state_dict(), "scheduler": trainer.scheduler.state_dict(),
            "generator": trainer.pipeline.generator.get_state(), "torch_rng": torch.get_rng_state(),
            "history": json.dumps(progress.history),
            "best_val": progress.best_val, "epoch": progress.epoch})
        if improved:
            copy_model_files(find_checkpoint(self.path / LAST), self.path)
        self.folder.write_metrics(progress.history)  # the pictures are drawn when the run ends (finish)

    def on_epoch(self, progress: _Progress, epochs: int, improved: bool) -> None:
        m = progress.history[-1]
        self.log(f"epoch {m['epoch']}/{epochs}: train loss {m['train_loss']:.4f}, val loss {m['val_loss']:.4f}, val "
                 f"accuracy {100 * m['val_accuracy']:.1f}%, {m['images_per_s']:.0f} images/s"
                 + (" (best so far, saved)" if improved else ""))
        self.callbacks.on_epoch(m, list(progress.history))

    def finish(self, status: str, message: str, progress: _Progress, test_acc: float | None,
               keep_resume_state: bool) -> None:
        if test_acc is not None:
            self.log(f"test accuracy of the best checkpoint: {100 * test_acc:.1f}%")
        if not (self.main and self.path.exists()):
            return
        if not keep_resume_state:
            drop_resume_state(self.path)
        # Drawn once at the end, not every epoch: matplotlib takes ~0.4 s a picture, a fifth of a small run.
        if progress.history:
            save_curves(progress.history, self.path / RunFolder.CURVES)
        if (drift := self.folder.drift()) and drift.get("epochs"):
            save_figure(drift_figure(drift), self.path / RunFolder.DRIFT_MAP)
        self.info.update(status=status if progress.history else "empty", finished=time.time(),
                         best_val_accuracy=progress.best_val, test_accuracy=test_acc,
                         epochs_done=len(progress.history), message=message)
        self.folder.write_info(self.info)

    def close(self) -> None:
        if self.main and self.lines and self.path.exists():
            with open(self.path / RunFolder.LOG, "a", encoding="utf-8") as f:
                f.write("\n".join(self.lines) + "\n")
