"""The Inside Inception page (``/inside``): one module's four branches for a picture (what each responds to, where
it looks, its share across depth, Grad-CAM and knockout), the channel atlas (``ui/atlas.py``) and a channel's
circuit (``ui/circuit.py``). A link opens it on a channel's view or a branch's grid."""

from __future__ import annotations

from typing import Any

import gradio as gr

from explorer import inside as service
from explorer.profile import EXAMPLE_PHOTOS
from explorer.runs import IMAGENET_MODEL
from explorer.state import CATALOG, FAIR
from googlenet import BRANCH_KEYS, DEFAULT_BRANCH, DEFAULT_MODULE, MODULE_NAMES
from googlenet.draw import BRANCH_TITLES
from ui import atlas, circuit
from ui.common import Panel, admitted, image_input, models, owner, result_panel, visitor_errors
from ui.page import Picture, header

INTRO = ("Each Inception module runs 1x1, 3x3 and 5x5 convolutions and a pooling path side by side. See what each "
         "branch responds to in your picture (its 16 most active channels, one colour scale for all four), where it "
         "looks, and what it contributes, for the ImageNet model or any finished fine-tuning run.")


@visitor_errors
def feature_maps(image: str | None, module: str = DEFAULT_MODULE, model: str = IMAGENET_MODEL,
                 compare: str | None = None, request: gr.Request = None) -> tuple[Any, ...]:
    """Look inside one Inception module for a picture: what each of its four branches (1x1, 3x3, 5x5, pool
    projection) responds to, each branch's share of the activation across depth, Grad-CAM, and what the answer
    loses when each branch is zeroed.

    Args:
        image: the picture (an uploaded file, at most 10 MB; a URL is refused).
        module: the Inception module, inception3a to inception5b (default inception4c).
        model: "ImageNet GoogLeNet" (default) or the name of a finished fine-tuning run.
        compare: optionally a second model; its branch shares are drawn beside the first's.

    Returns:
        the top-5 labels, a grid of the 16 most active channels per branch, each branch's mean activation over the
        picture, a chart of branch shares across depth, a Grad-CAM picture and its caption, a knockout table
        (Markdown), and with compare the modules whose branch shares moved most (Markdown).
    """
    with FAIR.job("feature_maps", owner(request)):
        return service.feature_maps(image, module, model, compare)


def page(demo: gr.Blocks) -> None:
    """The page's components and events."""
    top = header(demo, INTRO)
    with gr.Row():
        with gr.Column(scale=2, min_width=280):
            image = image_input(label="Image", elem_id="inside-image", height=220)
            model = gr.Dropdown(choices=CATALOG.names(), value=IMAGENET_MODEL, label="Model",
                                allow_custom_value=True, elem_id="inside-model")
            with gr.Row():
                module = gr.Dropdown(list(MODULE_NAMES), value=DEFAULT_MODULE, label="Module",
                                     allow_custom_value=True, elem_id="inside-module", min_width=120)
                compare = gr.Dropdown(choices=[""] + CATALOG.names(), value="", allow_custom_value=True,
                                      label="Compare with (optional)", min_width=140)
            go = gr.Button("Look inside", variant="primary", elem_id="inside-go")
            gr.Examples([str(p) for p in EXAMPLE_PHOTOS], inputs=image)
        with gr.Column(scale=5), gr.Tabs(elem_id="inside-views") as tabs:
            panels, grids, found = _branch_views()
            with gr.Tab("Atlas", id="atlas"):
                branch, number, shown, panel, show = atlas.channel_view()
            with gr.Tab("Every channel", id="grid"):
                grid, grid_panel, every, mine = atlas.grid_view()
            with gr.Tab("Circuit", id="circuit"):
                k, draw, drawn, circuit_panel = circuit.view()
    views = atlas.Views(tabs, image, model, module, branch, number, shown, panel, show, grid, grid_panel, every, mine,
                        gr.State(False))
    orders = gr.State({})
    for each in panels:
        each.reveal_on(go.click)
    asked = [image, module, model, compare]
    go.click(feature_maps, asked, [*found, orders], api_name="feature_maps", **admitted("feature_maps", asked))
    atlas.wire(views, dict(zip(BRANCH_KEYS, grids)), orders)
    circuit_inputs = [model, module, branch, number, image]
    circuit.wire(circuit_inputs, k, draw, drawn, circuit_panel)
    top.carry(image)
    grid_wanted, circuit_wanted = gr.State(False), gr.State(False)
    opened = top.on_open(lambda view, picture: _opened(views, compare, grid_wanted, view, picture)
                         | _circuit_opened(views, circuit_panel, circuit_wanted, view),
                         [image, model, compare, module, branch, number, tabs, *panel.components(),
                          *grid_panel.components(), *circuit_panel.components(), views.wanted, grid_wanted,
                          circuit_wanted])
    views.open(opened)
    atlas.show_grid(opened, views, grid_wanted)
    circuit.open_when_wanted(opened, circuit_inputs, k, circuit_wanted, drawn)


def _opened(views: atlas.Views, compare: gr.Dropdown, grid_wanted: gr.State, view: dict[str, Any],
            picture: Picture | None) -> dict[Any, Any]:
    """What the page's URL asks to show: a model, a module, and a channel's view (``channel``) or a branch's grid
    (``grid``); the lists of models as they are now; the visitor's picture."""
    updates: dict[Any, Any] = {views.model: models(view.get("model")), compare: models(blank=True)}
    updates |= {getattr(views, key): view[key] for key in ("module", "branch") if key in view}
    if picture:
        updates[views.image] = picture.path
    if "channel" in view:
        if view.get("view") != "circuit":  # a circuit's link opens its own tab (_circuit_opened)
            updates |= views.opened(view.get("branch", DEFAULT_BRANCH), view["channel"])
    elif view.get("grid"):
        updates |= {views.tabs: gr.Tabs(selected="grid"), **views.grid_panel.shown(), grid_wanted: True}
    return updates


def _circuit_opened(views: atlas.Views, panel: Panel, wanted: gr.State, view: dict[str, Any]) -> dict[Any, Any]:
    """A link's ``view=circuit``: the Circuit tab on the link's channel, to be computed next."""
    if "channel" not in view or view.get("view") != "circuit":
        return {}
    return {views.tabs: gr.Tabs(selected="circuit"), **panel.shown(), views.branch: view.get("branch", DEFAULT_BRANCH),
            views.channel: view["channel"], wanted: True}


def _branch_views() -> tuple[list[Panel], list[gr.Image], list[Any]]:
    """The views of one module's branches: their panels, the four branch grids, and everything ``/feature_maps``
    returns in its order (top classes, the grids, overlays, chart, Grad-CAM, its caption, knockout, moved shares)."""
    with gr.Tab("Branches", id="branches"), result_panel(
            "What each branch responds to in your picture appears here: its 16 most active channels, one colour scale "
            "for all four (click a channel to open it in the atlas).", "inside-result") as branches:
        with gr.Row(elem_id="inside-grids"):
            grids = [gr.Image(label=BRANCH_TITLES[k], format="png", show_label=False, min_width=150, buttons=[],
                              alt_text=f"{BRANCH_TITLES[k]}: its 16 most active channels") for k in BRANCH_KEYS]
        top = gr.Label(num_top_classes=5, label="Prediction", elem_id="inside-labels")
    with gr.Tab("Where each looks", id="overlays"), result_panel(
            "Each branch's mean activation over your picture appears here.", "inside-overlays") as where:
        overlays = gr.Gallery(label="Mean activation of each branch over the input", columns=4, height=300)
    with gr.Tab("Depth", id="depth"), result_panel(
            "Each branch's share of the activation in every module appears here.", "inside-depth") as depth:
        chart = gr.Plot(label="Branch shares across depth")
        moved = gr.Markdown()
    with gr.Tab("Grad-CAM", id="cam"), result_panel(
            "Where the answer comes from (Grad-CAM), and what it loses when each branch is zeroed, appear here.",
            "inside-cam") as cam_panel:
        with gr.Row():
            cam = gr.Image(label="Grad-CAM", format="png", height=300, alt_text="Grad-CAM over your picture")
            with gr.Column():
                cam_note, knockout = gr.Markdown(), gr.Markdown()
    return [branches, where, depth, cam_panel], grids, [top, *grids, overlays, chart, cam, cam_note, knockout, moved]
