"""Class names and the top classes of a prediction: one home for both (classification, knockout, explanations and
a run's probe all rank classes the same way)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from torch import Tensor


class Ranked(NamedTuple):
    """One class of a ranking: its index, its name and its probability."""

    index: int
    name: str
    probability: float


def numbered_classes(num_classes: int) -> list[str]:
    """The names a model gets when none are given: "class 0", "class 1", ..."""
    return [f"class {i}" for i in range(num_classes)]


def top_classes(probabilities: Tensor, names: Sequence[str], k: int) -> list[Ranked]:
    """The ``k`` most likely classes of one prediction (a vector of probabilities), most likely first."""
    values, indices = probabilities.float().topk(min(int(k), probabilities.numel()))
    return [Ranked(i, names[i], v) for v, i in zip(values.tolist(), indices.tolist())]


def named(ranking: Sequence[Ranked]) -> list[tuple[str, float]]:
    """A ranking as (name, probability) pairs, what a label widget shows."""
    return [(r.name, r.probability) for r in ranking]
