"""Looking inside a module (``googlenet.interpret.branches``, ``inside``): each branch's output as torchvision
computes it, knockout, Grad-CAM, branch shares, and the pictures and charts made of them (``googlenet.draw``)."""

import numpy as np
import pytest
import torch
from PIL import Image

from helpers import PHOTOS, close, run_threads
from googlenet import BRANCH_KEYS, MODULE_NAMES
from googlenet.model import input_stage
from googlenet.draw import GRID_HEAD, GRID_LABEL, GRID_PAD, GRID_TILE, branch_grid, branch_overlays, render_module, \
    share_chart, tile_at
from googlenet.interpret.branches import branch_knockout, branch_shares, capture_branches, grad_cam, knockout_output, \
    logits_from, module_output, pre_relu, share_shift
from googlenet.interpret.inside import inspect_image
from googlenet.preprocess import prepare_input
from test_model import TABLE1_BRANCHES

SPATIAL_224 = {"inception3a": 28, "inception3b": 28, "inception4a": 14, "inception4b": 14, "inception4c": 14,
               "inception4d": 14, "inception4e": 14, "inception5a": 7, "inception5b": 7}


@pytest.fixture(scope="module")
def model(converted):
    return converted


@pytest.fixture(scope="module")
def prepared(model):
    return prepare_input(PHOTOS[0], model.preprocessing)


@pytest.fixture(scope="module")
def captured(model, prepared):
    return capture_branches(model, prepared[0])


def test_capture_shapes_match_table1_and_are_non_negative(captured):
    assert list(captured) == list(MODULE_NAMES)
    for name, outs in captured.items():
        assert list(outs) == list(BRANCH_KEYS)
        assert tuple(o.shape[1] for o in outs.values()) == TABLE1_BRANCHES[name]
        for o in outs.values():
            assert o.shape[-2:] == (SPATIAL_224[name],) * 2
            assert float(o.min()) >= 0.0


def test_capture_matches_torchvisions_own_modules(model, prepared, tv_reference):
    """Each module's branches, concatenated, are what torchvision's own module computes (read with its hooks,
    outside our code), and the input our capture walks to is the input torchvision's module receives."""
    x = prepared[0]
    seen: dict[str, tuple] = {}
    handles = [getattr(tv_reference, name).register_forward_hook(
        lambda mod, inp, out, name=name: seen.__setitem__(name, (inp[0], out))) for name in MODULE_NAMES]
    try:
        with torch.no_grad():
            tv_reference(x)
    finally:
        for h in handles:
            h.remove()
    captured = capture_branches(model, x)
    for name in MODULE_NAMES:
        tv_in, tv_out = seen[name]
        assert close(torch.cat(list(captured[name].values()), 1), tv_out), name
        with torch.no_grad():
            assert close(model.forward_intermediates(x, [input_stage(name)], stop_early=True)[0], tv_in), name


def test_looking_inside_leaves_the_shared_model_as_it_was(model):
    """Concurrent visitors share one model: capture and Grad-CAM must change nothing on it, even when the
    forward raises (no mode switch, no statistics update, no gradients left behind)."""
    before = {k: v.clone() for k, v in model.state_dict().items()}
    capture_branches(model, torch.randn(1, 3, 64, 64), ["inception4c"])
    with pytest.raises(RuntimeError):
        capture_branches(model, torch.randn(1, 5, 64, 64))  # wrong channel count: the forward raises
    grad_cam(model, torch.randn(1, 3, 64, 64), "inception4a")
    assert not model.training
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    assert all(p.grad is None for p in model.parameters())


def test_pre_relu_is_each_branch_before_its_last_relu(model, prepared):
    x = prepared[0]
    with torch.no_grad():
        after = capture_branches(model, x, ["inception4a"])["inception4a"]
        for b in BRANCH_KEYS:
            assert torch.equal(torch.relu(pre_relu(model, "inception4a", b, x)), after[b]), b
        whole = pre_relu(model, "inception4a", None, x)
    assert torch.equal(torch.relu(whole), module_output(after)) and bool((whole < 0).any())


def test_capture_rejects_unknown_module(model):
    with pytest.raises(ValueError, match="Unknown Inception module"):
        capture_branches(model, torch.randn(1, 3, 64, 64), ["inception9z"])


def test_capture_does_not_change_the_output(model, prepared):
    x = prepared[0]
    with torch.no_grad():
        before = model(x)
    capture_branches(model, x)
    with torch.no_grad():
        assert torch.equal(model(x), before)


@pytest.mark.parametrize("branch", BRANCH_KEYS)
def test_knockout_changes_exactly_that_branchs_channels(model, prepared, branch):
    name = "inception4c"
    branches = capture_branches(model, prepared[0], [name])[name]
    with torch.no_grad():
        normal = getattr(model, name)(model.forward_intermediates(prepared[0], [input_stage(name)], stop_early=True)[0])
        knocked = knockout_output(branches, branch)
    sizes = TABLE1_BRANCHES[name]
    start = sum(sizes[: BRANCH_KEYS.index(branch)])
    stop = start + sizes[BRANCH_KEYS.index(branch)]
    changed = (normal != knocked).flatten(2).any(-1)[0]
    assert changed[start:stop].any() and not changed[:start].any() and not changed[stop:].any()
    assert float(knocked[:, start:stop].abs().max()) == 0.0


@pytest.mark.parametrize("name", ["inception3a", "inception4c", "inception5b"])
def test_replaying_an_unchanged_module_output_gives_the_models_logits(model, prepared, name):
    """The knockout path (the module's output fed on from there) is the model's own forward when nothing is zeroed."""
    x = prepared[0]
    branches = capture_branches(model, x, [name])[name]
    with torch.no_grad():
        replayed = logits_from(model, module_output(branches), name)
        assert torch.equal(replayed, model(x))  # the same layers on the same tensors


def test_concurrent_captures_each_see_their_own_picture(model):
    """One shared model, many threads, two pictures: every answer belongs to its own picture."""
    pictures = [prepare_input(p, model.preprocessing)[0] for p in PHOTOS[:2]]
    expected = [capture_branches(model, x, ["inception4c"])["inception4c"]["3x3"] for x in pictures]
    assert not torch.allclose(expected[0], expected[1], rtol=1e-3, atol=1e-3)
    wrong: list[int] = []

    def work(k: int) -> None:
        for _ in range(3):
            got = capture_branches(model, pictures[k % 2], ["inception4c"])["inception4c"]["3x3"]
            # Threads may sum in another order (about 1e-6 apart); the other picture is far away.
            if not torch.allclose(got, expected[k % 2], rtol=1e-3, atol=1e-3):
                wrong.append(k)

    run_threads(work, 6)
    assert not wrong


def test_branch_knockout_reports_each_branch(model, prepared):
    rows = branch_knockout(model, prepared[0], "inception4c")
    assert [r["branch"] for r in rows] == list(BRANCH_KEYS)
    for r in rows:
        assert len(r["top"]) == 5 and 0 <= r["top1_after"] <= 1
    assert any(abs(r["top1_after"] - r["top1_before"]) > 1e-4 for r in rows)
    rows5b = branch_knockout(model, prepared[0], "inception5b")
    assert len(rows5b) == 4


@pytest.mark.parametrize("name", ["inception3a", "inception4c", "inception5b"])
def test_grad_cam_has_module_size_and_is_finite(model, prepared, name):
    cam, cls = grad_cam(model, prepared[0], name)
    assert cam.shape == (SPATIAL_224[name],) * 2
    assert np.isfinite(cam).all() and cam.min() >= 0 and cam.max() <= 1
    cam2, cls2 = grad_cam(model, prepared[0], name, class_index=3)
    assert cls2 == 3 and cam2.shape == cam.shape
    with pytest.raises(ValueError):
        grad_cam(model, prepared[0], name, class_index=5000)


def test_renderings_have_expected_sizes(captured, prepared):
    crop = prepared[1]
    grids, overlays = render_module(crop, captured["inception4c"], n=16)
    assert list(grids) == list(BRANCH_KEYS)
    sizes = {g.size for g in grids.values()}
    assert len(sizes) == 1
    width, height = sizes.pop()
    assert width == 4 * (48 + 2) + 2
    for ov in overlays.values():
        assert ov.size == crop.size == (224, 224) and ov.mode == "RGB"
    small = branch_grid(captured["inception3a"]["5x5"], "5x5", n=9, tile=32)
    assert small.width == 3 * (32 + 2) + 2


def _constant(value: float, channels: int = 4) -> torch.Tensor:
    return torch.full((1, channels, 7, 7), value)


def test_grids_share_one_colour_scale(prepared):
    """The same activation value gets the same colour in every branch's grid, and a weaker branch is darker."""
    same = {"1x1": _constant(1.0), "3x3": _constant(1.0), "5x5": _constant(0.25), "pool": _constant(0.5)}
    grids, _ = render_module(prepared[1], same, n=4)
    tile = {k: np.asarray(g)[30, 10] for k, g in grids.items()}  # a pixel inside the first tile of each grid
    assert (tile["1x1"] == tile["3x3"]).all()
    assert not (tile["5x5"] == tile["1x1"]).all() and not (tile["pool"] == tile["1x1"]).all()
    own_scale = branch_grid(same["5x5"], "5x5", n=4)  # on its own scale the weak branch would look as bright
    assert (np.asarray(own_scale)[30, 10] == tile["1x1"]).all()


def test_overlays_share_scale(prepared):
    """Overlays use one scale: a branch at half the activation is drawn differently from a full one."""
    crop = Image.new("RGB", (28, 28), "black")
    ov = branch_overlays(crop, {"1x1": _constant(1.0), "3x3": _constant(1.0), "5x5": _constant(0.5),
                                "pool": _constant(0.0)})
    assert set(ov) == set(BRANCH_KEYS)
    pixel = {k: np.asarray(v)[14, 14] for k, v in ov.items()}
    assert (pixel["1x1"] == pixel["3x3"]).all() and not (pixel["5x5"] == pixel["1x1"]).all()


def test_branch_shares_add_up_and_chart_renders(captured):
    shares = branch_shares(captured)
    for s in shares.values():
        assert abs(sum(s.values()) - 1) <= 4 * 2.0 ** -24 and all(v >= 0 for v in s.values())  # 4 float32 shares
    fig = share_chart(shares)
    assert len(fig.axes[0].patches) == 4 * 9


def test_inspect_image_end_to_end(model):
    result = inspect_image(model, PHOTOS[1], "inception4a")
    assert result.module == "inception4a" and len(result.top) == 5
    assert result.gradcam.size == (224, 224) and result.gradcam_class == result.top[0][0]
    assert len(result.knockout) == 4 and set(result.grids) == set(BRANCH_KEYS)
    with pytest.raises(ValueError):
        inspect_image(model, PHOTOS[1], "conv1")
    tiny = Image.new("RGB", (1, 1), (10, 200, 30))
    assert len(inspect_image(model, tiny, "inception5b").top) == 5


def test_a_click_on_a_grid_tile_names_its_channel():
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
