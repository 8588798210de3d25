"""How the pages look: a theme whose colours pass WCAG AA contrast (Gradio's default orange buttons, subdued text
and selected tab do not), system fonts (no font download before the first paint), and ``page.css``: reserved space
for each answer, so nothing moves while a page loads or while results arrive."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gradio as gr

CSS = Path(__file__).with_name("page.css")
SYSTEM_FONTS = ["ui-sans-serif", "system-ui", "-apple-system", "Segoe UI", "Roboto", "sans-serif"]
MONO_FONTS = ["ui-monospace", "SFMono-Regular", "Menlo", "Consolas", "monospace"]


def theme() -> gr.themes.Base:
    """Gradio's default layout with darker accents: white on blue-700 is 6.7:1, grey-600 on white 7.6:1."""
    return gr.themes.Default(primary_hue="blue", font=SYSTEM_FONTS, font_mono=MONO_FONTS).set(
        button_primary_background_fill="*primary_700", button_primary_background_fill_hover="*primary_800",
        button_primary_text_color="white", color_accent="*primary_700", body_text_color_subdued="*neutral_600",
        block_label_text_color="*neutral_600", block_title_text_color="*neutral_600",
        input_placeholder_color="*neutral_500", link_text_color="*primary_700", link_text_color_visited="*primary_800",
        button_cancel_background_fill="*red_700", button_cancel_background_fill_hover="*red_800",
        button_cancel_text_color="white")


# Gradio's example thumbnails are buttons with nothing to name them (an image without text): each gets its
# picture's file name ("Example: cat"), so a screen reader says what it loads.
HEAD = """<script>
new MutationObserver(() => {
  for (const b of document.querySelectorAll("button.gallery-item:not([aria-label])")) {
    const src = b.querySelector("img")?.getAttribute("src") || "";
    const name = decodeURIComponent(src.split("/").pop().split(".")[0] || "").replace(/[_-]+/g, " ");
    b.setAttribute("aria-label", name ? "Example: " + name : "Example");
  }
}).observe(document.documentElement, {childList: true, subtree: true});
</script>"""


def looks() -> dict[str, Any]:
    """The theme, the style sheet and the page head, as ``launch`` takes them."""
    return {"theme": theme(), "css_paths": [CSS], "head": HEAD}
