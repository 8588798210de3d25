"""Inception Explorer: a Gradio app around GoogLeNet. This file only wires components to functions in
``googlenet`` and ``training``; run it with ``python app.py`` (also how Hugging Face Spaces runs it)."""

from __future__ import annotations

from explorer.gpu import on_gpu  # first: on ZeroGPU, ``spaces`` must be imported before torch touches CUDA

import functools
import inspect
import logging
import os
import time
from collections.abc import Callable, Iterator
from typing import Any

import gradio as gr
import numpy as np
import torch
import torchvision

from explorer.atlas import ChannelView, channel_events, parse_view, view_query
from explorer.limits import Limits, available_memory, check_memory, max_runs
from explorer.params import as_bool, as_choice, as_float, as_int, as_text
from explorer.runs import IMAGENET_MODEL, ModelCatalog, checkpoint_zip, clean_downloads, compare_runs, list_runs, \
    new_run_name, prune_runs, run_path, sweep_interrupted, top_loss_pictures, usable_run
from explorer.runs import run_report as runs_report
from explorer.slot import Done, Epoch, Failed, Log, RunBusy, Step, TrainingSlot, train_events
from googlenet import MODULE_NAMES, GoogLeNet, architecture_table
from googlenet.classify import Classifier
from googlenet.device import device_label, on_zero_gpu, select_device
from googlenet.diagram import inception_diagram
from googlenet.atlas import check_channel
from googlenet.features import BRANCH_KEYS, BRANCH_TITLES, InsideResult, inspect_image, knockout_markdown, \
    share_shift, shift_markdown, tile_at
from googlenet.hub import WeightsError
from googlenet.images import ImageError
from googlenet.table import table_markdown
from training.config import TrainConfig, TrainingError, validate
from training.data import DataError, download, is_available
from training.engine import push_run
from training.plots import compare_figure, confusion_figure, curves_figure
from training.recipes import RECIPES

log = logging.getLogger("inception-explorer")
MAX_UPLOAD = "10mb"
EXPECTED = (ImageError, WeightsError, TrainingError, DataError, RunBusy, ValueError)


def visitor_errors(fn: Callable) -> Callable:
    """A visitor sees the specific message of a known problem, and never a stack trace or raw exception text."""
    def explain(e: Exception) -> gr.Error:
        if isinstance(e, gr.Error):
            return e
        if isinstance(e, EXPECTED):
            return gr.Error(str(e))
        log.exception("unexpected error in %s", fn.__name__)
        return gr.Error(f"Something went wrong ({type(e).__name__}). The server is still running; please try again.")

    if inspect.isgeneratorfunction(fn):
        @functools.wraps(fn)
        def gen(*args: Any, **kwargs: Any):  # noqa: ANN202
            try:
                yield from fn(*args, **kwargs)
            except Exception as e:
                raise explain(e) from None
        return gen

    @functools.wraps(fn)
    def call(*args: Any, **kwargs: Any):  # noqa: ANN202
        try:
            return fn(*args, **kwargs)
        except Exception as e:
            raise explain(e) from None
    return call


class UploadedImage(gr.Image):
    """gr.Image that hands the uploaded file to our own decoder, so a bad file gets our clear message
    (Gradio's own preprocessing opens it with PIL first and fails with a generic error)."""

    def get_block_name(self) -> str:
        return "image"

    def preprocess(self, payload: Any) -> Any:
        if payload is not None and getattr(payload, "path", None):
            return payload.path
        return super().preprocess(payload)


# ----------------------------------------------------------------------------- state (main process)

DEVICE = select_device(None)
ON_GPU = DEVICE.type == "cuda"
ZERO_GPU = on_zero_gpu()
CATALOG = ModelCatalog(lambda: Classifier.from_pretrained(None, device=DEVICE), device=str(DEVICE))
LIMITS = Limits.for_device("zerogpu" if ZERO_GPU else DEVICE.type)
CIFAR_DIR = os.environ.get("CIFAR10_DIR", "./data")
BATCHING = os.environ.get("GOOGLENET_BATCH", "0") == "1"


def finetune_seconds(config: TrainConfig) -> int:  # type: ignore[valid-type]
    """ZeroGPU's reservation for a run: its time limit plus loading and the final test."""
    return int((config.max_seconds or LIMITS.run_seconds) + 15)


SLOT = TrainingSlot(on_gpu(duration=finetune_seconds)(train_events), on_end=lambda _name: prune_runs(max_runs()))


def status_markdown() -> str:
    source = CATALOG.default.source
    weights = f"**weights:** {source.description}"
    if source.warning:
        weights = f"<span style='color:#b00020;font-weight:bold'>⚠ {source.warning}</span>"
    return (f"**device:** {device_label(DEVICE)} · {weights} · torch {torch.__version__}, torchvision "
            f"{torchvision.__version__}, gradio {gr.__version__}")


# ----------------------------------------------------------------------------- GPU functions (ZeroGPU workers)

@on_gpu(duration=5)
def predict_on_device(model: str, image: str, top_k: int, crops: int) -> tuple[list[tuple[str, float]], float]:
    clf = CATALOG.get(model)
    start = time.perf_counter()
    result = clf.predict(image, top_k=top_k, crops=crops)
    return result, 1000 * (time.perf_counter() - start)


@on_gpu(duration=5)
def predict_batch_on_device(model: str, images: list[str], top_k: int) -> list[list[tuple[str, float]]]:
    return CATALOG.get(model).predict_batch(images, top_k=top_k)


@on_gpu(duration=10)
def inspect_on_device(model: str, image: str, module: str, compare: str | None = None) -> InsideResult:
    other = (CATALOG.get(compare).inspection_model(), (model, compare)) if compare else None
    return inspect_image(CATALOG.get(model).inspection_model(), image, module, compare=other)


@on_gpu(duration=60)
def channel_on_device(model: str, module: str, branch: str, channel: int, image: str | None) -> Iterator[Any]:
    """Progress pairs, then the ChannelView (a generator: progress crosses ZeroGPU's process boundary)."""
    yield from channel_events(CATALOG.get(model).inspection_model(), module, branch, channel, image, CIFAR_DIR)


# ----------------------------------------------------------------------------- handlers

def _image(image: Any) -> str:
    if image is None:
        raise ImageError("Please upload an image first.")
    if not isinstance(image, str):
        raise ImageError("The image must be an uploaded file.")
    return image


@visitor_errors
def classify(image: str | None, model: str = IMAGENET_MODEL, top_k: int = 5,
             thorough: bool = False) -> tuple[dict[str, float], str]:
    """Top-k labels for one picture; ``thorough`` averages the paper's 10 crops."""
    image = _image(image)
    model = as_text(model, "model") or IMAGENET_MODEL
    top_k, thorough = as_int(top_k, "top_k", 1, 1000), as_bool(thorough, "thorough")
    clf = CATALOG.get(model)  # loads (and validates) here, so each GPU worker inherits it
    result, ms = predict_on_device(model, image, top_k, 10 if thorough else 1)
    info = f"{ms:.0f} ms on {device_label(clf.device)} · {'10 crops' if thorough else '1 centre crop'} · {model}"
    return {label: p for label, p in result}, info


def classify_batch(images: list[str | None], models: list[str], top_ks: list[int],
                   thoroughs: list[bool]) -> tuple[list[dict[str, float]], list[str]]:
    """Gradio's dynamic batching: plain single-crop requests for one model share a forward pass."""
    labels: list[dict[str, float]] = [{} for _ in images]
    infos = [""] * len(images)
    first = models[0] or IMAGENET_MODEL
    plain = [i for i, (im, m, t) in enumerate(zip(images, models, thoroughs))
             if isinstance(im, str) and not t and (m or IMAGENET_MODEL) == first]
    if len(plain) > 1:
        try:
            clf = CATALOG.get(first)
            start = time.perf_counter()
            results = predict_batch_on_device(first, [images[i] for i in plain],
                                              max(as_int(top_ks[i], "top_k", 1, 1000) for i in plain))
            ms = 1000 * (time.perf_counter() - start)
            for i, result in zip(plain, results):
                labels[i] = dict(result[: int(top_ks[i])])
                infos[i] = f"{ms:.0f} ms for a batch of {len(plain)} on {device_label(clf.device)}"
        except (ImageError, ValueError):
            pass  # one bad request: answer each on its own
    for i in range(len(images)):
        if not infos[i]:
            try:
                labels[i], infos[i] = classify(images[i], models[i], top_ks[i], thoroughs[i])
            except gr.Error as e:  # a batch cannot raise for one request: its message goes in the info
                labels[i], infos[i] = {}, f"⚠ {e.message}"
    return labels, infos


def _module(module: Any) -> str:
    module = as_text(module, "module") or "inception4c"
    if module not in MODULE_NAMES:
        raise ValueError(f"Unknown Inception module {module[:40]!r}; choose from {', '.join(MODULE_NAMES)}.")
    return module


@visitor_errors
def feature_maps(image: str | None, module: str = "inception4c", model: str = IMAGENET_MODEL,
                 compare: str | None = None) -> tuple[Any, ...]:
    """Branch grids, overlays, branch shares, Grad-CAM and knockout for one module of any model; with
    ``compare`` (a second model), both models' branch shares and where they moved most."""
    image, module = _image(image), _module(module)
    model = as_text(model, "model") or IMAGENET_MODEL
    compare = as_text(compare, "compare") or None
    for name in (model, compare):
        if name:
            CATALOG.get(name)  # loaded (and validated) in the main process, inherited by GPU workers
    result = inspect_on_device(model, image, module, compare if compare != model else None)
    grids = [result.grids[k] for k in BRANCH_KEYS]
    overlays = [(result.overlays[k], BRANCH_TITLES[k]) for k in BRANCH_KEYS]
    moved = shift_markdown(share_shift(result.shares, result.other_shares), (model, compare)) \
        if result.other_shares else ""
    return ({n: p for n, p in result.top}, *grids, overlays, result.chart, result.gradcam,
            f"Grad-CAM at {module} for **{result.gradcam_class}**", knockout_markdown(result.knockout), moved,
            result.orders)


@visitor_errors
def channel(image: str | None = None, model: str = IMAGENET_MODEL, module: str = "inception4c", branch: str = "3x3",
            channel: int = 0, progress: gr.Progress = gr.Progress()) -> tuple[Any, ...]:
    """One channel's atlas view: its visualisation, the reference pictures that excite it most, and where
    it fires on ``image`` (optional)."""
    image = _image(image) if image is not None else None
    model = as_text(model, "model") or IMAGENET_MODEL
    module, branch = _module(module), as_choice(branch, "branch", BRANCH_KEYS)
    channel = as_int(channel, "channel", 0, 1023)
    check_channel(CATALOG.get(model).model, module, branch, [channel])
    view = None
    for event in channel_on_device(model, module, branch, channel, image):
        if isinstance(event, ChannelView):
            view = event
        else:
            progress(event[0], desc=event[1])
    query = view_query(model, module, branch, channel)
    link = f"Link to this view: [{query}]({query})"
    return view.visualization, view.examples, view.where, view.note(), link


def pick_tile(orders: dict[str, list[int]] | None, branch: str, evt: gr.SelectData) -> tuple[Any, Any]:
    """A click on a tile of a branch grid chooses that channel for the atlas."""
    order = (orders or {}).get(branch) or []
    k = tile_at(evt.index[0], evt.index[1], len(order)) if order and evt.index else None
    if k is None:
        return gr.skip(), gr.skip()
    return branch, order[k]


def _tile_picker(branch: str) -> Callable[..., tuple[Any, Any]]:
    def pick(orders: dict[str, list[int]] | None, evt: gr.SelectData) -> tuple[Any, Any]:
        return pick_tile(orders, branch, evt)
    return pick


def open_view(request: gr.Request) -> tuple[Any, ...]:
    """The page opens on the view its URL names (``?tab=inside&module=inception4c&branch=3x3&channel=17``)."""
    view = parse_view(dict(request.query_params)) if request is not None else {}
    def value(key: str) -> Any:
        return view[key] if key in view else gr.skip()
    return (gr.Tabs(selected=view["tab"]) if "tab" in view else gr.skip(), value("model"), value("module"),
            value("branch"), value("channel"), "channel" in view)


def channel_from_url(wanted: bool, image: str | None, model: str, module: str, branch: str, number: int,
                     progress: gr.Progress = gr.Progress()) -> tuple[Any, ...]:
    if not wanted:
        return (gr.skip(),) * 5
    return channel(image, model, module, branch, number, progress=progress)


def architecture() -> tuple[str, Any]:
    """Table 1 measured from the model, with the paper's inconsistent rows flagged."""
    rows = architecture_table(GoogLeNet(aux_logits=False, variant="paper"))
    notes = ("Parameters count convolution and linear weights in K = 1024 (the paper's unit); ops are multiply-adds "
             "in millions, traced with a 224 px forward pass. ⚠ marks rows where the paper's own figure disagrees "
             "with its architecture by more than 2%.")
    return table_markdown(rows) + "\n\n" + notes, inception_diagram()


def model_choices() -> tuple[Any, ...]:
    runs = [r.name for r in list_runs()]
    names = CATALOG.names()
    return (gr.Dropdown(choices=names), gr.Dropdown(choices=runs, value=runs[0] if runs else None),
            gr.Dropdown(choices=runs), gr.Dropdown(choices=names), gr.Dropdown(choices=[""] + names))


def _defaults() -> dict[str, Any]:
    """On a GPU a full fine-tune (on ZeroGPU about 60 s of GPU, so a free visitor's daily quota runs one). On a
    CPU the head only, on cached backbone features: 4,000 images at 64 px for 10 epochs take the time 3,000 at
    32 px took as a full fine-tune (79 s on 2 cores, the test split included) the first time, and 7 s once the
    features are cached (README, Fine-tuning)."""
    if ON_GPU:
        return {"train_size": 10000, "epochs": 3, "batch_size": 256, "image_size": 96, "freeze_backbone": False}
    return {"train_size": 4000, "epochs": 10, "batch_size": 64, "image_size": 64, "freeze_backbone": True}


DEFAULTS = _defaults()


def _owner(request: gr.Request | None) -> str:
    return getattr(request, "session_hash", None) or "api"


@visitor_errors
def finetune(recipe: str = "finetune", train_size: int = DEFAULTS["train_size"], epochs: int = DEFAULTS["epochs"],
             batch_size: int = DEFAULTS["batch_size"], lr: float = 0.0, image_size: int = DEFAULTS["image_size"],
             freeze_backbone: bool = DEFAULTS["freeze_backbone"], request: gr.Request | None = None, progress: gr.Progress = gr.Progress()):
    """Start a CIFAR-10 fine-tuning run (one at a time, within the server's limits) and stream its progress."""
    recipe = as_choice(recipe, "recipe", tuple(RECIPES))
    train_size, epochs = as_int(train_size, "train_size"), as_int(epochs, "epochs")
    batch_size, image_size = as_int(batch_size, "batch_size"), as_int(image_size, "image_size")
    lr, freeze_backbone = as_float(lr, "lr"), as_bool(freeze_backbone, "freeze_backbone")
    if not is_available(CIFAR_DIR):
        raise DataError("CIFAR-10 is not on this server yet. Press 'Download CIFAR-10' first (about 170 MB).")
    name = new_run_name(recipe)
    config = TrainConfig(recipe=recipe, data_dir=CIFAR_DIR, output=str(run_path(name)), device=str(DEVICE),
                         train_size=train_size, epochs=epochs, batch_size=batch_size, lr=lr if lr else None,
                         image_size=image_size, freeze_backbone=freeze_backbone, max_seconds=LIMITS.run_seconds,
                         keep_resume_state=False)
    validate(config)  # each bad setting gets its own sentence before the slot is taken
    LIMITS.check(epochs=epochs, train_size=train_size, image_size=image_size, batch_size=batch_size)
    check_memory(batch_size, image_size, available_memory(DEVICE, ZERO_GPU))
    handle = SLOT.start(config, _owner(request))
    logs: list[str] = []
    history: list[dict[str, Any]] = []
    summary, last_step = f"Run `{name}` starting…", 0.0
    try:
        for event in handle.events():
            if isinstance(event, Log):
                logs.append(event.message)
            elif isinstance(event, Step):
                progress((event.step, event.steps), desc=f"epoch {event.epoch}/{epochs} · loss {event.loss:.3f}")
                summary = (f"Run `{name}`: epoch {event.epoch}/{epochs}, step {event.step}/{event.steps}, "
                           f"loss {event.loss:.3f}")
                if time.monotonic() - last_step < 0.25 and event.step != event.steps:
                    continue  # at most four page updates a second
                last_step = time.monotonic()
            elif isinstance(event, Epoch):
                history = event.history
                yield summary, curves_figure(history), "\n".join(logs), None
                continue
            elif isinstance(event, Failed):
                raise TrainingError(event.message)
            elif isinstance(event, Done):
                result, acc = event.summary, event.summary["val_accuracy"]
                summary = (f"Run `{name}` {result['status']}: best validation accuracy {100 * acc:.1f}%"
                           if acc is not None else f"Run `{name}` {result['status']}: no epoch finished")
                if result["test_accuracy"] is not None:
                    summary += f", test accuracy {100 * result['test_accuracy']:.1f}%"
                if event.message not in ("finished", ""):
                    summary += f" ({event.message})"
                yield summary, curves_figure(history) if history else None, "\n".join(logs), result
                return
            yield summary, gr.skip(), "\n".join(logs), None
    finally:
        handle.stop.set()  # the visitor left (or the run ended): never wait here, the driver thread cleans up


@visitor_errors
def cancel_finetune(request: gr.Request | None = None) -> str:
    if SLOT.cancel(_owner(request)):
        return "Cancelling: the run stops after the current step and keeps its last complete checkpoint."
    if SLOT.busy:
        return "The run in progress was started by another visitor; only they can cancel it."
    return "No run of yours is in progress."


@visitor_errors
def download_cifar(progress: gr.Progress = gr.Progress()) -> str:
    if is_available(CIFAR_DIR):
        return "CIFAR-10 is ready."
    progress(0, desc="downloading CIFAR-10 (about 170 MB)…")
    download(CIFAR_DIR)
    return "CIFAR-10 downloaded."


@visitor_errors
def prepare_download(run: str | None) -> Any:
    if not run:
        return gr.DownloadButton(value=None, interactive=False)
    return gr.DownloadButton(value=str(checkpoint_zip(as_text(run, "run"))), interactive=True)


@visitor_errors
def push_to_hub(run: str | None, repo_id: str, token: str) -> str:
    """Push a finished run with the visitor's own token: never the server's."""
    run, repo_id, token = as_text(run, "run"), as_text(repo_id, "repo_id"), as_text(token, "token")
    if not token:
        raise ValueError("Enter your own Hugging Face token (with write access). This server never pushes with a "
                         "token of its own.")
    if not run:
        raise ValueError("Choose a finished run first.")
    url = push_run(usable_run(run), repo_id, token)
    return f"Pushed `{run}` to {repo_id}: {url}"


@visitor_errors
def run_report(run: str | None) -> tuple[Any, str, list, dict[str, Any]]:
    """A run's confusion matrix, per-class accuracy, most confidently wrong test images, and the report."""
    run = as_text(run, "run")
    if not run:
        raise ValueError("Choose a finished run first.")
    report = runs_report(run, CIFAR_DIR)
    per_class = "| class | accuracy |\n|---|---|\n" + "\n".join(
        f"| {name} | {100 * acc:.1f}% |" for name, acc in zip(report.classes, report.per_class))
    try:
        pictures = top_loss_pictures(report, CIFAR_DIR)
    except DataError:
        pictures = []  # the report was saved with the run; the pictures need CIFAR-10 on this server
    return (confusion_figure(np.array(report.confusion), report.classes),
            f"**Test accuracy {100 * report.accuracy:.1f}%**\n\n" + per_class, pictures, report.as_dict())


@visitor_errors
def compare(names: list[str] | None) -> tuple[Any, str]:
    """Several runs side by side: validation curves overlaid, and a table of their settings and results."""
    if isinstance(names, str):
        names = [names]
    if not names or not all(isinstance(n, str) for n in names):
        raise ValueError("Choose one or more finished runs to compare.")
    histories, rows = compare_runs(list(dict.fromkeys(names))[:8])
    keys = list(rows[0])
    table = "| " + " | ".join(keys) + " |\n|" + "---|" * len(keys) + "\n" + "\n".join(
        "| " + " | ".join(_cell(k, r[k]) for k in keys) + " |" for r in rows)
    return compare_figure(histories), table


def _cell(key: str, value: Any) -> str:
    if value is None:
        return ""
    return f"{100 * value:.1f}%" if key.endswith("accuracy") else f"{value:g}" if isinstance(value, float) else str(value)


def data_status() -> str:
    return ("CIFAR-10 is ready on this server." if is_available(CIFAR_DIR)
            else "CIFAR-10 is not on this server yet: press **Download CIFAR-10** (about 170 MB).")


# ----------------------------------------------------------------------------- layout

EXAMPLES = sorted(str(p) for p in (os.path.join("assets", f) for f in os.listdir("assets")) if p.endswith(".jpg"))


def build() -> gr.Blocks:
    # Gradio's upload and output cache: files older than an hour are deleted every hour.
    with gr.Blocks(title="Inception Explorer", delete_cache=(3600, 3600)) as demo:
        gr.Markdown("# Inception Explorer\nGoogLeNet (Inception v1, Szegedy et al. 2014): classify a picture, look "
                    "inside its Inception modules branch by branch, and fine-tune it on CIFAR-10.")
        status = gr.Markdown(status_markdown())
        with gr.Tabs() as tabs:
            with gr.Tab("Classify", id="classify"):
                with gr.Row():
                    with gr.Column():
                        image = UploadedImage(type="filepath", sources=["upload", "webcam", "clipboard"],
                                              label="Image", elem_id="classify-image")
                        model = gr.Dropdown(choices=CATALOG.names(), value=IMAGENET_MODEL, label="Model",
                                            allow_custom_value=True)
                        with gr.Row():
                            top_k = gr.Slider(1, 10, value=5, step=1, label="Top-k")
                            thorough = gr.Checkbox(False, label="Thorough (10-crop, paper Sec. 7)")
                        go = gr.Button("Classify", variant="primary", elem_id="classify-button")
                        gr.Examples(EXAMPLES, inputs=image)
                    with gr.Column():
                        labels = gr.Label(num_top_classes=10, label="Prediction", elem_id="classify-labels")
                        timing = gr.Markdown()
                go.click(classify_batch if BATCHING else classify, [image, model, top_k, thorough], [labels, timing],
                         api_name="classify", concurrency_limit=4 if ON_GPU else 2, concurrency_id="infer",
                         batch=BATCHING, max_batch_size=16)

            with gr.Tab("Inside Inception", id="inside"):
                gr.Markdown("Each Inception module runs 1x1, 3x3 and 5x5 convolutions and a pooling path side by "
                            "side. See what each branch responds to in your picture (its 16 most active channels, "
                            "one colour scale for all four), where it looks, and what it contributes, for the "
                            "ImageNet model or any finished fine-tuning run.")
                with gr.Row():
                    f_image = UploadedImage(type="filepath", label="Image", sources=["upload", "webcam", "clipboard"])
                    with gr.Column():
                        f_model = gr.Dropdown(choices=CATALOG.names(), value=IMAGENET_MODEL, label="Model",
                                              allow_custom_value=True, elem_id="inside-model")
                        module = gr.Dropdown(list(MODULE_NAMES), value="inception4c", label="Module",
                                             allow_custom_value=True, elem_id="inside-module")
                        f_compare = gr.Dropdown(choices=[""] + CATALOG.names(), value="", allow_custom_value=True,
                                                label="Compare branch shares with (optional)")
                        f_go = gr.Button("Look inside", variant="primary")
                        f_top = gr.Label(num_top_classes=5, label="Prediction")
                gr.Examples(EXAMPLES, inputs=f_image)
                gr.Markdown("Click a tile of a grid to open that channel in the atlas below.")
                with gr.Row():
                    grids = [gr.Image(label=BRANCH_TITLES[k], format="png", show_label=False) for k in BRANCH_KEYS]
                overlays = gr.Gallery(label="Mean activation of each branch over the input", columns=4, height=260)
                chart = gr.Plot(label="Branch shares across depth")
                moved = gr.Markdown()
                with gr.Row():
                    cam = gr.Image(label="Grad-CAM", format="png")
                    with gr.Column():
                        cam_note = gr.Markdown()
                        knockout = gr.Markdown()
                orders = gr.State({})
                with gr.Group(elem_id="atlas"):
                    gr.Markdown("### Channel atlas\nWhat one channel of one branch has learned: an image optimised "
                                "to excite it, the reference pictures that excite it most, and where it fires on "
                                "your picture. The first view of a channel takes a while on a CPU (progress shows "
                                "how long); it is cached after that.")
                    with gr.Row():
                        a_branch = gr.Radio(list(BRANCH_KEYS), value="3x3", label="Branch", elem_id="atlas-branch")
                        a_channel = gr.Number(0, label="Channel", precision=0, minimum=0, elem_id="atlas-channel")
                        a_go = gr.Button("Show channel", elem_id="atlas-show")
                    with gr.Row():
                        a_vis = gr.Image(label="Optimised to excite the channel", format="png", elem_id="atlas-vis")
                        a_where = gr.Image(label="Where it fires on your picture", format="png")
                    a_examples = gr.Gallery(label="Reference pictures that excite it most (the patch where it "
                                                  "peaks: score)", columns=9, height=200)
                    a_note = gr.Markdown()
                    a_link = gr.Markdown(elem_id="atlas-link")
                atlas_outputs = [a_vis, a_examples, a_where, a_note, a_link]
                f_go.click(feature_maps, [f_image, module, f_model, f_compare],
                           [f_top, *grids, overlays, chart, cam, cam_note, knockout, moved, orders],
                           api_name="feature_maps", concurrency_limit=2, concurrency_id="features")
                a_go.click(channel, [f_image, f_model, module, a_branch, a_channel], atlas_outputs,
                           api_name="channel", concurrency_limit=2, concurrency_id="features")
                for key, grid in zip(BRANCH_KEYS, grids):
                    grid.select(_tile_picker(key), orders, [a_branch, a_channel],
                                api_visibility="private").success(
                        channel, [f_image, f_model, module, a_branch, a_channel], atlas_outputs,
                        api_visibility="private", concurrency_limit=2, concurrency_id="features")

            with gr.Tab("Fine-tune on CIFAR-10", id="finetune"):
                data_note = gr.Markdown(data_status())
                get_data = gr.Button("Download CIFAR-10")
                with gr.Row():
                    recipe = gr.Dropdown(list(RECIPES), value="finetune", label="Recipe",
                                         info="finetune: from ImageNet; paper: the paper's SGD schedule; seed: the "
                                              "seed's baseline")
                    train_size = gr.Number(DEFAULTS["train_size"], label="Training images", precision=0)
                    epochs = gr.Number(DEFAULTS["epochs"], label="Epochs", precision=0)
                    batch = gr.Number(DEFAULTS["batch_size"], label="Batch size", precision=0)
                    lr = gr.Number(0.0, label="Learning rate (0 = recipe default)")
                    size = gr.Number(DEFAULTS["image_size"], label="Image size (px)", precision=0)
                    freeze = gr.Checkbox(DEFAULTS["freeze_backbone"], label="Freeze backbone (train the head only, on cached "
                                                                            "features)")
                with gr.Row():
                    start = gr.Button("Start", variant="primary")
                    stop = gr.Button("Cancel", variant="stop")
                summary = gr.Markdown()
                curves = gr.Plot(label="Loss and validation accuracy")
                run_log = gr.Textbox(label="Log", lines=8, max_lines=20)
                result = gr.JSON(label="Result")
                with gr.Row():
                    runs = gr.Dropdown(choices=[r.name for r in list_runs()], label="Finished runs",
                                       allow_custom_value=True)  # runs that finish later are valid too
                    dl = gr.DownloadButton("Download checkpoint", interactive=False)
                with gr.Accordion("What the chosen run gets wrong", open=False):
                    show_report = gr.Button("Show report")
                    with gr.Row():
                        confusion = gr.Plot(label="Confusion matrix (rows: true class)")
                        per_class = gr.Markdown()
                    top_losses = gr.Gallery(label="Most confidently wrong test images (true → predicted)",
                                            columns=8, height=260)
                    report_json = gr.JSON(label="Report")
                with gr.Accordion("Compare runs", open=False):
                    to_compare = gr.Dropdown(choices=[r.name for r in list_runs()], multiselect=True,
                                             allow_custom_value=True, label="Runs")
                    compare_go = gr.Button("Compare")
                    compare_plot = gr.Plot(label="Validation accuracy per epoch")
                    compare_table = gr.Markdown()
                with gr.Accordion("Push a run to the Hugging Face Hub", open=False):
                    repo = gr.Textbox(label="Repo id (OWNER/NAME)")
                    token = gr.Textbox(label="Hugging Face token (write access; never stored or logged)",
                                       type="password")
                    push = gr.Button("Push")
                    push_note = gr.Markdown()
                choice_lists = [model, runs, to_compare, f_model, f_compare]
                get_data.click(download_cifar, None, data_note, api_name="download_cifar10", concurrency_limit=1)
                run_event = start.click(finetune, [recipe, train_size, epochs, batch, lr, size, freeze],
                                        [summary, curves, run_log, result], api_name="finetune",
                                        concurrency_limit=4, concurrency_id="train")
                run_event.then(model_choices, None, choice_lists, api_visibility="private").then(
                    prepare_download, runs, dl, api_visibility="private")
                stop.click(cancel_finetune, None, summary, api_name="cancel_finetune", queue=False)
                runs.change(prepare_download, runs, dl, api_visibility="private")
                push.click(push_to_hub, [runs, repo, token], push_note, api_name="push_to_hub", concurrency_limit=1)
                show_report.click(run_report, runs, [confusion, per_class, top_losses, report_json],
                                  api_name="run_report", concurrency_limit=2, concurrency_id="features")
                compare_go.click(compare, to_compare, [compare_plot, compare_table], api_name="compare_runs")

            with gr.Tab("Architecture", id="architecture"):
                arch_table = gr.Markdown()
                diagram = gr.Image(label="The Inception module", format="png")
                arch = gr.Button("Measure Table 1 from the model")
                arch.click(architecture, None, [arch_table, diagram], api_name="architecture")
        demo.load(architecture, None, [arch_table, diagram], api_visibility="private")
        # The newest run's zip is made once and reused by every later page view (checkpoint_zip caches it).
        demo.load(model_choices, None, choice_lists, api_visibility="private").then(
            prepare_download, runs, dl, api_visibility="private")
        demo.load(status_markdown, None, status, api_visibility="private")
        from_url = gr.State(False)
        demo.load(open_view, None, [tabs, f_model, module, a_branch, a_channel, from_url],
                  api_visibility="private").then(
            channel_from_url, [from_url, f_image, f_model, module, a_branch, a_channel], atlas_outputs,
            api_visibility="private")
    return demo


def _limit_malloc_arenas() -> None:
    """glibc gives each of Gradio's worker threads its own malloc arena; capping them keeps the server's
    memory flat under many concurrent visitors (measured by benchmarks/load.py)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").mallopt(-8, 2)  # M_ARENA_MAX = 2
    except (OSError, AttributeError):
        pass  # not glibc (macOS, Windows): nothing to do


def main() -> None:
    _limit_malloc_arenas()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    started = time.perf_counter()
    clean_downloads()
    swept = sweep_interrupted()
    if swept:
        log.warning("runs left running by a crash, now marked interrupted: %s", ", ".join(swept))
    prune_runs(max_runs())
    log.info("device: %s; weights: %s", device_label(DEVICE), CATALOG.default.source.description)
    demo = build()
    demo.queue(max_size=64, default_concurrency_limit=2)
    log.info("ready in %.1f s", time.perf_counter() - started)
    # run_history=False: Gradio would otherwise keep every call's inputs (a Hub token among them) in the browser.
    demo.launch(show_error=True, max_file_size=MAX_UPLOAD, max_threads=16, allowed_paths=[], run_history=False,
                footer_links=["api", "gradio"],
                server_name=os.environ.get("GRADIO_SERVER_NAME"),
                server_port=int(os.environ["GRADIO_SERVER_PORT"]) if os.environ.get("GRADIO_SERVER_PORT") else None)


if __name__ == "__main__":
    main()
