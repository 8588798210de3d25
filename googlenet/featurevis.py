"""Feature visualisation: an image optimised to excite one channel of one branch, as OpenAI Microscope shows it
for InceptionV1, but for this model (ImageNet or a fine-tuned run) and branch by branch.

The method is Lucid's (Olah et al., "Feature Visualization", Distill 2017,
https://distill.pub/2017/feature-visualization/): a Fourier-parameterised image with decorrelated colour, random
padding, jitter, scaling and rotation at every step, Adam, and the channel's output *before* its last ReLU as the
objective (after the ReLU a dead unit has no gradient). The network runs only as far as the module, BatchNorm
folded into the convolutions, and the gradient is taken for the image alone; all requested channels form one
batch. ``channel_scores`` measures what a finished image does to its channel at the model's input size.
"""

from __future__ import annotations

import math
import random
import threading
import weakref
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor, nn

from .features import _check_eval
from .inference import inference_copy
from .model import BRANCH_KEYS, GoogLeNet


# Lucid's colour decorrelation: the square root of ImageNet's RGB covariance, columns normalised by the largest.
_COLOR_SQRT = torch.tensor([[0.26, 0.09, 0.02], [0.27, 0.00, -0.05], [0.27, -0.09, 0.03]])
_COLOR = _COLOR_SQRT / _COLOR_SQRT.norm(dim=0).max()
PAD, JITTER, FINE_JITTER = 12, 8, 4
SCALES = [1 + (i - 5) / 50 for i in range(11)]
ANGLES = list(range(-10, 11)) + 5 * [0]
# The method's name, recorded with every precomputed atlas and in the cache's keys. v2: each channel its own start
# and transforms (v1 drew one transform per step for the whole batch), and every step's image resized to the model's
# input size before the network, as Lucent does (v1 fed it at its own size: images that excite a channel at 128 px
# excite it far less once seen at 224 px, the size of every photo they are read beside).
METHOD = "lucid-fourier-v2"
LEARNING_RATE = 0.1  # Lucid uses 0.05 for 512 steps; 0.1 reached higher activations in 256 (README, Atlas)
# The defaults of a visualisation: the library's, the app's on-demand views' and ``python -m explorer.atlas build``'s.
DEFAULT_STEPS, DEFAULT_SIZE = 128, 128

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


def to_pictures(images: Tensor) -> list[Image.Image]:
    """N x 3 x H x W in [0, 1] -> 8-bit pictures."""
    pixels = (images * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
    return [Image.fromarray(p) for p in pixels]


def _normalizer(model: GoogLeNet, device: torch.device) -> Callable[[Tensor], Tensor]:
    """Images in [0, 1] -> the network's normalised, channels_last input."""
    mean = torch.tensor(model.preprocessing["mean"], device=device)[None, :, None, None]
    std = torch.tensor(model.preprocessing["std"], device=device)[None, :, None, None]
    return lambda x: ((x - mean) / std).contiguous(memory_format=torch.channels_last)


def pre_relu(net: GoogLeNet, module: str, branch: str | None, x: Tensor) -> Tensor:
    """N x C x H x W: ``branch``'s output before its last ReLU, or with ``branch`` None the whole module's (its four
    branches so, concatenated in ``BRANCH_KEYS`` order: the module's output channels), for normalised input ``x``."""
    inputs = net.forward_until(module, x)
    branches = getattr(net, module).branches()
    if branch is not None:
        return _pre_relu(branches[branch], inputs)
    return torch.cat([_pre_relu(branches[b], inputs) for b in BRANCH_KEYS], 1)


def directions_of(model: GoogLeNet, module: str, branch: str | None, channels: Sequence[int]) -> Tensor:
    """One-hot directions (N x C) for channels of a branch (or of the whole module, numbered as its output)."""
    channels = [int(c) for c in channels]
    if branch is not None:
        count = model.check_branch(module, branch, channels)
    else:
        count = sum(model.check_branch(module, b) for b in BRANCH_KEYS)
        if not channels or not all(0 <= c < count for c in channels):
            raise ValueError(f"{module} has channels 0..{count - 1}; got {channels[:8] or 'none'}.")
    return F.one_hot(torch.tensor(channels), count).float()


def objectives(model: GoogLeNet, module: str, branch: str | None, directions: Tensor, images: Tensor) -> Tensor:
    """Each image's objective, what ``visualize`` raises: the mean over positions of the output before the last ReLU
    projected on the image's own direction (a channel: one-hot; a neuron group: its channels' weights), for N images
    in [0, 1] at the size the network is to see them. Image i's objective depends on image i alone."""
    net = shared_inference_copy(model)
    acts = pre_relu(net, module, branch, _normalizer(model, images.device)(images))
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
    _check_eval(model)
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
