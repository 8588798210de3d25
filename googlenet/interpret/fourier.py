"""The image parametrisation feature visualisation and accentuation share (Lucid's, Olah et al. 2017): a picture
held as Fourier coefficients scaled by 1/frequency^decay, so that every frequency learns at the same pace and no
high-frequency noise appears, with colour decorrelated by the square root of ImageNet's colour covariance; and the
step from pictures in [0, 1] to the network's normalised input."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from ..model import GoogLeNet

# Lucid's colour decorrelation: the square root of ImageNet's RGB covariance, columns normalised by the largest.
_COLOR_SQRT = torch.tensor([[0.26, 0.09, 0.02], [0.27, 0.00, -0.05], [0.27, -0.09, 0.03]])
COLOR = _COLOR_SQRT / _COLOR_SQRT.norm(dim=0).max()


def spectrum_scale(size: int, decay: float = 1.0) -> Tensor:
    """1 x 1 x size x (size // 2 + 1): each coefficient's scale, 1/frequency^decay (the constant term as the lowest
    frequency's)."""
    fy = torch.fft.fftfreq(size)[:, None]
    fx = torch.fft.rfftfreq(size)[None, :]
    frequency = (fx * fx + fy * fy).sqrt().clamp(min=1.0 / size)
    return (1.0 / (frequency if decay == 1 else frequency ** decay))[None, None]


def from_spectrum(spectrum: Tensor, scale: Tensor) -> Tensor:
    """N x 3 x size x size in decorrelated colour, from the real view (N x 3 x size x size//2+1 x 2) of scaled
    Fourier coefficients."""
    size = spectrum.shape[-3]
    image = torch.fft.irfftn(torch.view_as_complex(spectrum) * scale, s=(size, size), norm="ortho")
    return torch.einsum("nchw,dc->ndhw", image, COLOR.to(image.device, image.dtype))


class FourierImage:
    """N RGB images held as Fourier coefficients scaled by 1/frequency, squashed into [0, 1] by a sigmoid."""

    def __init__(self, generators: Sequence[torch.Generator], size: int, device: torch.device) -> None:
        """One image per generator, each drawn from its own (so an image does not depend on its batch)."""
        self.size = size
        self.scale = spectrum_scale(size).to(device)
        shape = (3, size, size // 2 + 1, 2)
        spectrum = torch.stack([torch.randn(shape, generator=g) for g in generators]) * 0.01
        self.spectrum = spectrum.to(device).requires_grad_(True)

    def __call__(self) -> Tensor:
        """N x 3 x size x size in [0, 1]."""
        return torch.sigmoid(from_spectrum(self.spectrum, self.scale) / 4.0)


def normalizer(model: GoogLeNet, device: torch.device) -> Callable[[Tensor], Tensor]:
    """Pictures in [0, 1] -> the network's normalised, channels_last input."""
    mean = torch.tensor(model.preprocessing["mean"], device=device)[None, :, None, None]
    std = torch.tensor(model.preprocessing["std"], device=device)[None, :, None, None]
    return lambda x: ((x - mean) / std).contiguous(memory_format=torch.channels_last)
