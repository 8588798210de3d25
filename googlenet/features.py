"""Inside Inception: what each of a module's four branches responds to, and what it contributes.

``capture_branches`` returns every branch's output (after its last ReLU) from one forward pass that
walks the model's own stages: no hooks, so concurrent visitors on one shared model never see each
other's activations. The renderings compose tiles with numpy and PIL (fast: no
matplotlib subplots), on one colour scale shared by the four branches so they can be compared.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure
from PIL import Image, ImageDraw, ImageFont
from torch import Tensor

from .images import ImageInput
from .model import BRANCH_KEYS, DEFAULT_MODULE, MODULE_NAMES, GoogLeNet
from .preprocess import prepare_input

BRANCH_TITLES = {"1x1": "1x1", "3x3": "3x3", "5x5": "5x5", "pool": "pool proj"}
BRANCH_COLORS = {"1x1": "#4C72B0", "3x3": "#DD8452", "5x5": "#55A868", "pool": "#C44E52"}

Branches = dict[str, dict[str, Tensor]]


def capture_branches(model: GoogLeNet, x: Tensor, modules: Iterable[str] | None = None) -> Branches:
    """One forward pass -> {module: {"1x1"|"3x3"|"5x5"|"pool": branch output}} (detached, on x's device)."""
    return _capture(model, x, GoogLeNet.check_modules(modules))[0]


def _capture(model: GoogLeNet, x: Tensor, modules: list[str]) -> tuple[Branches, Tensor]:
    # No hooks: the values are this call's own, so concurrent callers on one shared model never mix.
    _check_eval(model)
    with torch.no_grad():
        logits, captured = model.forward_with_branches(x, tuple(modules))
    return captured, logits


def _check_eval(model: GoogLeNet) -> None:
    # A shared model's mode is not this call's to change (another thread may be using it): ask for eval.
    if model.training:
        raise ValueError("Put the model in eval mode (model.eval()) before looking inside it.")


# ---------------------------------------------------------------- numbers

def branch_shares(branches: Branches) -> dict[str, dict[str, float]]:
    """Each branch's share of its module's summed output activation (shares of a module add up to 1)."""
    shares = {}
    for name, outs in branches.items():
        totals = {k: float(v.float().sum()) for k, v in outs.items()}
        whole = sum(totals.values()) or 1.0
        shares[name] = {k: t / whole for k, t in totals.items()}
    return shares


def knockout_output(branches: dict[str, Tensor], branch: str) -> Tensor:
    """A module's output rebuilt from its branch outputs, with one branch's channels replaced by zeros."""
    return torch.cat([torch.zeros_like(y) if key == branch else y for key, y in branches.items()], 1)


def branch_knockout(model: GoogLeNet, x: Tensor, module: str, top_k: int = 5,
                    branches: dict[str, Tensor] | None = None) -> list[dict[str, Any]]:
    """For each branch: top-k after zeroing it, and how the original top-1 class's probability moves.

    ``branches`` (the module's captured branch outputs) saves the forward pass up to the module.
    """
    (module,) = GoogLeNet.check_modules([module])
    if branches is None:
        branches = capture_branches(model, x, [module])[module]
    with torch.no_grad():
        base = F.softmax(model.forward_after(module, torch.cat(list(branches.values()), 1)), 1)[0]
        top1 = int(base.argmax())
        rows = []
        for branch in BRANCH_KEYS:
            probs = F.softmax(model.forward_after(module, knockout_output(branches, branch)), 1)[0]
            values, indices = probs.topk(min(top_k, probs.numel()))
            rows.append({
                "branch": branch,
                "top": [(model.class_names[i], float(v)) for v, i in zip(values.tolist(), indices.tolist())],
                "top1_label": model.class_names[top1],
                "top1_before": float(base[top1]),
                "top1_after": float(probs[top1]),
                "still_top1": int(probs.argmax()) == top1,
            })
    return rows


def module_gradient(model: GoogLeNet, x: Tensor, module: str, class_index: int | None = None,
                    activation: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor, int]:
    """(the module's output, the gradient of a class's logit with respect to it, the logits, the class) for one
    picture: what Grad-CAM and attribution are made of. ``class_index`` defaults to the predicted class.

    The gradient is taken with ``torch.autograd.grad`` with respect to the module's output only, so the shared
    model's parameters gather no ``.grad`` and concurrent calls cannot disturb each other. ``activation`` (the
    module's output, if already computed) saves the forward pass up to it."""
    (module,) = GoogLeNet.check_modules([module])
    _check_eval(model)
    if activation is None:
        activation = torch.cat(list(capture_branches(model, x, [module])[module].values()), 1)
    act = activation.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        logits = model.forward_after(module, act)
        index = int(logits[0].argmax()) if class_index is None else int(class_index)
        if not 0 <= index < logits.shape[1]:
            raise ValueError(f"The class index must be within 0..{logits.shape[1] - 1} (got {index}).")
        (grad,) = torch.autograd.grad(logits[0, index], act)
    return act.detach(), grad, logits.detach(), index


def grad_cam(model: GoogLeNet, x: Tensor, module: str, class_index: int | None = None,
             activation: Tensor | None = None) -> tuple[np.ndarray, int]:
    """Grad-CAM at ``module``'s output for ``class_index`` (default: the predicted class), in [0, 1]."""
    act, grad, _, index = module_gradient(model, x, module, class_index, activation)
    cam = torch.relu((grad[0].mean((1, 2))[:, None, None] * act[0]).sum(0))
    cam = cam / cam.max() if float(cam.max()) > 0 else cam
    return torch.nan_to_num(cam).cpu().numpy(), index


# ---------------------------------------------------------------- pictures

@lru_cache(maxsize=4)
def _lut(name: str) -> np.ndarray:
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
    return _lut(cmap)[(scaled * 255).astype(np.uint8)]


def _colorbar(width: int, vmax: float, cmap: str) -> Image.Image:
    bar = Image.new("RGB", (width, 26), "white")
    ramp = np.repeat(_lut(cmap)[None, np.linspace(0, 255, width - 16).astype(int)], 8, axis=0)
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


def share_shift(shares: dict[str, dict[str, float]], other: dict[str, dict[str, float]]) -> list[tuple[str, float]]:
    """Modules by how far their branch shares moved between two models (half the summed absolute change,
    so 1.0 means every share moved to another branch), largest first."""
    moved = {m: 0.5 * sum(abs(shares[m][k] - other[m][k]) for k in BRANCH_KEYS) for m in shares if m in other}
    return sorted(moved.items(), key=lambda kv: -kv[1])


def shift_markdown(moved: list[tuple[str, float]], labels: tuple[str, str]) -> str:
    """The modules whose branch shares moved most, as a Markdown table."""
    lines = [f"Where the branch shares moved most from **{labels[0]}** to **{labels[1]}**:", "",
             "| module | share moved |", "|---|---|"]
    lines += [f"| {m} | {100 * v:.1f}% |" for m, v in moved]
    return "\n".join(lines)


@dataclass
class InsideResult:
    """Everything the "Inside Inception" view shows for one picture and one module."""

    module: str
    crop: Image.Image
    top: list[tuple[str, float]]
    grids: dict[str, Image.Image]
    overlays: dict[str, Image.Image]
    shares: dict[str, dict[str, float]]
    chart: Figure
    gradcam: Image.Image
    gradcam_class: str
    knockout: list[dict[str, Any]] = field(default_factory=list)
    orders: dict[str, list[int]] = field(default_factory=dict)  # the channels each grid shows, in tile order
    other_shares: dict[str, dict[str, float]] | None = None  # the compared model's, if any


def image_shares(model: GoogLeNet, image: ImageInput) -> dict[str, dict[str, float]]:
    """Branch shares of every module for one picture (what the comparison of two models needs)."""
    x, _ = prepare_input(image, model.preprocessing)
    return branch_shares(capture_branches(model, x.to(next(model.parameters()).device)))


def inspect_image(model: GoogLeNet, image: ImageInput, module: str = DEFAULT_MODULE, n: int = 16,
                  top_k: int = 5, compare: tuple[GoogLeNet, tuple[str, str]] | None = None) -> InsideResult:
    """The whole analysis for the app: one capture pass, renderings, Grad-CAM and knockout; with
    ``compare`` (a second model and the two names), both models' branch shares on one chart."""
    (module,) = GoogLeNet.check_modules([module])
    x, crop = prepare_input(image, model.preprocessing)
    device = next(model.parameters()).device
    x = x.to(device)
    branches, logits = _capture(model, x, list(MODULE_NAMES))
    probs = F.softmax(logits.float(), 1)[0]
    values, indices = probs.topk(min(top_k, probs.numel()))
    top = [(model.class_names[i], float(v)) for v, i in zip(values.tolist(), indices.tolist())]
    grids, overlays = render_module(crop, branches[module], n=n)
    shares = branch_shares(branches)
    other = image_shares(compare[0], image) if compare is not None else None
    chart = share_chart(shares) if compare is None else share_chart(shares, other, compare[1])
    cam, cls = grad_cam(model, x, module, activation=torch.cat(list(branches[module].values()), 1))
    return InsideResult(module=module, crop=crop, top=top, grids=grids, overlays=overlays, shares=shares,
                        chart=chart, gradcam=overlay(crop, cam), gradcam_class=model.class_names[cls],
                        knockout=branch_knockout(model, x, module, top_k, branches=branches[module]),
                        orders={k: grid_order(v, n) for k, v in branches[module].items()}, other_shares=other)


def knockout_markdown(rows: list[dict[str, Any]]) -> str:
    """The knockout results as a Markdown table for people."""
    if not rows:
        return ""
    label = rows[0]["top1_label"]
    lines = [f"Original top-1: **{label}** ({100 * rows[0]['top1_before']:.1f}%). Zeroing one branch at a time:", "",
             "| branch zeroed | p(original top-1) | change | new top-1 | top-5 after |", "|---|---|---|---|---|"]
    for r in rows:
        change = 100 * (r["top1_after"] - r["top1_before"])
        top5 = ", ".join(f"{n} {100 * p:.0f}%" for n, p in r["top"])
        lines.append(f"| {BRANCH_TITLES[r['branch']]} | {100 * r['top1_after']:.1f}% | {change:+.1f} pts | "
                     f"{r['top'][0][0]}{'' if r['still_top1'] else ' ⚠'} | {top5} |")
    return "\n".join(lines)
