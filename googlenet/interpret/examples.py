"""Dataset examples: which pictures of a set excite a channel most, and where. One pass over the set gives every
channel of every module at once (``channel_peaks``: each channel's spatial maximum and where it is; ``stem_peaks``
the same for the stem's output), and
``patch_at`` cuts the square of a picture around a peak, as OpenAI Microscope shows a channel's examples."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from ..images import ImageInput
from ..layers import BRANCH_KEYS
from ..model import GoogLeNet, input_stage
from ..preprocess import prepare_input
from .branches import capture_branches

# How far from a peak a patch reaches, by the module's stride (8 px for 3x, 16 for 4x, 32 for 5x).
PATCH_STRIDES = 6
Progress = Callable[[int, int], None]


class Peaks(NamedTuple):
    """Each picture's and channel's spatial maximum (N x C), where it is (N x C, flat row-major) and the map's
    (height, width)."""

    values: Tensor
    where: Tensor
    shape: tuple[int, int]


def channel_activation(model: GoogLeNet, batch: Tensor, module: str, branch: str) -> Tensor:
    """N x C x H x W output of a branch (after its ReLU) for normalised input ``batch``, as
    ``capture_branches`` computes it."""
    return capture_branches(model, batch, [module])[module][branch]


def _batches(model: GoogLeNet, images: Sequence[ImageInput], batch_size: int = 16):  # noqa: ANN202
    device = next(model.parameters()).device
    for i in range(0, len(images), batch_size):
        yield i, torch.cat([prepare_input(im, model.preprocessing)[0] for im in images[i:i + batch_size]]).to(device)


def channel_peaks(model: GoogLeNet, images: Sequence[ImageInput], modules: Sequence[str] | None = None,
                  progress: Progress | None = None, batch_size: int = 16) -> dict[str, dict[str, Peaks]]:
    """{module: {branch: Peaks}} over a set of pictures: each channel's spatial maximum and where it is; one pass
    per batch for all the modules (what the atlas's example index is built from, so that showing a channel's
    examples needs no second pass)."""
    modules = GoogLeNet.check_modules(modules)
    out: dict[str, dict[str, list[tuple[Tensor, Tensor]]]] = {m: {b: [] for b in BRANCH_KEYS} for m in modules}
    shapes: dict[str, dict[str, tuple[int, int]]] = {m: {} for m in modules}
    for i, x in _batches(model, images, batch_size):
        for m, outs in capture_branches(model, x, modules).items():
            for b, y in outs.items():
                values, where = y.flatten(2).max(2)
                out[m][b].append((values.float().cpu(), where.to(torch.int32).cpu()))
                shapes[m][b] = tuple(y.shape[2:])
        if progress is not None:
            progress(min(i + batch_size, len(images)), len(images))
    return {m: {b: Peaks(torch.cat([v for v, _ in parts]), torch.cat([w for _, w in parts]), shapes[m][b])
                if parts else Peaks(torch.zeros(0), torch.zeros(0, dtype=torch.int32), (0, 0))
                for b, parts in bs.items()} for m, bs in out.items()}


def stem_peaks(model: GoogLeNet, images: Sequence[ImageInput], progress: Progress | None = None,
               batch_size: int = 16) -> Peaks:
    """Each stem channel's spatial maximum over a set of pictures and where it is: the stem's output after its last
    max pool (inception3a's input), which no branch index holds; what a circuit of inception3a shows its inputs by."""
    stage = input_stage("inception3a")
    parts, shape = [], (0, 0)
    with torch.no_grad():
        for i, x in _batches(model, images, batch_size):
            y = model.forward_intermediates(x, [stage], stop_early=True, intermediates_only=True)[stage]
            values, where = y.flatten(2).max(2)
            parts.append((values.float().cpu(), where.to(torch.int32).cpu()))
            shape = tuple(y.shape[2:])
            if progress is not None:
                progress(min(i + batch_size, len(images)), len(images))
    if not parts:
        return Peaks(torch.zeros(0), torch.zeros(0, dtype=torch.int32), (0, 0))
    return Peaks(torch.cat([v for v, _ in parts]), torch.cat([w for _, w in parts]), shape)


def rank(scores: Tensor, k: int = 9) -> list[tuple[int, float]]:
    """The indices of the ``k`` highest scores with the scores, highest first."""
    values, indices = scores.float().topk(min(k, len(scores)))
    return list(zip(indices.tolist(), values.tolist()))


def patch_at(crop: Image.Image, where: int, shape: tuple[int, int]) -> Image.Image:
    """The square of ``crop`` around output position ``where`` (flat, row-major) of an ``shape`` (h, w) map."""
    h, w = shape
    y, xx = divmod(int(where), w)
    stride = crop.width / w
    half = min(crop.width, PATCH_STRIDES * stride) / 2
    cx, cy = (xx + 0.5) * stride, (y + 0.5) * crop.height / h
    left = int(np.clip(cx - half, 0, crop.width - 2 * half))
    top = int(np.clip(cy - half, 0, crop.height - 2 * half))
    return crop.crop((left, top, left + int(2 * half), top + int(2 * half)))
