"""The Architecture tab: Table 1 measured from the model, and a diagram of the Inception module."""

from __future__ import annotations

from typing import Any

import gradio as gr

from explorer import inside


def architecture() -> tuple[str, Any]:
    """GoogLeNet's architecture: Table 1 of the paper (Szegedy et al. 2014) measured from the model itself, with
    the rows where the paper's own figures disagree with its architecture flagged.

    Returns:
        the table (Markdown) and a diagram of an Inception module.
    """
    return inside.architecture()


def build() -> tuple[gr.Markdown, gr.Image]:
    table = gr.Markdown()
    diagram = gr.Image(label="The Inception module", format="png")
    gr.Button("Measure Table 1 from the model").click(architecture, None, [table, diagram], api_name="architecture")
    return table, diagram
