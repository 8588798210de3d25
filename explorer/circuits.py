"""What the Circuit view computes (``/circuit``): how a channel is built from the module below it, for any model of
the catalogue. The weights view runs on the CPU in the main process (no forward pass, no GPU time declared); only
the attribution on a picture, and an index of the reference set the disk cache does not hold yet, run the network,
on the GPU where there is one. Each input is shown with its kernel and its picture: its optimised image where one
exists (the precomputed atlas, or a view already computed), else its strongest dataset example, as the grid shows
it; inception3a's inputs, the stem's channels, by their strongest dataset examples (an index of the stem's output
of its own)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from PIL import Image

from explorer import durations
from explorer.atlas.grid import optimised_tile
from explorer.atlas.reference import example_tiles, reference_for
from explorer.atlas.service import strongest_examples
from explorer.atlas.store import THUMB
from explorer.atlas.view import rendered_thumbnail
from explorer.caches import fingerprint
from explorer.concurrency import in_background
from explorer.gpu import on_gpu
from explorer.params import as_choice, as_int, check_image, check_module
from explorer.render import circuit_markdown, input_name
from explorer.runs import IMAGENET_MODEL, usable_run
from explorer.state import CATALOG, PROFILE, check_model, precomputed
from googlenet import GoogLeNet
from googlenet.draw import beside, circuit_diagram, kernel_picture, overlay
from googlenet.interpret.circuits import MAX_K, STEM, Circuit, PictureAttribution, circuit, input_channels, \
    module_rewiring, picture_attribution, rewiring
from googlenet.model import BRANCH_KEYS
from googlenet.preprocess import prepare_input
from googlenet.weights import UNTRAINED_LABEL

Progress = Callable[[Any, str], None]  # (fraction or (done, total), what is happening)
Tile = tuple[Image.Image, str]


@on_gpu(duration=lambda *args: durations.inside_seconds(False))
def attribution_on_device(model: str, image: str, module: str, branch: str, channel: int) -> tuple[list[float],
                                                                                                   np.ndarray]:
    """Each input's attribution to the channel on the picture, and the module's input on it (C_in x h x w): a list
    and an array, not tensors (a tensor would cross a GPU worker's pipe as shared memory, gone when it ends)."""
    net = CATALOG.get(model).model_on_device()
    x, _ = prepare_input(image, net.preprocessing)
    seen = in_background(picture_attribution, net, module, branch, channel, x.to(next(net.parameters()).device))
    return seen.scores.float().cpu().tolist(), seen.maps.float().cpu().numpy()


def _examples(model: str, net: GoogLeNet, module: str, branch: str, channels: list[int],
              progress: Progress) -> dict[int, Image.Image]:
    """``channels``' strongest dataset examples as tiles (``module`` STEM: the stem's channels)."""
    pictures, where, shape = strongest_examples(model, net, module, branch, progress)
    patches = example_tiles(net, reference_for(model, PROFILE.data_dir), [pictures[c] for c in channels],
                            [where[c] for c in channels], shape, THUMB)
    return dict(zip(channels, patches))


def _pictures(model: str, net: GoogLeNet, module: str, branch: str, channels: list[int],
              progress: Progress) -> dict[int, Image.Image]:
    """Each of ``channels`` of ``module``'s ``branch`` as a tile: its optimised image, else its strongest dataset
    example (the reference set's index, made once per model: the first time takes a pass over the set)."""
    atlas = precomputed()
    atlas = atlas if atlas is not None and atlas.describes(net) else None
    tiles = {c: optimised_tile(module, branch, c, atlas, lambda c: rendered_thumbnail(net, module, branch, c))
             for c in channels}
    missing = [c for c, tile in tiles.items() if tile is None]
    return tiles | (_examples(model, net, module, branch, missing, progress) if missing else {})


def _weights_view(model: str, net: GoogLeNet, view: Circuit, progress: Progress) -> list[Tile]:
    """The circuit as one picture (the channel at the centre, its inputs around it), then the channel's own
    picture, then each input: its picture beside its kernel (one colour scale)."""
    scale, below = view.scale(), view.input_module
    pictures: dict[tuple[str, int], Image.Image] = {}
    if below == STEM:  # the stem's channels get no visualisation: their strongest examples
        stem = _examples(model, net, STEM, STEM, [c.channel for c in view.inputs], progress)
        pictures = {(STEM, c): p for c, p in stem.items()}
    else:
        for key in BRANCH_KEYS:
            wanted = [c.channel for c in view.inputs if c.branch == key]
            if wanted:
                pictures |= {(key, c): p for c, p in _pictures(model, net, below, key, wanted, progress).items()}
    own = _pictures(model, net, view.module, view.branch, [view.channel], progress)[view.channel]
    tiles = [(own, f"{view.module} {view.branch} ch {view.channel}: this channel")]
    drawn = []
    for c in view.inputs:
        kernel = kernel_picture(c.kernel, scale, THUMB)
        picture = pictures.get((c.branch, c.channel))
        shown = beside(picture, kernel) if picture is not None else kernel
        name = input_name(c.branch, c.channel, below)
        drawn.append((shown, name, c.sign, c.strength))
        tiles.append((shown, f"{'for' if c.sign > 0 else 'against'}: {name} · {c.strength:.3f}"))
    diagram = circuit_diagram(own, drawn, f"{view.module} {view.branch} ch {view.channel} from {below}: "
                                          "for it (left, red), against it (right, blue); line width = strength")
    return [(diagram, "the circuit: this channel at the centre, its strongest inputs around it"), *tiles]


def _on_picture(model: str, net: GoogLeNet, image: str, view: Circuit, k: int) -> tuple[list[Tile], list[dict]]:
    """Which inputs carried the channel's response on the picture, and where each fires on it."""
    scores, maps = attribution_on_device(model, image, view.module, view.branch, view.channel)
    seen = PictureAttribution(torch.tensor(scores), torch.from_numpy(maps))
    _, crop = prepare_input(image, net.preprocessing)
    labels = input_channels(net, view.module)
    up, down = seen.top(k)
    tiles, records = [], []
    for side, chosen in (("for", up), ("against", down)):
        for index, score in chosen:
            branch, channel = labels[index]
            name = input_name(branch, channel, view.input_module)
            heat = maps[index]
            tiles.append((overlay(crop, heat, vmax=float(heat.max()) or 1.0), f"{side}, on your picture: {name} · "
                          f"{score:+.3f}"))
            records.append({"branch": branch, "channel": channel, "attribution": round(score, 6)})
    return tiles, records


def _rewired(model: str, net: GoogLeNet, view: Circuit, k: int) -> tuple[list[dict] | None, dict[str, float] | None,
                                                                        str | None]:
    """For a run: the input connections of the channel whose kernels fine-tuning moved most, against the start
    the run recorded, and each branch's whole change; or a sentence saying why there is no comparison."""
    if model == IMAGENET_MODEL:
        return None, None, None
    start = usable_run(model).start()
    if start is None:
        return None, None, ("This run did not record the weights it started from (runs made before that record), so "
                            "what fine-tuning rewired cannot be shown.")
    if start["weights"] in ("none", UNTRAINED_LABEL):
        return None, None, "This run started from random weights: there is no pretrained start to compare it with."
    base = CATALOG.get(IMAGENET_MODEL).model
    if start.get("fingerprint") != fingerprint(base):
        return None, None, (f"This run started from other weights ({start['weights']}) than this app's ImageNet "
                            "model, so it cannot be compared with its start here.")
    labels = input_channels(net, view.module)
    moved = [{"branch": labels[i][0], "channel": labels[i][1], "change": round(change, 6)}
             for i, change in rewiring(net, base, view.module, view.branch, view.channel, k)]
    return moved, module_rewiring(net, base, view.module), None


def circuit_view(image: Any, model: Any, module: Any, branch: Any, channel: Any, k: Any,
                 progress: Progress) -> tuple[list[Tile], str, dict[str, Any]]:
    """(pictures, explanation, record) of one channel's circuit: its inputs from the module below, for and
    against, each with its kernel and picture; with a picture, the inputs that carried it there; for a run, what
    fine-tuning rewired."""
    image = check_image(image) if image is not None else None
    model, module = check_model(model), check_module(module)
    branch = as_choice(branch, "branch", BRANCH_KEYS)
    channel, k = as_int(channel, "channel", 0), as_int(k, "k", 1, MAX_K)
    net = CATALOG.get(model).model
    net.check_branch(module, branch, [channel])
    view = circuit(net, module, branch, channel, k)
    tiles = _weights_view(model, net, view, progress)
    on_picture = None
    if image is not None:
        progress(0, "which inputs carried it on your picture")
        picture_tiles, on_picture = _on_picture(model, net, image, view, k)
        tiles += picture_tiles
    moved, summary, why_not = _rewired(model, net, view, k)
    record = view.record() | {"on_picture": on_picture, "rewired": moved}
    return tiles, circuit_markdown(model, view, on_picture, moved, summary, why_not), record
