"""What every page's parts share: the error wrapper, the upload component, the place an answer appears, fair-use
admission, progress, who a visitor is, and the lists of models."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr
from gradio import processing_utils
from gradio_client.utils import is_http_url_like

from explorer.admission import client_address
from explorer.errors import visitor_message
from explorer.finetune import KEEP
from explorer.profile import MCP_TOOLS
from explorer.state import FAIR, OWNERS, PROFILE, model_names
from training.atomic import atomic_write


def _save_pil_atomically(img: Any, cache_dir: str, name: str = "image", format: str = "webp") -> str:
    """Gradio's ``save_pil_to_cache`` with the one change that matters: the file appears whole. Gradio names a
    picture by its content, so two visitors shown the same picture at once (one report asked for twice) write one
    file, and Gradio's own version truncates it while the first visitor's browser is reading it (seen in CI:
    "received 0 bytes, expected 3140")."""
    data = processing_utils.encode_pil_to_bytes(img, format)
    path = (Path(cache_dir) / processing_utils.hash_bytes(data) / f"{name}.{format}").resolve()
    if not path.is_file():
        atomic_write(path, data, durable=False)
    return str(path)


processing_utils.save_pil_to_cache = _save_pil_atomically  # every image and gallery output goes through it


def visitor_errors(fn: Callable) -> Callable:
    """A visitor sees the specific message of a known problem (escaped), and never a stack trace or raw text."""
    def explain(e: Exception) -> gr.Error:
        return e if isinstance(e, gr.Error) else gr.Error(visitor_message(e, fn.__name__))

    if inspect.isgeneratorfunction(fn):
        @functools.wraps(fn)
        def gen(*args: Any, **kwargs: Any):  # noqa: ANN202
            try:
                for update in fn(*args, **kwargs):  # several outputs: a tuple, each output KEEP or its value
                    yield tuple(gr.skip() if v is KEEP else v for v in update) if isinstance(update, tuple) else update
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


@dataclass
class Panel:
    """Where an action's answer appears: one line saying what will appear there, until the action is first asked
    for; then its outputs, in the same place (``reveal_on``)."""

    hint: gr.Markdown
    outputs: gr.Column

    def reveal_on(self, *events: Callable[..., Any]) -> None:
        """Show the outputs as soon as one of ``events`` (a button's ``click``) fires: in the browser, with no
        round trip, so the page changes under the visitor's own hand and not later (no layout shift)."""
        for event in events:
            event(revealed, None, [self.outputs, self.hint], js=True, queue=False, api_visibility="private")

    def components(self) -> list[Any]:
        """What ``shown()`` updates, for an event's outputs."""
        return [self.outputs, self.hint]

    def shown(self) -> dict[Any, Any]:
        """The outputs shown and the hint hidden, as updates by name (an event that shows the answer from the
        server: a link)."""
        return {self.outputs: gr.Column(visible=True), self.hint: gr.Markdown(visible=False)}


def revealed() -> tuple[Any, Any]:
    """A panel's outputs shown and its hint hidden (simple enough for Gradio to run in the browser: js=True)."""
    return gr.Column(visible=True), gr.Markdown(visible=False)


@contextmanager
def result_panel(hint: str, elem_id: str) -> Iterator[Panel]:
    """An answer's place: ``hint`` until it is asked for, then its outputs (a column named ``elem_id``). Each panel
    is the last thing in its column or tab, so nothing below it moves when it appears."""
    note = gr.Markdown(hint, elem_classes="hint")
    with gr.Column(visible=False, elem_id=elem_id) as outputs:
        yield Panel(note, outputs)


def curate_mcp_tools(demo: gr.Blocks) -> None:
    """Gradio 6.31 serves every public endpoint as an MCP tool and has no switch per event; keep only
    ``MCP_TOOLS``, each named after its endpoint (with a Space's name in front, as Gradio does). The other endpoints
    stay public for ``gradio_client`` and the API page."""
    mcp = getattr(demo, "mcp_server_obj", None)
    if mcp is None:  # the MCP server is off
        return
    mcp.tool_to_endpoint = {mcp.tool_prefix + e.lstrip("/"): e for e in mcp.tool_to_endpoint.values()
                            if e.lstrip("/") in MCP_TOOLS}


def reporter(progress: gr.Progress) -> Callable[[Any, str], None]:
    """``explorer``'s (fraction or (done, total), text) progress calls, shown by Gradio."""
    return lambda value, desc: progress(value, desc=desc)


def owner(request: gr.Request | None) -> str:
    """Who a visitor is: their browser's id (``identify``), else their session, else "api"."""
    return OWNERS.owner(getattr(request, "session_hash", None))


def address(request: gr.Request | None) -> str:
    """Where a visitor comes from (the proxy's word for it only on Spaces)."""
    client = getattr(request, "client", None)
    headers = getattr(request, "headers", None) or {}
    return client_address(getattr(client, "host", None), headers.get("x-forwarded-for"), PROFILE.on_spaces)


def admission(endpoint: str, inputs: int) -> Callable[..., Any]:
    """Gradio's ``validator`` for an expensive endpoint: a ticket for this visitor's job, or a refusal at once
    (the request never enters the queue), its sentence shown on the first input."""
    def validate(*args: Any, **kwargs: Any) -> list[dict[str, Any]]:
        request = kwargs.get("request", args[-1] if args else None)
        refusal = FAIR.admit(endpoint, owner(request), address(request))
        first = gr.validate(True, "") if refusal is None else gr.validate(False, refusal)
        return [first] + [gr.validate(True, "")] * (inputs - 1)

    # Gradio passes the request to a parameter annotated gr.Request, found by position in the signature.
    keyword = inspect.Parameter.POSITIONAL_OR_KEYWORD
    validate.__signature__ = inspect.Signature(
        [inspect.Parameter(f"input_{k}", keyword, default=None) for k in range(inputs)]
        + [inspect.Parameter("request", keyword, default=None, annotation=gr.Request)])
    validate.__annotations__ = {"request": gr.Request}  # where Gradio reads the type hints
    return validate


def admit_now(endpoint: str, request: gr.Request | None) -> None:
    """Admit a job a link (not a button) asked for, as the button's would be, or refuse it with its sentence."""
    refusal = FAIR.admit(endpoint, owner(request), address(request))
    if refusal is not None:
        raise gr.Error(refusal)


def admitted(endpoint: str, inputs: list[Any], capacity: str = "features") -> dict[str, Any]:
    """The settings of an expensive event: admitted when it is submitted (one validation per input of ``inputs``,
    the same list the event takes), within the concurrency group ``capacity``."""
    return {"validator": admission(endpoint, len(inputs)), "concurrency_limit": PROFILE.concurrency[capacity],
            "concurrency_id": capacity}


NAVIGATE = "(url) => { if (url) { window.location.assign(url); } }"  # a hand-off: the browser opens the link


def identify(browser_id: Any, request: gr.Request) -> str:
    """On page load: the browser's id (a new one the first time), remembered for this session."""
    return OWNERS.identify(getattr(request, "session_hash", None), browser_id)


URL_REFUSED = ("Images must be uploaded: this server does not fetch pictures from URLs (upload the file itself, "
               "within the upload limit).")


class UploadedImage(gr.Image):
    """gr.Image that hands the uploaded file to our own decoder, so a bad file gets our clear message
    (Gradio's own preprocessing opens it with PIL first and fails with a generic error), and that refuses an
    argument naming a URL before anything is downloaded (Gradio would fetch any public URL, past the upload
    limit)."""

    def get_block_name(self) -> str:
        return "image"

    async def async_move_resource_to_block_cache(self, url_or_file_path: Any) -> Any:
        if is_http_url_like(str(url_or_file_path or "")):
            raise gr.Error(URL_REFUSED)
        return await super().async_move_resource_to_block_cache(url_or_file_path)

    def move_resource_to_block_cache(self, url_or_file_path: Any) -> Any:
        if is_http_url_like(str(url_or_file_path or "")):
            raise gr.Error(URL_REFUSED)
        return super().move_resource_to_block_cache(url_or_file_path)

    def preprocess(self, payload: Any) -> Any:
        if payload is not None and getattr(payload, "path", None):
            return payload.path
        return super().preprocess(payload)


def image_input(**kwargs: Any) -> UploadedImage:
    # The visible words are the drop zone's accessible name too (Gradio's default words differ from its name).
    return UploadedImage(type="filepath", sources=["upload", "webcam", "clipboard"],
                         placeholder="Drop an image file here to upload", **kwargs)


def models(value: str | None = None, blank: bool = False) -> Any:
    """A model list as it is now (the ImageNet model and every finished run, newest first; a run may have finished
    since the page was built), with ``value`` chosen; ``blank``: an empty first choice ("none")."""
    names = model_names()[0]
    return gr.Dropdown(choices=[""] + names if blank else names, **({"value": value} if value else {}))


def runs(value: str | None = None, newest: bool = False) -> Any:
    """The list of finished runs as it is now, with ``value`` (or the newest, with ``newest``) chosen."""
    names = model_names()[1]
    chosen = value if value in names else names[0] if newest and names else None
    return gr.Dropdown(choices=names, **({"value": chosen} if chosen or newest else {}))
