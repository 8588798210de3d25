"""The Circuit view on the Inside Inception page (``/circuit``): how the atlas's channel is built from the module
below it, with the inputs that carried it on your picture and, for a run, what fine-tuning rewired."""

from __future__ import annotations

from typing import Any

import gradio as gr

from explorer import circuits as service
from explorer.runs import IMAGENET_MODEL
from explorer.state import FAIR
from googlenet import DEFAULT_BRANCH, DEFAULT_MODULE
from googlenet.interpret.circuits import DEFAULT_K, MAX_K
from explorer.state import PROFILE
from ui.common import Panel, admit_now, admitted, owner, reporter, result_panel, visitor_errors

INTRO = ("How the atlas's channel (module, branch and channel above) is built from the module below it: its "
         "strongest inputs for and against, each with its weights (red excites, blue inhibits) and its picture; with "
         "a picture, which inputs carried it there; for a fine-tuning run, what fine-tuning rewired. Click an "
         "input's name to open it in the atlas.")


@visitor_errors
def circuit(model: str = IMAGENET_MODEL, module: str = DEFAULT_MODULE, branch: str = DEFAULT_BRANCH,
            channel: int = 0, image: str | None = None, k: int = DEFAULT_K, request: gr.Request = None,
            progress: gr.Progress = gr.Progress()) -> tuple[Any, ...]:
    """How one channel of GoogLeNet is built from the Inception module below it (the circuits view of Olah et al.,
    "Zoom In", 2020): its strongest inputs for and against, ranked by the L2 norm of their weights (BatchNorm folded;
    a 3x3 or 5x5 branch's reduction and convolution multiplied out, the ReLU between them ignored), each with its
    kernel and its picture; with a picture, which inputs carried the channel's response on it (gradient x input
    through the real network); for a fine-tuning run, which connections fine-tuning moved most.

    Args:
        model: "ImageNet GoogLeNet" (default) or the name of a finished fine-tuning run.
        module: the Inception module, inception3a to inception5b (default inception4c).
        branch: the branch, one of 1x1, 3x3, 5x5 or pool (default 3x3).
        channel: the channel's number within the branch, from 0 (default 0).
        image: optionally a picture (an uploaded file, at most 10 MB) to see which inputs carried it there.
        k: how many inputs of each sign to show, 1 to 32 (default 8).

    Returns:
        the pictures (the channel's own, then each input's picture beside its kernel, then with a picture where the
        inputs that carried it fire), an explanation (Markdown, each input linked to its atlas view), and a record:
        {module, branch, channel, input_module, inputs: [{branch, channel, strength, sign, kernel}], on_picture:
        [{branch, channel, attribution}] or null, rewired: [{branch, channel, change}] or null}; inputs list the
        excitatory ones first, then the inhibitory ones, each strongest first ("stem" names inception3a's inputs).
    """
    with FAIR.job("circuit", owner(request)):
        return service.circuit_view(image, model, module, branch, channel, k, reporter(progress))


def view() -> tuple[gr.Slider, gr.Button, list[Any], Panel]:
    """The view's components: how many inputs, its button, its outputs and its panel."""
    gr.Markdown(INTRO)
    with gr.Row():
        k = gr.Slider(1, MAX_K, value=DEFAULT_K, step=1, label="Inputs of each sign", elem_id="circuit-k")
        show = gr.Button("Show its circuit", elem_id="circuit-show", min_width=120)
    with result_panel("The channel's inputs from the module below, with their weights and pictures, appear here.",
                      "circuit-result") as panel:
        pictures = gr.Gallery(label="The channel, then its inputs (picture | weights: strength)", columns=6,
                              height=420, allow_preview=False, elem_id="circuit-gallery")
        note = gr.Markdown(elem_id="circuit-note")
        record = gr.JSON(visible=False)
    return k, show, [pictures, note, record], panel


def wire(inputs: list[Any], k: gr.Slider, show: gr.Button, outputs: list[Any], panel: Panel) -> None:
    """The button: ``inputs`` are the page's model, module, the atlas's branch and channel, and the picture."""
    asked = [*inputs, k]
    panel.reveal_on(show.click)
    show.click(circuit, asked, outputs, api_name="circuit", **admitted("circuit", asked))


def circuit_when_wanted(wanted: bool, model: str, module: str, branch: str, channel: int, image: str | None, k: int,
                        request: gr.Request = None, progress: gr.Progress = gr.Progress()) -> tuple[Any, ...]:
    """The circuit a link names (``view=circuit``), admitted like the button's (else nothing changes)."""
    if not wanted:
        return (gr.skip(),) * 3
    admit_now("circuit", request)
    return circuit(model, module, branch, channel, image, k, request=request, progress=progress)


def open_when_wanted(event: Any, inputs: list[Any], k: gr.Slider, wanted: gr.State, outputs: list[Any]) -> None:
    """After ``event`` (the page's load) has asked for a circuit (``wanted``): it, within the views' capacity."""
    event.then(circuit_when_wanted, [wanted, *inputs, k], outputs, api_visibility="private",
               concurrency_limit=PROFILE.concurrency["features"], concurrency_id="features")
