"""CIFAR-10 fine-tuning: data, recipes and the training loop (``python -m training``). No UI code here."""

from .config import TrainConfig, TrainingError
from .data import CIFAR10_CLASSES, DataError, load_cifar10
from .env import runs_dir
from .loop import Callbacks, train
from .recipes import RECIPES, Recipe
from .runfolder import RunFolder, RunSummary
from .trainer import Trainer

__all__ = ["CIFAR10_CLASSES", "DataError", "load_cifar10", "Callbacks", "RunFolder", "RunSummary", "TrainConfig",
           "Trainer", "TrainingError", "train", "RECIPES", "Recipe", "runs_dir"]
