"""Inception Explorer: a Gradio app around GoogLeNet. This file only wires components to functions in
``googlenet`` and ``training``; run it with ``python app.py`` (also how Hugging Face Spaces runs it)."""

from __future__ import annotations

import functools
import inspect
import logging
import os
import time
from collections.abc import Callable
from typing import Any

import gradio as gr
import torch
import torchvision

from googlenet import GoogLeNet, MODULE_NAMES, architecture_table
from googlenet.classify import Classifier
from googlenet.device import device_label, select_device
from googlenet.diagram import inception_diagram
from googlenet.features import BRANCH_KEYS, BRANCH_TITLES, inspect_image, knockout_markdown
from googlenet.hub import WeightsError
from googlenet.images import ImageError
from googlenet.table import table_markdown
from training.data import DataError, download, is_available
from training.engine import TrainConfig, TrainingError, curves_figure, push_run
from training.recipes import RECIPES
from training.runs import IMAGENET_MODEL, ModelCatalog, RunBusy, TrainingSlot, checkpoint_zip, list_runs, new_run_name, \
    remove_incomplete, run_path

log = logging.getLogger("inception-explorer")
MAX_UPLOAD = "10mb"

try:  # Hugging Face ZeroGPU: GPU functions are decorated there, a no-op everywhere else
    import spaces

    def on_gpu(duration: int) -> Callable[[Callable], Callable]:
        return spaces.GPU(duration=duration)
except ImportError:
    def on_gpu(duration: int) -> Callable[[Callable], Callable]:
        return lambda fn: fn

EXPECTED = (ImageError, WeightsError, TrainingError, DataError, RunBusy, ValueError)


def visitor_errors(fn: Callable) -> Callable:
    """A visitor sees the specific message of a known problem, and never a stack trace."""
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


# ----------------------------------------------------------------------------- state

DEVICE = select_device(None)
CATALOG = ModelCatalog(lambda: Classifier.from_pretrained(None, device=DEVICE), device=str(DEVICE))
SLOT = TrainingSlot()
CIFAR_DIR = os.environ.get("CIFAR10_DIR", "./data")
ON_GPU = DEVICE.type == "cuda"


def status_markdown() -> str:
    source = CATALOG.default.source
    weights = f"**weights:** {source.description}"
    if source.warning:
        weights = f"<span style='color:#b00020;font-weight:bold'>⚠ {source.warning}</span>"
    return (f"**device:** {device_label(DEVICE)} · {weights} · torch {torch.__version__}, torchvision "
            f"{torchvision.__version__}, gradio {gr.__version__}")


# ----------------------------------------------------------------------------- handlers

@on_gpu(duration=20)
@visitor_errors
def classify(image: str | None, model: str = IMAGENET_MODEL, top_k: int = 5,
             thorough: bool = False) -> tuple[dict[str, float], str]:
    """Top-k labels for one picture; ``thorough`` averages the paper's 10 crops."""
    if image is None:
        raise ImageError("Please upload an image first.")
    clf = CATALOG.get(model)
    top_k = int(top_k)
    start = time.perf_counter()
    result = clf.predict(image, top_k=top_k, crops=10 if thorough else 1)
    ms = 1000 * (time.perf_counter() - start)
    info = f"{ms:.0f} ms on {device_label(clf.device)} · {'10 crops' if thorough else '1 centre crop'} · {model}"
    return {label: p for label, p in result}, info


BATCHING = os.environ.get("GOOGLENET_BATCH", "0") == "1"


@on_gpu(duration=20)
@visitor_errors
def classify_batch(images: list[str | None], models: list[str], top_ks: list[int],
                   thoroughs: list[bool]) -> tuple[list[dict[str, float]], list[str]]:
    """Gradio's dynamic batching: plain single-crop requests for one model share a forward pass."""
    labels: list[dict[str, float]] = [{} for _ in images]
    infos = [""] * len(images)
    plain = [i for i, (im, m, t) in enumerate(zip(images, models, thoroughs))
             if im is not None and not t and (m or IMAGENET_MODEL) == (models[0] or IMAGENET_MODEL)]
    if len(plain) > 1:
        clf = CATALOG.get(models[plain[0]])
        start = time.perf_counter()
        try:
            results = clf.predict_batch([images[i] for i in plain], top_k=max(int(top_ks[i]) for i in plain))
        except ImageError:
            plain, results = [], []  # one bad picture: answer each request on its own
        ms = 1000 * (time.perf_counter() - start)
        for i, result in zip(plain, results):
            labels[i] = dict(result[: int(top_ks[i])])
            infos[i] = f"{ms:.0f} ms for a batch of {len(plain)} on {device_label(clf.device)}"
    for i in range(len(images)):
        if not infos[i]:
            try:
                labels[i], infos[i] = classify(images[i], models[i], top_ks[i], thoroughs[i])
            except gr.Error as e:  # a batch cannot raise for one request: its message goes in the info
                labels[i], infos[i] = {}, f"⚠ {e.message}"
    return labels, infos


@on_gpu(duration=40)
@visitor_errors
def feature_maps(image: str | None, module: str = "inception4c") -> tuple[Any, ...]:
    """Branch grids, overlays, branch shares, Grad-CAM and knockout for one module."""
    if image is None:
        raise ImageError("Please upload an image first.")
    result = inspect_image(CATALOG.default.model, image, module)
    grids = [result.grids[k] for k in BRANCH_KEYS]
    overlays = [(result.overlays[k], BRANCH_TITLES[k]) for k in BRANCH_KEYS]
    return ({n: p for n, p in result.top}, *grids, overlays, result.chart, result.gradcam,
            f"Grad-CAM at {module} for **{result.gradcam_class}**", knockout_markdown(result.knockout))


def architecture() -> tuple[str, Any]:
    """Table 1 measured from the model, with the paper's inconsistent rows flagged."""
    rows = architecture_table(GoogLeNet(aux_logits=False, variant="paper"))
    notes = ("Parameters count convolution and linear weights in K = 1024 (the paper's unit); ops are multiply-adds "
             "in millions, traced with a 224 px forward pass. ⚠ marks rows where the paper's own figure disagrees "
             "with its architecture by more than 2%.")
    return table_markdown(rows) + "\n\n" + notes, inception_diagram()


def model_choices() -> tuple[Any, Any]:
    names = CATALOG.names()
    runs = [r.name for r in list_runs()]
    return gr.Dropdown(choices=names), gr.Dropdown(choices=runs, value=runs[0] if runs else None)


def _defaults() -> dict[str, Any]:
    if ON_GPU:
        return {"train_size": 10000, "epochs": 3, "batch_size": 256, "image_size": 96}
    return {"train_size": 3000, "epochs": 3, "batch_size": 64, "image_size": 32}


DEFAULTS = _defaults()


@on_gpu(duration=300)
@visitor_errors
def finetune(recipe: str = "finetune", train_size: int = DEFAULTS["train_size"], epochs: int = DEFAULTS["epochs"],
             batch_size: int = DEFAULTS["batch_size"], lr: float = 0.0, image_size: int = DEFAULTS["image_size"],
             freeze_backbone: bool = False, request: gr.Request | None = None, progress: gr.Progress = gr.Progress()):
    """Start a CIFAR-10 fine-tuning run (one at a time) and stream its progress."""
    if recipe not in RECIPES:
        raise ValueError(f"Unknown recipe '{recipe}'; choose one of {', '.join(RECIPES)}.")
    if not is_available(CIFAR_DIR):
        raise DataError(f"CIFAR-10 is not in {CIFAR_DIR}. Press 'Download CIFAR-10' first (about 170 MB).")
    name = new_run_name(recipe)
    config = TrainConfig(recipe=recipe, data_dir=CIFAR_DIR, output=str(run_path(name)), device=str(DEVICE),
                         train_size=int(train_size), epochs=int(epochs), batch_size=int(batch_size),
                         lr=float(lr) if lr else None, image_size=int(image_size),
                         freeze_backbone=bool(freeze_backbone))
    owner = getattr(request, "session_hash", None) or "api"
    logs: list[str] = []
    history: list[dict[str, Any]] = []
    summary = f"Run `{name}` starting…"
    for update in SLOT.run(config, owner):
        if update.kind == "log":
            logs.append(update.data["message"])
        elif update.kind == "step":
            d = update.data
            progress((d["step"], d["steps"]), desc=f"epoch {d['epoch']}/{epochs} · loss {d['loss']:.3f}")
            summary = f"Run `{name}`: epoch {d['epoch']}/{epochs}, step {d['step']}/{d['steps']}, loss {d['loss']:.3f}"
        elif update.kind == "epoch":
            history = update.data["history"]
            yield summary, curves_figure(history), "\n".join(logs), None
            continue
        elif update.kind == "error":
            remove_incomplete(name)
            raise TrainingError(update.data["message"])
        elif update.kind == "done":
            result = update.data["result"]
            acc = result.best_val_accuracy
            summary = (f"Run `{name}` {result.status}: best validation accuracy "
                       f"{100 * acc:.1f}%" if acc is not None else f"Run `{name}` {result.status}: no epoch finished")
            if result.test_accuracy is not None:
                summary += f", test accuracy {100 * result.test_accuracy:.1f}%"
            final = {"run": name, "status": result.status, "val_accuracy": acc,
                     "test_accuracy": result.test_accuracy, "epochs": len(result.history)}
            yield summary, curves_figure(history) if history else None, "\n".join(logs), final
            return
        yield summary, gr.skip(), "\n".join(logs), None


@visitor_errors
def cancel_finetune(request: gr.Request | None = None) -> str:
    owner = getattr(request, "session_hash", None) or "api"
    if SLOT.cancel(owner):
        return "Cancelling: the run stops after the current step and keeps its last complete checkpoint."
    if SLOT.busy:
        return "The run in progress was started by another visitor; only they can cancel it."
    return "No run of yours is in progress."


@visitor_errors
def download_cifar(progress: gr.Progress = gr.Progress()) -> str:
    if is_available(CIFAR_DIR):
        return f"CIFAR-10 is ready in {CIFAR_DIR}."
    progress(0, desc="downloading CIFAR-10 (about 170 MB)…")
    download(CIFAR_DIR)
    return f"CIFAR-10 downloaded to {CIFAR_DIR}."


@visitor_errors
def prepare_download(run: str | None) -> Any:
    if not run:
        return gr.DownloadButton(value=None, interactive=False)
    return gr.DownloadButton(value=str(checkpoint_zip(run)), interactive=True)


@visitor_errors
def push_to_hub(run: str | None, repo_id: str, token: str) -> str:
    if not run:
        raise ValueError("Choose a finished run first.")
    url = push_run(run_path(run), repo_id.strip(), token.strip() or None)
    return f"Pushed `{run}` to {repo_id}: {url}"


def data_status() -> str:
    return (f"CIFAR-10 found in `{CIFAR_DIR}`." if is_available(CIFAR_DIR)
            else f"CIFAR-10 is not in `{CIFAR_DIR}` yet: press **Download CIFAR-10** (about 170 MB).")


# ----------------------------------------------------------------------------- layout

EXAMPLES = sorted(str(p) for p in (os.path.join("assets", f) for f in os.listdir("assets")) if p.endswith(".jpg"))


def build() -> gr.Blocks:
    with gr.Blocks(title="Inception Explorer") as demo:
        gr.Markdown("# Inception Explorer\nGoogLeNet (Inception v1, Szegedy et al. 2014): classify a picture, look "
                    "inside its Inception modules branch by branch, and fine-tune it on CIFAR-10.")
        status = gr.Markdown(status_markdown())
        with gr.Tabs():
            with gr.Tab("Classify"):
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

            with gr.Tab("Inside Inception"):
                gr.Markdown("Each Inception module runs 1x1, 3x3 and 5x5 convolutions and a pooling path side by "
                            "side. See what each branch responds to in your picture (its 16 most active channels, "
                            "one colour scale for all four), where it looks, and what it contributes.")
                with gr.Row():
                    f_image = UploadedImage(type="filepath", label="Image", sources=["upload", "webcam", "clipboard"])
                    with gr.Column():
                        module = gr.Dropdown(list(MODULE_NAMES), value="inception4c", label="Module",
                                             allow_custom_value=True)
                        f_go = gr.Button("Look inside", variant="primary")
                        f_top = gr.Label(num_top_classes=5, label="ImageNet prediction")
                gr.Examples(EXAMPLES, inputs=f_image)
                with gr.Row():
                    grids = [gr.Image(label=BRANCH_TITLES[k], format="png", show_label=False) for k in BRANCH_KEYS]
                overlays = gr.Gallery(label="Mean activation of each branch over the input", columns=4, height=260)
                chart = gr.Plot(label="Branch shares across depth")
                with gr.Row():
                    cam = gr.Image(label="Grad-CAM", format="png")
                    with gr.Column():
                        cam_note = gr.Markdown()
                        knockout = gr.Markdown()
                f_go.click(feature_maps, [f_image, module], [f_top, *grids, overlays, chart, cam, cam_note, knockout],
                           api_name="feature_maps", concurrency_limit=2, concurrency_id="features")

            with gr.Tab("Fine-tune on CIFAR-10"):
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
                    freeze = gr.Checkbox(False, label="Freeze backbone")
                with gr.Row():
                    start = gr.Button("Start", variant="primary")
                    stop = gr.Button("Cancel", variant="stop")
                summary = gr.Markdown()
                curves = gr.Plot(label="Loss and validation accuracy")
                run_log = gr.Textbox(label="Log", lines=8, max_lines=20)
                result = gr.JSON(label="Result")
                with gr.Row():
                    runs = gr.Dropdown(choices=[r.name for r in list_runs()], label="Finished runs")
                    dl = gr.DownloadButton("Download checkpoint", interactive=False)
                with gr.Accordion("Push a run to the Hugging Face Hub", open=False):
                    repo = gr.Textbox(label="Repo id (OWNER/NAME)")
                    token = gr.Textbox(label="Hugging Face token (write access; never stored or logged)",
                                       type="password")
                    push = gr.Button("Push")
                    push_note = gr.Markdown()
                get_data.click(download_cifar, None, data_note, api_name="download_cifar10", concurrency_limit=1)
                run_event = start.click(finetune, [recipe, train_size, epochs, batch, lr, size, freeze],
                                        [summary, curves, run_log, result], api_name="finetune",
                                        concurrency_limit=4, concurrency_id="train")
                run_event.then(model_choices, None, [model, runs], api_visibility="private").then(
                    prepare_download, runs, dl, api_visibility="private")
                stop.click(cancel_finetune, None, summary, api_name="cancel_finetune", queue=False)
                runs.change(prepare_download, runs, dl, api_visibility="private")
                push.click(push_to_hub, [runs, repo, token], push_note, api_name="push_to_hub", concurrency_limit=1)

            with gr.Tab("Architecture"):
                arch_table = gr.Markdown()
                diagram = gr.Image(label="The Inception module", format="png")
                arch = gr.Button("Measure Table 1 from the model")
                arch.click(architecture, None, [arch_table, diagram], api_name="architecture")
        demo.load(architecture, None, [arch_table, diagram], api_visibility="private")
        demo.load(model_choices, None, [model, runs], api_visibility="private").then(
            prepare_download, runs, dl, api_visibility="private")
        demo.load(status_markdown, None, status, api_visibility="private")
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
    log.info("weights: %s", CATALOG.default.source.description)
    demo = build()
    demo.queue(max_size=64, default_concurrency_limit=2)
    log.info("ready in %.1f s", time.perf_counter() - started)
    demo.launch(show_error=True, max_file_size=MAX_UPLOAD, max_threads=16, allowed_paths=[], footer_links=["api", "gradio"],
                server_name=os.environ.get("GRADIO_SERVER_NAME"),
                server_port=int(os.environ["GRADIO_SERVER_PORT"]) if os.environ.get("GRADIO_SERVER_PORT") else None)


if __name__ == "__main__":
    main()
