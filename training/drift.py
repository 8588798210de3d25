"""How fine-tuning reshapes the network, branch by branch (the drift map).

For each of the nine Inception modules and each of its four branches, after every epoch:

* **linear CKA** (Kornblith et al. 2019) between the starting model's and the current model's branch outputs on a
  fixed probe set (the first ``PROBE_SIZE`` pictures of CIFAR-10's test split, the same for every run): 1 when the
  branch still represents the probe as it did, lower as it moves away;
* **weight drift**, ``‖W − W₀‖ / ‖W₀‖`` over the branch's parameters, W₀ being the starting weights (ImageNet's
  for the ``finetune`` recipe).

Only the starting model's Gram matrices of the probe outputs are kept (CKA needs nothing else), computed once per
starting weights and settings and cached on disk; each epoch runs only the current model on the probe (one batch),
which keeps the map's cost small beside an epoch of training."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from googlenet.interpret.branches import capture_branches
from googlenet.model import BRANCH_KEYS, MODULE_NAMES, GoogLeNet

PROBE_SIZE = 64


def centred_gram(x: Tensor) -> Tensor:
    """The N x N Gram matrix of N centred representations (N x anything): all that linear CKA needs of them."""
    x = x.flatten(1).double()
    x = x - x.mean(0)
    return x @ x.T


def gram_cka(k: Tensor, l: Tensor) -> float:
    """Linear CKA from two ``centred_gram`` matrices."""
    denominator = float(k.norm() * l.norm())
    return float((k * l).sum()) / denominator if denominator > 0 else 1.0


def linear_cka(x: Tensor, y: Tensor) -> float:
    """Linear CKA of two representations of the same N inputs (N x anything each), through their N x N Gram
    matrices: cheap for a small probe whatever the width of the feature maps."""
    return gram_cka(centred_gram(x), centred_gram(y))


def branch_parameters(model: GoogLeNet) -> dict[str, dict[str, list[Tensor]]]:
    """{module: {branch: its parameters}} (convolution weights and BatchNorm affine parameters)."""
    return {m: {b: [p.detach() for p in branch.parameters()] for b, branch in getattr(model, m).branches().items()}
            for m in MODULE_NAMES}


def weight_drift(model: GoogLeNet, start: dict[str, dict[str, list[Tensor]]]) -> dict[str, dict[str, float]]:
    """``‖W − W₀‖ / ‖W₀‖`` per module and branch, W₀ from ``branch_parameters`` of the starting model."""
    now = branch_parameters(model)
    out: dict[str, dict[str, float]] = {}
    for m, branches in start.items():
        out[m] = {}
        for b, before in branches.items():
            moved = sum(float((a.float() - w.float().to(a.device)).pow(2).sum()) for a, w in zip(now[m][b], before))
            size = sum(float(w.float().pow(2).sum()) for w in before)
            out[m][b] = (moved / size) ** 0.5 if size > 0 else 0.0
    return out


class DriftTracker:
    """The drift map of one run: made at the start (it keeps the starting weights and probe outputs), then
    ``measure(model)`` after every epoch."""

    def __init__(self, model: GoogLeNet, probe: Tensor, prepare: Callable[[Tensor], Tensor],
                 settings: tuple[Any, ...] | None = None) -> None:
        """``settings``: what ``prepare`` depends on (image size, mean, std); given, the starting model's Gram
        matrices are cached on disk under the starting weights, the probe and those settings."""
        self.prepare, self.probe = prepare, probe
        self.start_weights = {m: {b: [w.clone().cpu() for w in ws] for b, ws in bs.items()}
                              for m, bs in branch_parameters(model).items()}
        self.start_grams = self._cached_grams(model, settings) if settings is not None else self._grams(model)
        self.epochs: list[dict[str, Any]] = []

    def _grams(self, model: GoogLeNet) -> dict[str, dict[str, Tensor]]:
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                # a copy: a pipeline may normalise in place, which would move the probe from epoch to epoch
                branches = capture_branches(model, self.prepare(self.probe.clone()).float())
        finally:
            model.train(was_training)
        return {m: {b: centred_gram(v).cpu() for b, v in bs.items()} for m, bs in branches.items()}

    def _cached_grams(self, model: GoogLeNet, settings: tuple[Any, ...]) -> dict[str, dict[str, Tensor]]:
        from . import env

        name = "grams-" + model.backbone_fingerprint("drift-probe", *settings, tuple(self.probe.shape),
                                                      self.probe.cpu().contiguous().numpy().tobytes())
        flat, _ = env.disk_cache().tensors("drift", name + ".safetensors", lambda: {
            f"{m}.{b}": g for m, bs in self._grams(model).items() for b, g in bs.items()})
        return {m: {b: flat[f"{m}.{b}"] for b in BRANCH_KEYS} for m in MODULE_NAMES}

    def measure(self, model: GoogLeNet, epoch: int) -> dict[str, Any]:
        """This epoch's map: {"epoch", "cka": {module: {branch: value}}, "weight_drift": {...}}; kept in
        ``epochs``."""
        now = self._grams(model)
        frame = {"epoch": epoch,
                 "cka": {m: {b: round(gram_cka(self.start_grams[m][b], now[m][b]), 5) for b in BRANCH_KEYS}
                         for m in MODULE_NAMES},
                 "weight_drift": {m: {b: round(v, 6) for b, v in bs.items()}
                                  for m, bs in weight_drift(model, self.start_weights).items()}}
        self.epochs.append(frame)
        return frame

    def record(self) -> dict[str, Any]:
        """What ``drift.json`` holds."""
        return {"probe": f"the first {len(self.probe)} pictures of CIFAR-10's test split", "modules": list(MODULE_NAMES),
                "branches": list(BRANCH_KEYS), "epochs": self.epochs}


def drift_frame(record: dict[str, Any], epoch: int | None = None) -> dict[str, Any]:
    """One epoch's map (the last by default); ValueError naming the epochs there are."""
    frames = record["epochs"]
    if not epoch:
        return frames[-1]
    for frame in frames:
        if frame["epoch"] == epoch:
            return frame
    raise ValueError(f"This run's drift map has epochs {frames[0]['epoch']} to {frames[-1]['epoch']}; got {epoch}.")


def drift_table(record: dict[str, Any], epoch: int | None = None) -> str:
    """One epoch's map (the last by default) as a Markdown table: "CKA / weight drift" per module and branch."""
    if not record.get("epochs"):
        return record.get("note", "No drift map: the run has no epoch yet.")
    frame = drift_frame(record, epoch)
    head = "| module | " + " | ".join(record["branches"]) + " |\n|---|" + "---|" * len(record["branches"]) + "\n"
    rows = "".join(f"| {m} | " + " | ".join(f"{frame['cka'][m][b]:.3f} / {frame['weight_drift'][m][b]:.4f}"
                                             for b in record["branches"]) + " |\n" for m in record["modules"])
    return (f"Epoch {frame['epoch']}: linear CKA with the starting model on the probe / weight drift "
            f"‖W − W₀‖/‖W₀‖\n\n" + head + rows)
