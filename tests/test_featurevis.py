"""Feature visualisation (``googlenet.interpret.featurevis``): images that excite their own channel, deterministic for a seed,
and channels that can be batched because each image's objective depends on that image alone."""

import random

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torchvision.transforms import v2

from googlenet.interpret.branches import capture_branches
from googlenet.interpret.featurevis import channel_seed, directions_of, objectives, random_transform, visualize, \
    visualize_tensor
from googlenet.interpret.fourier import FourierImage
from googlenet.preprocess import prepare_input
from helpers import PHOTOS, float32_bound

def _activation(model, images, module, branch, channels, side: int | None = None):
    """Spatial maxima of ``channels`` (after the ReLU), the pictures resized to ``side`` (default: the model's input
    size, how the network sees every photo a visualisation is read beside), as capture_branches gives them."""
    pre = model.preprocessing
    side = side or pre["crop"]
    to_input = v2.Compose([v2.ToImage(), v2.Resize((side, side), antialias=True),
                           v2.ToDtype(torch.float32, scale=True), v2.Normalize(pre["mean"], pre["std"])])
    x = torch.stack([to_input(im) for im in images])
    return capture_branches(model, x, [module])[module][branch].amax((2, 3))[:, channels]


def _photo_maxima(model, module, branch, channels, side: int | None = None):
    x = torch.cat([prepare_input(p, model.preprocessing)[0] for p in PHOTOS])  # the model's input size
    if side and side != x.shape[-1]:
        x = F.interpolate(x, size=(side, side), mode="bilinear", antialias=True, align_corners=False)
    return capture_branches(model, x, [module])[module][branch].amax((2, 3))[:, channels].max(0).values


def test_a_visualization_excites_its_own_channel_far_more_than_photos_and_other_visualizations(converted):
    # The test model is random (calibrated on the photos; no real weights offline), where visualisations are
    # harder to find than with ImageNet weights: inception3a's pool branch, 64 steps, 128 px seen at 128 px, and
    # the photos seen at that size too (a third of the work at 224 px, which the test below keeps). Measured on
    # an AMD EPYC (AVX2): own/photos' best at least 2.68, own/others at least 2.20.
    module, branch, channels, side = "inception3a", "pool", [0, 1, 2, 3], 128
    images = visualize(converted, module, branch, channels, steps=64, size=128, input_size=side)
    assert [im.size for im in images] == [(128, 128)] * 4
    acts = _activation(converted, images, module, branch, channels, side)  # row: image, column: channel
    photos = _photo_maxima(converted, module, branch, channels, side)
    own = acts.diag()
    assert (own >= 1.5 * photos).all(), f"own activation {own.tolist()} against photos' best {photos.tolist()}"
    for k in range(len(channels)):
        others = torch.cat([acts[:k, k], acts[k + 1:, k]])
        assert own[k] > others.max(), f"channel {channels[k]} is excited more by another channel's image"


def test_deeper_channels_still_beat_other_channels_visualizations(converted):
    module, branch, channels = "inception3b", "3x3", [0, 1, 2, 3]
    # 20 steps: each image's own channel beats its others by at least 1.40x here, under SSE4.1 and ATen's default
    # kernels too (40 steps gave 1.25-1.31: more steps raise every channel, not only the own one).
    images = visualize(converted, module, branch, channels, steps=20, size=128)
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




def test_bad_channels_and_settings_get_clear_errors(converted):
    with pytest.raises(ValueError, match="channels 0..255"):
        visualize(converted, "inception4c", "3x3", [256], steps=1)
    with pytest.raises(ValueError, match="Unknown branch"):
        visualize(converted, "inception4c", "7x7", [0], steps=1)
    with pytest.raises(ValueError, match="Unknown Inception module 'inception9z'"):
        visualize(converted, "inception9z", "3x3", [0], steps=1)
    with pytest.raises(ValueError, match="steps"):
        visualize(converted, "inception4c", "3x3", [0], steps=0)


MODULE, BRANCH, CHANNELS = "inception3a", "5x5", [2, 5, 7]
# Up to inception3a: 5 convolutions in sequence, the longest sum 864 terms (3x3 over 96 channels); 8 and 1,728
# bound them with room.
BOUND = float32_bound(layers=8, terms=1728)


def _one_step(model, channels):
    """One optimisation step as ``visualize`` takes it: each channel's start and transforms from its own seed, the
    images seen at 224 px; returns the objectives, the gradient with respect to the spectrum and the spectrum."""
    seeds = [channel_seed(0, c) for c in channels]
    image = FourierImage([torch.Generator().manual_seed(s) for s in seeds], 32, torch.device("cpu"))
    x = random_transform(image(), [random.Random(s) for s in seeds], random.Random(0))
    x = F.interpolate(x, size=(224, 224), mode="bilinear", align_corners=False)
    return objectives(model, MODULE, BRANCH, directions_of(model, MODULE, BRANCH, channels), x), image.spectrum


def test_a_channels_objective_has_exactly_zero_gradient_with_respect_to_the_other_images(converted):
    """What lets channels share a batch, exactly on every CPU: nothing in the step (Fourier image, colour,
    transforms, the network in eval mode) mixes images, so image j's coefficients get exactly zero gradient from
    image i's objective (zero times any weight is zero, whatever kernel sums it)."""
    values, spectrum = _one_step(converted, CHANNELS)
    for i in range(len(CHANNELS)):
        (grad,) = torch.autograd.grad(values[i], spectrum, retain_graph=True)
        others = [j for j in range(len(CHANNELS)) if j != i]
        assert torch.count_nonzero(grad[others]) == 0 and torch.count_nonzero(grad[i]) > 0


def test_a_channel_in_a_batch_and_alone_agree_to_float32_rounding(converted):
    """Batched and alone, a step's objective and gradient agree within a bound that holds for any summation order
    (``float32_bound``: 8 layers, sums of up to 1,728 terms, under 1e-3 of the magnitudes). Measured
    on an AMD EPYC (AVX2): at most 2e-7 relative, with nothing set, with ONEDNN_MAX_CPU_ISA=SSE41 and with
    ATEN_CPU_CAPABILITY=default; AVX-512 kernels are picked per batch size and differ in the same way. Later
    steps are not compared: Adam's first steps move each coefficient by about the learning rate times the sign of
    its gradient, so a coefficient whose gradient is near zero may move either way (0.0014 after 4 steps here,
    0.0055 on an AVX-512 machine), and a picture rendered in a batch is then another good picture of its channel,
    not the same bits."""
    together, spectrum = _one_step(converted, CHANNELS)
    alone, spectrum_alone = _one_step(converted, [CHANNELS[1]])
    (grad,) = torch.autograd.grad(together[1], spectrum)
    (grad_alone,) = torch.autograd.grad(alone[0], spectrum_alone)
    assert abs(float((together[1] - alone[0]).detach())) <= BOUND * float(together.detach().abs().max())
    assert float((grad[1] - grad_alone[0]).abs().max()) <= BOUND * float(grad_alone.abs().max())


def test_each_image_of_a_batch_is_its_own_channels(converted):
    together = visualize_tensor(converted, MODULE, BRANCH, CHANNELS, steps=4, size=32)
    assert together.shape == (3, 3, 32, 32)
    assert (together[0] - together[1]).abs().max() > 1e-2 and (together[1] - together[2]).abs().max() > 1e-2


def test_a_channels_objective_is_its_mean_output_before_the_last_relu(converted):
    """The one-hot direction picks the channel's map before its branch's last ReLU, as the unfolded model computes
    it (a hook on that BatchNorm), averaged over positions; the objective runs on the folded copy, which agrees to
    float32 rounding (the bound of the test above)."""
    x, _ = prepare_input(PHOTOS[0], converted.preprocessing)
    seen = []
    last = converted.get_submodule(MODULE).branches()[BRANCH][-1].bn
    handle = last.register_forward_hook(lambda module, inputs, output: seen.append(output.clone()))  # before the in-place ReLU
    try:
        with torch.no_grad():
            converted(x)
    finally:
        handle.remove()
    direct = seen[0][0].mean((1, 2))
    mean, std = (torch.tensor(converted.preprocessing[k])[:, None, None] for k in ("mean", "std"))
    with torch.no_grad():
        values = objectives(converted, MODULE, BRANCH, directions_of(converted, MODULE, BRANCH, range(len(direct))),
                            (x[0] * std + mean).expand(len(direct), -1, -1, -1))
    assert float((values - direct).abs().max()) <= BOUND * float(seen[0].abs().max())
