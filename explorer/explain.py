"""What the "Why?" tab computes: one answer explained (``googlenet.explain``: neuron groups, channel attribution),
the groups' visualisations as they finish, and a channel or a group accentuated in the visitor's picture
(``googlenet.accentuate``), for the ImageNet model or any finished run."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch
from PIL import Image

from explorer import durations
from explorer.atlas.view import group_visualization
from explorer.concurrency import in_background, streamed
from explorer.errors import plain_text
from explorer.gpu import on_gpu
from explorer.params import as_choice, as_int, check_image, check_module
from explorer.render import accentuation_markdown, explanation_markdown
from explorer.runs import IMAGENET_MODEL
from explorer.state import CATALOG, PROFILE, check_model
from googlenet.draw import BRANCH_TITLES, overlay
from googlenet.images import to_tensor
from googlenet.interpret.accentuate import Accentuation, accentuate, jpeg_and_shift, response
from googlenet.interpret.explain import (DEFAULT_EXPLAIN_MODULE, DEFAULT_GROUPS, MAX_GROUPS, MIN_GROUPS, Explanation,
                                         explain)
from googlenet.interpret.featurevis import directions_of
from googlenet.model import BRANCH_KEYS

Progress = Callable[[Any, str], None]  # (fraction or (done, total), what is happening)
TILE = 96  # px: a channel's tile (where it fires on the picture)
GROUP_COLORS = ("magma", "viridis", "cividis", "plasma", "inferno", "cool", "spring", "summer", "autumn", "winter",
                "Wistia", "bone")


@on_gpu(duration=lambda model, image, module, k, class_index: durations.explain_seconds())
def explain_on_device(model: str, image: str, module: str, k: int, class_index: int | None) -> Explanation:
    return in_background(explain, CATALOG.get(model).model_on_device(), image, module, k, class_index)


@on_gpu(duration=lambda model, module, direction: durations.group_seconds(
    PROFILE.atlas_steps, PROFILE.atlas_size, PROFILE.atlas_input_size or 224))
def group_on_device(model: str, module: str, direction: list[float]) -> Iterator[Any]:
    """Progress pairs, then the group's picture (a generator: progress crosses ZeroGPU's process boundary)."""
    net = CATALOG.get(model).model_on_device()
    picture = yield from streamed(lambda emit: group_visualization(net, module, direction, lambda f, m: emit((f, m))),
                                  name=f"group of {module}")
    yield picture


@on_gpu(duration=lambda *args: durations.accentuate_seconds(PROFILE.accent_steps))
def accentuate_on_device(model: str, image: str, module: str, branch: str | None,
                         direction: list[float]) -> Iterator[Any]:
    """Progress pairs, then the accentuation and the target's response to both pictures after JPEG and a shift."""
    net = CATALOG.get(model).model_on_device()

    def work(emit: Callable[[Any], None]) -> tuple[Accentuation, list[float]]:
        weights = np.asarray(direction, dtype=np.float32)
        done = accentuate(net, image, module, branch, torch.from_numpy(weights), steps=PROFILE.accent_steps,
                          progress=lambda s, n: emit((s / n, f"accentuating: step {s}/{n}")))
        treated = to_tensor([jpeg_and_shift(done.original), jpeg_and_shift(done.accentuated)])
        return done, response(net, treated, module, branch, torch.from_numpy(weights)).tolist()

    result = yield from streamed(work, name=f"accentuation at {module}")
    yield result


def _request(image: Any, model: Any, module: Any, k: Any, class_index: Any) -> tuple[str, str, str, int, int | None]:
    image, model = check_image(image), check_model(model)
    module = check_module(module or DEFAULT_EXPLAIN_MODULE)
    k = as_int(DEFAULT_GROUPS if k in (None, "") else k, "k", MIN_GROUPS, MAX_GROUPS)
    classes = len(CATALOG.get(model).model.class_names)
    index = None if class_index in (None, "") else as_int(class_index, "class_index", 0, classes - 1)
    return image, model, module, k, index


def explanation(image: Any, model: Any, module: Any, k: Any = DEFAULT_GROUPS,
                class_index: Any = None) -> tuple[Explanation, str, str]:
    """The explanation of one answer, with the model's and the module's checked names."""
    image, model, module, k, index = _request(image, model, module, k, class_index)
    return explain_on_device(model, image, module, k, index), model, module


def explain_view(image: Any, model: Any, module: Any, k: Any = DEFAULT_GROUPS,
                 class_index: Any = None) -> tuple[Any, ...]:
    """(the groups as masks over the picture, the explanation in words, its record, the channels' tiles, what each
    tile opens, the top-5 classes to choose among, the groups' directions for their pictures)."""
    found, model, module = explanation(image, model, module, k, class_index)
    masks = [(_mask(found, j), _group_caption(found, j)) for j in range(len(found.groups))]
    tiles, opens = [], []
    for label, listed in (("for", found.channels_for), ("against", found.channels_against)):
        for b, c, value in listed:
            tiles.append((_tile(found, b, c), f"{b} ch {c}: {value:+.2f} ({label})"))
            opens.append([model, module, b, c])
    for j, group in enumerate(found.groups):
        for b, c, _ in group.channels[:3]:
            tiles.append((_tile(found, b, c), f"group {j + 1}: {b} ch {c}"))
            opens.append([model, module, b, c])
    choices = [(f"{plain_text(n)} ({100 * p:.1f}%)", i) for i, n, p in found.top]
    groups = {"model": model, "module": module, "directions": [g.direction.tolist() for g in found.groups]}
    return masks, explanation_markdown(found, model), found.record(), tiles, opens, choices, groups


def _mask(found: Explanation, k: int) -> Image.Image:
    mask = found.groups[k].mask
    return overlay(found.crop, mask, vmax=float(mask.max()) or 1.0, alpha=0.6, cmap=GROUP_COLORS[k % len(GROUP_COLORS)])


def _group_caption(found: Explanation, k: int) -> str:
    g = found.groups[k]
    main = max(g.branches, key=g.branches.get)
    side = "against" if g.against else "for"
    return f"Group {k + 1}: {g.attribution:+.2f} {side} · mostly {BRANCH_TITLES[main]} ({100 * g.branches[main]:.0f}%)"


def _tile(found: Explanation, branch: str, channel: int) -> Image.Image:
    heat = found.maps[(branch, channel)]
    return overlay(found.crop, heat, vmax=float(heat.max()) or 1.0).resize((TILE, TILE), Image.BICUBIC)


def group_pictures(groups: Any, progress: Progress) -> Iterator[list[tuple[Image.Image, str]]]:
    """Each group's visualisation, the gallery so far after each one finishes."""
    if not isinstance(groups, dict) or not groups.get("directions"):
        return
    model, module = check_model(groups.get("model") or IMAGENET_MODEL), check_module(groups.get("module"))
    shown: list[tuple[Image.Image, str]] = []
    count = len(groups["directions"])
    for k, direction in enumerate(groups["directions"][:MAX_GROUPS]):
        for event in group_on_device(model, module, [float(v) for v in direction]):
            if isinstance(event, Image.Image):
                shown.append((event, f"Group {k + 1}"))
            else:
                progress((k + event[0]) / count, f"group {k + 1} of {count}: {event[1]}")
        yield list(shown)


def accentuate_view(image: Any, model: Any, module: Any, branch: Any, channel: Any, group: Any = 0,
                    k: Any = DEFAULT_GROUPS, class_index: Any = None,
                    progress: Progress = lambda f, m: None) -> tuple[Any, ...]:
    """(the original, the accentuated picture, the difference, its figures) for a channel, or for group ``group``
    (from 1) of the explanation with ``k`` groups."""
    group = as_int(group or 0, "group", 0, MAX_GROUPS)
    if group:
        found, model, module = explanation(image, model, module, k, class_index)
        if group > len(found.groups):
            raise ValueError(f"The explanation has {len(found.groups)} groups; group must be within 1..{len(found.groups)}.")
        target, which, direction = None, f"group {group}", found.groups[group - 1].direction
    else:
        image, model = check_image(image), check_model(model)
        module = check_module(module or DEFAULT_EXPLAIN_MODULE)
        target = as_choice(branch, "branch", BRANCH_KEYS)
        channel = as_int(channel, "channel", 0)
        direction = directions_of(CATALOG.get(model).model, module, target, [channel])[0].numpy()  # checks the channel
        which = f"{target} channel {channel}"
    result = None
    for event in accentuate_on_device(model, check_image(image), module, target, direction.tolist()):
        if isinstance(event, tuple) and len(event) == 2 and isinstance(event[0], Accentuation):
            result = event
        else:
            progress(event[0], event[1])
    done, (before, after) = result
    return done.original, done.accentuated, done.difference(), accentuation_markdown(done, which, module, before,
                                                                                     after)
