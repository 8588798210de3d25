"""What the Fine-tune tab's run endpoints compute: a run's settings checked (each bad one refused with its own
sentence before the training slot is taken), the slot taken in line, and the run's events turned into page updates.

Each update is (summary line, curves figure or ``KEEP``, the log so far, the result or None, drift map figure or
``KEEP``, then the probe's top-3, branch-share chart and Grad-CAM, each or ``KEEP``): figures after every epoch and
at the end, step lines at most four times a second, and a ``TrainingError`` for a failure. The drift map and the
probe's view are read from the run's folder (``drift``, ``probe``), where the run writes them after every epoch, in
whatever process trains it. ``page_updates`` is a plain generator, unit-tested with made-up events.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from PIL import Image

from explorer.admission import opaque
from explorer import datasets
from explorer.params import as_bool, as_choice, as_float, as_int, as_text, check_image, check_module
from explorer.profile import available_memory, check_memory
from explorer.render import ended_line, step_line
from explorer.runs import new_run_name, run_path, runs_bytes
from explorer.slot import Done, Epoch, Event, Failed, Log, Step
from explorer.state import PROFILE, SLOT
from training.config import TrainConfig, TrainingError, validate
from training.data import DOWNLOAD_SIZE_TEXT
from training.sources import CIFAR10
from training.plots import curves_figure, drift_figure, probe_views
from training.probe import PROBE_MODULE
from training.recipes import RECIPES
from training.runfolder import RunFolder

Progress = Callable[[Any, str], None]  # (fraction or (done, total), what is happening)

KEEP = object()  # "leave this output as it is" (the ui sends gr.skip())
STEP_UPDATE_SECONDS = 0.25
Update = tuple[Any, ...]
UNCHANGED = (KEEP,) * 4  # the drift map and the probe's three views


def page_updates(events: Iterable[Event], name: str, epochs: int,
                 progress: Callable[[tuple[int, int], str], None] = lambda done, desc: None,
                 clock: Callable[[], float] = time.monotonic,
                 drift: Callable[[], dict[str, Any] | None] = lambda: None,
                 probe: Callable[[], tuple[Any, Any, Any] | None] = lambda: None) -> Iterator[Update]:
    drawn: list[Any] = [None]  # the drift record last drawn: a figure costs ~0.3 s, drawn again only if it changed

    def views(look: bool = True) -> tuple[Any, ...]:
        """The drift map when it changed, and the probe's view once per epoch (``look``)."""
        record, seen = drift(), probe() if look else None
        changed = record is not None and record != drawn[0]
        drawn[0] = record
        return (drift_figure(record) if changed else KEEP,) + (seen if seen is not None else UNCHANGED[1:])

    logs: list[str] = []
    history: list[dict[str, Any]] = []
    summary, last_step = f"Run `{name}` starting…", -1e9
    for event in events:
        if isinstance(event, Log):
            logs.append(event.message)
        elif isinstance(event, Step):
            progress((event.step, event.steps), f"epoch {event.epoch}/{epochs} · loss {event.loss:.3f}")
            summary = step_line(name, event.epoch, epochs, event.step, event.steps, event.loss)
            if clock() - last_step < STEP_UPDATE_SECONDS and event.step != event.steps:
                continue
            last_step = clock()
        elif isinstance(event, Epoch):
            history = event.history
            yield summary, curves_figure(history), "\n".join(logs), None, *views()
            continue
        elif isinstance(event, Failed):
            raise TrainingError(event.message)
        elif isinstance(event, Done):
            yield ended_line(event.summary), curves_figure(history) if history else None, "\n".join(logs), \
                event.summary.api(), *views(look=False)
            return
        yield summary, KEEP, "\n".join(logs), None, *UNCHANGED


def run_config(recipe: Any, train_size: Any, epochs: Any, batch_size: Any, lr: Any, image_size: Any,
               freeze_backbone: Any, dataset: str = CIFAR10, image_column: Any = None,
               label_column: Any = None, progress: Progress = lambda *a: None) -> tuple[TrainConfig, dict[str, int]]:
    """A run's settings, each bad one refused with its own sentence before the slot is taken. ``dataset`` is what
    ``datasets.dataset_spec`` made of the visitor's choice; a Hub dataset or an upload is read and decoded here,
    in the main process, so that the run only trains."""
    recipe = as_choice(recipe, "recipe", tuple(RECIPES))
    train_size, epochs = as_int(train_size, "train_size"), as_int(epochs, "epochs")
    batch_size, image_size = as_int(batch_size, "batch_size"), as_int(image_size, "image_size")
    lr, freeze_backbone = as_float(lr, "lr"), as_bool(freeze_backbone, "freeze_backbone")
    config = TrainConfig(recipe=recipe, dataset=dataset, data_dir=PROFILE.data_dir,
                         output=str(run_path(new_run_name(recipe))), device=str(PROFILE.device),
                         train_size=train_size, epochs=epochs, batch_size=batch_size, lr=lr if lr else None,
                         image_size=image_size, freeze_backbone=freeze_backbone, keep_resume_state=False,
                         image_column=as_text(image_column, "image_column") or None,
                         label_column=as_text(label_column, "label_column") or None, test_size=PROFILE.test_size)
    validate(config)
    PROFILE.limits.check(epochs=epochs, train_size=train_size, image_size=image_size, batch_size=batch_size)
    check_memory(batch_size, image_size, available_memory(PROFILE.device, PROFILE.zero_gpu))
    config.anonymous_hub = True  # a visitor's dataset is never read with the server's token
    config.dataset, sizes = datasets.prepare(dataset, config.resolved_recipe().image_size, config.image_column,
                                             config.label_column, progress)
    config.max_seconds = PROFILE.run_limit(min(train_size, sizes["train"]), epochs, image_size,
                                           sizes["validation"] + min(sizes["test"], PROFILE.test_size or sizes["test"]))
    return config, sizes


def finetune(recipe: Any, train_size: Any, epochs: Any, batch_size: Any, lr: Any, image_size: Any,
             freeze_backbone: Any, owner: str, address: str, progress: Progress, probe_image: Any = None,
             probe_index: Any = None, probe_module: Any = None, dataset: Any = CIFAR10, photos: Any = None,
             image_column: Any = None, label_column: Any = None) -> Iterator[Update]:
    """Check the settings (and the dataset), take the training slot and stream the run's page updates."""
    config, sizes = run_config(recipe, train_size, epochs, batch_size, lr, image_size, freeze_backbone,
                        datasets.dataset_spec(dataset, photos, owner), image_column, label_column, progress)
    config.probe_image = check_image(probe_image) if probe_image is not None else None
    config.probe_index = as_int(probe_index, "probe_index", 0, sizes["pool"] - 1) \
        if probe_index not in (None, "") else None
    config.probe_module = check_module(probe_module or PROBE_MODULE)
    used = runs_bytes()
    if used >= PROFILE.runs_bytes:
        raise ValueError(f"The server's disk for runs is full ({used / 2**30:.1f} of {PROFILE.runs_bytes / 2**30:.1f} "
                         "GiB); no one's run is deleted to make room. Please try again later.")
    config.owner, config.address = opaque(owner), opaque(address)
    SLOT.join(owner)
    try:  # in line: a visitor whose run just ended waits behind those who were waiting
        while (place := SLOT.wait_turn(owner, 1.0)) != 0:  # an update a second, so a leaving page is noticed
            if place is None:
                yield "You left the line; no run was started.", KEEP, "", None, *UNCHANGED
                return
            yield f"Waiting for the fine-tuning slot: number {place} in line.", KEEP, "", None, *UNCHANGED
        handle = SLOT.start(config, owner)
    finally:
        SLOT.leave(owner)  # the page left while waiting (or the run started: then no longer in line)
    try:
        folder = RunFolder(run_path(handle.name))
        yield from page_updates(handle.events(), handle.name, config.epochs, progress, drift=folder.drift,
                                probe=lambda: probe_outputs(folder))
    finally:
        handle.stop.set()  # the visitor left (or the run ended): never wait here, the driver thread cleans up


def probe_outputs(folder: RunFolder) -> tuple[dict[str, float], Any, Any] | None:
    """The probe's last epoch as the page shows it (top-3, shares beside the start, Grad-CAM), or None."""
    record = folder.probe()
    if not record or not record.get("epochs"):
        return None
    try:
        picture = Image.open(folder.path / RunFolder.PROBE_PICTURE).convert("RGB")
    except OSError:
        picture = None
    return probe_views(record, picture)


def cancel_finetune(owner: str) -> str:
    cancelled = SLOT.cancel(owner)
    if cancelled == "line":
        return "You left the line for the next run."
    if cancelled:
        return "Cancelling: the run stops after the current step and keeps its last complete checkpoint."
    if SLOT.busy:
        return "The run in progress was started by another visitor; only they can cancel it."
    return "No run of yours is in progress."


def download_cifar(progress: Progress) -> str:
    """CIFAR-10 onto the server: uoft-cs/cifar10 from the Hub, else the Toronto archive."""
    if datasets.cifar10_ready():
        return "CIFAR-10 is ready."
    progress(0, f"downloading CIFAR-10 ({DOWNLOAD_SIZE_TEXT})…")
    return f"CIFAR-10 downloaded ({datasets.download_cifar10()})."
