"""The channel atlas: visualisations that excite their channel, dataset examples that agree with a direct
computation, the disk caches, and the shareable view's URL."""

import numpy as np
import pytest
import torch
from torchvision.transforms import v2

from googlenet.atlas import channel_peaks, patch_at, peak_patch, top_examples, visualize
from googlenet.features import capture_branches, share_shift, tile_at
from googlenet.preprocess import prepare_input
from helpers import PHOTOS


def _activation(model, images, module, branch, channels):
    """Spatial maxima of ``channels`` (after the ReLU), the pictures resized to the model's input size (224 px: how
    the network sees every photo a visualisation is read beside), as capture_branches gives them."""
    pre = model.preprocessing
    to_input = v2.Compose([v2.ToImage(), v2.Resize((pre["crop"], pre["crop"]), antialias=True),
                           v2.ToDtype(torch.float32, scale=True), v2.Normalize(pre["mean"], pre["std"])])
    x = torch.stack([to_input(im) for im in images])
    return capture_branches(model, x, [module])[module][branch].amax((2, 3))[:, channels]


def _photo_maxima(model, module, branch, channels):
    x = torch.cat([prepare_input(p, model.preprocessing)[0] for p in PHOTOS])
    return capture_branches(model, x, [module])[module][branch].amax((2, 3))[:, channels].max(0).values


def test_a_visualization_excites_its_own_channel_far_more_than_photos_and_other_visualizations(converted):
    # The test model is random (calibrated on the photos; no real weights offline), where visualisations are
    # harder to find than with ImageNet weights: inception3a's pool branch, 128 px seen at 224 px, 64 steps.
    module, branch, channels = "inception3a", "pool", [0, 1, 2, 3]
    images = visualize(converted, module, branch, channels, steps=64, size=128)
    assert [im.size for im in images] == [(128, 128)] * 4
    acts = _activation(converted, images, module, branch, channels)  # row: image, column: channel
    photos = _photo_maxima(converted, module, branch, channels)
    own = acts.diag()
    assert (own >= 1.5 * photos).all(), f"own activation {own.tolist()} against photos' best {photos.tolist()}"
    for k in range(len(channels)):
        others = torch.cat([acts[:k, k], acts[k + 1:, k]])
        assert own[k] > others.max(), f"channel {channels[k]} is excited more by another channel's image"


def test_deeper_channels_still_beat_other_channels_visualizations(converted):
    module, branch, channels = "inception3b", "3x3", [0, 1, 2, 3]
    images = visualize(converted, module, branch, channels, steps=40, size=128)
    acts = _activation(converted, images, module, branch, channels)
    assert (acts.diag()[:, None] >= acts).all(), acts


def test_visualize_is_deterministic_for_a_seed(converted):
    a = visualize(converted, "inception3b", "5x5", [4, 9], steps=6, size=32, seed=3)
    b = visualize(converted, "inception3b", "5x5", [4, 9], steps=6, size=32, seed=3)
    c = visualize(converted, "inception3b", "5x5", [4, 9], steps=6, size=32, seed=4)
    assert all(np.array_equal(np.asarray(x), np.asarray(y)) for x, y in zip(a, b))
    assert not np.array_equal(np.asarray(a[0]), np.asarray(c[0]))
    assert not np.array_equal(np.asarray(a[0]), np.asarray(a[1]))  # one batch, each its own channel


def test_visualize_reports_progress_and_stops_when_told(converted):
    seen = []

    def progress(step, steps):
        seen.append((step, steps))
        if step == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        visualize(converted, "inception3a", "1x1", [0], steps=50, size=32, progress=progress)
    assert seen == [(1, 50), (2, 50), (3, 50)]


def test_top_examples_agree_with_capture_branches(converted):
    module, branch, channel = "inception4b", "3x3", 42
    found = top_examples(converted, PHOTOS, module, branch, channel, k=3)
    direct = []
    for i, p in enumerate(PHOTOS):
        x, _ = prepare_input(p, converted.preprocessing)
        direct.append((i, float(capture_branches(converted, x, [module])[module][branch][0, channel].max())))
    direct.sort(key=lambda t: -t[1])
    assert [i for i, _ in found] == [i for i, _ in direct[:3]]
    assert np.allclose([s for _, s in found], [s for _, s in direct[:3]], rtol=1e-4, atol=1e-5)
    assert found[0][1] >= found[1][1] >= found[2][1]
    assert len(top_examples(converted, PHOTOS, module, branch, channel, k=50)) == len(PHOTOS)


def test_peak_patch_is_the_square_of_the_crop_around_the_peak(converted):
    module, branch, channel = "inception3a", "3x3", 7
    x, crop = prepare_input(PHOTOS[0], converted.preprocessing)
    act = capture_branches(converted, x, [module])[module][branch][0, channel]
    y, xx = divmod(int(act.flatten().argmax()), act.shape[1])
    patch = peak_patch(converted, PHOTOS[0], module, branch, channel)
    assert patch.width == patch.height == 48  # 6 strides of 8 px at inception3a
    # centred on the peak (to a pixel), moved inside the crop where the peak is near an edge
    left, top = [int(np.clip((c + 0.5) * 8 - 24, 0, crop.width - 48)) for c in (xx, y)]
    found = [(left + dl, top + dt) for dl in (-1, 0, 1) for dt in (-1, 0, 1)]
    assert any(np.array_equal(np.asarray(crop.crop((l, t, l + 48, t + 48))), np.asarray(patch)) for l, t in found)


def test_the_index_knows_where_each_channel_peaks(converted):
    """The atlas shows a channel's examples from the index alone: its recorded peak gives the same patch as a
    fresh pass over the picture."""
    peaks = channel_peaks(converted, PHOTOS[:3], ["inception3a", "inception4e"])
    for module, branch, channel in [("inception3a", "3x3", 7), ("inception4e", "pool", 5), ("inception4e", "1x1", 0)]:
        p = peaks[module][branch]
        assert p.shape == tuple(capture_branches(converted, prepare_input(PHOTOS[0], converted.preprocessing)[0],
                                                 [module])[module][branch].shape[2:])
        for i, photo in enumerate(PHOTOS[:3]):
            crop = prepare_input(photo, converted.preprocessing)[1]
            got = patch_at(crop, int(p.where[i, channel]), p.shape)
            assert np.array_equal(np.asarray(got), np.asarray(peak_patch(converted, photo, module, branch, channel)))


def test_bad_channels_get_clear_errors(converted):
    assert converted.check_branch("inception4c", "3x3", [0, 255]) == 256
    with pytest.raises(ValueError, match="channels 0..255"):
        visualize(converted, "inception4c", "3x3", [256], steps=1)
    with pytest.raises(ValueError, match="Unknown branch"):
        top_examples(converted, PHOTOS, "inception4c", "7x7", 0)
    with pytest.raises(ValueError, match="Unknown Inception module"):
        visualize(converted, "inception9z", "3x3", [0], steps=1)
    with pytest.raises(ValueError, match="steps"):
        visualize(converted, "inception4c", "3x3", [0], steps=0)


def test_a_click_on_a_grid_tile_names_its_channel():
    from googlenet.features import GRID_HEAD, GRID_LABEL, GRID_PAD, GRID_TILE

    n, cols = 16, 4
    for k in range(n):
        x = GRID_PAD + (k % cols) * (GRID_TILE + GRID_PAD) + GRID_TILE // 2
        y = GRID_HEAD + (k // cols) * (GRID_TILE + GRID_LABEL + GRID_PAD) + GRID_LABEL + GRID_TILE // 2
        assert tile_at(x, y, n) == k
    assert tile_at(5, 5, n) is None  # the title
    assert tile_at(GRID_PAD + cols * (GRID_TILE + GRID_PAD) + 5, 40, n) is None  # right of the grid
    assert tile_at(GRID_PAD + 1, GRID_HEAD + 1, 0) is None


def test_share_shift_measures_how_far_branch_shares_moved():
    a = {"inception3a": {"1x1": 0.5, "3x3": 0.5, "5x5": 0.0, "pool": 0.0},
         "inception3b": {"1x1": 0.25, "3x3": 0.25, "5x5": 0.25, "pool": 0.25}}
    b = {"inception3a": {"1x1": 0.0, "3x3": 0.0, "5x5": 0.5, "pool": 0.5},
         "inception3b": {"1x1": 0.25, "3x3": 0.35, "5x5": 0.15, "pool": 0.25}}
    moved = share_shift(a, b)
    assert moved[0] == ("inception3a", 1.0)
    assert moved[1][0] == "inception3b" and moved[1][1] == pytest.approx(0.1)
    assert share_shift(a, a) == [("inception3a", 0.0), ("inception3b", 0.0)]


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
    direct = top_examples(converted, ref.pictures, "inception3a", "1x1", 3, k=9)
    indexed = index["inception3a/1x1"][:, 3].float()  # float16 on disk, from the folded network
    assert [i for i, _ in direct][:3] == indexed.topk(3).indices.tolist()
    assert np.allclose([s for _, s in direct], indexed.topk(9).values.tolist(), rtol=2e-3)


def test_a_view_url_round_trips_and_junk_is_ignored():
    from urllib.parse import parse_qsl, urlparse

    from explorer.views import parse_view, view_query

    query = view_query("my-run", "inception4c", "3x3", 17)
    assert query == "?tab=inside&model=my-run&module=inception4c&branch=3x3&channel=17"
    assert parse_view(dict(parse_qsl(urlparse(query).query))) == {
        "tab": "inside", "model": "my-run", "module": "inception4c", "branch": "3x3", "channel": 17}
    assert "model" not in view_query("ImageNet GoogLeNet", "inception4c", "3x3", 1)
    assert parse_view({"tab": "evil", "module": "<script>", "branch": "9x9", "channel": "-3"}) == {}
    assert parse_view({"channel": "99999999"}) == {}
    assert parse_view({"model": '<a href="https://evil.example/x">sign in</a>'}) == {}  # only a model's name
