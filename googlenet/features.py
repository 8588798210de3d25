"""Inside Inception: what each of a module's four branches responds to, and what it contributes.

``capture_branches`` records the last layer (after ReLU) of every branch in one forward pass, with
forward hooks that are always removed. The renderings compose tiles with numpy and PIL (fast: no
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
from torch import Tensor, nn

from .classify import geometry_transforms, tensor_transforms
from .images import ImageInput, load_image
from .model import BRANCH_KEYS, MODULE_NAMES, GoogLeNet, Inception

BRANCH_TITLES = {"1x1": "1x1", "3x3": "3x3", "5x5": "5x5", "pool": "pool proj"}
BRANCH_COLORS = {"1x1": "#4C72B0", "3x3": "#DD8452", "5x5": "#55A868", "pool": "#C44E52"}

Branches = dict[str, dict[str, Tensor]]


def _check_modules(modules: Iterable[str] | None) -> list[str]:
    names = list(MODULE_NAMES if modules is None else modules)
    unknown = [n for n in names if n not in MODULE_NAMES]
    if unknown:
        raise ValueError(f"Unknown Inception module(s) {unknown}; choose from {', '.join(MODULE_NAMES)}.")
    return names


def capture_branches(model: GoogLeNet, x: Tensor, modules: Iterable[str] | None = None) -> Branches:
    """One forward pass -> {module: {"1x1"|"3x3"|"5x5"|"pool": branch output}} (detached, on x's device)."""
    captured, _ = _capture(model, x, _check_modules(modules))
    return captured


def _capture(model: GoogLeNet, x: Tensor, modules: list[str]) -> tuple[Branches, Tensor]:
    captured: Branches = {name: {} for name in modules}
    handles = []

    def hook(name: str, key: str):
        def store(_module: nn.Module, _inputs: Any, output: Tensor) -> None:
            captured[name][key] = output.detach()
        return store

    try:
        for name in modules:
            inception: Inception = getattr(model, name)
            for key, layer in inception.branches().items():
                handles.append(layer.register_forward_hook(hook(name, key)))
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                logits = model(x)
        finally:
            model.train(was_training)
    finally:
        for h in handles:
            h.remove()
    return captured, logits


def prepare_input(image: ImageInput, preprocessing: dict[str, Any]) -> tuple[Tensor, Image.Image]:
    """The network's input (1x3xSxS) and the crop it sees, as a picture for overlays."""
    from torchvision.transforms import v2

    crop = v2.Compose(geometry_transforms(preprocessing))(load_image(image))
    return v2.Compose(tensor_transforms(preprocessing))(crop).unsqueeze(0), crop


# ---------------------------------------------------------------- numbers

def branch_shares(branches: Branches) -> dict[str, dict[str, float]]:
    """Each branch's share of its module's summed output activation (shares of a module add up to 1)."""
    shares = {}
    for name, outs in branches.items():
        totals = {k: float(v.float().sum()) for k, v in outs.items()}
        whole = sum(totals.values()) or 1.0
        shares[name] = {k: t / whole for k, t in totals.items()}
    return shares


def _main_path(model: GoogLeNet) -> list[tuple[str, nn.Module]]:
    names = ["conv1", "maxpool1", "conv2", "conv3", "maxpool2", "inception3a", "inception3b", "maxpool3",
             "inception4a", "inception4b", "inception4c", "inception4d", "inception4e", "maxpool4",
             "inception5a", "inception5b"]
    return [(n, getattr(model, n)) for n in names]


def _run_from(model: GoogLeNet, start: str, x: Tensor) -> Tensor:
    """Logits from the input of layer ``start`` onwards (eval mode)."""
    path = _main_path(model)
    index = [n for n, _ in path].index(start)
    for _, layer in path[index:]:
        x = layer(x)
    return model.fc(torch.flatten(model.avgpool(x), 1))


def _forward_keeping_input(model: GoogLeNet, x: Tensor, module: str) -> tuple[Tensor, Tensor]:
    """(logits, the input ``module`` received) from one eval forward pass."""
    store: dict[str, Tensor] = {}
    handle = getattr(model, module).register_forward_pre_hook(lambda m, inp: store.__setitem__("x", inp[0]))
    try:
        with torch.no_grad():
            logits = model.eval()(x)
    finally:
        handle.remove()
    return logits, store["x"]


def module_input(model: GoogLeNet, x: Tensor, module: str) -> Tensor:
    return _forward_keeping_input(model, x, module)[1]


def knockout_output(inception: Inception, x: Tensor, branch: str) -> Tensor:
    """The module's output with one branch replaced by zeros (its channels only)."""
    outs = []
    for key, seq in zip(BRANCH_KEYS, (inception.branch1, inception.branch2, inception.branch3, inception.branch4)):
        y = seq(x)
        outs.append(torch.zeros_like(y) if key == branch else y)
    return torch.cat(outs, 1)


def branch_knockout(model: GoogLeNet, x: Tensor, module: str, top_k: int = 5) -> list[dict[str, Any]]:
    """For each branch: top-k after zeroing it, and how the original top-1 class's probability moves."""
    (module,) = _check_modules([module])
    model.eval()
    with torch.no_grad():
        logits, inp = _forward_keeping_input(model, x, module)
        base = F.softmax(logits, 1)[0]
        top1 = int(base.argmax())
        inception: Inception = getattr(model, module)
        after = _main_path(model)
        next_layer = after[[n for n, _ in after].index(module) + 1][0] if module != "inception5b" else None
        rows = []
        for branch in BRANCH_KEYS:
            out = knockout_output(inception, inp, branch)
            logits = (_run_from(model, next_layer, out) if next_layer
                      else model.fc(torch.flatten(model.avgpool(out), 1)))
            probs = F.softmax(logits, 1)[0]
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


def grad_cam(model: GoogLeNet, x: Tensor, module: str, class_index: int | None = None) -> tuple[np.ndarray, int]:
    """Grad-CAM at ``module``'s output for ``class_index`` (default: the predicted class), in [0, 1]."""
    (module,) = _check_modules([module])
    store: dict[str, Tensor] = {}

    def keep(_m: nn.Module, _i: Any, output: Tensor) -> None:
        output.retain_grad()
        store["a"] = output

    handle = getattr(model, module).register_forward_hook(keep)
    was_training = model.training
    try:
        model.eval()
        with torch.enable_grad():
            logits = model(x.detach().requires_grad_(False))
            index = int(logits[0].argmax()) if class_index is None else int(class_index)
            if not 0 <= index < logits.shape[1]:
                raise ValueError(f"class index {index} is outside 0..{logits.shape[1] - 1}")
            model.zero_grad(set_to_none=True)
            logits[0, index].backward()
    finally:
        handle.remove()
        model.train(was_training)
        model.zero_grad(set_to_none=True)
    act, grad = store["a"].detach()[0], store["a"].grad[0]
    cam = torch.relu((grad.mean((1, 2))[:, None, None] * act).sum(0))
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


def branch_grid(output: Tensor, title: str, n: int = 16, vmax: float | None = None, tile: int = 48,
                cmap: str = "magma") -> Image.Image:
    """The ``n`` most active channels of one branch (1xCxHxW), labelled, on the colour scale [0, vmax]."""
    a = output[0].float().cpu()
    n = max(1, min(n, a.shape[0]))
    order = a.mean((1, 2)).topk(n).indices.tolist()
    maps = F.interpolate(a[order][None], size=(tile, tile), mode="nearest")[0].numpy()
    vmax = float(a[order].max()) if vmax is None else vmax
    cols = int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / cols))
    label_h, pad, head = 12, 2, 18
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


def share_chart(shares: dict[str, dict[str, float]]) -> Figure:
    """Stacked bars of each branch's share across the modules (Section 4 expects 3x3 and 5x5 to grow)."""
    fig = Figure(figsize=(8, 3.6), dpi=100)
    ax = fig.add_subplot(1, 1, 1)
    names = list(shares)
    bottom = np.zeros(len(names))
    for key in BRANCH_KEYS:
        vals = np.array([shares[n].get(key, 0.0) for n in names])
        ax.bar([n.replace("inception", "") for n in names], vals, bottom=bottom, label=BRANCH_TITLES[key],
               color=BRANCH_COLORS[key])
        bottom += vals
    ax.set_ylabel("share of module's activation")
    ax.set_ylim(0, 1)
    ax.set_title("Branch shares across depth (paper, Sec. 4: 3x3 and 5x5 should grow deeper)")
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8)
    fig.tight_layout()
    return fig


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


def inspect_image(model: GoogLeNet, image: ImageInput, module: str = "inception4c", n: int = 16,
                  top_k: int = 5) -> InsideResult:
    """The whole analysis for the app: one capture pass, renderings, Grad-CAM and knockout."""
    (module,) = _check_modules([module])
    x, crop = prepare_input(image, model.preprocessing)
    device = next(model.parameters()).device
    x = x.to(device)
    branches, logits = _capture(model, x, list(MODULE_NAMES))
    probs = F.softmax(logits.float(), 1)[0]
    values, indices = probs.topk(min(top_k, probs.numel()))
    top = [(model.class_names[i], float(v)) for v, i in zip(values.tolist(), indices.tolist())]
    grids, overlays = render_module(crop, branches[module], n=n)
    shares = branch_shares(branches)
    cam, cls = grad_cam(model, x, module)
    return InsideResult(module=module, crop=crop, top=top, grids=grids, overlays=overlays, shares=shares,
                        chart=share_chart(shares), gradcam=overlay(crop, cam), gradcam_class=model.class_names[cls],
                        knockout=branch_knockout(model, x, module, top_k))


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
