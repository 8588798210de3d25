"""What the Classify tab's endpoint computes: a picture's top-k labels for a model, one request at a time or, with
Gradio's dynamic batching (``GOOGLENET_BATCH=1``), plain single-crop requests for one model in one forward pass
(anything else, another model, 10 crops or a bad picture, is answered on its own)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from explorer import durations
from explorer.errors import visitor_message
from explorer.gpu import on_gpu
from explorer.params import as_bool, as_int, check_image
from explorer.render import classify_info
from explorer.runs import IMAGENET_MODEL
from explorer.state import CATALOG, EXAMPLES, check_model, device_name, example_key
from googlenet.images import ImageError

Labels = dict[str, float]
MAX_TOP_K = 1000  # ImageNet's classes: a larger top_k is refused, not truncated


@on_gpu(duration=lambda model, image, top_k, crops: durations.classify_seconds(crops))
def predict_on_device(model: str, image: str, top_k: int, crops: int) -> tuple[list[tuple[str, float]], float]:
    clf = CATALOG.get(model)
    start = time.perf_counter()
    result = clf.predict(image, top_k=top_k, crops=crops)
    return result, 1000 * (time.perf_counter() - start)


@on_gpu(duration=lambda model, images, top_k: durations.classify_seconds(len(images)))
def predict_batch_on_device(model: str, images: list[str], top_k: int) -> list[list[tuple[str, float]]]:
    return CATALOG.get(model).predict_batch(images, top_k=top_k)


def classify(image: Any, model: Any, top_k: Any, thorough: Any) -> tuple[Labels, str]:
    """(label: probability for the top ``top_k``, a line with the time, the device, the crops and the model)."""
    image, model = check_image(image), check_model(model)
    top_k, crops = as_int(top_k, "top_k", 1, MAX_TOP_K), 10 if as_bool(thorough, "thorough") else 1
    (result, ms), cached = EXAMPLES.answer(example_key(image, model, top_k, crops),
                                           lambda: predict_on_device(model, image, top_k, crops))
    info = classify_info(ms, device_name(), crops, model)
    return {label: p for label, p in result}, info + (" · an example photo, answered from the cache" if cached else "")


def classify_batch(images: list[Any], models: list[str], top_ks: list[Any],
                   thoroughs: list[bool]) -> tuple[list[Labels], list[str]]:
    """Gradio's batch of ``classify`` requests (``GOOGLENET_BATCH=1``)."""
    def predict_batch(model: str, pictures: list[str], top_k: int) -> tuple[list, float, str]:
        start = time.perf_counter()
        results = predict_batch_on_device(check_model(model), pictures, top_k)
        return results, 1000 * (time.perf_counter() - start), device_name()

    return batch_answers(images, models, top_ks, thoroughs, predict_batch, classify)


def batch_answers(images: list[Any], models: list[str], top_ks: list[Any], thoroughs: list[bool],
                  predict_batch: Callable[[str, list[str], int], tuple[list[list[tuple[str, float]]], float, str]],
                  classify_one: Callable[[Any, str, Any, bool], tuple[Labels, str]]) -> tuple[list[Labels], list[str]]:
    """The plain requests for the first request's model share ``predict_batch(model, images, top_k)`` -> (results,
    milliseconds, device); ``classify_one`` answers each other one (its error becomes that request's info: a batch
    cannot raise for one request)."""
    labels: list[Labels] = [{} for _ in images]
    infos = [""] * len(images)
    first = models[0] or IMAGENET_MODEL
    plain = [i for i, (im, m, t) in enumerate(zip(images, models, thoroughs))
             if isinstance(im, str) and not t and (m or IMAGENET_MODEL) == first]
    if len(plain) > 1:
        try:
            top = max(as_int(top_ks[i], "top_k", 1, MAX_TOP_K) for i in plain)
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
