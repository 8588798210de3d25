"""Endpoint arguments as a visitor (or a script) may send them: each missing or wrong one gets its own message."""

from __future__ import annotations

import math
from typing import Any

from googlenet import DEFAULT_MODULE, GoogLeNet
from googlenet.images import ImageError


def _number(value: Any, name: str, what: str) -> float:
    if value is None or isinstance(value, bool):
        raise ValueError(f"{name} is missing: give {what}.")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be {what}, not {str(value)[:40]!r}.") from None
    if not math.isfinite(number):
        raise ValueError(f"{name} must be a finite number (got {number}).")
    return number


def as_int(value: Any, name: str, low: int | None = None, high: int | None = None) -> int:
    """A whole number (``3``, ``3.0`` or ``"3"``) within [low, high]."""
    number = _number(value, name, "a whole number")
    if number != int(number):
        raise ValueError(f"{name} must be a whole number, not {str(value)[:40]!r}.")
    number = int(number)
    if low is not None and number < low:
        raise ValueError(f"{name} must be at least {low} (got {number}).")
    if high is not None and number > high:
        raise ValueError(f"{name} must be at most {high} (got {number}).")
    return number


def as_float(value: Any, name: str) -> float:
    return _number(value, name, "a number")


def as_bool(value: Any, name: str) -> bool:
    if isinstance(value, bool):
        return value
    if value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise ValueError(f"{name} must be true or false, not {str(value)[:40]!r}.")


def as_choice(value: Any, name: str, choices: list[str] | tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(choices)}, not {str(value)[:40]!r}.")
    return value


def as_text(value: Any, name: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ValueError(f"{name} must be text.")
    return value.strip()


def check_image(image: Any) -> str:
    """An uploaded picture's path (Gradio hands endpoints a file's path; a URL never gets this far)."""
    if image is None:
        raise ImageError("Please upload an image first.")
    if not isinstance(image, str):
        raise ImageError("The image must be an uploaded file.")
    return image


def check_module(module: Any) -> str:
    """An Inception module's name (the default one when none is given)."""
    return GoogLeNet.check_modules([as_text(module, "module") or DEFAULT_MODULE])[0]
