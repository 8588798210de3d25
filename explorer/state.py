"""The app's process-wide objects, each made once, here, and what each is for. Every endpoint's code (the
services: ``classify``, ``inside``, ``atlas.service``, ``finetune``, ``results``, ``hub``) takes them from here.

* ``PROFILE``: the server profile (every setting, from the environment).
* ``CATALOG``: model names to classifiers (the ImageNet model and every finished run), loaded lazily.
* ``OWNERS``: who a visitor is (their browser's id), and ``FAIR``: the fair-use admission of expensive jobs.
* ``EXAMPLES``: the example photos' answers, computed once per model.
* ``SLOT``: the one fine-tuning run at a time, and the line for it.
* ``PICTURES``: the picture each visitor is working on, by token, so that it follows them from page to page.
* ``precomputed()``: the precomputed channel atlas, if ``GOOGLENET_ATLAS`` names one for these weights.
"""

from __future__ import annotations

from explorer.gpu import on_gpu  # first: on ZeroGPU, ``spaces`` must be imported before torch touches CUDA

import functools
import logging
import threading
import time
from pathlib import Path
from typing import Any

from explorer.admission import FairUse, Owners
from explorer.atlas.store import Atlas, load_atlas
from explorer.caches import ExampleAnswers, answer_fingerprint
from explorer.params import as_text
from explorer.pictures import PictureStore
from explorer.profile import ATLAS, EXAMPLE_PHOTOS, current
from explorer.runs import IMAGENET_MODEL, ModelCatalog, prune_runs, sweep_interrupted, sweep_uploads
from explorer.slot import TrainingSlot, train_events
from googlenet.classify import Classifier
from googlenet.device import device_label
from training.diskcache import DiskCache

log = logging.getLogger("inception-explorer")

PROFILE = current()
CATALOG = ModelCatalog(lambda: Classifier.from_pretrained(None, device=PROFILE.device, chain_start=PROFILE.weights,
                                                          compile_large=PROFILE.compile_large,
                                                          warm_up=not PROFILE.zero_gpu),
                       device=str(PROFILE.device), warm_up=not PROFILE.zero_gpu)
OWNERS = Owners(PROFILE.secret_path)
FAIR = FairUse(per_address=PROFILE.concurrency["per_address"], room=PROFILE.concurrency["waiting"])
EXAMPLES = ExampleAnswers(EXAMPLE_PHOTOS)
_GRADIO_CACHE: list[Path] = []  # Gradio's upload and output cache, once the page is served (serve_from)


def retention() -> list[str]:
    """Each visitor's (and each address's) oldest ended runs beyond the caps; never another's, never pinned."""
    return prune_runs(PROFILE.max_runs, 4 * PROFILE.max_runs, PROFILE.pinned_runs)


PICTURES = PictureStore(lambda: disk_cache(), PROFILE.picture_seconds)
SLOT = TrainingSlot(on_gpu(duration=lambda config: PROFILE.run_gpu_seconds(config.max_seconds))(train_events),
                    on_end=lambda _name: retention(), line_size=PROFILE.concurrency["train"] - 1)


def device_name() -> str:
    """The app's device, as the page names it."""
    return device_label(PROFILE.device, PROFILE.zero_gpu)


def check_model(model: Any, name: str = "model") -> str:
    """A model name, loaded (and so validated) in the main process, where each GPU worker inherits it. Every
    model of the catalogue runs on the profile's device."""
    model = as_text(model, name) or IMAGENET_MODEL
    CATALOG.get(model)
    return model


def model_names() -> tuple[list[str], list[str]]:
    """(every model a visitor can choose, the finished runs), newest run first."""
    names = CATALOG.names()  # the ImageNet model, then the runs: one look at the runs folder for both lists
    return names, names[1:]


def example_key(image: str, model: str, *options: Any) -> tuple | None:
    """The example-answer cache's key: the photo, the model's weights and the request's options (None when the
    picture is not an example photo)."""
    photo = EXAMPLES.photo(image)
    return None if photo is None else (photo, answer_fingerprint(CATALOG.get(model).model), *options)


@functools.cache
def precomputed() -> Atlas | None:
    """The precomputed atlas ``GOOGLENET_ATLAS`` names (pulled once, through the Hub cache), if it describes the
    ImageNet model; otherwise none, said once in the log."""
    atlas = load_atlas(ATLAS.read())
    if atlas is not None and not atlas.describes(CATALOG.get(IMAGENET_MODEL).model):
        log.warning("atlas %s not used: it describes other weights (fingerprint %s) than the app's ImageNet model",
                    ATLAS.read(), atlas.fingerprint)
        return None
    return atlas


def start_up() -> None:
    """Housekeeping before serving: runs a crash left running, retention, uploads no run uses, and the disk
    cache's leftovers."""
    swept = sweep_interrupted()
    if swept:
        log.warning("runs left running by a crash, now marked interrupted: %s", ", ".join(swept))
    retention()
    if gone := sweep_uploads():
        log.info("uploads no run uses any more, deleted: %d", len(gone))
    cache = PROFILE.disk_cache
    cache.sweep()
    cache.evict()
    log.info("device: %s; weights: %s", device_name(), CATALOG.default.source.description)
    if (atlas := precomputed()) is not None:  # pulled and checked once, here: GPU workers inherit it
        log.info("precomputed atlas %s: %d channels", ATLAS.read(), len(atlas.record["channels"]))


def serve_from(gradio_cache: str, every: float = 5.0) -> threading.Thread:
    """Gradio's upload and output cache joins the disk cache: checkpoint zips are made inside it (Gradio serves a
    file there without copying it), and one byte budget covers both, least recently used out first. Gradio writes
    uploads and outputs itself, outside any endpoint, so a background sweep keeps those within it."""
    _GRADIO_CACHE.append(Path(gradio_cache))
    cache = disk_cache()

    def loop() -> None:
        while True:
            try:
                if removed := cache.evict():
                    log.info("disk budget: %d least recently used files removed", len(removed))
            except OSError as e:  # a file that vanished meanwhile: the next sweep sees the folder as it is
                log.warning("disk budget sweep: %s", e)
            time.sleep(every)

    thread = threading.Thread(target=loop, name="disk-budget", daemon=True)
    thread.start()
    return thread


def disk_cache() -> DiskCache:
    """The disk cache, with Gradio's cache in it once the page is served (``serve_from``)."""
    cache = PROFILE.disk_cache
    for folder in _GRADIO_CACHE[-1:]:
        cache = cache.including("zips", folder / "checkpoints").including("pictures", folder / "pictures") \
            .including("gradio", folder, writing="tmp")  # an upload streams into tmp... before it is moved
    return cache
