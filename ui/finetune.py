"""The Fine-tune page (``/finetune``): CIFAR-10 runs (start, watch, cancel), what a run gets wrong, what it moved,
comparisons, download and push."""

from __future__ import annotations

from typing import Any

import gradio as gr

from explorer import datasets, hub, results
from explorer import finetune as service
from explorer.profile import defaults_table
from explorer.render import data_status
from explorer.state import FAIR, PROFILE, model_names
from googlenet import MODULE_NAMES
from training.data import is_available
from training.probe import PROBE_INDEX, PROBE_MODULE
from training.recipes import RECIPES
from ui.common import address, admission, admitted, image_input, owner, reporter, result_panel, runs, visitor_errors
from ui.page import header

DEFAULTS = defaults_table()
INTRO = ("Fine-tune GoogLeNet on CIFAR-10, a Hub dataset or a zip of your photos, and watch it change: its curves, one picture as it sees it after every "
         "epoch, and which branches of which modules moved. One run at a time on this server, within its limits; "
         "every finished run can then classify, explain and be looked inside on the other pages.")
RECIPE_HELP = ("finetune: from ImageNet; paper: the paper's SGD schedule; seed: a plain baseline from scratch (Adam, "
               "224 px, no augmentation)")


@visitor_errors
def finetune(recipe: str = "finetune", train_size: int = DEFAULTS["train_size"], epochs: int = DEFAULTS["epochs"],
             batch_size: int = DEFAULTS["batch_size"], lr: float = 0.0, image_size: int = DEFAULTS["image_size"],
             freeze_backbone: bool = DEFAULTS["freeze_backbone"], probe_image: str | None = None,
             probe_index: int = PROBE_INDEX, probe_module: str = PROBE_MODULE, dataset: str = "cifar10",
             photos: str | None = None, image_column: str = "", label_column: str = "",
             request: gr.Request | None = None, progress: gr.Progress = gr.Progress()):
    """Start a fine-tuning run (one at a time, within the server's limits) and stream its progress; after every
    epoch, the probe picture (yours, else test picture ``probe_index`` of the dataset) as the run sees it now.

    The dataset is ``dataset``: "cifar10" (the default), or a Hub image-classification dataset
    "OWNER/NAME[@revision]" (``image_column`` and ``label_column`` name its columns when they cannot be found);
    or ``photos``, a zip of your pictures laid out as class_name/picture.jpg (2-100 classes, 5 pictures a class
    at least), which then wins."""
    yield from service.finetune(recipe, train_size, epochs, batch_size, lr, image_size, freeze_backbone,
                               owner(request), address(request), reporter(progress), probe_image, probe_index,
                               probe_module, dataset, photos, image_column, label_column)


@visitor_errors
def check_dataset(dataset: str = "cifar10", photos: str | None = None, image_size: int = DEFAULTS["image_size"],
                  image_column: str = "", label_column: str = "", request: gr.Request = None,
                  progress: gr.Progress = gr.Progress()) -> tuple[str, list]:
    """What a run on a dataset would train on, before it starts: its classes, the sizes of its training,
    validation and test parts, and a few pictures of each class. The dataset is read (a Hub dataset downloaded
    once into the server's cache, within its disk budget) and decoded as a run would.

    Args:
        dataset: "cifar10", or a Hub image-classification dataset "OWNER/NAME[@revision]".
        photos: or a zip of your pictures laid out as class_name/picture.jpg (it wins over ``dataset``).
        image_size: the run's image size (the pictures are stored at it).
        image_column: a Hub dataset's image column, when it cannot be found by its type.
        label_column: a Hub dataset's label column, when it is not its ClassLabel or "label".

    Returns:
        the classes and sizes (Markdown), and a strip of pictures per class with their class names.
    """
    with FAIR.job("dataset", owner(request)):
        return datasets.describe(dataset, photos, owner(request), image_size, image_column, label_column,
                                 reporter(progress))


@visitor_errors
def cancel_finetune(request: gr.Request | None = None) -> str:
    return service.cancel_finetune(owner(request))


@visitor_errors
def download_cifar(progress: gr.Progress = gr.Progress()) -> str:
    return service.download_cifar(reporter(progress))


@visitor_errors
def prepare_download(run: str | None, request: gr.Request = None) -> Any:
    """The chosen run's zip, made (once, in the disk cache) only when a visitor asks for it."""
    with FAIR.job("checkpoint", owner(request)):
        path = results.checkpoint_file(run)
    return gr.DownloadButton(value=path, interactive=path is not None)


def no_download() -> Any:
    """Another run chosen (or the list refreshed): nothing to download until its zip is asked for."""
    return gr.DownloadButton(value=None, interactive=False)


@visitor_errors
def push_to_hub(run: str | None, repo_id: str, token: str, private: bool = False) -> str:
    """Push a finished run to OWNER/NAME with the Hugging Face token the visitor typed (never the server's)."""
    return hub.push_to_hub(run, repo_id, token, private)


@visitor_errors
def push_signed_in(run: str | None, name: str, private: bool = False,
                   oauth_token: gr.OAuthToken | None = None) -> str:
    """Push a finished run to NAME under the signed-in visitor's account, with their own OAuth token."""
    return hub.push_signed_in(run, name, private, oauth_token.token if oauth_token is not None else None)


@visitor_errors
def run_report(run: str | None, request: gr.Request = None) -> tuple[Any, str, list, dict[str, Any]]:
    """What a model fine-tuned in this app on CIFAR-10 gets wrong, on CIFAR-10's test split.

    Args:
        run: the name of a finished fine-tuning run (as listed by the app).

    Returns:
        the confusion matrix (rows: true class), per-class accuracy (Markdown), the most confidently wrong test
        pictures with captions "true → predicted (p)", and the report as a dictionary (classes, confusion,
        accuracy, per_class, top_losses, split).
    """
    with FAIR.job("report", owner(request)):
        return results.run_report(run)


@visitor_errors
def run_drift(run: str | None, epoch: int = 0, request: gr.Request = None) -> tuple[Any, str, dict[str, Any]]:
    """Which parts of GoogLeNet fine-tuning on CIFAR-10 moved, per Inception module and branch (the drift map), as
    recorded after every epoch of a run: linear CKA between the starting model's and the fine-tuned model's branch
    outputs on a fixed probe set (1 = unchanged), and the relative change of the branch's weights.

    Args:
        run: the name of a finished fine-tuning run (as listed by the app).
        epoch: which epoch's map to draw (0: the last).

    Returns:
        that epoch's two heat maps (modules x branches), the same numbers as a Markdown table, and the whole
        record (every epoch's values; a frozen-backbone run has a note instead).
    """
    with FAIR.job("drift", owner(request)):
        return results.run_drift(run, epoch)


@visitor_errors
def compare(names: list[str] | None) -> tuple[Any, str, Any]:
    """Several runs side by side: validation curves overlaid, a table of their settings and results, and their
    drift maps (last epoch)."""
    return results.compare(names)


def page(demo: gr.Blocks) -> None:
    """The page's components and events."""
    top = header(demo, INTRO)
    with gr.Row():
        with gr.Column(scale=2, min_width=300):
            chosen, check, shown = _dataset_choice()
            start, stop, settings, get_data, note = _controls()
            with gr.Row():
                finished = gr.Dropdown(choices=model_names()[1], label="Finished runs", allow_custom_value=True,
                                       min_width=200)  # runs that finish later are valid too
            with gr.Row():
                prepare = gr.Button("Prepare checkpoint download", min_width=120)
                download = gr.DownloadButton("Download checkpoint", interactive=False, min_width=120)
        with gr.Column(scale=3), gr.Tabs(elem_id="finetune-views"):
            panels, outputs, probe_image = _run_views(settings)
            with gr.Tab("Mistakes", id="report"):
                _report(finished)
            with gr.Tab("Drift", id="drift"):
                _drift(finished)
            with gr.Tab("Compare", id="compare"):
                to_compare = _comparison()
            with gr.Tab("Push", id="push"):
                _push(finished)
    get_data.click(download_cifar, None, note, api_name="download_cifar10", concurrency_limit=1)
    settings += chosen  # after the probe's: /finetune's arguments in their order
    asked = [chosen[0], chosen[1], settings[5], *chosen[2:]]  # settings[5]: the image size
    check.click(check_dataset, asked, shown, api_name="dataset", **admitted("dataset", asked))
    for panel in panels:
        panel.reveal_on(start.click)
    run = start.click(finetune, settings, outputs, api_name="finetune", concurrency_limit=PROFILE.concurrency["train"],
                      concurrency_id="train")
    stop.click(cancel_finetune, None, outputs[0], api_name="cancel_finetune", queue=False)
    finished.change(no_download, None, download, api_visibility="private")
    prepare.click(prepare_download, [finished], download, api_name="checkpoint",
                  validator=admission("checkpoint", len([finished])), concurrency_limit=1)

    def lists() -> dict[Any, Any]:
        """The lists of runs as they are now (a run may have just finished), the newest chosen."""
        return {finished: runs(newest=True), to_compare: runs()}

    run.then(lists, None, [finished, to_compare], api_visibility="private")
    top.carry(probe_image)
    top.on_open(lambda view, picture: lists() | ({probe_image: picture.path} if picture else {}),
                [finished, to_compare, probe_image])


def _run_views(settings: list[Any]) -> tuple[list[Any], list[Any], gr.Image]:
    """The live run's views: its progress and curves, its log, and the probe (whose settings join ``settings``);
    their panels, everything ``/finetune`` streams in its order, and the probe's picture."""
    with gr.Tab("Run", id="run"), result_panel(
            "The run's progress appears here: its loss and validation accuracy after every epoch.",
            "finetune-result") as progress:
        summary = gr.Markdown(elem_id="finetune-summary")
        curves = gr.Plot(label="Loss and validation accuracy", elem_id="finetune-curves")
    with gr.Tab("Log", id="log"), result_panel("The run's log appears here.", "finetune-log") as log:
        outputs = [summary, curves, gr.Textbox(label="Log", lines=12, max_lines=20),
                   gr.JSON(label="Result", visible=False)]  # the API's record, not the page's
    with gr.Tab("Probe", id="probe"):
        gr.Markdown("Watch the run see one picture after every epoch: yours, else a test picture of its dataset.")
        with gr.Row():
            picture = image_input(label="Your picture (optional)", height=160, elem_id="probe-image")
            settings += [picture,
                         gr.Number(PROBE_INDEX, label="else test picture number (of the dataset)", precision=0, minimum=0),
                         gr.Dropdown(list(MODULE_NAMES), value=PROBE_MODULE, label="Grad-CAM at module")]
        with result_panel("After each epoch: what fine-tuning moved so far, and the probe as the run sees it now.",
                          "finetune-live") as live:
            with gr.Row():
                outputs.append(gr.Plot(label="What fine-tuning moved so far (drift map, after each epoch)"))
                with gr.Column():
                    probe = [gr.Label(num_top_classes=3, label="Probe: top-3 classes now"),
                             gr.Image(label="Probe: Grad-CAM now", height=180, interactive=False)]
            outputs += [probe[0], gr.Plot(label="Probe: branch shares now (plain) vs the start (hatched)",
                                          elem_id="finetune-probe-shares"), probe[1]]
    return [progress, log, live], outputs, picture


def _dataset_choice() -> tuple[list[Any], gr.Button, list[Any]]:
    """Which dataset: CIFAR-10, a Hub dataset by its id, or a zip of photos; and what it holds, before a run."""
    with gr.Accordion("Dataset: CIFAR-10, a Hub dataset, or your photos", open=False):
        chosen = [gr.Textbox("cifar10", label="Dataset", info="cifar10, or a Hub image-classification dataset "
                             "OWNER/NAME[@revision], e.g. AI-Lab-Makerere/beans"),
                  gr.File(label="… or a zip of your photos (class_name/picture.jpg; it wins over the dataset)",
                          file_types=[".zip"], type="filepath", height=90)]
        with gr.Row():
            chosen += [gr.Textbox("", label="Image column (optional)", min_width=100),
                       gr.Textbox("", label="Label column (optional)", min_width=100)]
        check = gr.Button("Show its classes and pictures", size="sm")
        shown = [gr.Markdown(), gr.Gallery(label="A few pictures per class", columns=8, height=160)]
    return chosen, check, shown


def _controls() -> tuple[gr.Button, gr.Button, list[Any], gr.Button, gr.Markdown]:
    """The data's state, and a new run's settings with Start and Cancel."""
    note = gr.Markdown(data_status(is_available(PROFILE.data_dir)))
    get_data = gr.Button("Download CIFAR-10", size="sm")
    settings = [gr.Dropdown(list(RECIPES), value="finetune", label="Recipe", info=RECIPE_HELP)]
    with gr.Row():
        settings += [gr.Number(DEFAULTS["train_size"], label="Training images", precision=0, min_width=100),
                     gr.Number(DEFAULTS["epochs"], label="Epochs", precision=0, min_width=80),
                     gr.Number(DEFAULTS["batch_size"], label="Batch size", precision=0, min_width=80)]
    with gr.Row():
        settings += [gr.Number(0.0, label="Learning rate (0 = recipe default)", min_width=120),
                     gr.Number(DEFAULTS["image_size"], label="Image size (px)", precision=0, min_width=100)]
    settings.append(gr.Checkbox(DEFAULTS["freeze_backbone"],
                                label="Freeze backbone (train the head only, on cached features)"))
    with gr.Row():
        start = gr.Button("Start", variant="primary", elem_id="finetune-start")
        stop = gr.Button("Cancel", variant="stop")
    return start, stop, settings, get_data, note


def _report(finished: gr.Dropdown) -> None:
    """What the chosen run gets wrong (``/run_report``)."""
    show = gr.Button("Show what the chosen run gets wrong")
    with result_panel("The chosen run's confusion matrix, per-class accuracy and most confidently wrong test "
                      "pictures appear here.", "report-result") as panel:
        with gr.Row():
            outputs = [gr.Plot(label="Confusion matrix (rows: true class)"), gr.Markdown()]
        outputs += [gr.Gallery(label="Most confidently wrong test images (true → predicted)", columns=8, height=260),
                    gr.JSON(label="Report", visible=False)]  # the API's record
    panel.reveal_on(show.click)
    show.click(run_report, [finished], outputs, api_name="run_report", **admitted("report", [finished]))


def _drift(finished: gr.Dropdown) -> None:
    """What the chosen run moved, module by module and branch by branch (``/run_drift``)."""
    gr.Markdown("For each Inception module and branch: how differently it now represents a fixed set of probe "
                "pictures (linear CKA with the starting model; 1 = unchanged) and how far its weights moved "
                "(‖W − W₀‖/‖W₀‖). Recorded after every epoch of a full fine-tune.")
    with gr.Row():
        epoch = gr.Slider(0, PROFILE.limits.epochs, value=0, step=1, label="Epoch (0 = the last)")
        show = gr.Button("Show drift map")
    with result_panel("The chosen run's drift map appears here.", "drift-result") as panel:
        outputs = [gr.Plot(label="Drift map"), gr.Markdown(), gr.JSON(label="Every epoch", visible=False)]
    panel.reveal_on(show.click, epoch.release)
    asked = [finished, epoch]
    show.click(run_drift, asked, outputs, api_name="run_drift", validator=admission("drift", len(asked)))
    epoch.release(run_drift, asked, outputs, api_visibility="private", validator=admission("drift", len(asked)))


def _comparison() -> gr.Dropdown:
    """Several runs side by side (``/compare_runs``); returns the list of runs to choose from."""
    with gr.Row():
        names = gr.Dropdown(choices=model_names()[1], multiselect=True, allow_custom_value=True, label="Runs",
                            scale=3)
        go = gr.Button("Compare", scale=1)
    with result_panel("The chosen runs' validation curves, settings and drift maps appear here.",
                      "compare-result") as panel:
        outputs = [gr.Plot(label="Validation accuracy per epoch"), gr.Markdown(),
                   gr.Plot(label="Drift maps (last epoch): CKA above, weight drift below, one scale per row")]
    panel.reveal_on(go.click)
    go.click(compare, names, outputs, api_name="compare_runs")
    return names


def _push(finished: gr.Dropdown) -> None:
    """On a Space with sign-in, the visitor's own account; elsewhere a token field (no login button exists there:
    outside a Space, Gradio's would want the server's own token)."""
    gr.Markdown("Push the finished run chosen on the left to the Hugging Face Hub.")
    if PROFILE.oauth:
        gr.LoginButton()
        fields = [gr.Textbox(label="Repo name (created under your account)")]
        push_fn = push_signed_in
    else:
        fields = [gr.Textbox(label="Repo id (OWNER/NAME)"),
                  gr.Textbox(label="Hugging Face token (write access; never stored or logged)", type="password")]
        push_fn = push_to_hub
    private = gr.Checkbox(False, label="Private repo (unticked: anyone can see it)")
    push = gr.Button("Push")
    note = gr.Markdown()
    push.click(push_fn, [finished, *fields, private], note, api_name="push_to_hub", concurrency_limit=1)
