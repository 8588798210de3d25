"""GoogLeNet (Inception v1): the model (``model``), Hub loading (``hub``, ``weights``, ``publish``), classification
(``classify``), feature maps, Grad-CAM and knockout (``features``), feature visualisation (``featurevis``) and
dataset examples (``examples``), Table 1 (``table``). No UI code here."""

from typing import Any

from .convert import from_torchvision
from .model import BRANCH_KEYS, DEFAULT_BRANCH, DEFAULT_MODULE, MODULE_NAMES, GoogLeNet, GoogLeNetOutputs

__all__ = ["GoogLeNet", "GoogLeNetOutputs", "from_torchvision", "architecture_table", "MODULE_NAMES", "BRANCH_KEYS",
           "DEFAULT_MODULE", "DEFAULT_BRANCH"]


def __getattr__(name: str) -> Any:
    # Imported lazily so that ``python -m googlenet.table`` runs the module once, without a warning.
    if name == "architecture_table":
        from .table import architecture_table

        return architecture_table
    raise AttributeError(name)
