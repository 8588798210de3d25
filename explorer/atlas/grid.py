"""Every channel of a branch at a glance: tiles in channel order, or ordered by how strongly each channel responds
to a picture (one forward pass to the module)."""

from __future__ import annotations

from typing import Any

import torch
from PIL import Image

from explorer.atlas.store import Atlas
from googlenet import GoogLeNet
from googlenet.interpret.branches import capture_branches
from googlenet.preprocess import prepare_input


def responses(model: GoogLeNet, image: Any, module: str, branch: str) -> torch.Tensor:
    """Each channel's response to a picture: the spatial maximum of its output (as ``capture_branches`` gives it)."""
    x, _ = prepare_input(image, model.preprocessing)
    out = capture_branches(model, x.to(next(model.parameters()).device), [module])[module][branch]
    return out[0].flatten(1).max(1).values.float().cpu()


def grid(model: GoogLeNet, module: str, branch: str, atlas: Atlas | None, rendered: Any, examples: Any,
         values: Any = None) -> tuple[list[tuple[Any, str]], list[int]]:
    """Every channel of a branch as (thumbnail, caption) tiles, and the channel of each tile: from the precomputed
    ``atlas`` when it describes ``model``, else ``rendered(channel)`` (a view already computed, or None), else the
    channel's strongest dataset example, ``examples()[channel]`` (asked for once, only if a tile needs it). In
    channel order, or by ``values`` (``responses`` to a picture), strongest first."""
    count = model.branch_width(module, branch)
    order = list(range(count))
    captions = {c: f"ch {c}" for c in order}  # short: a tile is narrow
    if values is not None:
        order = sorted(order, key=lambda c: -float(values[c]))
        captions = {c: f"ch {c}: {float(values[c]):.2f}" for c in order}
    use_atlas = atlas is not None and atlas.describes(model)
    tiles, patches = [], None
    for c in order:
        tile = optimised_tile(module, branch, c, atlas if use_atlas else None, rendered)
        if tile is None:
            patches = patches or examples()
            tile = patches[c]
        tiles.append((tile, captions[c]))
    return tiles, order


def optimised_tile(module: str, branch: str, channel: int, atlas: Atlas | None, rendered: Any) -> Any:
    """A channel's optimised image as a tile: from ``atlas`` (one that describes the model) when it holds the
    channel, else ``rendered(channel)`` (a view already computed, or None)."""
    if atlas is not None and atlas.has(module, branch, channel):
        with Image.open(atlas.picture("thumbs", module, branch, channel)) as thumb:
            return thumb.convert("RGB")  # a picture, not a path: the atlas folder is not the server's to serve
    return rendered(channel)
