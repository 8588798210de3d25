"""A module's four branches as numbers: their outputs (``capture_branches``, one pass through
``GoogLeNet.forward_intermediates``: no hooks, so concurrent visitors on one shared model never see each other's
activations), their outputs before the last ReLU (``pre_relu``), each branch's share of the activation, what the
answer loses when a branch is zeroed (knockout), and the gradient of a class at a module (Grad-CAM)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ..labels import named, top_classes
from ..layers import BRANCH_KEYS
from ..model import GoogLeNet, input_stage

Branches = dict[str, dict[str, Tensor]]


def require_eval(model: GoogLeNet) -> None:
    """A shared model's mode is not a caller's to change (another thread may be using it): ask for eval instead."""
    if model.training:
        raise ValueError("Put the model in eval mode (model.eval()) before looking inside it.")


def capture_branches(model: GoogLeNet, x: Tensor, modules: Iterable[str] | None = None) -> Branches:
    """One forward pass -> {module: {"1x1"|"3x3"|"5x5"|"pool": branch output}} (detached, on x's device)."""
    modules = GoogLeNet.check_modules(modules)
    require_eval(model)
    with torch.no_grad():
        return model.forward_intermediates(x, modules, stop_early=True, intermediates_only=True)


def pre_relu(net: GoogLeNet, module: str, branch: str | None, x: Tensor) -> Tensor:
    """N x C x H x W: ``branch``'s output before its last ReLU, or with ``branch`` None the whole module's (its four
    branches so, concatenated in ``BRANCH_KEYS`` order: the module's output channels), for normalised input ``x``.
    The network runs only as far as the module's input, and only the branches asked for run."""
    inputs, _ = net.forward_intermediates(x, [input_stage(module)], stop_early=True)
    keys = BRANCH_KEYS if branch is None else (branch,)
    return torch.cat(list(getattr(net, module).forward_branches(inputs, keys, pre_relu=True).values()), 1)


def module_output(branches: dict[str, Tensor]) -> Tensor:
    """A module's output from its four branch outputs (their concatenation, in ``BRANCH_KEYS`` order)."""
    return torch.cat([branches[k] for k in BRANCH_KEYS], 1)


def branch_shares(branches: Branches) -> dict[str, dict[str, float]]:
    """Each branch's share of its module's summed output activation (shares of a module add up to 1)."""
    shares = {}
    for name, outs in branches.items():
        totals = {k: float(v.float().sum()) for k, v in outs.items()}
        whole = sum(totals.values()) or 1.0
        shares[name] = {k: t / whole for k, t in totals.items()}
    return shares


def share_shift(shares: dict[str, dict[str, float]], other: dict[str, dict[str, float]]) -> list[tuple[str, float]]:
    """Modules by how far their branch shares moved between two models (half the summed absolute change,
    so 1.0 means every share moved to another branch), largest first."""
    moved = {m: 0.5 * sum(abs(shares[m][k] - other[m][k]) for k in BRANCH_KEYS) for m in shares if m in other}
    return sorted(moved.items(), key=lambda kv: -kv[1])


def knockout_output(branches: dict[str, Tensor], branch: str) -> Tensor:
    """A module's output rebuilt from its branch outputs, with one branch's channels replaced by zeros."""
    return module_output({key: torch.zeros_like(y) if key == branch else y for key, y in branches.items()})


def logits_from(model: GoogLeNet, x: Tensor, module: str) -> Tensor:
    """The logits, from ``module``'s output ``x`` on."""
    return model.forward_head(model.forward_from(x, module))


def branch_knockout(model: GoogLeNet, x: Tensor, module: str, top_k: int = 5,
                    branches: dict[str, Tensor] | None = None) -> list[dict[str, Any]]:
    """For each branch: top-k after zeroing it, and how the original top-1 class's probability moves.

    ``branches`` (the module's captured branch outputs) saves the forward pass up to the module.
    """
    (module,) = GoogLeNet.check_modules([module])
    if branches is None:
        branches = capture_branches(model, x, [module])[module]
    with torch.no_grad():
        base = F.softmax(logits_from(model, module_output(branches), module), 1)[0]
        top1 = int(base.argmax())
        rows = []
        for branch in BRANCH_KEYS:
            probs = F.softmax(logits_from(model, knockout_output(branches, branch), module), 1)[0]
            rows.append({
                "branch": branch,
                "top": named(top_classes(probs, model.class_names, top_k)),
                "top1_label": model.class_names[top1],
                "top1_before": float(base[top1]),
                "top1_after": float(probs[top1]),
                "still_top1": int(probs.argmax()) == top1,
            })
    return rows


def module_gradient(model: GoogLeNet, x: Tensor, module: str, class_index: int | None = None,
                    activation: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor, int]:
    """(the module's output, the gradient of a class's logit with respect to it, the logits, the class) for one
    picture: what Grad-CAM and attribution are made of. ``class_index`` defaults to the predicted class.

    The gradient is taken with ``torch.autograd.grad`` with respect to the module's output only, so the shared
    model's parameters gather no ``.grad`` and concurrent calls cannot disturb each other. ``activation`` (the
    module's output, if already computed) saves the forward pass up to it."""
    (module,) = GoogLeNet.check_modules([module])
    require_eval(model)
    if activation is None:
        activation = module_output(capture_branches(model, x, [module])[module])
    act = activation.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        logits = logits_from(model, act, module)
        index = int(logits[0].argmax()) if class_index is None else int(class_index)
        if not 0 <= index < logits.shape[1]:
            raise ValueError(f"The class index must be within 0..{logits.shape[1] - 1} (got {index}).")
        (grad,) = torch.autograd.grad(logits[0, index], act)
    return act.detach(), grad, logits.detach(), index


def grad_cam(model: GoogLeNet, x: Tensor, module: str, class_index: int | None = None,
             activation: Tensor | None = None) -> tuple[np.ndarray, int]:
    """Grad-CAM at ``module``'s output for ``class_index`` (default: the predicted class), in [0, 1]."""
    act, grad, _, index = module_gradient(model, x, module, class_index, activation)
    cam = torch.relu((grad[0].mean((1, 2))[:, None, None] * act[0]).sum(0))
    cam = cam / cam.max() if float(cam.max()) > 0 else cam
    return torch.nan_to_num(cam).cpu().numpy(), index
