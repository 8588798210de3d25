"""Drawing what the network computes, apart from computing it: colour maps, a branch's most active channels as a
labelled grid of tiles, heat maps over a picture, and the chart of branch shares across depth. Numpy and PIL
compose the pictures in memory (no matplotlib subplots, which are slow); matplotlib draws only the chart."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure
from PIL import Image, ImageDraw, ImageFont
from torch import Tensor

from .layers import BRANCH_KEYS

BRANCH_TITLES = {"1x1": "1x1", "3x3": "3x3", "5x5": "5x5", "pool": "pool proj"}
BRANCH_COLORS = {"1x1": "#4C72B0", "3x3": "#DD8452", "5x5": "#55A868", "pool": "#C44E52"}


@lru_cache(maxsize=4)
def lut(name: str) -> np.ndarray:
    """A matplotlib colour map as a 256 x 3 table of uint8 colours."""
    from matplotlib import colormaps

    return (colormaps[name](np.linspace(0, 1, 256))[:, :3] * 255).astype(np.uint8)


@lru_cache(maxsize=4)
def _font(size: int) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow without FreeType
        return ImageFont.load_default()


def colorize(values: np.ndarray, vmax: float, cmap: str = "magma") -> np.ndarray:
    """Map values in [0, vmax] through a colour map -> HxWx3 uint8."""
    scaled = np.clip(values / (vmax if vmax > 0 else 1.0), 0, 1)
    return lut(cmap)[(scaled * 255).astype(np.uint8)]


def _colorbar(width: int, vmax: float, cmap: str) -> Image.Image:
    bar = Image.new("RGB", (width, 26), "white")
    ramp = np.repeat(lut(cmap)[None, np.linspace(0, 255, width - 16).astype(int)], 8, axis=0)
    bar.paste(Image.fromarray(ramp), (8, 2))
    draw = ImageDraw.Draw(bar)
    draw.text((8, 12), "0", fill="black", font=_font(10))
    label = f"{vmax:.2f} (shared scale)"
    draw.text((width - 8 - draw.textlength(label, font=_font(10)), 12), label, fill="black", font=_font(10))
    return bar


def shared_vmax(outputs: dict[str, Tensor], n: int) -> float:
    """The colour scale's top: the largest activation among the channels shown in any branch."""
    top = []
    for out in outputs.values():
        a = out[0].float()
        idx = a.mean((1, 2)).topk(min(n, a.shape[0])).indices
        top.append(float(a[idx].max()))
    return max(top) if top else 1.0


GRID_TILE, GRID_PAD, GRID_LABEL, GRID_HEAD = 48, 2, 12, 18


def grid_order(output: Tensor, n: int = 16) -> list[int]:
    """The channels a branch grid shows, in its order: the ``n`` most active on average."""
    a = output[0].float()
    return a.mean((1, 2)).topk(max(1, min(n, a.shape[0]))).indices.tolist()


def _grid_cols(n: int) -> int:
    return int(np.ceil(np.sqrt(n)))


def tile_at(x: float, y: float, n: int, tile: int = GRID_TILE) -> int | None:
    """Which tile of a branch grid of ``n`` tiles (its position in ``grid_order``) holds pixel (x, y)."""
    cols = _grid_cols(n)
    col, row = int((x - GRID_PAD) // (tile + GRID_PAD)), int((y - GRID_HEAD) // (tile + GRID_LABEL + GRID_PAD))
    k = row * cols + col
    return k if x >= GRID_PAD and y >= GRID_HEAD and 0 <= col < cols and 0 <= k < n else None


def branch_grid(output: Tensor, title: str, n: int = 16, vmax: float | None = None, tile: int = GRID_TILE,
                cmap: str = "magma") -> Image.Image:
    """The ``n`` most active channels of one branch (1xCxHxW), labelled, on the colour scale [0, vmax]."""
    a = output[0].float().cpu()
    order = grid_order(a[None], n)
    n = len(order)
    maps = F.interpolate(a[order][None], size=(tile, tile), mode="nearest")[0].numpy()
    vmax = float(a[order].max()) if vmax is None else vmax
    cols = _grid_cols(n)
    rows = int(np.ceil(n / cols))
    label_h, pad, head = GRID_LABEL, GRID_PAD, GRID_HEAD
    width = cols * (tile + pad) + pad
    canvas = Image.new("RGB", (width, head + rows * (tile + label_h + pad) + pad), "white")
    draw = ImageDraw.Draw(canvas)
    draw.text((pad, 2), f"{title}  ({a.shape[0]} channels, top {n})", fill="black", font=_font(11))
    tiles = colorize(maps, vmax, cmap)
    for k, ch in enumerate(order):
        x0 = pad + (k % cols) * (tile + pad)
        y0 = head + (k // cols) * (tile + label_h + pad)
        canvas.paste(Image.fromarray(tiles[k]), (x0, y0 + label_h))
        draw.text((x0 + 1, y0), f"ch {ch}", fill="black", font=_font(9))
    out = Image.new("RGB", (canvas.width, canvas.height + 26), "white")
    out.paste(canvas, (0, 0))
    out.paste(_colorbar(canvas.width, vmax, cmap), (0, canvas.height))
    return out


def overlay(image: Image.Image, heat: np.ndarray, vmax: float = 1.0, alpha: float = 0.5,
            cmap: str = "jet") -> Image.Image:
    """``heat`` (any HxW) upsampled to ``image`` and blended over it."""
    h = torch.from_numpy(np.asarray(heat, dtype=np.float32))[None, None]
    h = F.interpolate(h, size=(image.height, image.width), mode="bilinear", align_corners=False)[0, 0].numpy()
    colored = colorize(h, vmax, cmap).astype(np.float32)
    base = np.asarray(image.convert("RGB"), dtype=np.float32)
    return Image.fromarray((base * (1 - alpha) + colored * alpha).astype(np.uint8))


def kernel_picture(kernel: Tensor, scale: float, side: int = 64) -> Image.Image:
    """A k x k kernel as a ``side`` px square of k x k cells, diverging: red positive, blue negative, white zero, on
    the symmetric scale [-scale, scale] (one scale for every kernel of a view)."""
    values = np.asarray(kernel.detach().float().cpu(), dtype=np.float32)
    scaled = np.clip((values / (scale if scale > 0 else 1.0) + 1) / 2, 0, 1)
    cells = Image.fromarray(lut("RdBu_r")[(scaled * 255).round().astype(np.uint8)])
    return cells.resize((side, side), Image.NEAREST)


def beside(*pictures: Image.Image, gap: int = 4) -> Image.Image:
    """Pictures side by side on white, top-aligned."""
    width = sum(p.width for p in pictures) + gap * (len(pictures) - 1)
    out = Image.new("RGB", (width, max(p.height for p in pictures)), "white")
    x = 0
    for p in pictures:
        out.paste(p.convert("RGB"), (x, 0))
        x += p.width + gap
    return out


def circuit_diagram(centre: Image.Image, inputs: list[tuple[Image.Image, str, int, float]], title: str,
                    gap: int = 8, label: int = 14) -> Image.Image:
    """A channel's circuit as one picture: the channel's own picture at the centre, its inputs for it on the left and
    against it on the right (each a picture with its kernel, labelled), joined to the centre by a line whose width is
    the input's strength (red for, blue against). ``inputs``: (picture, label, sign, strength), strongest first."""
    sides = {1: [i for i in inputs if i[2] > 0], -1: [i for i in inputs if i[2] <= 0]}
    cell_w = max([p.width for p, *_ in inputs] or [1])
    cell_h = max([p.height for p, *_ in inputs] or [1]) + label
    rows = max(len(sides[1]), len(sides[-1]), 1)
    big = centre.resize((2 * centre.width, 2 * centre.height), Image.BICUBIC)
    span = 6 * gap  # room for the lines between the columns and the centre
    width = 2 * (cell_w + span) + big.width + 2 * gap
    height = max(rows * (cell_h + gap), big.height + label) + 2 * label + gap
    out = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(out)
    font = _font(11)
    draw.text((gap, 2), title, fill="black", font=_font(12))
    cx, cy = gap + cell_w + span, 2 * label + (height - 2 * label - big.height) // 2
    strongest = max([s for *_, s in inputs] or [1.0]) or 1.0
    for sign, x in ((1, gap), (-1, cx + big.width + span)):
        for row, (picture, text, _, strength) in enumerate(sides[sign]):
            y = 2 * label + row * (cell_h + gap)
            end = (cx, cy + big.height // 2) if sign > 0 else (cx + big.width, cy + big.height // 2)
            start = (x + picture.width, y + picture.height // 2) if sign > 0 else (x, y + picture.height // 2)
            draw.line([start, end], fill="#d62728" if sign > 0 else "#1f77b4",
                      width=max(1, round(6 * strength / strongest)))
            out.paste(picture.convert("RGB"), (x, y))  # over the line's end
            draw.text((x, y + picture.height + 1), text, fill="black", font=font)
    out.paste(big.convert("RGB"), (cx, cy))
    return out


def branch_overlays(image: Image.Image, outputs: dict[str, Tensor]) -> dict[str, Image.Image]:
    """Each branch's mean activation over the input crop, on one scale across the four branches."""
    means = {k: v[0].float().mean(0).cpu().numpy() for k, v in outputs.items()}
    vmax = max(float(m.max()) for m in means.values()) or 1.0
    return {k: overlay(image, m, vmax) for k, m in means.items()}


def render_module(image: Image.Image, outputs: dict[str, Tensor], n: int = 16) -> tuple[dict[str, Image.Image],
                                                                                           dict[str, Image.Image]]:
    """The four grids (shared scale) and the four overlays of one module."""
    vmax = shared_vmax(outputs, n)
    grids = {k: branch_grid(v, BRANCH_TITLES[k], n=n, vmax=vmax) for k, v in outputs.items()}
    return grids, branch_overlays(image, outputs)


def share_chart(shares: dict[str, dict[str, float]], other: dict[str, dict[str, float]] | None = None,
                labels: tuple[str, str] = ("", "")) -> Figure:
    """Stacked bars of each branch's share across the modules (Section 4 expects 3x3 and 5x5 to grow);
    with ``other``, a second model's bars beside each (hatched), to see what fine-tuning moved."""
    fig = Figure(figsize=(8, 3.6), dpi=100)
    ax = fig.add_subplot(1, 1, 1)
    names = list(shares)
    pos = np.arange(len(names), dtype=float)
    width = 0.8 if other is None else 0.4
    for k, (series, hatch) in enumerate([(shares, "")] + ([(other, "//")] if other is not None else [])):
        bottom = np.zeros(len(names))
        x = pos if other is None else pos + (k - 0.5) * width
        for key in BRANCH_KEYS:
            vals = np.array([series.get(n, {}).get(key, 0.0) for n in names])
            ax.bar(x, vals, width, bottom=bottom, color=BRANCH_COLORS[key], hatch=hatch, edgecolor="white",
                   label=BRANCH_TITLES[key] if k == 0 else None)
            bottom += vals
    ax.set_xticks(pos, [n.replace("inception", "") for n in names])
    ax.set_ylabel("share of module's activation")
    ax.set_ylim(0, 1)
    title = "Branch shares across depth (paper, Sec. 4: 3x3 and 5x5 should grow deeper)"
    if other is not None:
        title = f"Branch shares: {labels[0]} (plain) vs {labels[1]} (hatched)"
    ax.set_title(title, fontsize=10)
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8)
    fig.tight_layout()
    return fig
