"""Circuits (``googlenet.interpret.circuits``): the expanded weights into a channel are the branch without its inner
ReLU, the strengths and signs are the kernels' norms and sums, the picture's attribution is Captum's gradient x
activation at the module's input, and rewiring is the change of those kernels between two models."""

import copy
import math

import pytest
import torch
import torch.nn.functional as F

from googlenet import GoogLeNet
from googlenet.interpret.circuits import STEM, circuit, expanded_weights, input_channels, input_module, \
    module_rewiring, picture_attribution, rewiring
from googlenet.layers import BasicConv2d
from googlenet.model import input_stage

U64 = 2.0 ** -53  # float64's unit roundoff


def _model(variant: str = "paper", dtype: torch.dtype = torch.float64, seed: int = 0) -> GoogLeNet:
    """A random model whose BatchNorms are far from the identity (else folding them could be skipped unnoticed)."""
    torch.manual_seed(seed)
    model = GoogLeNet(num_classes=10, aux_logits=False, variant=variant)
    for unit in model.modules():
        if isinstance(unit, BasicConv2d):
            n = unit.bn.num_features
            unit.bn.weight.data.uniform_(0.5, 2.0)
            unit.bn.bias.data.normal_(0, 0.5)
            unit.bn.running_mean.normal_(0, 0.5)
            unit.bn.running_var.uniform_(0.25, 4.0)
            unit.conv.weight.data.normal_(0, (2 / (unit.conv.weight[0].numel())) ** 0.5)
            assert unit.bn.weight.shape == (n,)
    return model.to(dtype).eval()


@pytest.mark.parametrize("variant", ["paper", "torchvision"])
@pytest.mark.parametrize("module,branch,channel", [("inception3a", "3x3", 5), ("inception4a", "5x5", 11)])
def test_expanded_weights_are_the_branch_without_its_inner_relu(variant, module, branch, channel):
    """Inside the picture, one convolution of the module's input with the expanded kernel plus its bias is the
    branch's pre-ReLU output with the ReLU between reduction and convolution removed.

    Both sides are computed in float64 from the same parameters. Each output is a sum of products of at most three
    factors (x, a reduction weight, a convolution weight, BatchNorm's scale folded into each), N terms in all;
    however the sums are ordered, each side's error is at most gamma_N = N u / (1 - N u) times the sum of the
    terms' absolute values (Higham, Accuracy and Stability of Numerical Algorithms, 3.1), with a few more u for
    BatchNorm's scale and the bias terms. The bound below is 8 times that: about 1e-12 of the output's size,
    where a folding slip moves outputs by their own size."""
    model = _model(variant)
    units = [m for m in getattr(model, module).branches()[branch] if isinstance(m, BasicConv2d)]
    reduce, conv = units
    size = conv.conv.kernel_size[0]
    assert size == (5 if branch == "5x5" and variant == "paper" else 3)  # torchvision's "5x5" branch is 3x3
    torch.manual_seed(1)
    x = torch.randn(1, reduce.conv.in_channels, 11, 11, dtype=torch.float64)
    with torch.no_grad():
        reference = conv.pre_relu(reduce.pre_relu(x))[:, channel]  # the inner ReLU removed
        kernel, bias = expanded_weights(model, module, branch, [channel])
        expanded = F.conv2d(x, kernel, bias, padding=size // 2)[:, 0]
        # The sum of the absolute values of every term either side adds up.
        scale = lambda u: (u.bn.weight / torch.sqrt(u.bn.running_var + u.bn.eps)).abs()  # noqa: E731
        wr = reduce.conv.weight.abs() * scale(reduce)[:, None, None, None]
        wc = conv.conv.weight[channel].abs() * scale(conv)[channel]
        bias_r = reduce.bn.bias.abs() + (reduce.bn.running_mean * scale(reduce)).abs()
        terms = F.conv2d(x.abs(), torch.einsum("rij,rs->sij", wc, wr[:, :, 0, 0])[None], padding=size // 2)[:, 0] \
            + (wc.sum((1, 2)) * bias_r).sum() + conv.bn.bias[channel].abs() \
            + (conv.bn.running_mean[channel] * scale(conv)[channel]).abs()
    n = reduce.conv.in_channels + reduce.conv.out_channels * size * size + 16
    bound = 8 * n * U64 / (1 - n * U64) * terms
    inner = slice(size // 2, -(size // 2))  # at the border the convolution zero-pads where the bias would be
    difference = (reference - expanded)[:, inner, inner].abs()
    assert (difference <= bound[:, inner, inner]).all(), float((difference / bound[:, inner, inner]).max())
    assert not torch.equal(reference[:, :1, :1], expanded[:, :1, :1])  # and the border does differ, by design


def test_a_one_by_one_and_a_pool_branch_keep_their_own_weight():
    model = _model()
    unit = model.inception4c.branch1
    kernel, bias = expanded_weights(model, "inception4c", "1x1", [3])
    s = unit.bn.weight[3] / torch.sqrt(unit.bn.running_var[3] + unit.bn.eps)
    assert kernel.shape == (1, 512, 1, 1) and torch.equal(kernel[0], unit.conv.weight[3] * s)
    assert torch.equal(bias[0], unit.bn.bias[3] - unit.bn.running_mean[3] * s)
    pool = circuit(model, "inception4c", "pool", 7, k=3)
    assert pool.after_pool and not pool.expanded and all(c.kernel.shape == (1, 1) for c in pool.inputs)


def _plain_kernels(model: GoogLeNet, module: str, branch: str, channel: int,
                   absolute: bool = False) -> list[list[list[float]]]:
    """Each input's expanded kernel, one weight at a time from the state dict, in Python floats (``absolute``: the
    sums of the terms' absolute values instead, for rounding bounds)."""
    sd = {k: v.double() for k, v in model.state_dict().items()}
    prefix = f"{module}.branch{ {'3x3': 2, '5x5': 3}[branch]}"

    def folded(unit: str, out: int) -> tuple[list, float]:
        s = float(sd[f"{unit}.bn.weight"][out]) / math.sqrt(float(sd[f"{unit}.bn.running_var"][out]) + 1e-5)
        return sd[f"{unit}.conv.weight"][out].tolist(), s

    conv_weight, conv_scale = folded(f"{prefix}.1", channel)
    reductions = [folded(f"{prefix}.0", r) for r in range(len(conv_weight))]
    size = len(conv_weight[0])
    kernels = []
    for source in range(len(reductions[0][0])):
        kernel = [[0.0] * size for _ in range(size)]
        for r, (reduce_weight, reduce_scale) in enumerate(reductions):
            w = reduce_scale * reduce_weight[source][0][0]
            for i in range(size):
                for j in range(size):
                    term = conv_scale * conv_weight[r][i][j] * w
                    kernel[i][j] += abs(term) if absolute else term
        kernels.append(kernel)
    return kernels


def test_strengths_and_signs_are_the_kernels_norms_and_sums_strongest_first():
    model = _model(dtype=torch.float32)
    module, branch, channel, k = "inception4a", "5x5", 9, 6
    labels = input_channels(model, module)
    plain = {source: (math.sqrt(sum(v * v for row in kernel for v in row)), sum(v for row in kernel for v in row))
             for source, kernel in enumerate(_plain_kernels(model, module, branch, channel))}
    view = circuit(model, module, branch, channel, k=k)
    # The float32 strengths against these: each kernel entry sums 16 products of folded weights (error at most
    # gamma_20 of its terms' absolute sum, A), then the norm of 25 entries adds gamma_27 of itself; 2x slack.
    u32 = 2.0 ** -24
    tolerance = 2 * max(20 * u32 * math.sqrt(sum(a * a for row in kernel for a in row)) + 27 * u32 * plain[i][0]
                        for i, kernel in enumerate(_plain_kernels(model, module, branch, channel, absolute=True)))
    for sign, shown in ((1, view.excitatory), (-1, view.inhibitory)):
        expected = sorted((s for s, total in plain.values() if (total >= 0) == (sign == 1)), reverse=True)[:k]
        assert [c.strength for c in shown] == pytest.approx(expected, rel=0, abs=tolerance)
        assert all(c.sign == sign and (plain[c.index][1] >= 0) == (sign == 1) for c in shown)
        assert all((c.branch, c.channel) == labels[c.index] for c in shown)
    record = view.record()
    assert [i["sign"] for i in record["inputs"]] == [1] * k + [-1] * k
    assert record["input_module"] == "inception3b" and len(record["inputs"][0]["kernel"]) == 5


def test_each_input_is_named_by_its_branch_and_channel_in_the_module_below():
    model = _model(dtype=torch.float32)
    assert input_module("inception4a") == "inception3b" and input_module("inception3a") == STEM
    labels = input_channels(model, "inception4a")  # inception3b's four branches: 128 + 192 + 96 + 64
    assert len(labels) == 480 and labels[0] == ("1x1", 0) and labels[128] == ("3x3", 0) and labels[-1] == ("pool", 63)
    stem = input_channels(model, "inception3a")
    assert stem == [(STEM, c) for c in range(192)]
    assert all(c.branch == STEM for c in circuit(model, "inception3a", "1x1", 0, k=4).inputs)


@pytest.mark.parametrize("module,branch,channel", [("inception3a", "5x5", 2), ("inception4b", "3x3", 17)])
def test_the_pictures_attribution_is_captums_gradient_times_activation(module, branch, channel):
    """Both sides run the same float64 operations in the same order; the bound is float64 rounding's."""
    from captum.attr import LayerGradientXActivation

    model = _model()
    torch.manual_seed(2)
    x = torch.randn(1, 3, 96, 96, dtype=torch.float64)
    ours = picture_attribution(model, module, branch, channel, x)
    def response(inp: torch.Tensor) -> torch.Tensor:  # the stages' own forward, so Captum's hook sees the input
        for name, stage in model.stages():
            inp = stage(inp)
            if name == input_stage(module):
                break
        return getattr(model, module).forward_branches(inp, (branch,), pre_relu=True)[branch][:, channel].mean((1, 2))

    method = LayerGradientXActivation(response, getattr(model, input_stage(module)))
    theirs = method.attribute(x).sum((2, 3))[0].detach()
    assert ours.scores.shape == theirs.shape == (ours.maps.shape[0],)
    scale = float(theirs.abs().sum())
    assert torch.allclose(ours.scores, theirs, rtol=0, atol=1e-12 * scale)
    up, down = ours.top(4)
    assert [i for i, _ in up] == torch.argsort(theirs, descending=True)[:4].tolist()
    assert all(s > 0 for _, s in up) and all(s < 0 for _, s in down)


def test_rewiring_lists_the_connections_that_moved_most_and_nothing_for_an_unchanged_model():
    start = _model(dtype=torch.float32)
    assert all(change == 0 for _, change in rewiring(start, copy.deepcopy(start), "inception4c", "3x3", 4))
    assert module_rewiring(start, copy.deepcopy(start), "inception4c") == {"1x1": 0, "3x3": 0, "5x5": 0, "pool": 0}
    trained = copy.deepcopy(start)
    torch.manual_seed(3)
    with torch.no_grad():
        trained.inception4a.branch3[0].conv.weight.mul_(1 + 0.3 * torch.rand_like(trained.inception4a.branch3[0].conv.weight))
    moved = rewiring(trained, start, "inception4a", "5x5", 9, k=5)
    plain = []
    for now, before in zip(_plain_kernels(trained, "inception4a", "5x5", 9), _plain_kernels(start, "inception4a", "5x5", 9)):
        difference = math.sqrt(sum((a - b) ** 2 for ra, rb in zip(now, before) for a, b in zip(ra, rb)))
        plain.append(difference / math.sqrt(sum(b * b for rb in before for b in rb)))
    expected = sorted(range(480), key=lambda i: -plain[i])[:5]
    assert [i for i, _ in moved] == expected
    assert [c for _, c in moved] == pytest.approx([plain[i] for i in expected], rel=1e-4)
    summary = module_rewiring(trained, start, "inception4a")
    assert summary["5x5"] > 0 and summary["1x1"] == summary["3x3"] == summary["pool"] == 0


@pytest.mark.parametrize("call,message", [
    (lambda m: circuit(m, "inception9z", "3x3", 0), "Unknown Inception module"),
    (lambda m: circuit(m, "inception4c", "7x7", 0), "Unknown branch"),
    (lambda m: circuit(m, "inception4c", "3x3", 256), "has channels 0..255"),
    (lambda m: circuit(m, "inception4c", "3x3", 0, k=0), "k must be a whole number from 1 to 32"),
    (lambda m: circuit(m, "inception4c", "3x3", 0, k=33), "k must be a whole number from 1 to 32"),
    (lambda m: circuit(m, "inception4c", "3x3", 0, k=2.5), "k must be a whole number"),
    (lambda m: picture_attribution(m, "inception4c", "3x3", 0, torch.zeros(2, 3, 64, 64)), "one picture"),
])
def test_bad_requests_get_clear_errors(call, message):
    with pytest.raises(ValueError, match=message):
        call(_model(dtype=torch.float32))


def test_the_diagram_puts_the_channel_at_the_centre_and_its_inputs_for_and_against_on_either_side():
    import numpy as np
    from PIL import Image

    from googlenet.draw import circuit_diagram

    def solid(colour: str, side: int = 20) -> Image.Image:
        return Image.new("RGB", (side, side), colour)

    inputs = [(solid("yellow"), "for 0", 1, 2.0), (solid("yellow"), "for 1", 1, 1.0),
              (solid("cyan"), "against 0", -1, 1.5)]
    picture = np.asarray(circuit_diagram(solid("magenta", 30), inputs, "title"))
    h, w, _ = picture.shape
    assert tuple(picture[h // 2 + 7, w // 2]) == (255, 0, 255)  # the channel, twice its size, at the centre
    yellow, cyan = (picture == (255, 255, 0)).all(2), (picture == (0, 255, 255)).all(2)
    assert yellow[:, : w // 3].sum() == 2 * 400 and not yellow[:, w // 3:].any()  # for it: the left column
    assert cyan[:, 2 * w // 3:].sum() == 400 and not cyan[:, : 2 * w // 3].any()  # against it: the right one
    red, blue = (picture == (214, 39, 40)).all(2), (picture == (31, 119, 180)).all(2)
    assert red[:, : w // 2].any() and not red[:, w // 2:].any() and blue[:, w // 2:].any()  # the lines
