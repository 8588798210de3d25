"""The app's process: its profile, model catalogue and training slot, the functions that run on the GPU (in
ZeroGPU's workers), and what each endpoint computes. No Gradio here: ``ui/`` wires these functions to
components, turns ``KEEP`` into ``gr.skip()`` and errors into Gradio's error toast.
"""

from __future__ import annotations

from explorer.gpu import on_gpu  # first: on ZeroGPU, ``spaces`` must be imported before torch touches CUDA

import functools
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from huggingface_hub import HfApi
from huggingface_hub.errors import HFValidationError
from huggingface_hub.utils import validate_repo_id

from explorer import durations
from explorer.batching import classify_batch as _batched
from explorer.atlas import Atlas, grid, load_atlas, responses
from explorer.channels import ChannelView, channel_events, fingerprint, rendered_thumbnail
from explorer.examples import ExampleAnswers
from explorer.fairness import FairUse
from explorer.keyed import KeyedLock
from explorer.limits import available_memory, check_memory
from explorer.owners import Owners, opaque
from explorer.priority import in_background
from explorer.params import as_bool, as_choice, as_float, as_int, as_text
from explorer.profile import ATLAS, EXAMPLE_PHOTOS, current
from explorer.render import ARCHITECTURE_NOTES, classify_info, compare_table, report_markdown
from explorer.runs import IMAGENET_MODEL, ModelCatalog, checkpoint_zip, compare_runs, list_runs, load_report, \
    new_run_name, prune_runs, run_path, runs_bytes, sweep_interrupted, top_loss_pictures, usable_run
from explorer.slot import TrainingSlot, train_events
from explorer.stream import KEEP, UNCHANGED, Update, page_updates
from explorer.views import view_query
from googlenet import DEFAULT_MODULE, MODULE_NAMES, GoogLeNet, architecture_table
from googlenet.classify import Classifier
from googlenet.device import device_label
from googlenet.diagram import inception_diagram
from googlenet.features import BRANCH_KEYS, BRANCH_TITLES, InsideResult, inspect_image, knockout_markdown, \
    share_shift, shift_markdown
from googlenet.images import ImageError
from googlenet.table import table_markdown
from training.config import TrainConfig, validate
from training.data import DOWNLOAD_SIZE_TEXT, DataError, download, is_available
from training.drift import drift_table
from training.loop import push_run
from training.plots import compare_drift_figure, compare_figure, confusion_figure, drift_figure, probe_views
from training.probe import PROBE_MODULE
from training.recipes import RECIPES
from training.report import RunReport, evaluate_run
from training.runfolder import RunFolder
from training.storage import DiskCache

log = logging.getLogger("inception-explorer")
Progress = Callable[[Any, str], None]  # (fraction or (done, total), what is happening)

PROFILE = current()
CATALOG = ModelCatalog(lambda: Classifier.from_pretrained(None, device=PROFILE.device, chain_start=PROFILE.weights,
                                                          compile_large=PROFILE.compile_large),
                       device=str(PROFILE.device))
_CHANNELS = KeyedLock()
OWNERS = Owners(PROFILE.secret_path)
FAIR = FairUse(per_address=PROFILE.concurrency["per_address"], room=PROFILE.concurrency["waiting"])
EXAMPLES = ExampleAnswers(EXAMPLE_PHOTOS)  # the pages' example photos, answered once per model
_GRADIO_CACHE: list[Path] = []  # Gradio's upload and output cache, once the page is served (serve_from)


def retention() -> list[str]:
    """Each visitor's (and each address's) oldest ended runs beyond the caps; never another's, never pinned."""
    return prune_runs(PROFILE.max_runs, 4 * PROFILE.max_runs, PROFILE.pinned_runs)


SLOT = TrainingSlot(on_gpu(duration=lambda config: PROFILE.run_gpu_seconds(config.max_seconds))(train_events),
                    on_end=lambda _name: retention(), line_size=PROFILE.concurrency["train"] - 1)


# ----------------------------------------------------------------------------- GPU functions (ZeroGPU workers)

@on_gpu(duration=lambda model, image, top_k, crops: durations.classify_seconds(crops))
def predict_on_device(model: str, image: str, top_k: int, crops: int) -> tuple[list[tuple[str, float]], float]:
    clf = CATALOG.get(model)
    start = time.perf_counter()
    result = clf.predict(image, top_k=top_k, crops=crops)
    return result, 1000 * (time.perf_counter() - start)


@on_gpu(duration=lambda model, images, top_k: durations.classify_seconds(len(images)))
def predict_batch_on_device(model: str, images: list[str], top_k: int) -> list[list[tuple[str, float]]]:
    return CATALOG.get(model).predict_batch(images, top_k=top_k)


@on_gpu(duration=lambda model, image, module, compare=None: durations.inside_seconds(bool(compare)))
def inspect_on_device(model: str, image: str, module: str, compare: str | None = None) -> InsideResult:
    other = (CATALOG.get(compare).model_on_device(), (model, compare)) if compare else None
    return in_background(inspect_image, CATALOG.get(model).model_on_device(), image, module, compare=other)


@on_gpu(duration=lambda *args: durations.channel_seconds(PROFILE.atlas_steps, PROFILE.atlas_size,
                                                         PROFILE.atlas_input_size or 224))
def channel_on_device(model: str, module: str, branch: str, channel: int, image: str | None) -> Iterator[Any]:
    """Progress pairs, then the ChannelView (a generator: progress crosses ZeroGPU's process boundary)."""
    yield from channel_events(CATALOG.get(model).model_on_device(), module, branch, channel, image,
                              PROFILE.data_dir, atlas=precomputed())


@on_gpu(duration=lambda model, image, module, branch: durations.inside_seconds(False))
def responses_on_device(model: str, image: str, module: str, branch: str) -> list[float]:
    """Each channel's response to a picture (what orders a grid): one forward pass to the module. A list, not a
    tensor: a tensor would cross the worker's pipe as shared memory, gone when the worker ends."""
    return in_background(responses, CATALOG.get(model).model_on_device(), image, module, branch).tolist()


@on_gpu(duration=lambda run: durations.report_seconds())
def report_on_device(run: str) -> RunReport:
    """A run's test report, computed on the app's device (a run that ended before its test has none yet)."""
    log.info("evaluating %s for its report", os.path.basename(run))
    return in_background(evaluate_run, run, "test", PROFILE.data_dir, PROFILE.device)


# ----------------------------------------------------------------------------- arguments

def check_image(image: Any) -> str:
    if image is None:
        raise ImageError("Please upload an image first.")
    if not isinstance(image, str):
        raise ImageError("The image must be an uploaded file.")
    return image


def check_module(module: Any) -> str:
    module = as_text(module, "module") or DEFAULT_MODULE
    if module not in MODULE_NAMES:
        raise ValueError(f"Unknown Inception module {module[:40]!r}; choose from {', '.join(MODULE_NAMES)}.")
    return module


def check_model(model: Any, name: str = "model") -> str:
    """A model name, loaded (and so validated) in the main process, where each GPU worker inherits it. Every
    model of the catalogue runs on the profile's device."""
    model = as_text(model, name) or IMAGENET_MODEL
    CATALOG.get(model)
    return model


def _example_key(image: str, model: str, *options: Any) -> tuple | None:
    """The example-answer cache's key: the photo, the model's weights and the request's options (None when the
    picture is not an example photo)."""
    photo = EXAMPLES.photo(image)
    return None if photo is None else (photo, fingerprint(CATALOG.get(model).model), *options)


# ----------------------------------------------------------------------------- endpoints

def classify(image: Any, model: Any, top_k: Any, thorough: Any) -> tuple[dict[str, float], str]:
    image, model = check_image(image), check_model(model)
    top_k, crops = as_int(top_k, "top_k", 1, 1000), 10 if as_bool(thorough, "thorough") else 1
    (result, ms), cached = EXAMPLES.answer(_example_key(image, model, top_k, crops),
                                           lambda: predict_on_device(model, image, top_k, crops))
    info = classify_info(ms, device_label(PROFILE.device), crops, model)
    return {label: p for label, p in result}, info + (" · an example photo, answered from the cache" if cached else "")


def classify_batch(images: list, models: list, top_ks: list, thoroughs: list) -> tuple[list, list]:
    def predict_batch(model: str, pictures: list[str], top_k: int) -> tuple[list, float, str]:
        start = time.perf_counter()
        results = predict_batch_on_device(model, pictures, top_k)
        return results, 1000 * (time.perf_counter() - start), device_label(PROFILE.device)

    return _batched(images, models, top_ks, thoroughs, predict_batch, classify)


def feature_maps(image: Any, module: Any, model: Any, compare: Any) -> tuple[Any, ...]:
    """(top labels, four grids, overlays, chart, Grad-CAM, its caption, knockout, moved shares, grid orders)."""
    image, module, model = check_image(image), check_module(module), check_model(model)
    compare = check_model(compare, "compare") if as_text(compare, "compare") else None
    compare = compare if compare != model else None
    result, _ = EXAMPLES.answer(_example_key(image, model, module, compare and fingerprint(CATALOG.get(compare).model)),
                                lambda: inspect_on_device(model, image, module, compare))
    moved = shift_markdown(share_shift(result.shares, result.other_shares), (model, compare)) \
        if result.other_shares else ""
    return ({n: p for n, p in result.top}, *[result.grids[k] for k in BRANCH_KEYS],
            [(result.overlays[k], BRANCH_TITLES[k]) for k in BRANCH_KEYS],
            result.chart, result.gradcam, f"Grad-CAM at {module} for **{result.gradcam_class}**",
            knockout_markdown(result.knockout), moved, result.orders)


def channel_view(image: Any, model: Any, module: Any, branch: Any, channel: Any, progress: Progress) -> tuple[Any, ...]:
    """(visualisation, examples, where it fires, note, link) for one channel."""
    image = check_image(image) if image is not None else None
    model, module = check_model(model), check_module(module)
    branch = as_choice(branch, "branch", BRANCH_KEYS)
    channel = as_int(channel, "channel", 0)  # the model says which channels its branch has
    CATALOG.get(model).model.check_branch(module, branch, [channel])
    view, key = None, (model, module, branch, channel)
    if key in _CHANNELS:
        progress(0, "waiting for the same channel's view, asked for by someone else, to finish")
    with _CHANNELS(key):  # the same view in flight is computed once; the others then read it from the cache
        for event in channel_on_device(model, module, branch, channel, image):
            if isinstance(event, ChannelView):
                view = event
            else:
                progress(event[0], event[1])
    query = view_query(model, module, branch, channel)
    return view.visualization, view.examples, view.where, view.note(), f"Link to this view: [{query}]({query})"


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


def atlas_grid(image: Any, model: Any, module: Any, branch: Any) -> tuple[list[tuple[Any, str]], str, list[int]]:
    """Every channel of a branch as thumbnails with captions, in channel order or (with a picture) by how strongly
    each responds to it, a note, and the channel of each tile. Precomputed tiles come from the atlas, views already
    computed from the cache, the rest are numbered placeholders (a click renders one): nothing is optimised here."""
    image = check_image(image) if image is not None else None
    model, module = check_model(model), check_module(module)
    branch = as_choice(branch, "branch", BRANCH_KEYS)
    net, atlas = CATALOG.get(model).model, precomputed()
    values = responses_on_device(model, image, module, branch) if image is not None else None
    tiles, order = grid(net, module, branch, atlas, lambda c: rendered_thumbnail(net, module, branch, c), values)
    from_atlas = atlas is not None and atlas.describes(net)
    source = "from the precomputed atlas" if from_atlas else \
        "rendered views shown, the others numbered (click one to render it)"
    order_note = "ordered by how strongly each responds to your picture (its output's maximum)" if image else \
        "in channel order"
    return tiles, f"{len(order)} channels of {module} · {branch}, {order_note}; {source}.", order


def architecture() -> tuple[str, Any]:
    """Table 1 measured from the model, with the paper's inconsistent rows flagged."""
    rows = architecture_table(GoogLeNet(aux_logits=False, variant="paper"))
    return table_markdown(rows) + "\n\n" + ARCHITECTURE_NOTES, inception_diagram()


def model_names() -> tuple[list[str], list[str]]:
    """(every model a visitor can choose, the finished runs), newest run first."""
    return CATALOG.names(), [r.name for r in list_runs()]


def finetune(recipe: Any, train_size: Any, epochs: Any, batch_size: Any, lr: Any, image_size: Any,
             freeze_backbone: Any, owner: str, address: str, progress: Progress, probe_image: Any = None,
             probe_index: Any = None, probe_module: Any = None) -> Iterator[Update]:
    """Check the settings, take the training slot and stream the run's page updates."""
    config = run_config(recipe, train_size, epochs, batch_size, lr, image_size, freeze_backbone)
    config.probe_image = check_image(probe_image) if probe_image is not None else None
    config.probe_index = as_int(probe_index, "probe_index", 0, 9_999) if probe_index not in (None, "") else None  # 10,000
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


def run_config(recipe: Any, train_size: Any, epochs: Any, batch_size: Any, lr: Any, image_size: Any,
               freeze_backbone: Any) -> TrainConfig:  # type: ignore[valid-type]
    """A run's settings, each bad one refused with its own sentence before the slot is taken."""
    recipe = as_choice(recipe, "recipe", tuple(RECIPES))
    train_size, epochs = as_int(train_size, "train_size"), as_int(epochs, "epochs")
    batch_size, image_size = as_int(batch_size, "batch_size"), as_int(image_size, "image_size")
    lr, freeze_backbone = as_float(lr, "lr"), as_bool(freeze_backbone, "freeze_backbone")
    if not is_available(PROFILE.data_dir):
        raise DataError(f"CIFAR-10 is not on this server yet. Press 'Download CIFAR-10' first ({DOWNLOAD_SIZE_TEXT}).")
    config = TrainConfig(recipe=recipe, data_dir=PROFILE.data_dir, output=str(run_path(new_run_name(recipe))),
                         device=str(PROFILE.device), train_size=train_size, epochs=epochs, batch_size=batch_size,
                         lr=lr if lr else None, image_size=image_size, freeze_backbone=freeze_backbone,
                         max_seconds=PROFILE.run_limit(train_size, epochs, image_size), keep_resume_state=False,
                         test_size=PROFILE.test_size)
    validate(config)
    PROFILE.limits.check(epochs=epochs, train_size=train_size, image_size=image_size, batch_size=batch_size)
    check_memory(batch_size, image_size, available_memory(PROFILE.device, PROFILE.zero_gpu))
    return config


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
    if is_available(PROFILE.data_dir):
        return "CIFAR-10 is ready."
    progress(0, f"downloading CIFAR-10 ({DOWNLOAD_SIZE_TEXT})…")
    download(PROFILE.data_dir)
    return "CIFAR-10 downloaded."


def checkpoint_file(run: Any) -> str | None:
    """The chosen run's zip (made once), or None when no run is chosen."""
    run = as_text(run, "run")
    return str(checkpoint_zip(run, disk_cache())) if run else None


def push_to_hub(run: Any, repo_id: Any, token: Any, private: Any = False) -> str:
    """Push a finished run with the visitor's own token (typed in): never the server's."""
    run, repo_id, token = as_text(run, "run"), as_text(repo_id, "repo_id"), as_text(token, "token")
    if not token:
        raise ValueError("Enter your own Hugging Face token (with write access). This server never pushes with a "
                         "token of its own.")
    return _push(run, repo_id, token, as_bool(private, "private"))


def push_signed_in(run: Any, name: Any, private: Any, token: str | None) -> str:
    """Push a finished run to ``NAME`` under the signed-in visitor's own account, with their OAuth token."""
    run, name = as_text(run, "run"), as_text(name, "name")
    if not token:
        raise ValueError("Sign in with Hugging Face first (the button above): the run is pushed to your account.")
    if not name or "/" in name:
        raise ValueError("Give the new repo a name (no '/': it is created under your account).")
    try:
        user = HfApi(token=token).whoami()["name"]
    except Exception:  # noqa: BLE001 - the Hub's answer is not the visitor's business; the cause is
        raise ValueError("Hugging Face did not accept your sign-in; sign in again and retry.") from None
    return _push(run, f"{user}/{name}", token, as_bool(private, "private"))


def _push(run: str, repo_id: str, token: str, private: bool) -> str:
    if not run:
        raise ValueError("Choose a finished run first.")
    try:
        validate_repo_id(repo_id)
    except HFValidationError:
        raise ValueError(f"'{repo_id[:96]}' is not a Hub repo id: use OWNER/NAME (letters, digits, '-', '_', "
                         "'.').") from None
    url = push_run(usable_run(run).path, repo_id, token, private=private)
    return f"Pushed `{run}` to {repo_id} ({'private' if private else 'public'} repo): {url}"


def run_report(run: Any) -> tuple[Any, str, list, dict[str, Any]]:
    """A run's confusion matrix, per-class accuracy, most confidently wrong test images, and the report."""
    run = as_text(run, "run")
    if not run:
        raise ValueError("Choose a finished run first.")
    report = load_report(run, PROFILE.data_dir, report_on_device)
    try:
        pictures = top_loss_pictures(report, PROFILE.data_dir)
    except DataError:
        pictures = []  # the report was saved with the run; the pictures need CIFAR-10 on this server
    return (confusion_figure(np.array(report.confusion), report.classes), report_markdown(report), pictures,
            report.as_dict())


def run_drift(run: Any, epoch: Any = 0) -> tuple[Any, str, dict[str, Any]]:
    """A run's drift map as it trained: which modules and branches fine-tuning moved (one epoch's heat maps, the
    last when ``epoch`` is 0, its table, and every epoch's values)."""
    run, epoch = as_text(run, "run"), as_int(epoch or 0, "epoch", 0)
    if not run:
        raise ValueError("Choose a finished run first.")
    record = usable_run(run).drift()
    if record is None:
        raise ValueError(f"The run '{run}' has no drift map: it was trained before drift maps were recorded.")
    return drift_figure(record, epoch), drift_table(record, epoch), record


def compare(names: Any) -> tuple[Any, str, Any]:
    """Several runs side by side: validation curves overlaid, a table of their settings and results, and their
    drift maps."""
    if isinstance(names, str):
        names = [names]
    if not names or not all(isinstance(n, str) for n in names):
        raise ValueError("Choose one or more finished runs to compare.")
    histories, rows = compare_runs(list(dict.fromkeys(names))[:8])
    return (compare_figure(histories), compare_table(rows),
            compare_drift_figure({name: usable_run(name).drift() for name in histories}))


def start_up() -> None:
    """Housekeeping before serving: runs a crash left running, retention, and the disk cache's leftovers."""
    swept = sweep_interrupted()
    if swept:
        log.warning("runs left running by a crash, now marked interrupted: %s", ", ".join(swept))
    retention()
    cache = PROFILE.disk_cache
    cache.sweep()
    cache.evict()
    log.info("device: %s; weights: %s", device_label(PROFILE.device), CATALOG.default.source.description)
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
        cache = cache.including("zips", folder / "checkpoints").including("gradio", folder)
    return cache
