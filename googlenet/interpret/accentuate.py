"""Feature accentuation: what in *this* picture a channel (or a neuron group) responds to, shown by changing the
picture as little as possible so that it responds more (Hamblin et al., "Feature Accentuation", 2024,
https://arxiv.org/abs/2402.10039).

The change is held as Fourier coefficients scaled by 1/frequency^2 with decorrelated colour (``fourier``'s
parametrisation, Lucid's, made smoother), and starts at zero: low frequencies move first, so the change is a shape
or a colour, not pixel noise. Every step sees the changed picture shifted by up to ``SHIFT`` pixels (reflected at
the border) and blurred by up to ``BLUR``, so what it adds must work wherever it lands and survive losing fine
detail (as JPEG does), and a penalty on the change's mean square keeps it close to the picture. The objective is the log of the target's mean response with each channel's ReLU
made smooth (``softplus``): a log, so that a weak response counts as much to raise as a
strong one; smooth, so that a place where a unit is off still has a gradient. What is reported is the response
after the ReLU (what the network passes on), at the model's input size.
"""

from __future__ import annotations

import io
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

from ..images import ImageInput
from ..inference import shared_inference_copy
from ..model import GoogLeNet
from ..preprocess import prepare_input
from .branches import pre_relu, require_eval
from .fourier import from_spectrum, normalizer, spectrum_scale

# The settings, chosen on the tests' realistic random weights (docs/interpretability.md, Feature accentuation): with 1/frequency
# (Lucid's) the change kept 43-66% of its gain through JPEG and a shift, with 1/frequency^1.5 70-100% but looked
# like coloured speckle; 1/frequency^2 halves the change (RMS 0.03) for the same gain, in blobs.
ACCENT_STEPS = 64  # the app's setting: about 4 s on a 2-core CPU at 224 px
LEARNING_RATE = 0.0002
PENALTY = 700.0  # weight of the change's mean square against the log-response
DECAY = 2.0  # the change's spectrum is scaled by 1/frequency^DECAY: smoother than a visualisation's
SHIFT = 8  # px: the largest shift a step sees the picture at
BLUR = 1.0  # px: the largest Gaussian blur (sigma) a step sees the picture through (JPEG drops fine detail)
Progress = Callable[[int, int], None]


@dataclass
class Accentuation:
    """A picture accentuated for one target, beside the original (both as the network sees them)."""

    original: Image.Image
    accentuated: Image.Image
    before: float  # the target's response to the original (mean over positions, after the ReLU)
    after: float  # ... and to the accentuated picture
    rms: float  # root-mean-square change of the pixels, in [0, 1] units
    seconds: float = 0.0

    @property
    def ratio(self) -> float:
        """How many times the target responds more (infinite when it did not respond at all before)."""
        return self.after / self.before if self.before > 0 else float("inf")

    def difference(self, gain: float = 4.0) -> Image.Image:
        """The change, grey where nothing changed, ``gain`` times stronger to be seen."""
        a = np.asarray(self.accentuated, dtype=np.float32) - np.asarray(self.original, dtype=np.float32)
        return Image.fromarray(np.clip(127.5 + gain * a, 0, 255).astype(np.uint8))


def _target(model: GoogLeNet, module: str, branch: str | None, direction: Tensor,
            unit: Callable[[Tensor], Tensor]) -> Callable[[Tensor], Tensor]:
    """Normalised input -> the target's map (N x H x W): ``unit`` (the ReLU, or a smooth one) of each of the
    branch's (or the whole module's) channels before its last ReLU, mixed by ``direction`` scaled to unit length
    (so that a mix responds on a channel's scale)."""
    net = shared_inference_copy(model)
    direction = direction / direction.norm().clamp(min=1e-12)

    def mixed(x: Tensor) -> Tensor:
        return torch.einsum("nchw,c->nhw", unit(pre_relu(net, module, branch, x)), direction.to(x.device, x.dtype))
    return mixed


def _blur(x: Tensor, sigma: float) -> Tensor:
    """A Gaussian blur of ``sigma`` px (none below 0.1 px), reflected at the border."""
    if sigma < 0.1:
        return x
    radius = max(1, int(round(2.5 * sigma)))
    t = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    g = torch.exp(-0.5 * (t / sigma) ** 2)
    g, c = g / g.sum(), x.shape[1]
    x = F.conv2d(F.pad(x, [radius, radius, 0, 0], mode="reflect"), g.view(1, 1, 1, -1).repeat(c, 1, 1, 1), groups=c)
    return F.conv2d(F.pad(x, [0, 0, radius, radius], mode="reflect"), g.view(1, 1, -1, 1).repeat(c, 1, 1, 1), groups=c)


def response(model: GoogLeNet, pictures: Tensor, module: str, branch: str | None, direction: Tensor) -> Tensor:
    """The target's mean response after the ReLU to N pictures (N x 3 x H x W in [0, 1], at the size the network is
    to see them)."""
    with torch.no_grad():
        return _target(model, module, branch, direction, torch.relu)(normalizer(model, pictures.device)(pictures)
                                                                     ).mean((1, 2))


def accentuate(model: GoogLeNet, image: ImageInput, module: str, branch: str | None, direction: Tensor,
               steps: int = ACCENT_STEPS, seed: int = 0, progress: Progress | None = None) -> Accentuation:
    """The picture (the network's crop of ``image``) changed little so that the target responds more: a channel
    mix ``direction`` of ``branch`` (a one-hot for one channel), or of the whole module's output with ``branch``
    None (a neuron group)."""
    require_eval(model)
    if not 1 <= steps <= 1024:
        raise ValueError("steps must be within 1..1024.")
    x, crop = prepare_input(image, model.preprocessing)
    device = next(shared_inference_copy(model).parameters()).device
    original = torch.from_numpy(np.asarray(crop, dtype=np.float32) / 255).permute(2, 0, 1)[None].to(device)
    side = original.shape[-1]
    normalize, target = normalizer(model, device), _target(model, module, branch, direction, F.softplus)
    scale = spectrum_scale(side, DECAY).to(device)
    spectrum = torch.zeros(1, 3, side, side // 2 + 1, 2, device=device, requires_grad=True)

    def changed() -> Tensor:
        return (original + from_spectrum(spectrum, scale)).clamp(0, 1)

    optimizer = torch.optim.Adam([spectrum], lr=LEARNING_RATE)
    rng = random.Random(seed)
    started = time.perf_counter()
    with torch.enable_grad():
        for step in range(steps):
            picture = changed()
            dy, dx = rng.randint(-SHIFT, SHIFT), rng.randint(-SHIFT, SHIFT)
            seen = F.pad(picture, [SHIFT] * 4, mode="reflect")[..., SHIFT + dy:SHIFT + dy + side,
                                                                 SHIFT + dx:SHIFT + dx + side]
            if BLUR:
                seen = _blur(seen, rng.uniform(0.0, BLUR))
            value = target(normalize(seen)).mean()
            loss = -torch.log(value) + PENALTY * (picture - original).square().mean()
            (spectrum.grad,) = torch.autograd.grad(loss, spectrum)
            optimizer.step()
            if progress is not None:
                progress(step + 1, steps)
    with torch.no_grad():
        result = changed()
    pixels = (result[0].permute(1, 2, 0).cpu().numpy() * 255).round().astype(np.uint8)
    accentuated = Image.fromarray(pixels)
    both = torch.cat([original, torch.from_numpy(pixels / 255.0).float().permute(2, 0, 1)[None].to(device)])
    before, after = response(model, both, module, branch, direction).tolist()
    rms = float(np.sqrt(np.mean((pixels / 255.0 - original[0].permute(1, 2, 0).cpu().numpy()) ** 2)))
    return Accentuation(crop, accentuated, before, after, rms, time.perf_counter() - started)


def jpeg_and_shift(picture: Image.Image, quality: int = 75, shift: int = 4) -> Image.Image:
    """The picture as it may come back from the world: JPEG-compressed at ``quality``, then shifted by ``shift`` px
    right and down (the edge repeated): a change that is a feature survives this, pixel noise does not."""
    buffer = io.BytesIO()
    picture.convert("RGB").save(buffer, format="JPEG", quality=quality)
    squeezed = np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"))
    padded = np.pad(squeezed, ((shift, 0), (shift, 0), (0, 0)), mode="edge")
    return Image.fromarray(padded[:squeezed.shape[0], :squeezed.shape[1]])
