"""``python -m training``: fine-tune GoogLeNet on CIFAR-10 from the command line (also under torchrun).

The hyperparameter flags are generated from the ``Recipe`` fields (``--epochs``, ``--lr``,
``--label-smoothing``, ``--flip/--no-flip``, ...), so every field of a recipe can be overridden here.
"""

from __future__ import annotations

import argparse
import sys
import threading
import typing

from googlenet import MODULE_NAMES

from . import env
from .config import TrainConfig, TrainingError
from .env import runs_dir
from .loop import Callbacks, train
from .probe import PROBE_MODULE
from .recipes import HYPERPARAMETERS, RECIPES, Recipe

ALIASES = {"random_crop": ["--crop"]}  # the flag names this CLI had before flags were generated


def _parse(kind: type) -> typing.Callable[[str], typing.Any]:
    what = "a whole number" if kind is int else "a number"

    def parse(text: str) -> typing.Any:
        try:
            return kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"'{text}' is not {what}") from None
    return parse


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m training", description="Fine-tune GoogLeNet on CIFAR-10, a Hub "
                                "image-classification dataset, or a folder of your photos.")
    p.add_argument("--recipe", choices=sorted(RECIPES), default="finetune",
                   help="seed: a plain baseline from scratch (Adam, 224 px); paper: the paper's SGD schedule; "
                        "finetune: from ImageNet (default)")
    p.add_argument("--dataset", default="cifar10",
                   help="cifar10 (default), a Hub dataset OWNER/NAME[@revision], or a folder or .zip of photos laid "
                        "out as class_name/picture.jpg")
    p.add_argument("--image-column", help="a Hub dataset's image column (default: found by its type)")
    p.add_argument("--label-column", help="a Hub dataset's label column (default: its ClassLabel or 'label')")
    p.add_argument("--train-split", default="train", help="a Hub dataset's training split (default: train)")
    p.add_argument("--test-split", default="test", help="a Hub dataset's test split (default: test; a missing "
                   "split is a stratified part of train)")
    p.add_argument("--data-dir", default=env.data_dir(),
                   help="folder holding cifar-10-batches-py/, and decoded Hub datasets (default: $CIFAR10_DIR or "
                        "./data)")
    p.add_argument("--weights", default=None,
                   help="starting weights: a Hub repo id (OWNER/NAME[@rev]), a folder, or 'none' for from scratch")
    p.add_argument("--train-size", type=_parse(int), help="a stratified subset of the training set")
    p.add_argument("--test-size", type=_parse(int), help="test on a stratified subset of the held-out split")
    p.add_argument("--output", default=None, help="run folder (default: $RUNS_DIR/RECIPE-TIMESTAMP, RUNS_DIR=runs)")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda", "mps"))
    p.add_argument("--download", action="store_true", help="download CIFAR-10 if it is missing (uoft-cs/cifar10 "
                   "from the Hub, else the Toronto archive, 170 MB)")
    p.add_argument("--resume", action="store_true", help="continue the run in --output from its last checkpoint")
    p.add_argument("--push-to-hub", metavar="REPO_ID", help="push the best checkpoint (token from HF_TOKEN)")
    p.add_argument("--seed", type=_parse(int), default=0)
    p.add_argument("--no-feature-cache", dest="cache_features", action="store_false",
                   help="with --freeze-backbone: run the backbone every epoch instead of caching its features")
    p.add_argument("--probe-index", type=_parse(int), help="the probe picture watched after every epoch (probe.json): "
                   "test picture N of the dataset (default 0)")
    p.add_argument("--probe-image", help="... or a picture file of your own instead")
    p.add_argument("--probe-module", default=PROBE_MODULE, choices=MODULE_NAMES, help="where the probe's Grad-CAM "
                   "looks")
    recipe = p.add_argument_group("recipe overrides (default: the recipe's value)")
    hints = typing.get_type_hints(Recipe)
    for f in HYPERPARAMETERS:
        names = [f"--{f.name.replace('_', '-')}", *ALIASES.get(f.name, [])]
        kind = hints[f.name]
        if kind is bool:
            recipe.add_argument(*names, dest=f.name, action=argparse.BooleanOptionalAction, default=None,
                                help=f.metadata["help"])
        elif f.metadata["choices"]:
            recipe.add_argument(*names, dest=f.name, choices=f.metadata["choices"], help=f.metadata["help"])
        else:
            recipe.add_argument(*names, dest=f.name, type=_parse(kind), help=f.metadata["help"])
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
    args = vars(parser().parse_args(argv))
    config = TrainConfig(**args)
    main_rank = env.torchrun().main
    try:
        result = train(config, TqdmCallbacks(main_rank), threading.Event())
    except TrainingError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted; the last complete checkpoint is kept", file=sys.stderr)
        return 130
    if main_rank:
        best = f"{100 * result.best_val_accuracy:.1f}%" if result.best_val_accuracy is not None else "n/a"
        shown = result.path if config.output else f"{result.path} (under RUNS_DIR={runs_dir()})"
        print(f"{result.status}: {shown} (best val accuracy {best})")
    return 0 if result.status == "finished" else 1


if __name__ == "__main__":
    sys.exit(main())
