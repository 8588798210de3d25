"""Turning whatever a visitor uploads into one RGB picture, or a clear error; and pictures to and from tensors."""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Union

import numpy as np
import torch
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

MAX_PIXELS = 40_000_000  # a decompression-bomb guard: larger images are refused before decoding
MAX_FILE_BYTES = 10 * 1024 * 1024  # one picture's file, checked before decoding (the app accepts larger zips)
ImageFile.LOAD_TRUNCATED_IMAGES = False
Image.MAX_IMAGE_PIXELS = MAX_PIXELS

ImageInput = Union[Image.Image, np.ndarray, str, os.PathLike, bytes]


class ImageError(ValueError):
    """The input is not a usable picture; the message says why, for a person."""


def _check_size(width: int, height: int) -> None:
    if width < 1 or height < 1:
        raise ImageError("The image is empty (0 pixels).")
    if width * height > MAX_PIXELS:
        raise ImageError(f"The image is {width}x{height} = {width * height / 1e6:.0f} megapixels; the limit is "
                         f"{MAX_PIXELS / 1e6:.0f} megapixels. Please upload a smaller version.")


def _check_bytes(size: int, name: str) -> None:
    if size > MAX_FILE_BYTES:
        raise ImageError(f"{name} is too large ({size / 2**20:.1f} MB); a picture may be at most "
                         f"{MAX_FILE_BYTES // 2**20} MB.")


def _flatten_alpha(img: Image.Image) -> Image.Image:
    rgba = img.convert("RGBA")
    background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(background, rgba).convert("RGB")


def _high_depth_to_rgb(img: Image.Image) -> Image.Image:
    """16-bit and float pictures scaled to 8 bits in one float32 array, in place: about 6 bytes a pixel besides
    the picture itself (a 40-megapixel float TIFF fits in 10 MB compressed; no float64 copies of it)."""
    arr = np.array(img, dtype=np.float32)
    if img.mode.startswith("I;16"):
        arr /= 257.0
    else:
        finite = np.isfinite(arr)
        lo = float(np.min(arr, where=finite, initial=np.inf)) if finite.any() else 0.0
        hi = float(np.max(arr, where=finite, initial=-np.inf)) if finite.any() else 1.0
        del finite
        if img.mode == "F" and 0.0 <= lo and hi <= 1.0:
            arr *= 255.0
        elif lo < 0 or hi > 65535:
            arr -= lo
            arr *= 255.0 / max(hi - lo, 1e-12)
        elif hi > 255:
            arr /= 257.0
    return Image.fromarray(_to_uint8(arr), "L").convert("RGB")


def _to_uint8(arr: np.ndarray) -> np.ndarray:
    """Round a float array on the 0..255 scale to uint8 in place (NaN -> 0, infinities clipped)."""
    np.nan_to_num(arr, copy=False, nan=0.0, posinf=255.0, neginf=0.0)
    arr += 0.5
    np.clip(arr, 0, 255, out=arr)
    return arr.astype(np.uint8)


def to_rgb(img: Image.Image) -> Image.Image:
    """Any PIL mode to RGB: transparency over white, 16-bit and float scaled to 8 bits, first frame only."""
    _check_size(*img.size)
    if getattr(img, "n_frames", 1) > 1:
        img.seek(0)
    try:
        img = ImageOps.exif_transpose(img)
    except Exception:  # a broken EXIF block must not make a good picture unusable
        pass
    mode = img.mode
    if mode == "RGB":
        return img.copy() if img.readonly else img
    if mode in ("RGBA", "LA", "PA", "La", "RGBa") or (mode == "P" and "transparency" in img.info):
        return _flatten_alpha(img)
    if mode.startswith("I") or mode == "F":
        return _high_depth_to_rgb(img)
    return img.convert("RGB")


def _from_array(arr: np.ndarray) -> Image.Image:
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (3, 4)):
        raise ImageError(f"An image array must be HxW, HxWx3 or HxWx4, not {arr.shape}.")
    _check_size(arr.shape[1], arr.shape[0])
    if arr.dtype != np.uint8:
        a = arr.astype(np.float32)
        if a.size and np.nanmax(a) <= 1.0:
            a *= 255.0
        arr = _to_uint8(a)
    img = Image.fromarray(np.ascontiguousarray(arr))
    return to_rgb(img)


def load_image(image: ImageInput) -> Image.Image:
    """A PIL image, numpy array, path or bytes -> an RGB PIL image (``ImageError`` when unusable)."""
    if image is None:
        raise ImageError("No image was given.")
    if isinstance(image, np.ndarray):
        return _from_array(image)
    if isinstance(image, Image.Image):
        return to_rgb(image)
    if isinstance(image, (str, os.PathLike)):
        path = Path(image)
        if not path.is_file():
            raise ImageError(f"No such file: {path.name}")
        if path.stat().st_size == 0:
            raise ImageError(f"{path.name} is an empty file.")
        _check_bytes(path.stat().st_size, path.name)
        source: object = path
        name = path.name
    elif isinstance(image, (bytes, bytearray)):
        if not image:
            raise ImageError("The upload is empty.")
        _check_bytes(len(image), "The upload")
        source, name = io.BytesIO(image), "the upload"
    else:
        raise ImageError(f"Unsupported image input of type {type(image).__name__}.")
    try:
        with Image.open(source) as img:  # type: ignore[arg-type]
            _check_size(*img.size)
            img.seek(0)
            img.load()
            return to_rgb(img)
    except ImageError:
        raise
    except UnidentifiedImageError:
        raise ImageError(f"{name} is not an image format I can read (JPEG, PNG, GIF, WebP, BMP, TIFF...).") from None
    except Image.DecompressionBombError:
        raise ImageError(f"{name} is too large to decode safely: the limit is {MAX_PIXELS / 1e6:.0f} megapixels. "
                         "Please upload a smaller version.") from None
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        raise ImageError(f"{name} is damaged or truncated and cannot be decoded ({e}).") from None


def to_pictures(images: torch.Tensor) -> list[Image.Image]:
    """N x 3 x H x W in [0, 1] -> 8-bit pictures."""
    pixels = (images * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
    return [Image.fromarray(p) for p in pixels]


def to_tensor(pictures: list[Image.Image]) -> torch.Tensor:
    """8-bit pictures -> N x 3 x H x W in [0, 1]."""
    return torch.stack([torch.from_numpy(np.asarray(p.convert("RGB"), dtype=np.float32) / 255).permute(2, 0, 1)
                        for p in pictures])
