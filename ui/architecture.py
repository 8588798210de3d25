"""The Architecture page (``/architecture``): Table 1 measured from the model, and a diagram of the Inception
module."""

from __future__ import annotations

from typing import Any

import gradio as gr

from explorer import architecture as service
from ui.page import header


def architecture() -> tuple[str, Any]:
    """GoogLeNet's architecture: Table 1 of the paper (Szegedy et al. 2014) measured from the model itself, with
    the rows where the paper's own figures disagree with its architecture flagged.

    Returns:
        the table (Markdown) and a diagram of an Inception module.
    """
    return service.architecture()


INTRO = ("GoogLeNet as Table 1 of the paper lists it, measured from the model itself (parameters and multiply-adds), "
         "beside the paper's own figures, and the Inception module it is built of.")


def page(demo: gr.Blocks) -> None:
    """Measured when the page is built (the model is loaded by then): the table is there from the first paint."""
    top = header(demo, INTRO)
    top.on_open(lambda view, picture: {}, [])  # who the visitor is, as on every page
    table, picture = architecture()
    go = gr.Button("Measure Table 1 from the model again", size="sm")
    with gr.Row():
        with gr.Column(scale=3):
            text = gr.Markdown(table, elem_id="architecture-table")
        with gr.Column(scale=1, min_width=300):
            diagram = gr.Image(picture, label="The Inception module", format="png", height=420, interactive=False,
                               buttons=[],
                               alt_text="The Inception module: 1x1, 3x3 and 5x5 convolutions and a pooling path side by side, concatenated")
    go.click(architecture, None, [text, diagram], api_name="architecture")
