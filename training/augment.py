"""Batched augmentation on whatever device the data lives on (the GPU, during GPU training).

Images arrive as N x 3 x 32 x 32 uint8; one call crops, resizes, flips, distorts and normalises the
whole batch, instead of one PIL image at a time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torchvision.ops import roi_align


@dataclass
class AugmentConfig:
    image_size: int = 32
    random_crop: bool = True  # the paper's crops: 8%-100% of the area, aspect ratio 3/4 to 4/3
    flip: bool = True
    photometric: bool = True  # brightness, contrast, saturation
    scale: tuple[float, float] = (0.08, 1.0)
    ratio: tuple[float, float] = (3 / 4, 4 / 3)
    strength: float = 0.4


def random_resized_boxes(n: int, height: int, width: int, scale: tuple[float, float], ratio: tuple[float, float],
                         generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
    """N boxes (x1, y1, x2, y2) of random area and aspect ratio, clipped to the image."""
    area = height * width * torch.empty(n).uniform_(*scale, generator=generator)
    log_r = torch.empty(n).uniform_(math.log(ratio[0]), math.log(ratio[1]), generator=generator)
    aspect = torch.exp(log_r)
    w = torch.sqrt(area * aspect).clamp(1, width)
    h = torch.sqrt(area / aspect).clamp(1, height)
    x1 = torch.rand(n, generator=generator) * (width - w)
    y1 = torch.rand(n, generator=generator) * (height - h)
    return torch.stack([x1, y1, x1 + w, y1 + h], 1).to(device)


def resize(x: torch.Tensor, size: int) -> torch.Tensor:
    if x.shape[-1] == size and x.shape[-2] == size:
        return x
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=size < x.shape[-1])


def photometric(x: torch.Tensor, strength: float, generator: torch.Generator | None) -> torch.Tensor:
    """Random brightness, contrast and saturation per image, on [0, 1] floats."""
    n = x.shape[0]

    def factors() -> torch.Tensor:
        return torch.empty(n, 1, 1, 1).uniform_(1 - strength, 1 + strength, generator=generator).to(x.device, x.dtype)

    x = x * factors()
    gray = (0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3])
    x = (x - gray.mean((2, 3), keepdim=True)) * factors() + gray.mean((2, 3), keepdim=True)
    gray = (0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3])
    x = (x - gray) * factors() + gray
    return x.clamp(0, 1)


class BatchPipeline:
    """uint8 batches -> normalised float batches, for training (augmented) or evaluation (resized only)."""

    def __init__(self, config: AugmentConfig, mean: tuple[float, ...], std: tuple[float, ...],
                 device: torch.device, seed: int = 0) -> None:
        self.config = config
        self.device = device
        self.mean = torch.tensor(mean, device=device).view(1, 3, 1, 1)
        self.std = torch.tensor(std, device=device).view(1, 3, 1, 1)
        self.generator = torch.Generator().manual_seed(seed)

    def _normalize(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std

    def eval(self, images: torch.Tensor) -> torch.Tensor:
        x = images.to(self.device, non_blocking=True).float().div_(255)
        return self._normalize(resize(x, self.config.image_size))

    def train(self, images: torch.Tensor) -> torch.Tensor:
        c, g = self.config, self.generator
        x = images.to(self.device, non_blocking=True).float().div_(255)
        n, _, h, w = x.shape
        if c.random_crop:
            boxes = random_resized_boxes(n, h, w, c.scale, c.ratio, g, x.device)
            rois = torch.cat([torch.arange(n, device=x.device, dtype=x.dtype)[:, None], boxes.to(x.dtype)], 1)
            x = roi_align(x, rois, output_size=(c.image_size, c.image_size), spatial_scale=1.0, sampling_ratio=2,
                          aligned=True)
        else:
            x = resize(x, c.image_size)
        if c.flip:
            mask = (torch.rand(n, generator=g) < 0.5).to(x.device).view(n, 1, 1, 1)
            x = torch.where(mask, x.flip(-1), x)
        if c.photometric:
            x = photometric(x, c.strength, g)
        return self._normalize(x)
