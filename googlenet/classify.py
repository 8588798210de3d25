"""Classification of real-world pictures: ``Classifier`` (torchvision's reference preprocessing, batches, the
paper's 10-crop and 144-crop schemes) on the fast path of ``inference.py`` (on a CPU BatchNorm folded, channels_last
and inference_mode, float32, so it agrees with the plain model to ~1e-6; on CUDA bfloat16 and CUDA graphs).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor
from torchvision.transforms import v2

from .device import select_device
from .images import ImageInput, load_image
from .inference import InferenceEngine, inference_copy
from .labels import named, top_classes
from .model import GoogLeNet
from .preprocess import build_transform, geometry_transforms, interpolation, tensor_transforms
from .weights import WeightsSource, load_weights

CROP_SCHEMES = (1, 10, 144)


def _ten_crop(img: Image.Image, pre: dict[str, Any]) -> list[Image.Image]:
    resized = v2.Compose(geometry_transforms(pre)[:1])(img)
    return list(v2.TenCrop(int(pre["crop"]))(resized))


def _crops_144(img: Image.Image, pre: dict[str, Any]) -> list[Image.Image]:
    """Section 7: 4 scales x 3 squares x (4 corners + centre + whole square) x mirror = 144 crops."""
    crop = int(pre["crop"])
    scales = [round(crop * s / 224) for s in (256, 288, 320, 352)]
    interp = interpolation(pre)
    out: list[Image.Image] = []
    for s in scales:
        resized = v2.Resize(s, interpolation=interp, antialias=True)(img)
        w, h = resized.size
        long_side = max(w, h)
        offsets = (0, (long_side - s) // 2, long_side - s)
        for off in offsets:
            box = (off, 0, off + s, s) if w >= h else (0, off, s, off + s)
            square = resized.crop(box)
            crops = list(v2.FiveCrop(crop)(square)) + [square.resize((crop, crop), Image.BILINEAR)]
            out.extend(crops)
            out.extend(c.transpose(Image.FLIP_LEFT_RIGHT) for c in crops)
    return out


class Classifier:
    """ImageNet (or fine-tuned) classification of real-world pictures; safe to call from many threads."""

    def __init__(self, model: GoogLeNet, device: str | torch.device | None = None, fast: bool = True,
                 source: WeightsSource | None = None, compile_large: bool = False, warm_up: bool = True) -> None:
        self.device = select_device(device)
        self.model = model.eval()
        self.class_names = list(model.class_names)
        self.preprocessing = dict(model.preprocessing)
        self.source = source or WeightsSource("local", model.weights_source)
        self.transform = build_transform(self.preprocessing)
        self._normalize = v2.Compose(tensor_transforms(self.preprocessing))
        self._gpu_geometry = v2.Compose(geometry_transforms(self.preprocessing) + tensor_transforms(
            self.preprocessing)[1:])
        self.engine = InferenceEngine(model, self.device, fast=fast, compile_large=compile_large, warm_up=warm_up)
        self._on_device: GoogLeNet | None = None
        self._device_lock = threading.Lock()

    def model_on_device(self) -> GoogLeNet:
        """The float32 model on the classifier's device, for looking inside it (features, atlas): the
        engine's copy may be bfloat16 and folded, which would change what a branch's channels show."""
        if self.device.type == "cpu":
            return self.model
        with self._device_lock:
            if self._on_device is None:
                self._on_device = inference_copy(self.model, self.device, fold=False)
            return self._on_device

    @classmethod
    def from_pretrained(cls, repo_id_or_dir: str | None = None, device: str | torch.device | None = None,
                        fast: bool = True, chain_start: str | None = None, compile_large: bool = False,
                        warm_up: bool = True) -> Classifier:
        """``None``: the weight chain from ``chain_start`` (never fails); otherwise that repo/folder
        (``WeightsError``). ``warm_up``: run one batch on a CUDA device now (not where CUDA must wait, ZeroGPU)."""
        model, source = load_weights(repo_id_or_dir, chain_start=chain_start)
        return cls(model, device=device, fast=fast, source=source, compile_large=compile_large, warm_up=warm_up)

    def preprocess(self, image: ImageInput) -> Tensor:
        """One picture -> normalised CHW tensor (on the GPU, resizing there, when the engine is on CUDA)."""
        img = load_image(image)
        if self.device.type == "cuda":
            tensor = v2.functional.pil_to_tensor(img).pin_memory()
            return self._gpu_geometry(tensor.to(self.device, non_blocking=True))
        return self.transform(img)

    def _multi_crop(self, image: ImageInput, crops: int) -> Tensor:
        img = load_image(image)
        pieces = _ten_crop(img, self.preprocessing) if crops == 10 else _crops_144(img, self.preprocessing)
        return torch.stack([self._normalize(p) for p in pieces])

    def probabilities(self, batch: Tensor) -> Tensor:
        return F.softmax(self.engine.logits(batch), dim=1)

    def _top(self, probs: Tensor, top_k: int) -> list[tuple[str, float]]:
        return named(top_classes(probs, self.class_names, top_k))

    @staticmethod
    def _check(top_k: int, crops: int) -> None:
        if not isinstance(top_k, (int, np.integer)) or isinstance(top_k, bool) or top_k < 1:
            raise ValueError(f"top_k must be a positive integer, not {top_k!r}")
        if crops not in CROP_SCHEMES:
            raise ValueError(f"crops must be one of {CROP_SCHEMES}, not {crops!r}")

    def predict(self, image: ImageInput, top_k: int = 5, crops: int = 1) -> list[tuple[str, float]]:
        """Top-k (label, probability), most likely first. ``crops``: 1, 10 (the paper's 10-crop) or 144."""
        self._check(top_k, crops)
        if crops == 1:
            probs = self.probabilities(self.preprocess(image).unsqueeze(0))[0]
        else:
            probs = self.probabilities(self._multi_crop(image, crops)).mean(0)
        return self._top(probs, int(top_k))

    def predict_batch(self, images: Sequence[ImageInput], top_k: int = 5) -> list[list[tuple[str, float]]]:
        """Many pictures in one forward pass."""
        self._check(top_k, 1)
        if not images:
            return []
        batch = torch.stack([self.preprocess(im) for im in images])
        return [self._top(p, int(top_k)) for p in self.probabilities(batch)]
