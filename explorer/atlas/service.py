"""What the app's atlas endpoints compute: one channel's view (``/channel``, with progress) and every channel of a
branch as a grid (``/atlas_grid``), for any model of the catalogue, from the precomputed atlas where one describes
the model."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

from explorer import durations
from explorer.atlas.grid import grid, responses
from explorer.atlas.reference import STEM_KEY, example_index, example_tiles, index_keys, reference_for, \
    stem_index, stored_index, strongest
from explorer.atlas.store import THUMB
from explorer.atlas.view import ChannelView, atlas_settings, channel_events, rendered_thumbnail
from explorer.concurrency import KeyedLock, in_background, streamed
from explorer.gpu import on_gpu
from explorer.links import view_query
from explorer.params import as_choice, as_int, check_image, check_module
from explorer.render import channel_note, grid_note
from explorer.state import CATALOG, PROFILE, check_model, precomputed
from googlenet import GoogLeNet
from googlenet.interpret.circuits import STEM
from googlenet.model import BRANCH_KEYS

Progress = Callable[[Any, str], None]  # (fraction or (done, total), what is happening)
_CHANNELS = KeyedLock()  # the same view in flight is computed once; the others then read it from the cache


@on_gpu(duration=lambda *args: durations.channel_seconds(PROFILE.atlas_steps, PROFILE.atlas_size,
                                                         PROFILE.atlas_input_size or 224))
def channel_on_device(model: str, module: str, branch: str, channel: int, image: str | None) -> Iterator[Any]:
    """Progress pairs, then the ChannelView (a generator: progress crosses ZeroGPU's process boundary)."""
    yield from channel_events(CATALOG.get(model).model_on_device(), module, branch, channel, image,
                              PROFILE.data_dir, atlas=precomputed(), reference=reference_for(model, PROFILE.data_dir))


@on_gpu(duration=lambda model, image, module, branch: durations.inside_seconds(False))
def responses_on_device(model: str, image: str, module: str, branch: str) -> list[float]:
    """Each channel's response to a picture (what orders a grid): one forward pass to the module. A list, not a
    tensor: a tensor would cross the worker's pipe as shared memory, gone when the worker ends."""
    return in_background(responses, CATALOG.get(model).model_on_device(), image, module, branch).tolist()


class Strongest(NamedTuple):
    """Each channel's strongest reference picture, where in it (flat) and the map's shape (``strongest``)."""

    pictures: list[int]
    where: list[int]
    shape: tuple[int, int]


@on_gpu(duration=lambda *args: durations.index_seconds())
def index_events_on_device(model: str, module: str, branch: str) -> Iterator[tuple[float, str] | Strongest]:
    """The reference set's index of a model (``module`` STEM: the stem's own), one pass over the set for every
    channel, made once and kept on disk: (fraction, message) progress pairs while it is made, then each channel's
    strongest example of ``branch``. A generator, so progress crosses a GPU worker's process boundary."""
    net = CATALOG.get(model).model_on_device()
    ref = reference_for(model, PROFILE.data_dir)

    def work(emit: Callable[[Any], None]) -> Strongest:
        def report(fraction: float, message: str) -> None:
            emit((fraction, message))

        if module == STEM:
            return Strongest(*strongest(stem_index(net, ref, report), *STEM_KEY))
        return Strongest(*strongest(example_index(net, ref, report), module, branch))

    found = yield from streamed(work, name=f"reference index {module}")
    yield found


def strongest_examples(model: str, net: GoogLeNet, module: str, branch: str,
                       progress: Progress | None = None) -> Strongest:
    """Each channel's strongest example of ``module``'s ``branch`` (``module`` STEM: the stem's): from the index on
    disk, read here (no GPU time declared), else made where the GPU is, with progress."""
    key = STEM_KEY if module == STEM else (module, branch)
    index = stored_index(net, reference_for(model, PROFILE.data_dir), stem=module == STEM, keys=index_keys(*key))
    if index is not None:
        return Strongest(*strongest(index, *key))
    found = None
    for event in index_events_on_device(model, module, branch):
        if isinstance(event, Strongest):
            found = event
        elif progress is not None:
            progress(*event)
    assert found is not None  # the generator's last event
    return found


def _channel(model: Any, module: Any, branch: Any) -> tuple[str, str, str]:
    return check_model(model), check_module(module), as_choice(branch, "branch", BRANCH_KEYS)


def channel_view(image: Any, model: Any, module: Any, branch: Any, channel: Any, progress: Progress) -> tuple[Any, ...]:
    """(visualisation, examples, where it fires, note, link) for one channel."""
    image = check_image(image) if image is not None else None
    model, module, branch = _channel(model, module, branch)
    channel = as_int(channel, "channel", 0)  # the model says which channels its branch has
    CATALOG.get(model).model.check_branch(module, branch, [channel])
    view, key = None, (model, module, branch, channel)
    if key in _CHANNELS:
        progress(0, "waiting for the same channel's view, asked for by someone else, to finish")
    with _CHANNELS(key):
        for event in channel_on_device(model, module, branch, channel, image):
            if isinstance(event, ChannelView):
                view = event
            else:
                progress(event[0], event[1])
    query = view_query(model, module, branch, channel)
    settings = view.settings or atlas_settings()
    return (view.visualization, view.examples, view.where, channel_note(view, settings["steps"], settings["size"]),
            f"Link to this view: [{query}]({query})")


def atlas_grid(image: Any, model: Any, module: Any, branch: Any) -> tuple[list[tuple[Any, str]], str, list[int]]:
    """Every channel of a branch as thumbnails with captions, in channel order or (with a picture) by how strongly
    each responds to it, a note, and the channel of each tile. Precomputed tiles come from the atlas, views already
    computed from the cache, the rest show their strongest dataset example (a click renders the optimised image):
    nothing is optimised here."""
    image = check_image(image) if image is not None else None
    model, module, branch = _channel(model, module, branch)
    net, atlas = CATALOG.get(model).model, precomputed()
    values = responses_on_device(model, image, module, branch) if image is not None else None
    used: list[str] = []

    def examples() -> list[Any]:
        ref = reference_for(model, PROFILE.data_dir)
        used.append(ref.name)
        return example_tiles(net, ref, *strongest_examples(model, net, module, branch), THUMB)

    tiles, order = grid(net, module, branch, atlas, lambda c: rendered_thumbnail(net, module, branch, c), examples,
                        values)
    source = "optimised images from the precomputed atlas" if atlas is not None and atlas.describes(net) else \
        "optimised images where a channel's view was opened before"
    if used:
        source += f", elsewhere each channel's strongest example in the {used[0]} (click a tile for its optimised image)"
    return tiles, grid_note(len(order), module, branch, image is not None, source), order
