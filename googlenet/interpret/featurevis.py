"""Feature visualisation: an image optimised to excite one channel of one branch, as OpenAI Microscope shows it
for InceptionV1, but for this model (ImageNet or a fine-tuned run) and branch by branch.

The method is Lucid's (Olah et al., "Feature Visualization", Distill 2017,
https://distill.pub/2017/feature-visualization/): a Fourier-parameterised image with decorrelated colour, random
padding, jitter, scaling and rotation at every step, Adam, and the channel's output *before* its last ReLU as the
objective (after the ReLU a dead unit has no gradient); the parametrisation is ``fourier``'s. The network runs only as far as the module, BatchNorm
folded into the convolutions, and the gradient is taken for the image alone; all requested channels form one
batch. ``channel_scores`` measures what a finished image does to its channel at the model's input size.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

from ..images import to_pictures
from ..inference import shared_inference_copy
from ..layers import BRANCH_KEYS
from ..model import GoogLeNet
from .branches import pre_relu, require_eval
from .fourier import FourierImage, normalizer

PAD, JITTER, FINE_JITTER = 12, 8, 4
SCALES = [1 + (i - 5) / 50 for i in range(11)]
ANGLES = list(range(-10, 11)) + 5 * [0]
# The method's name, recorded with every precomputed atlas and in the cache's keys. v2: each channel its own start
# and transforms (v1 drew one transform per step for the whole batch), and every step's image resized to the model's
# input size before the network, as Lucent does (v1 fed it at its own size: images that excite a channel at 128 px
# excite it far less once seen at 224 px, the size of every photo they are read beside).
METHOD = "lucid-fourier-v2"
LEARNING_RATE = 0.1  # Lucid uses 0.05 for 512 steps; 0.1 reached higher activations in 256 (docs/interpretability.md, the atlas)
# The defaults of a visualisation: the library's, the app's on-demand views' and ``python -m explorer.atlas build``'s.
DEFAULT_STEPS, DEFAULT_SIZE = 128, 128

Progress = Callable[[int, int], None]


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


def visualize(model: GoogLeNet, module: str, branch: str, channels: Sequence[int], steps: int = DEFAULT_STEPS,
              size: int = DEFAULT_SIZE, seed: int = 0, progress: Progress | None = None,
              input_size: int | None = None) -> list[Image.Image]:
    """One image per channel, each optimised to excite that channel of ``module``'s ``branch``.

    Deterministic for a seed on one machine and thread count. Each channel has its own start and transforms, and
    its objective has exactly zero gradient with respect to the other images of the batch, so channels can be
    batched freely: in exact arithmetic a channel's image is the one it gets rendered alone. In float32 it agrees
    with that only to rounding, since a CPU may pick other convolution kernels for another batch size (oneDNN
    does on AVX-512). ``progress(step, steps)`` is called after every step; raising from it stops the
    optimisation.
    """
    return to_pictures(visualize_tensor(model, module, branch, channels, steps, size, seed, progress, input_size))


def directions_of(model: GoogLeNet, module: str, branch: str | None, channels: Sequence[int]) -> Tensor:
    """One-hot directions (N x C) for channels of a branch (or of the whole module, numbered as its output)."""
    channels = [int(c) for c in channels]
    if branch is not None:
        model.check_branch(module, branch, channels)
        count = model.branch_width(module, branch)
    else:
        count = sum(model.branch_width(module, b) for b in BRANCH_KEYS)
        if not channels or not all(0 <= c < count for c in channels):
            raise ValueError(f"{module} has channels 0..{count - 1}; got {channels[:8] or 'none'}.")
    return F.one_hot(torch.tensor(channels), count).float()


def objectives(model: GoogLeNet, module: str, branch: str | None, directions: Tensor, images: Tensor) -> Tensor:
    """Each image's objective, what ``visualize`` raises: the mean over positions of the output before the last ReLU
    projected on the image's own direction (a channel: one-hot; a neuron group: its channels' weights), for N images
    in [0, 1] at the size the network is to see them. Image i's objective depends on image i alone."""
    net = shared_inference_copy(model)
    acts = pre_relu(net, module, branch, normalizer(model, images.device)(images))
    return torch.einsum("nchw,nc->n", acts, directions.to(acts.device, acts.dtype)) / (acts.shape[2] * acts.shape[3])


def channel_scores(model: GoogLeNet, images: Tensor, module: str, branch: str, channels: Sequence[int]) -> list[float]:
    """Each image's mean pre-ReLU activation of its own channel (the objective ``visualize`` raises), the image resized
    to the model's input size: how the network sees every photo and reference picture a visualisation is read beside."""
    device = next(shared_inference_copy(model).parameters()).device
    side = model.preprocessing["crop"]
    x = F.interpolate(images.to(device), size=(side, side), mode="bilinear", align_corners=False, antialias=True)
    with torch.no_grad():
        values = objectives(model, module, branch, directions_of(model, module, branch, channels), x)
    return [round(float(v), 5) for v in values]


def visualize_tensor(model: GoogLeNet, module: str, branch: str, channels: Sequence[int],
                     steps: int = DEFAULT_STEPS, size: int = DEFAULT_SIZE, seed: int = 0, progress: Progress | None = None,
                     input_size: int | None = None) -> Tensor:
    """``visualize`` before rounding to 8 bits: N x 3 x size x size in [0, 1]. ``input_size`` (default: the model's,
    224 px for ImageNet): every transformed image is resized to it before the network, as the network sees every
    photo and every reference picture a visualisation is read beside (0: as it is)."""
    channels = [int(c) for c in channels]
    model.check_branch(module, branch, channels)
    return visualize_directions(model, module, branch, directions_of(model, module, branch, channels),
                                [channel_seed(seed, c) for c in channels], steps, size, seed, progress, input_size)


def visualize_directions(model: GoogLeNet, module: str, branch: str | None, directions: Tensor, seeds: Sequence[int],
                         steps: int = DEFAULT_STEPS, size: int = DEFAULT_SIZE, seed: int = 0,
                         progress: Progress | None = None, input_size: int | None = None) -> Tensor:
    """N images (N x 3 x size x size in [0, 1]), image i optimised to excite ``directions[i]`` of a branch (or of the
    whole module with ``branch`` None), from its own start and transforms (``seeds[i]``); ``seed`` draws the scale
    every image of a step shares. What ``visualize_tensor`` does for channels, for any direction (a neuron group)."""
    require_eval(model)
    if not 1 <= steps <= 4096 or not 16 <= size <= 512:
        raise ValueError("steps must be within 1..4096 and size within 16..512.")
    device = next(shared_inference_copy(model).parameters()).device
    side = model.preprocessing["crop"] if input_size is None else input_size
    rngs = [random.Random(s) for s in seeds]
    image = FourierImage([torch.Generator().manual_seed(s) for s in seeds], size, device)
    optimizer = torch.optim.Adam([image.spectrum], lr=LEARNING_RATE)
    directions = directions.to(device)
    with torch.enable_grad():
        for step in range(steps):
            shared = random.Random(seed * 8192 + step)
            x = random_transform(image(), rngs, shared)
            if side:
                x = F.interpolate(x, size=(side, side), mode="bilinear", align_corners=False)
            loss = -objectives(model, module, branch, directions, x).sum()
            (image.spectrum.grad,) = torch.autograd.grad(loss, image.spectrum)
            optimizer.step()
            if progress is not None:
                progress(step + 1, steps)
    with torch.no_grad():
        return image().clamp(0, 1).detach()
