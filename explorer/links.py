"""The pages' links: which page each view is, the URL query that reopens a channel's atlas view, its circuit or a
branch's grid,
a hand-off from one page to another with the visitor's picture, what a page's URL asks to show (anything unknown is
left out), where a ``?tab=VIEW`` query that lands on another page is forwarded, and which channel a click on a
branch grid's picture names.

Every link a view gives is a query (``?tab=inside&module=...``): on huggingface.co a Space's page passes only the
query (and the hash) to the app, which lands on ``/`` and is forwarded to the view's page from there."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from explorer.pictures import is_token
from explorer.runs import IMAGENET_MODEL, is_run_name
from googlenet.draw import tile_at
from googlenet.model import BRANCH_KEYS, MAX_BRANCH_CHANNELS, MODULE_NAMES

# Each view's page (its path under the app's root; Classify is the home page).
PAGES = {"classify": "", "why": "why", "inside": "inside", "finetune": "finetune", "architecture": "architecture"}
TABS = tuple(PAGES)


def forward(path: str, query: dict[str, str]) -> str | None:
    """The page a request for page ``path`` with ``query`` belongs on, when its ``tab`` names another view's page
    (None: it is on its page, or it is not a page)."""
    here, tab = path.strip("/"), query.get("tab")
    if here not in PAGES.values() or tab not in PAGES or PAGES[tab] == here:
        return None
    return PAGES[tab]


def handoff(view: str, picture: str | None = None, **params: Any) -> str:
    """A link that opens ``view`` with ``params`` and the visitor's picture (its token: whoever holds the link sees
    the picture until it expires)."""
    shown = {k: v for k, v in params.items() if v not in (None, "")}
    return "?" + urlencode({"tab": view, **shown, **({"picture": picture} if is_token(picture) else {})})


def view_query(model: str, module: str, branch: str, channel: int) -> str:
    """The URL query that reopens a channel's view (``?tab=inside&module=...``)."""
    params = {"tab": "inside", **({"model": model} if model and model != IMAGENET_MODEL else {}),
              "module": module, "branch": branch, "channel": int(channel)}
    return "?" + urlencode(params)


def circuit_query(model: str, module: str, branch: str, channel: int) -> str:
    """The URL query that opens a channel's circuit (``view=circuit``) on the Inside Inception page."""
    return view_query(model, module, branch, channel) + "&view=circuit"


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
    if params.get("view") == "circuit":
        view["view"] = "circuit"
    if params.get("model") == IMAGENET_MODEL or is_run_name(params.get("model")):  # never a visitor's markup
        view["model"] = params["model"]
    if is_token(params.get("picture")):
        view["picture"] = params["picture"]
    return view


def tile_channel(orders: dict[str, list[int]] | None, branch: str, index: Any) -> int | None:
    """The channel under a click at ``index`` (x, y) on a branch grid, given the channels each grid shows."""
    order = (orders or {}).get(branch) or []
    k = tile_at(index[0], index[1], len(order)) if order and index else None
    return None if k is None else order[k]
