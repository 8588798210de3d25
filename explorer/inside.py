"""What the Inside Inception and Architecture tabs compute: one module's four branches for a picture (feature maps,
branch shares, Grad-CAM, knockout), Table 1 measured from the model, and the page's deep links (the URL query
that reopens a channel's atlas view or a branch's grid, and what a page's URL asks to show)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from explorer import durations
from explorer.caches import fingerprint
from explorer.concurrency import in_background
from explorer.gpu import on_gpu
from explorer.params import as_text, check_image, check_module
from explorer.render import ARCHITECTURE_NOTES
from explorer.runs import IMAGENET_MODEL, is_run_name
from explorer.state import CATALOG, EXAMPLES, check_model, example_key
from googlenet import GoogLeNet, architecture_table
from googlenet.diagram import inception_diagram
from googlenet.features import BRANCH_TITLES, InsideResult, inspect_image, knockout_markdown, share_shift, \
    shift_markdown, tile_at
from googlenet.model import BRANCH_KEYS, MAX_BRANCH_CHANNELS, MODULE_NAMES
from googlenet.table import table_markdown


@on_gpu(duration=lambda model, image, module, compare=None: durations.inside_seconds(bool(compare)))
def inspect_on_device(model: str, image: str, module: str, compare: str | None = None) -> InsideResult:
    other = (CATALOG.get(compare).model_on_device(), (model, compare)) if compare else None
    return in_background(inspect_image, CATALOG.get(model).model_on_device(), image, module, compare=other)


def feature_maps(image: Any, module: Any, model: Any, compare: Any) -> tuple[Any, ...]:
    """(top labels, four grids, overlays, chart, Grad-CAM, its caption, knockout, moved shares, grid orders)."""
    image, module, model = check_image(image), check_module(module), check_model(model)
    compare = check_model(compare, "compare") if as_text(compare, "compare") else None
    compare = compare if compare != model else None
    result, _ = EXAMPLES.answer(example_key(image, model, module, compare and fingerprint(CATALOG.get(compare).model)),
                                lambda: inspect_on_device(model, image, module, compare))
    moved = shift_markdown(share_shift(result.shares, result.other_shares), (model, compare)) \
        if result.other_shares else ""
    return ({n: p for n, p in result.top}, *[result.grids[k] for k in BRANCH_KEYS],
            [(result.overlays[k], BRANCH_TITLES[k]) for k in BRANCH_KEYS],
            result.chart, result.gradcam, f"Grad-CAM at {module} for **{result.gradcam_class}**",
            knockout_markdown(result.knockout), moved, result.orders)


def architecture() -> tuple[str, Any]:
    """Table 1 measured from the model, with the paper's inconsistent rows flagged, and the module's diagram."""
    rows = architecture_table(GoogLeNet(aux_logits=False, variant="paper"))
    return table_markdown(rows) + "\n\n" + ARCHITECTURE_NOTES, inception_diagram()


# ----------------------------------------------------------------------------- deep links

TABS = ("classify", "why", "inside", "finetune", "architecture")


def view_query(model: str, module: str, branch: str, channel: int) -> str:
    """The URL query that reopens a channel's view (``?tab=inside&module=...``)."""
    params = {"tab": "inside", **({"model": model} if model and model != IMAGENET_MODEL else {}),
              "module": module, "branch": branch, "channel": int(channel)}
    return "?" + urlencode(params)


def grid_query(model: str, module: str, branch: str) -> str:
    """The URL query that reopens a branch's grid of every channel."""
    params = {"tab": "inside", **({"model": model} if model and model != IMAGENET_MODEL else {}),
              "module": module, "branch": branch, "grid": 1}
    return "?" + urlencode(params)


def parse_view(params: dict[str, str]) -> dict[str, object]:
    """What a page's URL asks to show; anything unknown or malformed is left out (the page's defaults)."""
    view: dict[str, object] = {}
    if params.get("tab") in TABS:
        view["tab"] = params["tab"]
    if params.get("module") in MODULE_NAMES:
        view["module"] = params["module"]
    if params.get("branch") in BRANCH_KEYS:
        view["branch"] = params["branch"]
    if str(params.get("channel", "")).isdigit() and int(params["channel"]) < MAX_BRANCH_CHANNELS:
        view["channel"] = int(params["channel"])
    if params.get("grid") in ("1", "true"):
        view["grid"] = True
    if params.get("model") == IMAGENET_MODEL or is_run_name(params.get("model")):  # never a visitor's markup
        view["model"] = params["model"]
    return view


def tile_channel(orders: dict[str, list[int]] | None, branch: str, index: Any) -> int | None:
    """The channel under a click at ``index`` (x, y) on a branch grid, given the channels each grid shows."""
    order = (orders or {}).get(branch) or []
    k = tile_at(index[0], index[1], len(order)) if order and index else None
    return None if k is None else order[k]
