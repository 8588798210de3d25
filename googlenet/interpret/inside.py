"""Inside Inception for one picture: what each of a module's four branches responds to and what it contributes, as
numbers (``branches``) and pictures (``draw``), from one pass. ``inspect_image`` is the whole analysis; every piece
of it is also a function of its own."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from matplotlib.figure import Figure
from PIL import Image

from ..draw import grid_order, overlay, render_module, share_chart
from ..images import ImageInput
from ..labels import named, top_classes
from ..model import DEFAULT_MODULE, MODULE_NAMES, GoogLeNet
from ..preprocess import prepare_input
from .branches import branch_knockout, branch_shares, capture_branches, grad_cam, module_output, require_eval


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
    require_eval(model)
    x, crop = prepare_input(image, model.preprocessing)
    x = x.to(next(model.parameters()).device)
    with torch.no_grad():
        features, branches = model.forward_intermediates(x, MODULE_NAMES)
        probs = F.softmax(model.forward_head(features).float(), 1)[0]
    outputs = branches[module]
    grids, overlays = render_module(crop, outputs, n)
    shares = branch_shares(branches)
    other = image_shares(compare[0], image) if compare is not None else None
    chart = share_chart(shares) if compare is None else share_chart(shares, other, compare[1])
    cam, cls = grad_cam(model, x, module, activation=module_output(outputs))
    return InsideResult(module=module, crop=crop, top=named(top_classes(probs, model.class_names, top_k)),
                        grids=grids, overlays=overlays, shares=shares, chart=chart,
                        gradcam=overlay(crop, cam), gradcam_class=model.class_names[cls],
                        knockout=branch_knockout(model, x, module, top_k, branches=outputs),
                        orders={k: grid_order(v, n) for k, v in outputs.items()}, other_shares=other)
