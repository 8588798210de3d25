"""Why did the network say that? The building blocks of interpretability (Olah et al., "The Building Blocks of
Interpretability", Distill 2018, https://distill.pub/2018/building-blocks/) for one picture and one class:

* ``nmf``: non-negative matrix factorisation (positions x channels ~ W H), in torch: scikit-learn's ``NMF`` (its
  NNDSVDa start, its coordinate descent and its stopping rule), step for step;
* ``channel_attribution``: how much the class's logit owes each of a module's channels, gradient x activation
  summed over the positions (Captum's ``LayerGradientXActivation``, summed);
* ``explain``: the module's activations factorised into neuron groups, each with where it is (a mask over the
  picture's positions), what it is made of (its channels, and their share per branch) and its attribution to the
  class (gradient x the group's part of the activations, summed), ordered by attribution.

A module's channels are numbered as its output: the four branches' outputs concatenated in ``BRANCH_KEYS`` order
(``branch_of`` turns such a number into (branch, channel within the branch)).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from ..images import ImageInput
from ..labels import top_classes
from ..layers import BRANCH_KEYS
from ..model import GoogLeNet
from ..preprocess import prepare_input
from .branches import module_gradient

MIN_GROUPS, MAX_GROUPS, DEFAULT_GROUPS = 2, 12, 6
DEFAULT_EXPLAIN_MODULE = "inception4d"  # the layer Building Blocks factorised
NMF_ITERATIONS = 200  # at most: scikit-learn's default
NMF_TOLERANCE = 1e-4  # stop when the projected gradient is this small a share of the first iteration's (scikit-learn's)
TOP_CHANNELS = 5  # a group's strongest channels shown


def nmf(a: Tensor, k: int, iterations: int = NMF_ITERATIONS) -> tuple[Tensor, Tensor]:
    """``a`` (N x C, non-negative) ~ ``w`` (N x k) @ ``h`` (k x C), both non-negative, minimising the Frobenius
    error, in float64: scikit-learn's ``NMF(init="nndsvda", solver="cd")``, step for step. NNDSVDa's start (Boutsidis
    & Gallopoulos 2008), then HALS (Cichocki & Phan 2009): each iteration updates W's columns, then H's rows, each to
    its non-negative optimum with the others fixed, until the projected gradient falls to ``NMF_TOLERANCE`` of the
    first iteration's (the stopping rule scikit-learn uses; a rule on the error's decrease stops HALS while it still
    creeps towards a better point)."""
    a = a.detach().double().clamp(min=0)
    if a.dim() != 2 or not 1 <= k <= min(a.shape):
        raise ValueError(f"nmf needs a matrix and 1 <= k <= {min(a.shape) if a.dim() == 2 else '?'} (got k={k}).")
    w, h = _nndsvda(a, k)
    # numpy, not torch: thousands of tiny column updates, where numpy's per-call cost is a fifth of torch's
    x, w, ht = a.numpy(), w.numpy().copy(), np.ascontiguousarray(h.numpy().T)
    first = None
    for _ in range(iterations):
        violation = _coordinate_descent(w, ht.T @ ht, x @ ht) + _coordinate_descent(ht, w.T @ w, x.T @ w)
        first = violation if first is None else first
        if first == 0 or violation <= NMF_TOLERANCE * first:
            break
    return torch.from_numpy(w), torch.from_numpy(np.ascontiguousarray(ht.T))


def _coordinate_descent(w: np.ndarray, gram: np.ndarray, cross: np.ndarray) -> float:
    """One pass over ``w``'s columns, in place, for min ||X - w F|| with ``gram`` = F Fᵀ and ``cross`` = X Fᵀ: each
    column moved to its non-negative optimum with the others fixed (the ones before it already moved). Returns the
    summed size of the projected gradient each column had before its move (scikit-learn's "violation")."""
    violation = 0.0
    for j in range(w.shape[1]):
        grad = w @ gram[:, j] - cross[:, j]
        column = w[:, j]
        violation += float(np.abs(np.where(column == 0, np.minimum(grad, 0), grad)).sum())
        if gram[j, j] != 0:
            np.maximum(column - grad / gram[j, j], 0, out=column)
    return violation


def _nndsvda(a: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """NNDSVD's start: each singular pair split into its positive and negative parts, the larger kept; zeros filled
    with the matrix's mean (the "a" variant, as scikit-learn's default)."""
    u, s, vt = torch.linalg.svd(a, full_matrices=False)
    w, h = torch.zeros(a.shape[0], k, dtype=a.dtype), torch.zeros(k, a.shape[1], dtype=a.dtype)
    w[:, 0], h[0] = s[0].sqrt() * u[:, 0].abs(), s[0].sqrt() * vt[0].abs()
    for j in range(1, k):
        x, y = u[:, j], vt[j]
        xp, xn, yp, yn = x.clamp(min=0), (-x).clamp(min=0), y.clamp(min=0), (-y).clamp(min=0)
        pos, neg = xp.norm() * yp.norm(), xn.norm() * yn.norm()
        uu, vv, m = (xp / xp.norm(), yp / yp.norm(), pos) if pos >= neg else (xn / xn.norm(), yn / yn.norm(), neg)
        w[:, j], h[j] = (s[j] * m).sqrt() * uu, (s[j] * m).sqrt() * vv
    mean = a.mean()
    w[w < 1e-6], h[h < 1e-6] = mean, mean
    return torch.nan_to_num(w, nan=float(mean)), torch.nan_to_num(h, nan=float(mean))


def relative_error(a: Tensor, w: Tensor, h: Tensor) -> float:
    """``||a - w h|| / ||a||`` (Frobenius)."""
    a = a.double()
    return float((a - w @ h).norm() / a.norm())


def branch_sizes(model: GoogLeNet, module: str) -> dict[str, int]:
    """Each branch's channel count, in the order the module concatenates them."""
    return {b: model.branch_width(module, b) for b in BRANCH_KEYS}


def branch_of(model: GoogLeNet, module: str, channel: int) -> tuple[str, int]:
    """A module's output channel as (branch, its channel within the branch)."""
    start = 0
    for b, n in branch_sizes(model, module).items():
        if channel < start + n:
            return b, channel - start
        start += n
    raise ValueError(f"{module} has {start} channels; got {channel}.")


def channel_attribution(model: GoogLeNet, x: Tensor, module: str, class_index: int | None = None
                        ) -> tuple[Tensor, Tensor, Tensor, int]:
    """(each channel's attribution, C: gradient x activation summed over positions; the activation, C x H x W; its
    gradient; the class) for one normalised picture ``x`` (1 x 3 x H x W)."""
    act, grad, _, index = module_gradient(model, x, module, class_index)
    return (grad[0] * act[0]).sum((1, 2)), act[0], grad[0], index


@dataclass
class Group:
    """One neuron group of an explanation."""

    attribution: float  # how much the class's logit owes the group: gradient x its part of the activations
    mask: np.ndarray  # H x W: how strongly the group is present at each position (w's column)
    direction: np.ndarray  # C, sums to 1: the group's mix of the module's channels (h's row, normalised)
    branches: dict[str, float]  # the share of the group's weight in each branch (sums to 1)
    channels: list[tuple[str, int, float]]  # its strongest channels: (branch, channel in the branch, weight)

    @property
    def against(self) -> bool:
        """The group speaks against the class (its attribution is negative)."""
        return self.attribution < 0


@dataclass
class Explanation:
    """Neuron groups and channel attributions of one module for one picture and one class."""

    module: str
    class_index: int
    class_name: str
    probability: float
    groups: list[Group]  # strongest attribution first
    channels_for: list[tuple[str, int, float]]  # the channels that add most to the class: (branch, channel, attribution)
    channels_against: list[tuple[str, int, float]]  # those that take most from it, most negative first
    total: float  # gradient x activation over the whole module (what the groups' attributions approximate)
    error: float  # the factorisation's relative Frobenius error
    crop: Image.Image = field(repr=False)  # the picture as the network saw it
    top: list[tuple[int, str, float]] = field(default_factory=list)  # the top-5 classes: (index, name, probability)
    maps: dict[tuple[str, int], np.ndarray] = field(default_factory=dict, repr=False)  # H x W of each listed channel

    def record(self) -> dict:
        """The explanation as plain data (what ``/explain`` returns as JSON)."""
        return {"module": self.module, "class_index": self.class_index, "class": self.class_name,
                "probability": round(self.probability, 5), "total_attribution": round(self.total, 5),
                "factorisation_error": round(self.error, 5),
                "top5": [{"index": i, "class": n, "probability": round(p, 5)} for i, n, p in self.top],
                "groups": [{"group": k + 1, "attribution": round(g.attribution, 5), "against": g.against,
                            "branches": {b: round(v, 4) for b, v in g.branches.items()},
                            "channels": [{"branch": b, "channel": c, "weight": round(wt, 4)} for b, c, wt in g.channels]}
                           for k, g in enumerate(self.groups)],
                "channels_for": [{"branch": b, "channel": c, "attribution": round(v, 5)} for b, c, v in self.channels_for],
                "channels_against": [{"branch": b, "channel": c, "attribution": round(v, 5)}
                                     for b, c, v in self.channels_against]}


def explain(model: GoogLeNet, image: ImageInput, module: str = DEFAULT_EXPLAIN_MODULE, k: int = DEFAULT_GROUPS,
            class_index: int | None = None, channels: int = 8) -> Explanation:
    """Factorise ``module``'s activations on the picture into ``k`` neuron groups and attribute the class's logit
    (default: the top-1) to them and to each channel. ``channels``: how many channels for and against to list."""
    if not isinstance(k, int) or not MIN_GROUPS <= k <= MAX_GROUPS:
        raise ValueError(f"k (the number of groups) must be within {MIN_GROUPS}..{MAX_GROUPS} (got {k}).")
    (module,) = GoogLeNet.check_modules([module])
    x, crop = prepare_input(image, model.preprocessing)
    x = x.to(next(model.parameters()).device)
    act, grad, logits, index = module_gradient(model, x, module, class_index)
    act, grad = act[0].double().cpu(), grad[0].double().cpu()
    c, h, w = act.shape
    if k > min(h * w, c):
        raise ValueError(f"{module} sees this model's {x.shape[-1]} px pictures as {h} x {w} positions: ask for at "
                         f"most {min(h * w, c)} groups, or choose an earlier module.")
    positions = act.reshape(c, h * w).T  # N x C
    wn, hn = nmf(positions, k)
    g = grad.reshape(c, h * w).T
    attributions = [float((g * torch.outer(wn[:, j], hn[j])).sum()) for j in range(k)]
    sizes = list(branch_sizes(model, module).values())
    groups = []
    for j in range(k):
        weight = hn[j] / hn[j].sum().clamp(min=1e-12)
        shares = [float(part.sum()) for part in weight.split(sizes)]
        strongest = weight.topk(TOP_CHANNELS)
        groups.append(Group(attributions[j], wn[:, j].reshape(h, w).float().numpy(), weight.float().numpy(),
                            dict(zip(BRANCH_KEYS, shares)),
                            [(*branch_of(model, module, int(i)), float(v)) for v, i in zip(*strongest)]))
    groups.sort(key=lambda gr: -gr.attribution)
    per_channel = (g * positions).sum(0)
    order = per_channel.argsort(descending=True).tolist()
    listed = lambda idx: [(*branch_of(model, module, i), float(per_channel[i])) for i in idx]  # noqa: E731
    probs = torch.softmax(logits[0].float(), 0)
    found = Explanation(module, index, model.class_names[index], float(probs[index]), groups,
                        listed([i for i in order[:channels] if per_channel[i] > 0]),
                        listed([i for i in reversed(order[-channels:]) if per_channel[i] < 0]),
                        float((g * positions).sum()), relative_error(positions, wn, hn), crop,
                        top_classes(probs, model.class_names, 5))
    starts = dict(zip(BRANCH_KEYS, np.cumsum([0, *sizes[:-1]]).tolist()))
    for b, ch, _ in [*found.channels_for, *found.channels_against, *(c for gr in groups for c in gr.channels)]:
        found.maps[(b, ch)] = act[starts[b] + ch].float().numpy()
    return found
