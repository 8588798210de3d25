"""GoogLeNet (Inception v1), as a library: no UI code here. The rooms:

* the model and its weights: ``layers`` (conv + BatchNorm + ReLU, the Inception module, the auxiliary head),
  ``model`` (``GoogLeNet`` as Table 1 lists it, ``forward_intermediates``), ``labels`` (class names, top-k),
  ``hub`` (its files from the Hub or a folder), ``weights`` (a weights string to a model, the fallback chain),
  ``convert`` (torchvision's), ``publish`` (pushing to the Hub);
* classification: ``classify`` (``Classifier``), ``inference`` (the fast path), ``images`` (decoding uploads),
  ``preprocess`` (torchvision's preprocessing), ``device``;
* ``interpret/``: the interpretability methods (branches, feature visualisation, dataset examples, explanation,
  accentuation);
* ``draw``: tiles, heat maps and charts of what the methods compute;
* the paper: ``table`` (Table 1 measured, ``python -m googlenet.table``) and ``diagram`` (Figure 2b).

``moved`` keeps the interpretability methods' old documented import paths working.
"""

import sys
from typing import Any

from . import moved
from .convert import from_torchvision
from .model import BRANCH_KEYS, DEFAULT_BRANCH, DEFAULT_MODULE, MODULE_NAMES, GoogLeNet, GoogLeNetOutputs

__all__ = ["GoogLeNet", "GoogLeNetOutputs", "from_torchvision", "architecture_table", "MODULE_NAMES", "BRANCH_KEYS",
           "DEFAULT_MODULE", "DEFAULT_BRANCH"]

moved.install(sys.modules[__name__])


def __getattr__(name: str) -> Any:
    # Imported lazily so that ``python -m googlenet.table`` runs the module once, without a warning.
    if name == "architecture_table":
        from .table import architecture_table

        return architecture_table
    raise AttributeError(name)
