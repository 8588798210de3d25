"""torchvision's reference preprocessing (resize the shorter side, centre-crop, normalise), as the model's
``preprocessing`` dict describes it: the one place classification, feature maps and the atlas take it from."""

from __future__ import annotations

from typing import Any

import torch
from PIL import Image
from torch import Tensor, nn
from torchvision.transforms import InterpolationMode, v2

from .images import ImageInput, load_image


def interpolation(pre: dict[str, Any]) -> InterpolationMode:
    return InterpolationMode(str(pre.get("interpolation", "bilinear")).lower())


def geometry_transforms(pre: dict[str, Any]) -> list[nn.Module]:
    """Resize the shorter side, then centre-crop: torchvision's ``ImageClassification`` preset, as data."""
    return [v2.Resize(int(pre["resize"]), interpolation=interpolation(pre), antialias=bool(pre.get("antialias", True))),
            v2.CenterCrop(int(pre["crop"]))]


def tensor_transforms(pre: dict[str, Any]) -> list[nn.Module]:
    return [v2.ToImage(), v2.ToDtype(torch.float32, scale=True), v2.Normalize(pre["mean"], pre["std"])]


def build_transform(pre: dict[str, Any]) -> v2.Compose:
    """PIL image -> normalised CHW float tensor, exactly as torchvision's reference pipeline for PIL input."""
    return v2.Compose(geometry_transforms(pre) + tensor_transforms(pre))


def prepare_input(image: ImageInput, pre: dict[str, Any]) -> tuple[Tensor, Image.Image]:
    """The network's input (1x3xSxS) and the crop it sees, as a picture for overlays."""
    crop = v2.Compose(geometry_transforms(pre))(load_image(image))
    return v2.Compose(tensor_transforms(pre))(crop).unsqueeze(0), crop
