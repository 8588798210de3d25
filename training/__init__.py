"""CIFAR-10 fine-tuning: data, recipes and the training engine (``python -m training``). No UI code here."""

from .data import CIFAR10_CLASSES, DataError, load_cifar10
from .engine import Callbacks, RunResult, TrainConfig, Trainer, TrainingError, train
from .recipes import RECIPES, Recipe

__all__ = ["CIFAR10_CLASSES", "DataError", "load_cifar10", "Callbacks", "RunResult", "TrainConfig", "Trainer",
           "TrainingError", "train", "RECIPES", "Recipe"]
