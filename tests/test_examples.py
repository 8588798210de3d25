"""Dataset examples (``googlenet.interpret.examples``): one pass over a set of pictures ranks them for every channel as a pass
per picture does, and a channel's patch is the square of the picture around where it peaks."""

import numpy as np
import torch

from googlenet.interpret.branches import capture_branches
from googlenet.interpret.examples import channel_peaks, patch_at, rank, stem_peaks
from googlenet.preprocess import prepare_input
from helpers import PHOTOS, float32_bound

# To inception4e: at most 17 convolutions in sequence, the longest sum 1,440 terms (4e's 3x3 over 160 channels);
# 20 and 2,048 bound them with room.
BOUND = float32_bound(layers=20, terms=2048)


def _alone(model, photo, module, branch):
    """One picture's branch output, in a pass of its own."""
    x, _ = prepare_input(photo, model.preprocessing)
    return capture_branches(model, x, [module])[module][branch][0]


def test_one_pass_ranks_the_pictures_as_a_pass_per_picture_does(converted):
    module, branch, channel = "inception4b", "3x3", 42
    peaks = channel_peaks(converted, PHOTOS, [module])[module][branch]
    direct = torch.stack([_alone(converted, p, module, branch)[channel].max() for p in PHOTOS])
    found = rank(peaks.values[:, channel], 3)
    assert [i for i, _ in found] == direct.topk(3).indices.tolist()
    scale = float(direct.abs().max())
    assert np.allclose([s for _, s in found], direct.topk(3).values.tolist(), rtol=0, atol=BOUND * scale)
    assert found[0][1] >= found[1][1] >= found[2][1]
    assert len(rank(peaks.values[:, channel], 50)) == len(PHOTOS)


def test_a_patch_is_the_square_of_the_crop_around_the_peak(converted):
    module, branch, channel = "inception3a", "3x3", 7
    x, crop = prepare_input(PHOTOS[0], converted.preprocessing)
    act = _alone(converted, PHOTOS[0], module, branch)[channel]
    y, xx = divmod(int(act.flatten().argmax()), act.shape[1])
    patch = patch_at(crop, int(act.flatten().argmax()), tuple(act.shape))
    assert patch.width == patch.height == 48  # 6 strides of 8 px at inception3a
    # centred on the peak (to a pixel), moved inside the crop where the peak is near an edge
    left, top = [int(np.clip((c + 0.5) * 8 - 24, 0, crop.width - 48)) for c in (xx, y)]
    found = [(left + dl, top + dt) for dl in (-1, 0, 1) for dt in (-1, 0, 1)]
    assert any(np.array_equal(np.asarray(crop.crop((l, t, l + 48, t + 48))), np.asarray(patch)) for l, t in found)


def test_the_index_knows_where_each_channel_peaks(converted):
    """A channel's examples come from the index alone: its recorded peak is where a pass of the picture alone
    peaks (where two places are within rounding of each other, either may be recorded)."""
    peaks = channel_peaks(converted, PHOTOS[:3], ["inception3a", "inception4e"])
    for module, branch, channel in [("inception3a", "3x3", 7), ("inception4e", "pool", 5), ("inception4e", "1x1", 0)]:
        p = peaks[module][branch]
        for i, photo in enumerate(PHOTOS[:3]):
            act = _alone(converted, photo, module, branch)[channel]
            assert p.shape == tuple(act.shape)
            recorded = act.flatten()[int(p.where[i, channel])]
            assert float(act.max() - recorded) <= BOUND * float(act.abs().max())


def test_the_stems_peaks_are_its_outputs_maxima_and_where_they_are():
    """``stem_peaks``: the stem's output after its last max pool (inception3a's input), each channel's spatial
    maximum and its flat position, against the stem's layers run one by one (the same operations: exact)."""
    from googlenet import GoogLeNet

    torch.manual_seed(0)
    model = GoogLeNet(num_classes=10, aux_logits=False).eval()  # the paper's layout: no input transform
    peaks = stem_peaks(model, PHOTOS[:2], batch_size=2)
    x = torch.cat([prepare_input(p, model.preprocessing)[0] for p in PHOTOS[:2]])
    with torch.no_grad():
        for name, stage in model.stages():
            x = stage(x)
            if name == "maxpool2":
                break
    assert peaks.values.shape == (2, 192) and peaks.shape == tuple(x.shape[2:]) == (28, 28)
    assert torch.equal(peaks.values, x.flatten(2).amax(2))
    assert torch.equal(x.flatten(2).gather(2, peaks.where.long()[..., None])[..., 0], peaks.values)
