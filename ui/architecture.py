"""The Architecture tab: Table 1 measured from the model, and a diagram of the Inception module."""

from __future__ import annotations

from typing import Any

import gradio as gr

from explorer import server


def architecture() -> tuple[str, Any]:
    """Table 1 measured from the model, with the paper's inconsistent rows flagged."""
    return server.architecture()


def build() -> tuple[gr.Markdown, gr.Image]:
    table = gr.Markdown()
    diagram = gr.Image(label="The Inception module", format="png")
    gr.Button("Measure Table 1 from the model").click(architecture, None, [table, diagram], api_name="architecture")
    return table, diagram
