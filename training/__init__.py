"""CIFAR-10 fine-tuning: data, recipes and the training engine (``python -m training``). No UI code here."""

from .config import TrainConfig, TrainingError, runs_dir
from .data import CIFAR10_CLASSES, DataError, load_cifar10
from .engine import Callbacks, RunResult, train
from .recipes import RECIPES, Recipe
from .trainer import Trainer

__all__ = ["CIFAR10_CLASSES", "DataError", "load_cifar10", "Callbacks", "RunResult", "TrainConfig", "Trainer",
           "TrainingError", "train", "RECIPES", "Recipe", "runs_dir"]
