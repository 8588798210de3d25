"""What every page has: the title and the status line, the navigation bar (Gradio draws it for a multipage app),
the visitor's browser state (who they are, and the token of the picture they are working on), one load event that
sets what the page needs, the picture carried from page to page, and the forwarding of ``?tab=VIEW`` links to their
view's page.

A page is built inside its own ``with demo.route(...)`` (the home page inside ``gr.Blocks``), and everything of it,
its browser state and its load event included, is made there: Gradio gives each event and component the page that is
current when it is made."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import parse_qs

import gradio as gr
import torch
import torchvision
from starlette.middleware import Middleware
from starlette.responses import RedirectResponse

from explorer import state
from explorer.admission import STORAGE_KEY
from explorer.links import forward, parse_view
from explorer.render import picture_gone, status_markdown
from explorer.state import OWNERS, PICTURES
from ui.common import identify

PICTURE_KEY = "inception-explorer-picture"  # the browser state that holds the picture's token
TITLE = ("# Inception Explorer\nGoogLeNet (Inception v1, Szegedy et al. 2014): classify a picture, ask why, look "
         "inside its Inception modules branch by branch, and fine-tune it on CIFAR-10.")


def status(note: str = "") -> str:
    """The status line: the device, the weights, the versions, whether runs outlive a restart, and ``note``."""
    source = state.CATALOG.default.source
    line = status_markdown(state.device_name(), source.description, source.warning,
                           {"torch": torch.__version__, "torchvision": torchvision.__version__,
                            "gradio": gr.__version__}, state.PROFILE.storage_note)
    return line + (f"\n\n{note}" if note else "")


class Picture(NamedTuple):
    """The picture a visitor is working on: its token and where it is on the server."""

    token: str
    path: str


@dataclass
class Page:
    """The parts of a page every page has."""

    demo: gr.Blocks
    status: gr.Markdown
    identity: gr.BrowserState  # who the visitor is: their browser's id, encrypted
    picture: gr.BrowserState  # the token of the picture they are working on, encrypted

    def on_open(self, fn: Callable[[dict[str, Any], Picture | None], dict[Any, Any]], outputs: list[Any]) -> Any:
        """The page's one load event: the visitor identified and their picture found (the URL's ``picture``, else
        the one their browser holds), then ``fn(view, picture)`` (what the URL asks to show, and the picture or
        None) returns the page's own updates, ``{component: update}`` for some of ``outputs``."""
        def opened(browser_id: Any, token: Any, request: gr.Request) -> dict[Any, Any]:
            view = parse_view(dict(request.query_params)) if request is not None else {}
            token = view.get("picture") or token
            found = PICTURES.find(token)
            updates = {self.identity: identify(browser_id, request), self.picture: token if found else None}
            if token and found is None:
                updates[self.status] = status(picture_gone(state.PROFILE.picture_seconds))
            return updates | fn(view, Picture(token, str(found)) if found else None)

        return self.demo.load(opened, [self.identity, self.picture], [self.status, self.identity, self.picture,
                                                                      *outputs], api_visibility="private")

    def carry(self, image: gr.Image, then: Callable[[str | None], dict[Any, Any]] | None = None,
              outputs: list[Any] = ()) -> None:
        """A picture uploaded or chosen on this page becomes the visitor's picture on every page (a new token),
        unless it is the one they had (the page's load event put it there); ``then(token)`` updates what names it."""
        def changed(path: str | None, token: Any) -> dict[Any, Any]:
            kept = None if not path or _same(PICTURES.find(token), path) else PICTURES.keep(path)
            # Never an empty dict: with one output, Gradio would take it for that output's value.
            return {self.picture: kept} | (then(kept) if then else {}) if kept else {self.picture: gr.skip()}

        image.change(changed, [image, self.picture], [self.picture, *outputs], api_visibility="private", queue=False)


def _same(stored: Path | None, path: str) -> bool:
    if stored is None or stored.stat().st_size != Path(path).stat().st_size:
        return False
    return hashlib.sha256(stored.read_bytes()).digest() == hashlib.sha256(Path(path).read_bytes()).digest()


def header(demo: gr.Blocks, intro: str) -> Page:
    """The title, the status line and what the page says it is for; the visitor's browser state."""
    with gr.Column(elem_id="header"):
        gr.Markdown(TITLE)
        line = gr.Markdown(status(), elem_id="status")
    gr.Markdown(intro, elem_id="intro")
    secret = OWNERS.secret()
    return Page(demo, line, gr.BrowserState(None, storage_key=STORAGE_KEY, secret=secret),
                gr.BrowserState(None, storage_key=PICTURE_KEY, secret=secret))


class ForwardTabs:
    """ASGI middleware: a page asked for with ``?tab=VIEW`` of another view goes to that view's page, with the same
    query (``/?tab=inside&channel=3`` -> ``/inside?tab=inside&channel=3``), before any page is sent. A Space's page
    passes only the query to the app, so every link lands on ``/``; forwarding here costs one short round trip,
    where forwarding from the page would cost a second page load."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["method"] in ("GET", "HEAD"):
            query = scope.get("query_string", b"").decode("latin-1")
            path = scope["path"].removeprefix(scope.get("root_path") or "")
            target = forward(path, {k: v[0] for k, v in parse_qs(query).items()})
            if target is not None:  # relative, so it also holds under a proxy's root path
                await RedirectResponse(f"./{target}?{query}", status_code=307)(scope, receive, send)
                return
        await self.app(scope, receive, send)


def server_options() -> dict[str, Any]:
    """What ``launch`` adds to the web app: the forwarding of ``?tab`` links."""
    return {"app_kwargs": {"middleware": [Middleware(ForwardTabs)]}}
