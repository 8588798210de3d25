"""How a branch channel is built from the module below it: the circuits view of Olah et al., "Zoom In: An
Introduction to Circuits" (Distill, 2020), for any GoogLeNet (ImageNet or fine-tuned).

* ``expanded_weights``: the kernel from each channel of the module's input to the channel's output before its
  ReLU, BatchNorm folded in. A 3x3 or 5x5 branch's 1x1 reduction and convolution are multiplied out into one
  kernel, the ReLU between them ignored, as Zoom In does: a linear approximation, exact where the reduction is on.
  The pool branch's 1x1 weight acts after the 3x3 max pool, so its kernel is 1x1 and reads pooled input.
* ``circuit``: each input's strength (its kernel's L2 norm) and sign (its kernel's sum), the strongest ``k``
  excitatory and ``k`` inhibitory inputs, and which branch and channel of the module below each one is.
* ``picture_attribution``: which inputs carried the channel's response on a picture, through the real network
  (ReLU included): the gradient of the channel's mean pre-ReLU response with respect to the module's input, times
  that input, summed over positions (Captum's ``LayerGradientXActivation``).
* ``rewiring``: how far fine-tuning moved each connection: the relative L2 change of its expanded kernel.

The weights views need no forward pass; only ``picture_attribution`` runs the network (as far as the module).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.utils.fusion import fuse_conv_bn_weights

from ..layers import BRANCH_KEYS, BasicConv2d, Inception
from ..model import MODULE_NAMES, GoogLeNet, input_stage
from .branches import require_eval

STEM = "stem"  # what inception3a's inputs are: the stem's output channels (after its last max pool)
MAX_K = 32  # the most inputs of each sign a view lists
DEFAULT_K = 8


def folded(unit: BasicConv2d) -> tuple[Tensor, Tensor]:
    """A convolution with its BatchNorm folded in (the running statistics: eval semantics), by torch's own fusion:
    weight and bias such that ``conv2d(x, weight, bias)`` is ``unit.pre_relu(x)``. A unit already folded (an
    inference copy's) is returned as it is."""
    conv, bn = unit.conv, unit.bn
    if not isinstance(bn, nn.BatchNorm2d):
        return conv.weight, conv.bias if conv.bias is not None else conv.weight.new_zeros(conv.out_channels)
    return fuse_conv_bn_weights(conv.weight, None, bn.running_mean, bn.running_var, bn.eps, bn.weight, bn.bias)


def _branch_units(model: GoogLeNet, module: str, branch: str) -> list[BasicConv2d]:
    layers = getattr(model, module).branches()[branch]
    return [m for m in (layers.children() if isinstance(layers, nn.Sequential) else [layers])
            if isinstance(m, BasicConv2d)]


def expanded_weights(model: GoogLeNet, module: str, branch: str,
                     channels: slice | list[int] | None = None) -> tuple[Tensor, Tensor]:
    """The kernels from the module's input to ``channels`` (all for None) of ``branch`` before its last ReLU, and
    their biases: C x C_in x k x k and C, detached. For a 3x3 or 5x5 branch, the reduction and the convolution
    multiplied out (the ReLU between them ignored); inside the picture, the branch without that ReLU is exactly one
    convolution of the module's input with these kernels plus the bias (at the border the convolution zero-pads the
    reduction's output, where the bias would be)."""
    model.check_branch(module, branch)
    pick = slice(None) if channels is None else channels
    with torch.no_grad():
        units = _branch_units(model, module, branch)
        weight, bias = folded(units[-1])
        weight, bias = weight[pick], bias[pick]
        if len(units) == 2:  # reduction (R x C_in x 1 x 1) then convolution (C x R x k x k)
            reduce_weight, reduce_bias = folded(units[0])
            bias = bias + torch.einsum("crij,r->c", weight, reduce_bias)
            weight = torch.einsum("crij,rs->csij", weight, reduce_weight[:, :, 0, 0])
    return weight.detach(), bias.detach()


def input_module(module: str) -> str:
    """The module whose output ``module`` reads (through a max pool between groups), or ``STEM`` for inception3a."""
    GoogLeNet.check_modules([module])
    index = MODULE_NAMES.index(module)
    return MODULE_NAMES[index - 1] if index else STEM


def input_channels(model: GoogLeNet, module: str) -> list[tuple[str, int]]:
    """Each channel of the module's input, in order, as (branch, channel) of the module below, or (``STEM``, c)."""
    below = input_module(module)
    if below == STEM:
        return [(STEM, c) for c in range(model.conv3.conv.out_channels)]
    unit: Inception = getattr(model, below)
    return [(key, c) for key in BRANCH_KEYS for c in range(unit.width(key))]


@dataclass(frozen=True)
class Connection:
    """One input of a channel: which channel of the module below it is, and its expanded kernel."""

    index: int  # the channel of the module's input
    branch: str  # its branch in the module below, or STEM
    channel: int  # its channel within that branch (or the stem)
    strength: float  # its kernel's L2 norm
    sign: int  # 1 excitatory, -1 inhibitory: the sign of its kernel's sum
    kernel: Tensor  # k x k

    def record(self) -> dict[str, Any]:
        return {"branch": self.branch, "channel": self.channel, "strength": round(self.strength, 6),
                "sign": self.sign, "kernel": [[round(float(v), 6) for v in row] for row in self.kernel]}


@dataclass
class Circuit:
    """A channel's strongest inputs from the module below, excitatory and inhibitory, each strongest first."""

    module: str
    branch: str
    channel: int
    input_module: str
    excitatory: list[Connection]
    inhibitory: list[Connection]
    bias: float
    expanded: bool  # a reduction and a convolution multiplied out, the ReLU between them ignored
    after_pool: bool  # the pool branch: the kernels read the module's input after a 3x3 max pool

    @property
    def inputs(self) -> list[Connection]:
        return self.excitatory + self.inhibitory

    def scale(self) -> float:
        """One colour scale for every kernel of the view: the largest absolute weight shown."""
        return max((float(c.kernel.abs().max()) for c in self.inputs), default=0.0) or 1.0

    def record(self) -> dict[str, Any]:
        return {"module": self.module, "branch": self.branch, "channel": self.channel,
                "input_module": self.input_module, "inputs": [c.record() for c in self.inputs]}


def check_k(k: Any) -> int:
    """How many inputs of each sign to list: an integer from 1 to ``MAX_K``, or a clear ``ValueError``."""
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_K:
        raise ValueError(f"k must be a whole number from 1 to {MAX_K}; got {str(k)[:20]}.")
    return k


def strengths_and_signs(kernels: Tensor) -> tuple[Tensor, Tensor]:
    """Each input's strength (the L2 norm of its k x k kernel) and sign (1 where its kernel sums to >= 0, else -1),
    for one channel's C_in x k x k kernels."""
    flat = kernels.flatten(1)
    return flat.norm(dim=1), torch.where(flat.sum(1) >= 0, 1, -1)


def circuit(model: GoogLeNet, module: str, branch: str, channel: int, k: int = DEFAULT_K) -> Circuit:
    """``channel`` of ``branch``'s strongest ``k`` excitatory and ``k`` inhibitory inputs from the module below."""
    model.check_branch(module, branch, [channel])
    k = check_k(k)
    weights, bias = expanded_weights(model, module, branch, [int(channel)])
    kernels = weights[0].float()
    strength, sign = strengths_and_signs(kernels)
    labels = input_channels(model, module)

    def strongest(wanted: int) -> list[Connection]:
        order = sorted((i for i in range(len(labels)) if int(sign[i]) == wanted), key=lambda i: -float(strength[i]))
        return [Connection(i, *labels[i], float(strength[i]), wanted, kernels[i]) for i in order[:k]]

    return Circuit(module, branch, int(channel), input_module(module), strongest(1), strongest(-1), float(bias[0]),
                   expanded=branch in ("3x3", "5x5"), after_pool=branch == "pool")


@dataclass
class PictureAttribution:
    """Which inputs carried a channel's response on one picture (gradient x input, summed over positions), and
    where each input fires on it (the module's input, C_in x h x w)."""

    scores: Tensor
    maps: Tensor

    def top(self, k: int) -> tuple[list[tuple[int, float]], list[tuple[int, float]]]:
        """The ``k`` inputs that pushed the response up most and the ``k`` that pushed it down most, as
        (input channel, score), strongest first."""
        k = check_k(k)
        order = torch.argsort(self.scores, descending=True).tolist()
        up = [(i, float(self.scores[i])) for i in order[:k] if self.scores[i] > 0]
        down = [(i, float(self.scores[i])) for i in reversed(order[-k:]) if self.scores[i] < 0]
        return up, down


def picture_attribution(model: GoogLeNet, module: str, branch: str, channel: int, x: Tensor) -> PictureAttribution:
    """For one normalised picture ``x`` (1 x 3 x H x W): the gradient of ``channel``'s mean pre-ReLU response with
    respect to the module's input, times that input, summed over positions; through the real network, ReLU
    included (where the expanded weights are its linear approximation)."""
    model.check_branch(module, branch, [channel])
    require_eval(model)
    if x.dim() != 4 or x.shape[0] != 1:
        raise ValueError("picture_attribution takes one picture: a 1 x 3 x H x W tensor.")
    with torch.no_grad():
        inputs, _ = model.forward_intermediates(x, [input_stage(module)], stop_early=True)
    inputs = inputs.detach().requires_grad_(True)
    with torch.enable_grad():
        response = getattr(model, module).forward_branches(inputs, (branch,), pre_relu=True)[branch]
        (grad,) = torch.autograd.grad(response[:, int(channel)].mean(), inputs)
    return PictureAttribution((grad * inputs).sum((2, 3))[0].detach(), inputs[0].detach())


def rewiring(model: GoogLeNet, start: GoogLeNet, module: str, branch: str, channel: int,
             k: int = DEFAULT_K) -> list[tuple[int, float]]:
    """The ``k`` inputs of ``channel`` whose expanded kernels moved most from ``start`` to ``model``, as (input
    channel, relative L2 change ``|K - K0| / |K0|``), most first. Inputs whose kernel was zero at the start and
    still is count as unchanged."""
    model.check_branch(module, branch, [channel])
    k = check_k(k)
    now, _ = expanded_weights(model, module, branch, [int(channel)])
    before, _ = expanded_weights(start, module, branch, [int(channel)])
    change = _relative_change(now[0].flatten(1), before[0].flatten(1))
    order = torch.argsort(change, descending=True, stable=True)[:k]
    return [(int(i), float(change[i])) for i in order]


def module_rewiring(model: GoogLeNet, start: GoogLeNet, module: str) -> dict[str, float]:
    """For each branch of ``module``: how far its incoming expanded weights moved as a whole (relative L2 change,
    0 = unchanged)."""
    moved = {}
    for key in BRANCH_KEYS:
        now, _ = expanded_weights(model, module, key)
        before, _ = expanded_weights(start, module, key)
        moved[key] = float(_relative_change(now.flatten()[None], before.flatten()[None])[0])
    return moved


def _relative_change(now: Tensor, before: Tensor) -> Tensor:
    # Row by row: |now - before| / |before|, and 0 where both are zero (inf where only the start was zero).
    difference, base = (now - before).double().norm(dim=1), before.double().norm(dim=1)
    return torch.where(base > 0, difference / base.clamp_min(1e-300),
                       torch.where(difference > 0, torch.inf, 0.0)).float()
