"""Channel atlas: what one channel of one branch has learned, as OpenAI Microscope shows it for InceptionV1,
but for this model (ImageNet or a fine-tuned run) and branch by branch.

* ``visualize``: an image optimised to excite the channel, by the method of Lucid (Olah et al., "Feature
  Visualization", Distill 2017): a Fourier-parameterised image with decorrelated colour, random padding,
  jitter, scaling and rotation at every step, Adam, and the channel's output *before* its last ReLU as the
  objective (after the ReLU a dead unit has no gradient). The network runs only as far as the module,
  BatchNorm folded into the convolutions, and the gradient is taken for the image alone; all requested
  channels form one batch.
* ``top_examples``: the pictures of a set that excite the channel most (spatial maximum of its output, as
  ``capture_branches`` returns it), and ``peak_patch`` the part of a picture where it peaks.
"""

from __future__ import annotations

import math
import random
import threading
import weakref
from collections.abc import Callable, Sequence
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor, nn

from .features import _check_eval, capture_branches
from .images import ImageInput
from .inference import inference_copy
from .model import BRANCH_KEYS, GoogLeNet
from .preprocess import prepare_input


class Peaks(NamedTuple):
    """Each picture's and channel's spatial maximum (N x C), where it is (N x C, flat row-major) and the map's
    (height, width)."""

    values: Tensor
    where: Tensor
    shape: tuple[int, int]

# Lucid's colour decorrelation: the square root of ImageNet's RGB covariance, columns normalised by the largest.
_COLOR_SQRT = torch.tensor([[0.26, 0.09, 0.02], [0.27, 0.00, -0.05], [0.27, -0.09, 0.03]])
_COLOR = _COLOR_SQRT / _COLOR_SQRT.norm(dim=0).max()
PAD, JITTER, FINE_JITTER = 12, 8, 4
SCALES = [1 + (i - 5) / 50 for i in range(11)]
ANGLES = list(range(-10, 11)) + 5 * [0]
# How far from a peak a patch reaches, by the module's stride (8 px for 3x, 16 for 4x, 32 for 5x).
PATCH_STRIDES = 6
# The method's name, recorded with every precomputed atlas and in the cache's keys. v2: each channel its own start
# and transforms (v1 drew one transform per step for the whole batch), and every step's image resized to the model's
# input size before the network, as Lucent does (v1 fed it at its own size: images that excite a channel at 128 px
# excite it far less once seen at 224 px, the size of every photo they are read beside).
METHOD = "lucid-fourier-v2"
LEARNING_RATE = 0.1  # Lucid uses 0.05 for 512 steps; 0.1 reached higher activations in 256 (README, Atlas)

Progress = Callable[[int, int], None]


def _pre_relu(branch: nn.Module, x: Tensor) -> Tensor:
    """The branch's output before its last ReLU."""
    layers = list(branch) if isinstance(branch, nn.Sequential) else [branch]
    for layer in layers[:-1]:
        x = layer(x)
    last = layers[-1]
    return last.bn(last.conv(x))


_COPIES: weakref.WeakKeyDictionary[GoogLeNet, GoogLeNet] = weakref.WeakKeyDictionary()
_COPIES_LOCK = threading.Lock()


def shared_inference_copy(model: GoogLeNet) -> GoogLeNet:
    """``inference_copy`` on the model's device, made once per model object: the atlas's views of one model
    share it (a visualisation needs the gradient for the image only)."""
    with _COPIES_LOCK:
        net = _COPIES.get(model)
        if net is None:
            net = _COPIES[model] = inference_copy(model, next(model.parameters()).device)
        return net


def _frequencies(size: int) -> Tensor:
    fy = torch.fft.fftfreq(size)[:, None]
    fx = torch.fft.rfftfreq(size)[None, :]
    return (fx * fx + fy * fy).sqrt()


class FourierImage:
    """N RGB images held as Fourier coefficients scaled by 1/frequency, so every frequency learns at the
    same pace (no high-frequency noise), with colour decorrelated as in Lucid."""

    def __init__(self, generators: Sequence[torch.Generator], size: int, device: torch.device) -> None:
        """One image per generator, each drawn from its own (so an image does not depend on its batch)."""
        self.size = size
        self.scale = (1.0 / _frequencies(size).clamp(min=1.0 / size))[None, None].to(device)
        shape = (3, size, size // 2 + 1, 2)
        spectrum = torch.stack([torch.randn(shape, generator=g) for g in generators]) * 0.01
        self.spectrum = spectrum.to(device).requires_grad_(True)
        self.color = _COLOR.to(device)

    def __call__(self) -> Tensor:
        """N x 3 x size x size in [0, 1]."""
        spectrum = torch.view_as_complex(self.spectrum) * self.scale
        image = torch.fft.irfftn(spectrum, s=(self.size, self.size), norm="ortho") / 4.0
        image = torch.einsum("nchw,dc->ndhw", image, self.color)
        return torch.sigmoid(image)


def random_transform(x: Tensor, rngs: Sequence[random.Random], shared: random.Random) -> Tensor:
    """Lucid's standard transforms: pad 12 (grey), jitter 8, scale, rotate, jitter 4. Each image's jitters and
    rotation come from its own ``rngs[i]``; the scale, which sets the batch's size, from ``shared``, which depends
    on the step only. So a seed fixes each image's run, whichever images share its batch."""
    x = F.pad(x, [PAD] * 4, value=0.5)
    x = torch.stack([_jitter(xi, JITTER, r) for xi, r in zip(x, rngs)])
    scale = shared.choice(SCALES)
    angles = [math.radians(r.choice(ANGLES)) for r in rngs]
    theta = torch.tensor([[[math.cos(a), -math.sin(a), 0.0], [math.sin(a), math.cos(a), 0.0]] for a in angles],
                         dtype=x.dtype, device=x.device)  # the rotations; the scale is the output's size
    size = [x.shape[0], x.shape[1], round(x.shape[2] * scale), round(x.shape[3] * scale)]
    grid = F.affine_grid(theta, size, align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    return torch.stack([_jitter(xi, FINE_JITTER, r) for xi, r in zip(x, rngs)])


def _jitter(x: Tensor, d: int, rng: random.Random) -> Tensor:
    dy, dx = rng.randrange(d), rng.randrange(d)
    return x[..., dy:x.shape[-2] - d + dy + 1, dx:x.shape[-1] - d + dx + 1]


def channel_seed(seed: int, channel: int) -> int:
    """The seed of one channel's image (its start and its transforms)."""
    return seed * 1_000_003 + int(channel)


def visualize(model: GoogLeNet, module: str, branch: str, channels: Sequence[int], steps: int = 256,
              size: int = 128, seed: int = 0, progress: Progress | None = None,
              input_size: int | None = None) -> list[Image.Image]:
    """One image per channel, each optimised to excite that channel of ``module``'s ``branch``.

    Deterministic for a seed (on one machine and thread count), and each channel's image is the one it gets when
    rendered alone (its own start and transforms; the tests check this within 1e-5): channels can be batched
    freely. ``progress(step, steps)`` is called after every step; raising from it stops the optimisation.
    """
    return to_pictures(visualize_tensor(model, module, branch, channels, steps, size, seed, progress, input_size))


def to_pictures(images: Tensor) -> list[Image.Image]:
    """N x 3 x H x W in [0, 1] -> 8-bit pictures."""
    pixels = (images * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
    return [Image.fromarray(p) for p in pixels]


def _normalizer(model: GoogLeNet, device: torch.device) -> Callable[[Tensor], Tensor]:
    """Images in [0, 1] -> the network's normalised, channels_last input."""
    mean = torch.tensor(model.preprocessing["mean"], device=device)[None, :, None, None]
    std = torch.tensor(model.preprocessing["std"], device=device)[None, :, None, None]
    return lambda x: ((x - mean) / std).contiguous(memory_format=torch.channels_last)


def channel_scores(model: GoogLeNet, images: Tensor, module: str, branch: str, channels: Sequence[int]) -> list[float]:
    """Each image's mean pre-ReLU activation of its own channel (the objective ``visualize`` raises), the image resized
    to the model's input size: how the network sees every photo and reference picture a visualisation is read beside."""
    net = shared_inference_copy(model)
    device = next(net.parameters()).device
    side = model.preprocessing["crop"]
    x = F.interpolate(images.to(device), size=(side, side), mode="bilinear", align_corners=False, antialias=True)
    with torch.no_grad():
        acts = _pre_relu(getattr(net, module).branches()[branch],
                         net.forward_until(module, _normalizer(model, device)(x)))
    return [round(float(acts[i, int(c)].mean()), 5) for i, c in enumerate(channels)]


def visualize_tensor(model: GoogLeNet, module: str, branch: str, channels: Sequence[int], steps: int = 256,
                     size: int = 128, seed: int = 0, progress: Progress | None = None,
                     input_size: int | None = None) -> Tensor:
    """``visualize`` before rounding to 8 bits: N x 3 x size x size in [0, 1]. ``input_size`` (default: the model's,
    224 px for ImageNet): every transformed image is resized to it before the network, as the network sees every
    photo and every reference picture a visualisation is read beside (0: as it is)."""
    _check_eval(model)
    channels = [int(c) for c in channels]
    model.check_branch(module, branch, channels)
    if not 1 <= steps <= 4096 or not 16 <= size <= 512:
        raise ValueError("steps must be within 1..4096 and size within 16..512.")
    net = shared_inference_copy(model)
    device = next(net.parameters()).device
    normalize = _normalizer(model, device)
    target = getattr(net, module).branches()[branch]
    side = model.preprocessing["crop"] if input_size is None else input_size
    rngs = [random.Random(channel_seed(seed, c)) for c in channels]
    image = FourierImage([torch.Generator().manual_seed(channel_seed(seed, c)) for c in channels], size, device)
    optimizer = torch.optim.Adam([image.spectrum], lr=LEARNING_RATE)
    rows, cols = torch.arange(len(channels)), torch.tensor(channels)
    with torch.enable_grad():
        for step in range(steps):
            shared = random.Random(seed * 8192 + step)
            x = random_transform(image(), rngs, shared)
            if side:
                x = F.interpolate(x, size=(side, side), mode="bilinear", align_corners=False)
            acts = _pre_relu(target, net.forward_until(module, normalize(x)))
            loss = -acts[rows, cols].mean((1, 2)).sum()
            (image.spectrum.grad,) = torch.autograd.grad(loss, image.spectrum)
            optimizer.step()
            if progress is not None:
                progress(step + 1, steps)
    with torch.no_grad():
        return image().clamp(0, 1).detach()


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


def channel_maxima(model: GoogLeNet, images: Sequence[ImageInput], modules: Sequence[str] | None = None,
                   progress: Progress | None = None, batch_size: int = 16) -> dict[str, dict[str, Tensor]]:
    """{module: {branch: N x C spatial maxima}} over a set of pictures."""
    peaks = channel_peaks(model, images, modules, progress, batch_size)
    return {m: {b: p.values for b, p in bs.items()} for m, bs in peaks.items()}


def rank(scores: Tensor, k: int = 9) -> list[tuple[int, float]]:
    """The indices of the ``k`` highest scores with the scores, highest first."""
    values, indices = scores.float().topk(min(k, len(scores)))
    return list(zip(indices.tolist(), values.tolist()))


def top_examples(model: GoogLeNet, images: Sequence[ImageInput], module: str, branch: str, channel: int,
                 k: int = 9) -> list[tuple[int, float]]:
    """The ``k`` pictures that excite the channel most: (index, spatial maximum of its output), highest first."""
    model.check_branch(module, branch, [channel])
    if not images:
        raise ValueError("No pictures to search.")
    scores = channel_maxima(model, images, [module])[module][branch][:, int(channel)]
    return rank(scores, k)


def peak_patch(model: GoogLeNet, image: ImageInput, module: str, branch: str, channel: int) -> Image.Image:
    """The square of the network's crop around the place where the channel's output peaks."""
    model.check_branch(module, branch, [channel])
    x, crop = prepare_input(image, model.preprocessing)
    act = channel_activation(model, x.to(next(model.parameters()).device), module, branch)[0, int(channel)]
    return patch_at(crop, int(act.flatten().argmax()), tuple(act.shape))


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
