"""Gradio's dynamic batching of ``/classify``: plain single-crop requests for one model share a forward pass;
anything else (another model, 10 crops, a bad picture) is answered on its own."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from explorer.errors import visitor_message
from explorer.params import as_int
from explorer.runs import IMAGENET_MODEL
from googlenet.images import ImageError

Labels = dict[str, float]


def classify_batch(images: list[Any], models: list[str], top_ks: list[Any], thoroughs: list[bool],
                   predict_batch: Callable[[str, list[str], int], tuple[list[list[tuple[str, float]]], float, str]],
                   classify_one: Callable[[Any, str, Any, bool], tuple[Labels, str]]) -> tuple[list[Labels], list[str]]:
    """``predict_batch(model, images, top_k)`` -> (results, milliseconds, device); ``classify_one`` answers one request (its
    error becomes that request's info: a batch cannot raise for one request)."""
    labels: list[Labels] = [{} for _ in images]
    infos = [""] * len(images)
    first = models[0] or IMAGENET_MODEL
    plain = [i for i, (im, m, t) in enumerate(zip(images, models, thoroughs))
             if isinstance(im, str) and not t and (m or IMAGENET_MODEL) == first]
    if len(plain) > 1:
        try:
            top = max(as_int(top_ks[i], "top_k", 1, 1000) for i in plain)
            results, ms, device = predict_batch(first, [images[i] for i in plain], top)
            for i, result in zip(plain, results):
                labels[i] = dict(result[: int(top_ks[i])])
                infos[i] = f"{ms:.0f} ms for a batch of {len(plain)} on {device}"
        except (ImageError, ValueError):
            pass  # one bad request: answer each on its own
    for i in range(len(images)):
        if not infos[i]:
            try:
                labels[i], infos[i] = classify_one(images[i], models[i], top_ks[i], thoroughs[i])
            except Exception as e:  # noqa: BLE001 - its message goes in the info
                labels[i], infos[i] = {}, f"⚠ {visitor_message(e, 'classify')}"
    return labels, infos
