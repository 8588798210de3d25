"""GoogLeNet (Inception v1): the model, Hub loading, classification, feature maps. No UI code here."""

from typing import Any

from .convert import from_torchvision
from .model import BRANCH_KEYS, DEFAULT_MODULE, MODULE_NAMES, GoogLeNet, GoogLeNetOutputs

__all__ = ["GoogLeNet", "GoogLeNetOutputs", "from_torchvision", "architecture_table", "MODULE_NAMES", "BRANCH_KEYS",
           "DEFAULT_MODULE"]


def __getattr__(name: str) -> Any:
    # Imported lazily so that ``python -m googlenet.table`` runs the module once, without a warning.
    if name == "architecture_table":
        from .table import architecture_table

        return architecture_table
    raise AttributeError(name)
