"""Inception Explorer: a Gradio app around GoogLeNet. This file only wires the page together (one module per
tab in ``ui/``; the logic is in ``explorer``, ``googlenet`` and ``training``); run it with ``python app.py``
(also how Hugging Face Spaces runs it)."""

from __future__ import annotations

from explorer import state  # first: it imports ``spaces`` on ZeroGPU before anything touches CUDA

import logging
import time
from typing import Any

import gradio as gr
import torch
import torchvision

from explorer.admission import STORAGE_KEY
from explorer.profile import MAX_UPLOAD
from explorer.render import status_markdown
from ui import architecture, classify, finetune, inside, why
from ui.common import curate_mcp_tools, identify
from ui.page import launch_options

log = logging.getLogger("inception-explorer")
TITLE = ("# Inception Explorer\nGoogLeNet (Inception v1, Szegedy et al. 2014): classify a picture, ask why, look "
         "inside its Inception modules branch by branch, and fine-tune it on CIFAR-10.")


def status() -> str:
    source = state.CATALOG.default.source
    return status_markdown(state.device_name(), source.description, source.warning,
                           {"torch": torch.__version__, "torchvision": torchvision.__version__,
                            "gradio": gr.__version__}, state.PROFILE.storage_note)


def model_choices(inside_model: str | None = None) -> tuple[Any, ...]:
    """Every list of models and runs on the page, as they are now (a run may have just finished); the Inside tab's
    model set to ``inside_model`` when a link names one."""
    names, runs = state.model_names()
    chosen = {} if inside_model is None else {"value": inside_model}
    return (gr.Dropdown(choices=names), gr.Dropdown(choices=runs, value=runs[0] if runs else None),
            gr.Dropdown(choices=runs), gr.Dropdown(choices=names, **chosen), gr.Dropdown(choices=[""] + names),
            gr.Dropdown(choices=names))


def page_opened(browser_id: Any, request: gr.Request) -> tuple[Any, ...]:
    """Everything a page load sets, in one answer (each load event costs the browser a round trip and a render):
    the status line, the lists of models and runs, whose runs this page starts, and the view its URL names."""
    model, *view = inside.open_view(request)
    return (status(), *model_choices(model), identify(browser_id, request), *view)


def build() -> gr.Blocks:
    # Gradio's upload and output cache: files older than an hour are deleted every hour.
    with gr.Blocks(title="Inception Explorer", delete_cache=(3600, 3600)) as demo:
        with gr.Column(elem_id="header"):
            gr.Markdown(TITLE)
            status_line = gr.Markdown(status())
        with gr.Tabs() as tabs:
            with gr.Tab("Classify", id="classify"):
                classify_model = classify.build()
            with gr.Tab("Why?", id="why"):
                why_tab = why.build()
            with gr.Tab("Inside Inception", id="inside"):
                inside_tab = inside.build()
            with gr.Tab("Fine-tune on CIFAR-10", id="finetune"):
                runs = finetune.build()
            with gr.Tab("Architecture", id="architecture"):
                architecture.build()
        lists = [classify_model, runs.runs, runs.to_compare, inside_tab.model, inside_tab.compare, why_tab.model]
        runs.run_event.then(model_choices, None, lists, api_visibility="private")  # a run has ended
        browser = gr.BrowserState(None, storage_key=STORAGE_KEY, secret=state.OWNERS.secret())
        opened = demo.load(page_opened, browser, [status_line, *lists, browser, *inside.url_outputs(tabs, inside_tab)],
                           api_visibility="private")  # no zip is made until one is asked for
        inside.after_page_load(opened, inside_tab)
        inside.open_from(why_tab.tiles.select(why.open_tile, [why_tab.opens, why_tab.image],
                                              [tabs, *inside_tab.opening()], api_visibility="private"),
                         inside_tab)  # a "Why?" channel opens in the atlas
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
    state.start_up()
    demo = build()
    limits = state.PROFILE.concurrency
    demo.queue(max_size=limits["queue"], default_concurrency_limit=limits["default"])
    state.serve_from(demo.GRADIO_CACHE)
    log.info("ready in %.1f s", time.perf_counter() - started)
    # run_history=False: Gradio would otherwise keep every call's inputs (a Hub token among them) in the browser.
    # The MCP server (GRADIO_MCP_SERVER=true) is made at launch; its tools are curated before serving on.
    demo.launch(show_error=True, max_file_size=MAX_UPLOAD, max_threads=limits["threads"], allowed_paths=[],
                run_history=False, footer_links=["api", "gradio"], prevent_thread_lock=True,
                **launch_options())
    curate_mcp_tools(demo)
    demo.block_thread()


if __name__ == "__main__":
    main()
