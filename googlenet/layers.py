"""The building blocks of GoogLeNet: conv + BatchNorm + ReLU, the Inception module (Figure 2b of the paper) and the
auxiliary classifier (Section 5). ``model.py`` assembles them as Table 1 lists them."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

BRANCH_KEYS = ("1x1", "3x3", "5x5", "pool")  # the paper's labels, in the order a module concatenates its branches
AUX_DROPOUT = 0.7  # Section 5: the auxiliary classifiers' dropout


def bn_eps(variant: str) -> float:
    """BatchNorm's epsilon: torchvision's weights were trained with 1e-3 (TensorFlow's), the paper's variant uses
    PyTorch's default."""
    return 1e-3 if variant == "torchvision" else 1e-5


class BasicConv2d(nn.Module):
    """Convolution + BatchNorm + ReLU, the unit every convolution of the network uses."""

    def __init__(self, in_channels: int, out_channels: int, eps: float = 1e-5, **kwargs: Any) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, bias=False, **kwargs)
        self.bn = nn.BatchNorm2d(out_channels, eps=eps)

    def pre_relu(self, x: Tensor) -> Tensor:
        """The output before the ReLU (what feature visualisation optimises: after it, a unit that is off has no
        gradient)."""
        return self.bn(self.conv(x))

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.pre_relu(x), inplace=True)


class Inception(nn.Module):
    """Four parallel branches concatenated along channels (Figure 2b of the paper)."""

    def __init__(self, in_channels: int, ch1x1: int, ch3x3red: int, ch3x3: int, ch5x5red: int, ch5x5: int,
                 pool_proj: int, variant: str = "paper") -> None:
        super().__init__()
        eps = bn_eps(variant)
        # torchvision's port uses 3x3 here (a known slip kept for its weights); the paper uses 5x5.
        k5 = 3 if variant == "torchvision" else 5
        ceil = variant == "torchvision"
        self.branch1 = BasicConv2d(in_channels, ch1x1, eps=eps, kernel_size=1)
        self.branch2 = nn.Sequential(
            BasicConv2d(in_channels, ch3x3red, eps=eps, kernel_size=1),
            BasicConv2d(ch3x3red, ch3x3, eps=eps, kernel_size=3, padding=1),
        )
        self.branch3 = nn.Sequential(
            BasicConv2d(in_channels, ch5x5red, eps=eps, kernel_size=1),
            BasicConv2d(ch5x5red, ch5x5, eps=eps, kernel_size=k5, padding=k5 // 2),
        )
        self.branch4 = nn.Sequential(
            nn.MaxPool2d(kernel_size=3, stride=1, padding=1, ceil_mode=ceil),
            BasicConv2d(in_channels, pool_proj, eps=eps, kernel_size=1),
        )

    def branches(self) -> dict[str, nn.Module]:
        """The four whole branches, keyed as the paper labels them (the order of the output's channels)."""
        return dict(zip(BRANCH_KEYS, (self.branch1, self.branch2, self.branch3, self.branch4)))

    def width(self, branch: str) -> int:
        """How many channels ``branch`` outputs."""
        return self.last_conv(branch).conv.out_channels

    def last_conv(self, branch: str) -> BasicConv2d:
        """The branch's last convolution (whose output, after its ReLU, is the branch's output)."""
        layers = self.branches()[branch]
        return layers[-1] if isinstance(layers, nn.Sequential) else layers

    def forward_branches(self, x: Tensor, keys: Iterable[str] = BRANCH_KEYS,
                         pre_relu: bool = False) -> dict[str, Tensor]:
        """Each branch's output for the module's input ``x`` (after its last ReLU, or before it with ``pre_relu``):
        values of this call alone, so concurrent callers never mix."""
        branches = self.branches()
        if not pre_relu:
            return {key: branches[key](x) for key in keys}
        out = {}
        for key in keys:
            y, last = x, self.last_conv(key)
            for layer in branches[key].children() if isinstance(branches[key], nn.Sequential) else ():
                if layer is not last:
                    y = layer(y)
            out[key] = last.pre_relu(y)
        return out

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat(list(self.forward_branches(x).values()), 1)


class InceptionAux(nn.Module):
    """Auxiliary classifier of Section 5: 5x5/3 average pool, 1x1 conv(128), FC 1024, dropout 70%, linear."""

    def __init__(self, in_channels: int, num_classes: int, variant: str = "paper",
                 dropout: float = AUX_DROPOUT) -> None:
        super().__init__()
        self.variant = variant
        self.conv = BasicConv2d(in_channels, 128, eps=bn_eps(variant), kernel_size=1)
        self.fc1 = nn.Linear(4 * 4 * 128, 1024)
        self.fc2 = nn.Linear(1024, num_classes)
        self.dropout = nn.Dropout(p=dropout)

    def forward(self, x: Tensor) -> Tensor:
        if self.variant == "paper" and min(x.shape[-2:]) >= 5:
            x = F.avg_pool2d(x, kernel_size=5, stride=3)  # 14x14 -> 4x4 at 224 px, exactly the paper
        if tuple(x.shape[-2:]) != (4, 4):
            x = F.adaptive_avg_pool2d(x, (4, 4))  # other input sizes (and torchvision's layout)
        x = torch.flatten(self.conv(x), 1)
        x = self.dropout(F.relu(self.fc1(x), inplace=True))
        return self.fc2(x)


def init_classifier(layer: nn.Linear) -> None:
    """How every linear layer starts: truncated normal weights (std 0.01), zero bias."""
    nn.init.trunc_normal_(layer.weight, mean=0.0, std=0.01, a=-2, b=2)
    if layer.bias is not None:
        nn.init.zeros_(layer.bias)
