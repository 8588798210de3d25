"""The one way to make a copy of a model for inference (classification, evaluation, feature caches, the atlas,
looking inside on a GPU)."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from .model import BasicConv2d, GoogLeNet


def inference_copy(model: GoogLeNet, device: str | torch.device | None = None, *, fold: bool = True) -> GoogLeNet:
    """A copy in eval mode, rebuilt from the model's config and weights (``copy.deepcopy`` takes about 20 s
    under ZeroGPU's patched torch, measured with spaces 0.51; this well under a second).

    ``fold``: every BatchNorm folded into its convolution, the auxiliary heads dropped, channels_last and no
    parameter gradients: 1.8x faster on a CPU and equal to the model in eval mode to float32 rounding. Without
    it, the same network as the model (what looking inside a branch must see)."""
    twin = type(model)(**model.config_dict())
    twin.load_state_dict(model.state_dict())
    twin.weights_source = model.weights_source
    twin.eval()
    if fold:
        twin.aux1 = twin.aux2 = None
        for module in twin.modules():
            if isinstance(module, BasicConv2d) and isinstance(module.bn, nn.BatchNorm2d):
                module.conv = fuse_conv_bn_eval(module.conv, module.bn)
                module.bn = nn.Identity()
        twin.requires_grad_(False)
        twin = twin.to(memory_format=torch.channels_last)
    return twin.to(device) if device is not None else twin
