"""The channel atlas on the Inside Inception page: one channel's view (``/channel``) and every channel of a branch
at a glance (``/atlas_grid``), opened by their buttons, by a click on a tile, or by a link."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr

from explorer.atlas import service as atlas
from explorer.links import grid_query, tile_channel
from explorer.runs import IMAGENET_MODEL
from explorer.state import FAIR, PROFILE
from googlenet import BRANCH_KEYS, DEFAULT_BRANCH, DEFAULT_MODULE
from ui.common import Panel, admit_now, admitted, owner, reporter, result_panel, visitor_errors

ATLAS_INTRO = ("What one channel of one branch has learned: an image optimised to excite it, the reference pictures "
               "that excite it most, and where it fires on your picture. The first view of a channel takes a while on "
               "a CPU (progress shows how long); it is cached after that.")


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
    query = grid_query(model, module, branch)
    return tiles, note, order, f"Link to this grid: [{query}]({query})"


@dataclass
class Views:
    """The atlas's two views on the page, and what they read from the rest of it."""

    tabs: gr.Tabs  # the page's views, of which these are two ("atlas", "grid")
    image: gr.Image
    model: gr.Dropdown
    module: gr.Dropdown
    branch: gr.Radio
    channel: gr.Number
    shown: list[Any]  # one channel's view: picture, examples, where it fires, note, link
    panel: Panel
    show: gr.Button
    grid: list[Any]  # the grid: tiles, note, the channel of each tile, link
    grid_panel: Panel
    every: gr.Button
    mine: gr.Button
    wanted: gr.State  # a channel's view asked for by a link or a click on a tile: it opens once the page is ready

    def inputs(self) -> list[Any]:
        """What a channel's view is of."""
        return [self.image, self.model, self.module, self.branch, self.channel]

    def opened(self, branch: str, channel: int) -> dict[Any, Any]:
        """The atlas's view shown, on ``channel`` of ``branch``, to be computed next (``open``)."""
        return {self.tabs: gr.Tabs(selected="atlas"), **self.panel.shown(), self.branch: branch,
                self.channel: channel, self.wanted: True}

    def open(self, event: Any) -> None:
        """After ``event`` has asked for a channel (``opened``): its view, within the atlas's capacity."""
        event.then(channel_when_wanted, [self.wanted, *self.inputs()], self.shown, api_visibility="private",
                   concurrency_limit=PROFILE.concurrency["features"], concurrency_id="features")


def channel_when_wanted(wanted: bool, image: str | None, model: str, module: str, branch: str, number: int,
                        request: gr.Request = None, progress: gr.Progress = gr.Progress()) -> tuple[Any, ...]:
    """The channel's view, if one was asked for, admitted like the button's (else nothing changes)."""
    if not wanted:
        return (gr.skip(),) * 5
    admit_now("atlas", request)
    return channel(image, model, module, branch, number, request=request, progress=progress)


def grid_when_wanted(wanted: bool, model: str, module: str, branch: str, request: gr.Request = None) -> tuple[Any, ...]:
    """The grid a link names, admitted like the buttons' (else nothing changes)."""
    if not wanted:
        return (gr.skip(),) * 4
    admit_now("grid", request)
    return atlas_grid(model, module, branch, None, request=request)


def show_grid(event: Any, views: Views, wanted: gr.State) -> None:
    """After ``event`` has asked for a grid (``wanted``): the grid, within the atlas's capacity."""
    event.then(grid_when_wanted, [wanted, views.model, views.module, views.branch], views.grid,
               api_visibility="private", concurrency_limit=PROFILE.concurrency["features"], concurrency_id="features")


def channel_view() -> tuple[gr.Radio, gr.Number, list[Any], Panel, gr.Button]:
    """One channel's view: its branch and number, its outputs, its panel and its button."""
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
                                 elem_id="atlas-where", alt_text="Where the channel fires on your picture")
            examples = gr.Gallery(label="Reference pictures that excite it most (the patch where it peaks: score)",
                                  columns=9, height=150)
            note, link = gr.Markdown(), gr.Markdown(elem_id="atlas-link")
    return branch, number, [vis, examples, where, note, link], panel, show


def grid_view() -> tuple[list[Any], Panel, gr.Button, gr.Button]:
    """Every channel of a branch: its outputs, its panel and its two buttons."""
    gr.Markdown("Every channel of the atlas's module and branch: its optimised image where one exists, else the "
                "reference picture's patch that excites it most.")
    with gr.Row():
        every = gr.Button("Show every channel of this branch", elem_id="grid-show")
        mine = gr.Button("Which channels does my picture excite most?", elem_id="grid-mine")
    with result_panel("Every channel's tile appears here (click one to open it in the atlas).",
                      "grid-result") as panel:
        tiles = gr.Gallery(label="Every channel of the branch (click one to open it)", columns=8, height=440,
                           allow_preview=False, elem_id="atlas-grid")
        note, link = gr.Markdown(), gr.Markdown(elem_id="grid-link")
    return [tiles, note, gr.State([]), link], panel, every, mine


def wire(views: Views, branch_grids: dict[str, gr.Image], orders: gr.State) -> None:
    """The atlas's events: its buttons, and a click on a tile of the grid or of a branch's grid of the Branches view,
    which opens that channel."""
    views.panel.reveal_on(views.show.click)
    views.show.click(channel, views.inputs(), views.shown, api_name="channel", **admitted("atlas", views.inputs()))
    views.grid_panel.reveal_on(views.every.click, views.mine.click)
    in_order = [views.model, views.module, views.branch, gr.State(None)]
    views.every.click(atlas_grid, in_order, views.grid, api_name="grid_in_order", api_visibility="private",
                      **admitted("grid", in_order))
    by_picture = [views.model, views.module, views.branch, views.image]
    views.mine.click(atlas_grid, by_picture, views.grid, api_name="atlas_grid", **admitted("grid", by_picture))
    to_atlas = [views.tabs, *views.panel.components(), views.branch, views.channel, views.wanted]

    def from_grid(order: list[int] | None, branch: str, evt: gr.SelectData) -> dict[Any, Any]:
        index = evt.index if isinstance(evt.index, int) else None
        picked = order[index] if order and index is not None and 0 <= index < len(order) else None
        return views.opened(branch, picked) if picked is not None else {views.wanted: False}

    views.open(views.grid[0].select(from_grid, [views.grid[2], views.branch], to_atlas, api_visibility="private"))
    for key, picture in branch_grids.items():
        def from_branch(orders_now: dict | None, evt: gr.SelectData, key: str = key) -> dict[Any, Any]:
            picked = tile_channel(orders_now, key, evt.index)
            return views.opened(key, picked) if picked is not None else {views.wanted: False}

        views.open(picture.select(from_branch, orders, to_atlas, api_visibility="private"))
