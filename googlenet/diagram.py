"""A picture of the Inception module (Figure 2b of the paper), drawn from the model's own channel counts."""

from __future__ import annotations

import io

from matplotlib.figure import Figure
from matplotlib.patches import FancyBboxPatch
from PIL import Image

from .draw import BRANCH_COLORS
from .model import DEFAULT_MODULE, INCEPTION_SPECS


def inception_diagram(module: str = DEFAULT_MODULE) -> Image.Image:
    """Boxes and arrows: previous layer -> four branches (with their widths) -> filter concatenation."""
    ch1, red3, ch3, red5, ch5, proj = INCEPTION_SPECS[module]
    fig = Figure(figsize=(8, 4), dpi=100)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, 8)
    ax.set_ylim(0, 4)
    ax.axis("off")

    def box(x: float, y: float, text: str, color: str) -> None:
        ax.add_patch(FancyBboxPatch((x - 0.85, y - 0.22), 1.7, 0.44, boxstyle="round,pad=0.02", fc=color, ec="black"))
        ax.text(x, y, text, ha="center", va="center", fontsize=8)

    def arrow(x0: float, y0: float, x1: float, y1: float) -> None:
        ax.annotate("", xy=(x1, y1 - 0.24 if y1 > y0 else y1 + 0.24), xytext=(x0, y0 + 0.24 if y1 > y0 else y0),
                    arrowprops={"arrowstyle": "->", "lw": 1})

    box(4, 0.4, "previous layer", "#eeeeee")
    columns = [
        (1.0, [f"1x1 conv ({ch1})"], BRANCH_COLORS["1x1"]),
        (3.0, [f"1x1 conv ({red3})", f"3x3 conv ({ch3})"], BRANCH_COLORS["3x3"]),
        (5.0, [f"1x1 conv ({red5})", f"5x5 conv ({ch5})"], BRANCH_COLORS["5x5"]),
        (7.0, ["3x3 max pool", f"1x1 conv ({proj})"], BRANCH_COLORS["pool"]),
    ]
    for x, layers, color in columns:
        ys = [1.4, 2.4][: len(layers)] if len(layers) == 2 else [1.9]
        arrow(4, 0.4, x, ys[0])
        for i, (y, label) in enumerate(zip(ys, layers)):
            box(x, y, label, color + "55")
            if i:
                arrow(x, ys[i - 1], x, y)
        arrow(x, ys[-1], 4, 3.5)
    box(4, 3.5, f"filter concatenation ({ch1 + ch3 + ch5 + proj})", "#eeeeee")
    ax.text(0.1, 3.85, f"{module}: Inception module with dimension reductions (paper, Figure 2b)", fontsize=9)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return Image.open(io.BytesIO(buf.getvalue())).convert("RGB")
