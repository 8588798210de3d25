"""The Inside Inception tab: one module's four branches for a picture, and the channel atlas."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr

from explorer import inside as service
from explorer.atlas import service as atlas
from explorer.links import grid_query, parse_view, tile_channel
from explorer.profile import EXAMPLE_PHOTOS
from explorer.runs import IMAGENET_MODEL
from explorer.state import CATALOG, FAIR, PROFILE
from googlenet import BRANCH_KEYS, DEFAULT_BRANCH, DEFAULT_MODULE, MODULE_NAMES
from googlenet.draw import BRANCH_TITLES
from ui.common import Panel, address, admission, image_input, owner, reporter, result_panel, revealed, visitor_errors

INTRO = ("Each Inception module runs 1x1, 3x3 and 5x5 convolutions and a pooling path side by side. See what each "
         "branch responds to in your picture (its 16 most active channels, one colour scale for all four), where it "
         "looks, and what it contributes, for the ImageNet model or any finished fine-tuning run.")
EXPENSIVE = {"concurrency_limit": PROFILE.concurrency["features"], "concurrency_id": "features"}
# Every way into the atlas (the button, a tile, a link) shares one capacity and one admission.
ATLAS = {**EXPENSIVE, "validator": admission("atlas", 5)}
GRID = {**EXPENSIVE, "validator": admission("grid", 4)}
ATLAS_INTRO = ("What one channel of one branch has learned: an image optimised to excite it, the "
               "reference pictures that excite it most, and where it fires on your picture. The first view of a "
               "channel takes a while on a CPU (progress shows how long); it is cached after that.")


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


@visitor_errors
def channel(image: str | None = None, model: str = IMAGENET_MODEL, module: str = DEFAULT_MODULE,
            branch: str = DEFAULT_BRANCH, channel: int = 0, request: gr.Request = None,
            progress: gr.Progress = gr.Progress()) -> tuple[Any, ...]:
    """What one channel of GoogLeNet has learned (the channel atlas): a picture optimised to excite it, the
    reference pictures that excite it most, and where it fires on your picture. The first view of a channel is
    computed (seconds on a GPU, about 9 s on a CPU); later views come from a cache or a precomputed atlas.

    Args:
        image: optionally a picture (an uploaded file, at most 10 MB) to show where the channel fires on it.
        model: "ImageNet GoogLeNet" (default) or the name of a finished fine-tuning run.
        module: the Inception module, inception3a to inception5b (default inception4c).
        branch: the branch, one of 1x1, 3x3, 5x5 or pool (default 3x3).
        channel: the channel's number within the branch, from 0 (default 0).

    Returns:
        the optimised picture, the top reference pictures with captions "label #index: score", where it fires on
        the picture (or nothing), a note (Markdown), and a link to this view.
    """
    with FAIR.job("atlas", owner(request)):
        return atlas.channel_view(image, model, module, branch, channel, reporter(progress))


@visitor_errors
def atlas_grid(model: str = IMAGENET_MODEL, module: str = DEFAULT_MODULE, branch: str = DEFAULT_BRANCH,
               image: str | None = None, request: gr.Request = None) -> tuple[Any, ...]:
    """Every channel of one branch of an Inception module at a glance (the channel atlas's grid): each channel's
    thumbnail with its number, in channel order, or, given a picture, ordered by how strongly each channel responds
    to it (which channels does my picture excite most?).

    Args:
        model: "ImageNet GoogLeNet" (default) or the name of a finished fine-tuning run.
        module: the Inception module, inception3a to inception5b (default inception4c).
        branch: the branch, one of 1x1, 3x3, 5x5 or pool (default 3x3).
        image: optionally a picture (an uploaded file, at most 10 MB) to order the channels by their response.

    Returns:
        the grid's thumbnails with captions ("ch N", or "ch N: response"), ordered, a note, and the
        grid's link.
    """
    with FAIR.job("grid", owner(request)):
        tiles, note, order = atlas.atlas_grid(image, model, module, branch)
    return tiles, note, order, query_note(model, module, branch)


def query_note(model: str, module: str, branch: str) -> str:
    query = grid_query(model, module, branch)
    return f"Link to this grid: [{query}]({query})"


def _to_atlas(branch: str, channel: int | None) -> tuple[Any, ...]:
    """The atlas view shown, on ``channel`` of ``branch`` (nothing changes for no channel)."""
    if channel is None:
        return (gr.skip(),) * 5
    return gr.Tabs(selected="atlas"), *revealed(), branch, channel


def pick_from_grid(order: list[int] | None, branch: str, evt: gr.SelectData) -> tuple[Any, ...]:
    """A click on a tile of the grid opens that channel."""
    index = evt.index if isinstance(evt.index, int) else None
    return _to_atlas(branch, order[index] if order and index is not None and 0 <= index < len(order) else None)


def _tile_picker(branch: str):  # noqa: ANN202
    def pick(orders: dict[str, list[int]] | None, evt: gr.SelectData) -> tuple[Any, ...]:
        return _to_atlas(branch, tile_channel(orders, branch, evt.index))
    return pick


@dataclass
class Inside:
    """The components other parts of the page refer to."""

    image: gr.Image
    model: gr.Dropdown
    compare: gr.Dropdown
    module: gr.Dropdown
    views: gr.Tabs  # the tab's own views: branches, overlays, depth, cam, atlas, grid
    branch: gr.Radio
    channel: gr.Number
    atlas: list[Any]
    atlas_panel: Panel
    grid: list[Any]  # the branch grid's outputs (a link fills them too)
    grid_panel: Panel
    wanted: gr.State  # a channel view asked for from elsewhere (a link, another tab)
    grid_wanted: gr.State  # a grid asked for by a link

    def opening(self) -> list[Any]:
        """What opening a channel from elsewhere sets: the atlas view shown, then its channel."""
        return [self.views, *self.atlas_panel.components(), self.image, self.model, self.module, self.branch,
                self.channel, self.wanted]


def build() -> Inside:
    gr.Markdown(INTRO)
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
        with gr.Column(scale=5), gr.Tabs(elem_id="inside-views") as views:
            with gr.Tab("Branches", id="branches"), result_panel(
                    "What each branch responds to in your picture appears here: its 16 most active channels, one "
                    "colour scale for all four (click a channel to open it in the atlas).", "inside-result") as found:
                with gr.Row(elem_id="inside-grids"):
                    grids = [gr.Image(label=BRANCH_TITLES[k], format="png", show_label=False, min_width=150,
                                      buttons=[], alt_text=f"{BRANCH_TITLES[k]}: its 16 most active channels") for k in BRANCH_KEYS]
                top = gr.Label(num_top_classes=5, label="Prediction", elem_id="inside-labels")
            panels, (overlays, chart, moved, cam, cam_note, knockout) = _branch_views()
            with gr.Tab("Atlas", id="atlas"):
                branch, number, atlas_outputs, atlas_panel, show = _atlas()
            with gr.Tab("Every channel", id="grid"):
                grid_outputs, grid_panel, every, mine = _grid()
    orders = gr.State({})
    inside = Inside(image, model, compare, module, views, branch, number, atlas_outputs, atlas_panel, grid_outputs,
                    grid_panel, gr.State(False), gr.State(False))
    for panel in (found, *panels):
        panel.reveal_on(go.click)
    go.click(feature_maps, [image, module, model, compare],
             [top, *grids, overlays, chart, cam, cam_note, knockout, moved, orders], api_name="feature_maps",
             validator=admission("feature_maps", 4), **EXPENSIVE)
    atlas_panel.reveal_on(show.click)
    show.click(channel, channel_inputs(inside), atlas_outputs, api_name="channel", **ATLAS)
    grid_panel.reveal_on(every.click, mine.click)
    nothing = gr.State(None)
    every.click(atlas_grid, [model, module, branch, nothing], grid_outputs, api_name="grid_in_order",
                api_visibility="private", **GRID)
    mine.click(atlas_grid, [model, module, branch, image], grid_outputs, api_name="atlas_grid", **GRID)
    to_atlas = [views, *atlas_panel.components(), branch, number]
    for key, grid in zip(BRANCH_KEYS, grids):
        grid.select(_tile_picker(key), orders, to_atlas, api_visibility="private").success(
            channel, channel_inputs(inside), atlas_outputs, api_visibility="private", **ATLAS)
    grid_outputs[0].select(pick_from_grid, [grid_outputs[2], branch], to_atlas, api_visibility="private").success(
        channel, channel_inputs(inside), atlas_outputs, api_visibility="private", **ATLAS)
    return inside


def _branch_views() -> tuple[list[Panel], list[Any]]:
    """The views beside the branches' grids: where each looks, depth, Grad-CAM and knockout (their panels, then
    the overlays, the chart, the moved shares, the Grad-CAM picture, its caption and the knockout table)."""
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
    return [where, depth, cam_panel], [overlays, chart, moved, cam, cam_note, knockout]


def channel_inputs(inside: Inside) -> list[Any]:
    return [inside.image, inside.model, inside.module, inside.branch, inside.channel]


def _atlas() -> tuple[gr.Radio, gr.Number, list[Any], Panel, gr.Button]:
    with gr.Group(elem_id="atlas"):
        gr.Markdown(ATLAS_INTRO)
        with gr.Row():
            branch = gr.Radio(list(BRANCH_KEYS), value=DEFAULT_BRANCH, label="Branch", elem_id="atlas-branch")
            number = gr.Number(0, label="Channel", precision=0, minimum=0, elem_id="atlas-channel", min_width=100)
            show = gr.Button("Show channel", elem_id="atlas-show", min_width=120)
        with result_panel("The channel's optimised image, the reference pictures that excite it most and where it "
                          "fires on your picture appear here.", "atlas-result") as panel:
            with gr.Row():
                vis = gr.Image(label="Optimised to excite the channel", format="png", elem_id="atlas-vis",
                               height=240, alt_text="An image optimised to excite the channel")
                where = gr.Image(label="Where it fires on your picture", format="png", height=240,
                                 alt_text="Where the channel fires on your picture")
            examples = gr.Gallery(label="Reference pictures that excite it most (the patch where it peaks: score)",
                                  columns=9, height=150)
            note, link = gr.Markdown(), gr.Markdown(elem_id="atlas-link")
    return branch, number, [vis, examples, where, note, link], panel, show


def _grid() -> tuple[list[Any], Panel, gr.Button, gr.Button]:
    gr.Markdown("Every channel of the atlas's module and branch: its optimised image where one exists, else the "
                "reference picture's patch that excites it most.")
    with gr.Row():
        every = gr.Button("Show every channel of this branch", elem_id="grid-show")
        mine = gr.Button("Which channels does my picture excite most?", elem_id="grid-mine")
    with result_panel("Every channel's tile appears here (click one to open it in the atlas).",
                      "grid-result") as panel:
        tiles = gr.Gallery(label="Every channel of the branch (click one to open it)", columns=8, height=440,
                           allow_preview=False, elem_id="atlas-grid")
        grid_note, grid_link = gr.Markdown(), gr.Markdown(elem_id="grid-link")
    return [tiles, grid_note, gr.State([]), grid_link], panel, every, mine


def open_view(request: gr.Request | None) -> tuple[Any, ...]:
    """The page opens on the view its URL names (``?tab=inside&module=inception4c&branch=3x3&channel=17``, or a
    branch's grid: ``...&branch=3x3&grid=1``), its own view of the tab shown: updates for ``url_outputs`` but the
    model, which comes first (None: the URL names none; the page load sets the model list and value at once)."""
    view = parse_view(dict(request.query_params)) if request is not None else {}
    shown = [view[k] if k in view else gr.skip() for k in ("module", "branch", "channel")]
    channel, grid = "channel" in view, bool(view.get("grid"))
    sub = gr.Tabs(selected="atlas") if channel else gr.Tabs(selected="grid") if grid else gr.skip()
    return (view.get("model"), gr.Tabs(selected=view["tab"]) if "tab" in view else gr.skip(), sub,
            *(revealed() if channel else (gr.skip(),) * 2), *(revealed() if grid else (gr.skip(),) * 2), *shown,
            channel, grid)


def url_outputs(tabs: gr.Tabs, inside: Inside) -> list[Any]:
    """What ``open_view`` sets, after the model."""
    return [tabs, inside.views, *inside.atlas_panel.components(), *inside.grid_panel.components(), inside.module,
            inside.branch, inside.channel, inside.wanted, inside.grid_wanted]


def grid_from_url(wanted: bool, model: str, module: str, branch: str, request: gr.Request = None) -> tuple[Any, ...]:
    if not wanted:
        return (gr.skip(),) * 4
    refusal = FAIR.admit("grid", owner(request), address(request))  # the same admission as the buttons'
    if refusal is not None:
        raise gr.Error(refusal)
    return atlas_grid(model, module, branch, None, request=request)


def channel_from_url(wanted: bool, image: str | None, model: str, module: str, branch: str, number: int,
                     request: gr.Request = None, progress: gr.Progress = gr.Progress()) -> tuple[Any, ...]:
    if not wanted:
        return (gr.skip(),) * 5
    refusal = FAIR.admit("atlas", owner(request), address(request))  # the same admission as the button's
    if refusal is not None:
        raise gr.Error(refusal)
    return channel(image, model, module, branch, number, request=request, progress=progress)


def open_from(event: Any, inside: Inside) -> None:
    """After ``event`` (a page load, a click on another tab) has set ``inside.wanted``: that channel's view."""
    event.then(channel_from_url, [inside.wanted, *channel_inputs(inside)], inside.atlas, api_visibility="private",
               **EXPENSIVE)


def after_page_load(opened: Any, inside: Inside) -> None:
    """Once the page load has set the view its URL names (``open_view``): that channel's view, or that grid."""
    open_from(opened, inside)
    opened.then(grid_from_url, [inside.grid_wanted, inside.model, inside.module, inside.branch], inside.grid,
                api_visibility="private", **EXPENSIVE)
