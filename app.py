"""Inception Explorer: a Gradio app around GoogLeNet. This file only puts the pages together, in order (one module per
page in ``ui/``; the logic is in ``explorer``, ``googlenet`` and ``training``), and launches them; run it with
``python app.py`` (also how Hugging Face Spaces runs it)."""

from __future__ import annotations

from explorer import state  # first: it imports ``spaces`` on ZeroGPU before anything touches CUDA

import logging
import time

import gradio as gr

from explorer.links import PAGES
from explorer.profile import MAX_UPLOAD
from ui import architecture, classify, finetune, inside, why
from ui.common import curate_mcp_tools
from ui.page import server_options
from ui.theme import looks

log = logging.getLogger("inception-explorer")
# The pages after the home page (Classify), in the navigation bar's order: (view, its name there, its module).
PAGES_IN_ORDER = (("why", "Why?", why), ("inside", "Inside Inception", inside), ("finetune", "Fine-tune", finetune),
                  ("architecture", "Architecture", architecture))


def build() -> gr.Blocks:
    """Every page of the app, each with only its own components (Gradio sends a page only its own)."""
    # Gradio's upload and output cache: files older than an hour are deleted every hour.
    with gr.Blocks(title="Inception Explorer", delete_cache=(3600, 3600)) as demo:
        gr.Navbar(main_page_name="Classify")
        classify.page(demo)
    for view, name, module in PAGES_IN_ORDER:
        with demo.route(name, f"/{PAGES[view]}"):
            gr.Navbar(main_page_name="Classify")
            module.page(demo)
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
                run_history=False, footer_links=["api", "gradio"], prevent_thread_lock=True, **looks(),
                **server_options())
    curate_mcp_tools(demo)
    demo.block_thread()


if __name__ == "__main__":
    main()
