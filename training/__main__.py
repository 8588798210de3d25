"""``python -m training``: fine-tune GoogLeNet on CIFAR-10 from the command line (also under torchrun)."""

from __future__ import annotations

import argparse
import math
import os
import sys
import threading

from .engine import Callbacks, TrainConfig, TrainingError, train
from .recipes import RECIPES


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a whole number") from None
    return value


def _float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a number") from None


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m training", description="Fine-tune GoogLeNet on CIFAR-10.")
    p.add_argument("--recipe", choices=sorted(RECIPES), default="finetune",
                   help="seed: the seed's baseline; paper: the paper's SGD schedule; finetune: from ImageNet (default)")
    p.add_argument("--data-dir", default=os.environ.get("CIFAR10_DIR", "./data"),
                   help="folder holding cifar-10-batches-py/ (default: $CIFAR10_DIR or ./data)")
    p.add_argument("--weights", default=None,
                   help="starting weights: a Hub repo id (OWNER/NAME[@rev]), a folder, or 'none' for from scratch")
    p.add_argument("--epochs", type=_positive_int)
    p.add_argument("--batch-size", type=_positive_int)
    p.add_argument("--lr", type=_float)
    p.add_argument("--image-size", type=_positive_int)
    p.add_argument("--train-size", type=_positive_int, help="a stratified subset of the training set")
    p.add_argument("--output", default=None, help="run folder (default: runs/RECIPE-TIMESTAMP)")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda", "mps"))
    p.add_argument("--download", action="store_true", help="download CIFAR-10 (170 MB) if it is missing")
    p.add_argument("--resume", action="store_true", help="continue the run in --output from its last checkpoint")
    p.add_argument("--push-to-hub", metavar="REPO_ID", help="push the best checkpoint (token from HF_TOKEN)")
    p.add_argument("--freeze-backbone", action="store_true", default=None, help="train only the new head")
    p.add_argument("--optimizer", choices=("sgd", "adam", "adamw"))
    p.add_argument("--no-crop", dest="random_crop", action="store_false", default=None)
    p.add_argument("--crop", dest="random_crop", action="store_true", help="the paper's random resized crops")
    p.add_argument("--no-flip", dest="flip", action="store_false", default=None)
    p.add_argument("--no-photometric", dest="photometric", action="store_false", default=None)
    p.add_argument("--photometric", dest="photometric", action="store_true")
    p.add_argument("--seed", type=int, default=0)
    return p


class TqdmCallbacks(Callbacks):
    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.bar = None

    def on_log(self, message: str) -> None:
        if self.enabled:
            from tqdm import tqdm

            tqdm.write(message)

    def on_step(self, epoch: int, step: int, steps: int, loss: float) -> None:
        if not self.enabled:
            return
        from tqdm import tqdm

        if self.bar is None or step == 1:
            if self.bar is not None:
                self.bar.close()
            self.bar = tqdm(total=steps, desc=f"epoch {epoch}", unit="step", leave=False)
        self.bar.update(1)
        self.bar.set_postfix(loss=f"{loss:.4f}")
        if step == steps:
            self.bar.close()
            self.bar = None


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.lr is not None and not (math.isfinite(args.lr) and args.lr > 0):
        print(f"error: the learning rate must be a positive number (got {args.lr})", file=sys.stderr)
        return 2
    config = TrainConfig(
        recipe=args.recipe, data_dir=args.data_dir, weights=args.weights, output=args.output, device=args.device,
        epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, image_size=args.image_size,
        train_size=args.train_size, freeze_backbone=args.freeze_backbone, random_crop=args.random_crop,
        flip=args.flip, photometric=args.photometric, optimizer=args.optimizer, seed=args.seed, resume=args.resume,
        download=args.download, push_to_hub=args.push_to_hub)
    main_rank = os.environ.get("RANK", "0") == "0"
    cancel = threading.Event()
    try:
        result = train(config, TqdmCallbacks(main_rank), cancel)
    except TrainingError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted; the last complete checkpoint is kept", file=sys.stderr)
        return 130
    if main_rank:
        best = f"{100 * result.best_val_accuracy:.1f}%" if result.best_val_accuracy is not None else "n/a"
        print(f"{result.status}: {result.run_dir} (best val accuracy {best})")
    return 0 if result.status == "finished" else 1


if __name__ == "__main__":
    sys.exit(main())
