"""Fine-tuning GoogLeNet (``python -m training``, also under torchrun). No UI code here. The rooms:

* what a run is asked: ``recipes`` (each hyperparameter once), ``config`` (``TrainConfig``, checked before anything is
  written), ``env`` (the variables the CLI reads, torchrun's ranks);
* the data: ``data`` (CIFAR-10, read without unpickling code), ``augment`` (batched on the device);
* the engine: ``loop`` (``train()``, top to bottom), ``trainer`` (the step, evaluation, the starting model, torchrun,
  memory), ``headonly`` (a frozen backbone's features computed once), ``checkpoint`` (crash-safe checkpoints);
* the run's folder and what it records: ``runfolder`` (``RunFolder``, ``RunSummary``, ``RunReport``), ``report``
  (what a finished run gets wrong), ``drift`` (what fine-tuning moved, branch by branch), ``probe`` (one picture
  watched every epoch), ``plots``, ``publish`` (a run pushed to the Hub);
* files: ``atomic`` (written whole or not at all) and ``diskcache`` (the one disk cache, which the app shares);
* ``__main__``: the CLI, its flags generated from ``Recipe``.
"""

from .config import TrainConfig, TrainingError
from .data import CIFAR10_CLASSES, DataError, load_cifar10
from .env import runs_dir
from .loop import Callbacks, train
from .recipes import RECIPES, Recipe
from .runfolder import RunFolder, RunSummary
from .trainer import Trainer

__all__ = ["CIFAR10_CLASSES", "DataError", "load_cifar10", "Callbacks", "RunFolder", "RunSummary", "TrainConfig",
           "Trainer", "TrainingError", "train", "RECIPES", "Recipe", "runs_dir"]
