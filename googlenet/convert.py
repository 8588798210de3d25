"""Bring torchvision's GoogLeNet (and so its published IMAGENET1K_V1 weights) into our model."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from .model import GoogLeNet, default_preprocessing


def imagenet_class_names() -> list[str]:
    """The 1000 ImageNet category names as torchvision publishes them (no download needed)."""
    from torchvision.models import GoogLeNet_Weights

    return list(GoogLeNet_Weights.IMAGENET1K_V1.meta["categories"])


def from_torchvision(
    module_or_state_dict: nn.Module | Mapping[str, torch.Tensor],
    transform_input: bool | None = None,
) -> GoogLeNet:
    """A ``variant="torchvision"`` GoogLeNet with the given torchvision model's (or state dict's) weights.

    The module layout and names match torchvision's, so this is a strict ``load_state_dict``. A bare
    state dict does not say whether its model rescaled its input; it defaults to ``True`` as for
    torchvision's published weights.
    """
    if isinstance(module_or_state_dict, nn.Module):
        state = module_or_state_dict.state_dict()
        if transform_input is None:
            transform_input = bool(getattr(module_or_state_dict, "transform_input", False))
    else:
        state = dict(module_or_state_dict)
        if transform_input is None:
            transform_input = True
    if "fc.weight" not in state:
        raise ValueError("not a torchvision GoogLeNet state dict: it has no 'fc.weight'")
    num_classes = int(state["fc.weight"].shape[0])
    has_aux = any(k.startswith("aux1.") for k in state)
    imagenet = num_classes == 1000
    model = GoogLeNet.skeleton(
        num_classes=num_classes,
        aux_logits=has_aux,
        variant="torchvision",
        transform_input=transform_input,
        class_names=imagenet_class_names() if imagenet else None,
        preprocessing=default_preprocessing(224, 256),
    )
    model.load_state_dict(state, strict=True)
    return model.eval()


def torchvision_imagenet_model() -> GoogLeNet:
    """torchvision's IMAGENET1K_V1 weights converted (downloads through torchvision's own cache).

    torchvision's loader reads the .pth with ``torch.load(weights_only=True)``: no code is unpickled.
    """
    from torchvision.models import GoogLeNet_Weights

    state = GoogLeNet_Weights.IMAGENET1K_V1.get_state_dict(progress=False, check_hash=True, weights_only=True)
    return from_torchvision(state, transform_input=True)
