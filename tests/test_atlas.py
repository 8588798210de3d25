"""A channel's view as the app serves it on demand (``explorer.atlas.view``): rendered once, then read from the disk
cache, keyed by the weights; its examples from the reference set's index."""

import numpy as np
import pytest
import torch

from googlenet.interpret.branches import capture_branches
from googlenet.preprocess import prepare_input
from helpers import PHOTOS, float32_bound


def test_a_channel_view_is_cached_on_disk_and_served_from_it(atlas_env, converted, tmp_path):
    messages = []
    first = atlas_env.channel_view(converted, "inception4a", "5x5", 11, PHOTOS[0], data_dir=tmp_path / "no-data",
                                   report=lambda f, m: messages.append((f, m)))
    assert first.cached == [] and first.reference == "example photos"
    assert first.visualization.size == (32, 32) and first.where.size == (224, 224)
    assert len(first.examples) == min(9, len(PHOTOS))
    assert any("s left" in m for _, m in messages) and messages[-1][0] == pytest.approx(1.0)
    files = sorted(p.name.split("-")[0] for p in (tmp_path / "atlas").iterdir())
    assert files == ["ex", "peaks", "vis"]  # the examples' captions travel in their strip's PNG text
    again = atlas_env.channel_view(converted, "inception4a", "5x5", 11, data_dir=tmp_path / "no-data")
    assert again.cached == ["visualisation", "examples"] and again.where is None
    assert np.array_equal(np.asarray(first.visualization), np.asarray(again.visualization))
    assert [c for _, c in first.examples] == [c for _, c in again.examples]
    assert all(np.array_equal(np.asarray(a), np.asarray(b)) for (a, _), (b, _) in zip(first.examples, again.examples))
    # Scores in the captions are the channel's spatial maxima, highest first.
    scores = [float(c.rsplit(": ", 1)[1]) for _, c in first.examples]
    assert scores == sorted(scores, reverse=True)


def test_new_weights_get_their_own_cache_entries(atlas_env, converted, tmp_path):
    from googlenet.inference import inference_copy

    other = inference_copy(converted, fold=False)
    with torch.no_grad():
        other.inception4a.branch3[1].conv.weight.mul_(-1)
    assert atlas_env.fingerprint(other) != atlas_env.fingerprint(converted)
    atlas_env.channel_view(converted, "inception4a", "5x5", 2, data_dir=tmp_path)
    view = atlas_env.channel_view(other, "inception4a", "5x5", 2, data_dir=tmp_path)
    assert view.cached == []


def test_the_cifar_test_split_is_the_reference_set_when_present(atlas_env, converted, cifar_dir):
    ref = atlas_env.reference_set(cifar_dir)
    assert ref.name == "CIFAR-10 test split" and len(ref.pictures) == 50  # 5 per class
    view = atlas_env.channel_view(converted, "inception3a", "1x1", 3, data_dir=cifar_dir)
    classes = {"airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"}
    assert len(view.examples) == 9 and all(c.split(" #")[0] in classes for _, c in view.examples)
    index = atlas_env.example_index(converted, ref)  # from disk now
    direct = torch.stack([capture_branches(converted, prepare_input(p, converted.preprocessing)[0],
                                           ["inception3a"])["inception3a"]["1x1"][0, 3].max() for p in ref.pictures])
    indexed = index["inception3a/1x1"][:, 3].float()  # float16 on disk, from the folded network
    assert direct.topk(3).indices.tolist() == indexed.topk(3).indices.tolist()
    # float16 keeps 11 significant bits (a relative error of at most 2^-11), the folded network float32 rounding
    tolerance = 2.0 ** -11 + float32_bound(layers=8, terms=1728)
    assert np.allclose(direct.topk(9).values.tolist(), indexed.topk(9).values.tolist(), rtol=tolerance, atol=0)




def test_a_grid_without_an_atlas_shows_each_channels_strongest_dataset_patch(atlas_env, converted, cifar_dir):
    """No atlas and nothing rendered: every tile is a picture, the patch of the reference set where its channel peaks
    (computed here directly, picture by picture); a rendered view replaces its channel's patch."""
    from PIL import Image

    from explorer.atlas.grid import grid
    from explorer.atlas.reference import example_tiles, strongest
    from explorer.atlas.store import THUMB
    from googlenet.interpret.examples import patch_at

    ref = atlas_env.reference_set(cifar_dir)
    asked = []

    def examples():
        asked.append(1)
        return example_tiles(converted, ref, *strongest(atlas_env.example_index(converted, ref), "inception3a",
                                                        "pool"), THUMB)

    rendered = Image.new("RGB", (THUMB, THUMB), (255, 0, 0))
    tiles, order = grid(converted, "inception3a", "pool", None, lambda c: rendered if c == 2 else None, examples)
    assert order == list(range(32)) and len(asked) == 1  # one index lookup for the whole grid
    assert tiles[2][0] is rendered
    maps = torch.cat([capture_branches(converted, prepare_input(p, converted.preprocessing)[0],
                                       ["inception3a"])["inception3a"]["pool"] for p in ref.pictures])  # N C H W
    shape = tuple(maps.shape[2:])
    # The index keeps float16 maxima of the folded network: any position within that rounding of the channel's
    # maximum is its peak (float16's 2^-11 relative, plus float32 rounding through the folded layers).
    tolerance = 2.0 ** -10 + float32_bound(layers=8, terms=1728)
    for c in order:
        if c == 2:
            continue
        tile = np.asarray(tiles[c][0])
        assert tile.shape == (THUMB, THUMB, 3) and tile.std() > 0  # a picture, not a flat placeholder
        flat = maps[:, c].flatten(1)
        peak = float(flat.max())
        candidates = (flat >= peak - tolerance * abs(peak)).nonzero().tolist()
        direct = [np.asarray(patch_at(prepare_input(ref.pictures[i], converted.preprocessing)[1], w, shape)
                             .resize((THUMB, THUMB), Image.BICUBIC)) for i, w in candidates]
        assert any(np.array_equal(tile, d) for d in direct), f"channel {c}: not its strongest dataset patch"
