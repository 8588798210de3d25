"""The model (``googlenet.model``): the paper's layout (Table 1) and torchvision's, outputs in both modes, the
stages a forward pass splits into, and conversion from torchvision's weights."""

import copy

import pytest
import torch

from googlenet import BRANCH_KEYS, MODULE_NAMES, GoogLeNet, GoogLeNetOutputs, architecture_table, from_torchvision
from googlenet.model import input_stage
from helpers import close

# Table 1 of the paper, copied from it: #1x1, #3x3 reduce, #3x3, #5x5 reduce, #5x5, pool proj per module.
TABLE1 = {
    "inception3a": (64, 96, 128, 16, 32, 32), "inception3b": (128, 128, 192, 32, 96, 64),
    "inception4a": (192, 96, 208, 16, 48, 64), "inception4b": (160, 112, 224, 24, 64, 64),
    "inception4c": (128, 128, 256, 24, 64, 64), "inception4d": (112, 144, 288, 32, 64, 64),
    "inception4e": (256, 160, 320, 32, 128, 128), "inception5a": (256, 160, 320, 32, 128, 128),
    "inception5b": (384, 192, 384, 48, 128, 128),
}
TABLE1_BRANCHES = {m: (c[0], c[2], c[4], c[5]) for m, c in TABLE1.items()}  # each branch's output channels


@pytest.mark.parametrize("variant", ["paper", "torchvision"])
@pytest.mark.parametrize("size", [224, 96, 32])
def test_output_shapes_and_aux_only_in_training(variant, size):
    model = GoogLeNet(num_classes=7, variant=variant)
    x = torch.randn(2, 3, size, size)
    model.train()
    out = model(x)
    assert isinstance(out, GoogLeNetOutputs)
    assert [t.shape for t in out] == [torch.Size([2, 7])] * 3
    model.eval()
    with torch.no_grad():
        logits = model(x)
    assert isinstance(logits, torch.Tensor) and logits.shape == (2, 7)


def test_reset_classifier_keeps_the_backbone_and_replaces_every_head():
    model = GoogLeNet(num_classes=1000, aux_logits=True).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        features = model.forward_features(x)
    conv_before = model.conv1.conv.weight.clone()
    model.reset_classifier(10, [f"c{i}" for i in range(10)])
    assert model.num_classes == 10 and model.class_names[3] == "c3"
    assert all(layer.out_features == 10 for layer in model.classifier_heads()) and len(model.classifier_heads()) == 3
    assert torch.equal(model.conv1.conv.weight, conv_before)
    with torch.no_grad():
        assert torch.equal(model.forward_features(x), features) and features.shape == (2, 1024, 2, 2)
        assert model(x).shape == (2, 10)


def test_the_stages_split_the_forward_pass_where_torchvision_does(converted, tv_reference):
    """``forward_intermediates`` stopped at the stage before a module gives the input torchvision's module receives
    (read with a hook on torchvision's model), and ``forward_from`` the module's output on, then the head, gives
    torchvision's own logits."""
    x = torch.randn(1, 3, 96, 96)
    seen = {}
    handle = tv_reference.inception4c.register_forward_hook(lambda m, inp, out: seen.update(input=inp[0]))
    try:
        with torch.no_grad():
            expected = tv_reference(x)
    finally:
        handle.remove()
    with torch.no_grad():
        before, _ = converted.forward_intermediates(x, [input_stage("inception4c")], stop_early=True)
        assert close(before, seen["input"])
        after = converted.forward_from(converted.inception4c(before), "inception4c")
        assert close(converted.forward_head(after), expected)
    assert [name for name, _ in converted.stages()][:6] == ["conv1", "maxpool1", "conv2", "conv3", "maxpool2",
                                                           "inception3a"]


def test_forward_intermediates_gives_every_view_from_one_pass(converted):
    """timm's semantics: the last feature map and the asked stages' outputs (a module's as its four branches);
    stopped early, the feature map is the last asked stage's output; the head of ``forward_from`` a module's output
    is the model's own answer."""
    x = torch.randn(2, 3, 96, 96)
    with torch.no_grad():
        final, seen = converted.forward_intermediates(x, ["maxpool3", "inception4c"])
        assert torch.equal(final, converted.forward_features(x)) and set(seen) == {"maxpool3", "inception4c"}
        assert isinstance(seen["maxpool3"], torch.Tensor) and list(seen["inception4c"]) == list(BRANCH_KEYS)
        early, _ = converted.forward_intermediates(x, ["maxpool3"], stop_early=True)
        assert torch.equal(early, seen["maxpool3"]) and input_stage("inception4a") == "maxpool3"
        only = converted.forward_intermediates(x, ["inception4c"], stop_early=True, intermediates_only=True)
        assert all(torch.equal(only["inception4c"][b], seen["inception4c"][b]) for b in BRANCH_KEYS)
        output = torch.cat(list(seen["inception4c"].values()), 1)
        assert torch.equal(converted.forward_head(converted.forward_from(output, "inception4c")), converted(x))
    with pytest.raises(ValueError, match="unknown stage 'inception9z'"):
        converted.forward_intermediates(x, ["inception9z"])


def test_a_branch_width_is_read_and_a_channel_checked_apart(converted):
    assert converted.branch_width("inception4c", "3x3") == 256 and converted.branch_width("inception3a", "pool") == 32
    assert converted.check_branch("inception4c", "3x3", [0, 255]) is None
    with pytest.raises(ValueError, match="inception4c 3x3 has channels 0..255; got \\[256\\]"):
        converted.check_branch("inception4c", "3x3", [256])
    with pytest.raises(ValueError, match="Unknown branch '9x9'"):
        converted.branch_width("inception4c", "9x9")
    with pytest.raises(ValueError, match="Unknown Inception module"):
        converted.branch_width("conv1", "3x3")


def test_no_aux_heads_when_disabled():
    model = GoogLeNet(aux_logits=False).train()
    assert model.aux1 is None and model.aux2 is None
    assert not any(k.startswith("aux") for k in model.state_dict())
    out = model(torch.randn(2, 3, 64, 64))
    assert isinstance(out, torch.Tensor) and out.shape == (2, 1000)


def test_the_paper_variant_has_the_papers_layout_and_torchvision_its_own():
    paper = GoogLeNet(variant="paper")
    tv = GoogLeNet(variant="torchvision")
    assert paper.conv2.conv.kernel_size == (1, 1) and paper.conv2.conv.out_channels == 64  # the stem's 1x1 reduction
    assert paper.inception4c.branch3[1].conv.kernel_size == (5, 5)
    assert tv.inception4c.branch3[1].conv.kernel_size == (3, 3)
    assert paper.conv1.bn.eps == 1e-5 and tv.conv1.bn.eps == 1e-3
    assert paper.dropout.p == 0.4 and tv.dropout.p == 0.2
    assert paper.aux1.fc1.in_features == 2048 and paper.aux1.fc1.out_features == 1024 and paper.aux1.dropout.p == 0.7


def test_paper_aux_uses_5x5_stride3_pool_at_224():
    """Section 5: an average pool of 5x5 with stride 3 (14x14 -> 4x4 at 224 px), not torchvision's adaptive pool,
    which gives another 4x4 on the same input."""
    model = GoogLeNet(num_classes=5).eval()
    x = torch.randn(1, 512, 14, 14)

    def head(pooled: torch.Tensor) -> torch.Tensor:
        return model.aux1.fc2(torch.relu(model.aux1.fc1(torch.flatten(model.aux1.conv(pooled), 1))))

    with torch.no_grad():
        out = model.aux1(x)
        assert torch.equal(out, head(torch.nn.functional.avg_pool2d(x, 5, 3)))  # the same layers, in order
        assert not torch.allclose(out, head(torch.nn.functional.adaptive_avg_pool2d(x, (4, 4))))


@pytest.mark.parametrize("module", MODULE_NAMES)
def test_branch_channel_counts_match_table1(module):
    model = GoogLeNet(aux_logits=False)
    inc = getattr(model, module)
    with torch.no_grad():
        outs = inc.forward_branches(torch.zeros(1, inc.branch1.conv.in_channels, 7, 7))
    assert tuple(o.shape[1] for o in outs.values()) == TABLE1_BRANCHES[module]
    assert list(inc.branches()) == list(BRANCH_KEYS)
    reductions = (inc.branch2[0].conv.out_channels, inc.branch3[0].conv.out_channels)
    assert reductions == (TABLE1[module][1], TABLE1[module][3])


def test_from_torchvision_module_parity(tv_reference, converted):
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        assert close(converted(x), tv_reference(x))
    # In training mode BatchNorm updates its statistics: copies, so the session's models stay as they are.
    tv_train, ours_train = copy.deepcopy(tv_reference).train(), copy.deepcopy(converted).train()
    torch.manual_seed(3)
    ref = tv_train(x)
    torch.manual_seed(3)
    ours = ours_train(x)
    for a, b in zip(ref, ours):
        assert close(b.detach(), a.detach())


def test_from_torchvision_state_dict_without_aux(tv_reference):
    from torchvision.models import googlenet

    tv = googlenet(weights=None, aux_logits=False, transform_input=True, init_weights=True).eval()
    state = {k: v for k, v in tv_reference.state_dict().items() if not k.startswith("aux")}
    tv.load_state_dict(state)
    model = from_torchvision(state)
    assert model.aux1 is None and model.variant == "torchvision" and model.transform_input
    assert model.class_names[0] == "tench" and len(model.class_names) == 1000
    assert model.preprocessing["resize"] == 256 and model.preprocessing["crop"] == 224
    x = torch.randn(1, 3, 160, 160)
    with torch.no_grad():
        assert close(model(x), tv(x))


def test_from_torchvision_rejects_other_state_dicts():
    with pytest.raises(ValueError, match="fc.weight"):
        from_torchvision({"conv.weight": torch.zeros(1)})


def test_invalid_constructor_arguments():
    with pytest.raises(ValueError, match="variant"):
        GoogLeNet(variant="resnet")
    with pytest.raises(ValueError, match="class names"):
        GoogLeNet(num_classes=3, class_names=["a", "b"])


def test_table1_matches_paper_where_consistent():
    rows = architecture_table(GoogLeNet(aux_logits=False), image_size=224)
    names = [r["name"] for r in rows]
    assert names[0] == "convolution" and names[-2] == "linear" and "inception (4c)" in names
    flagged = {r["name"]: set(r["flags"]) for r in rows if r["flags"]}
    assert flagged == {
        "convolution": {"params", "ops"},  # first conv: 2.7K / 34M in the paper, 9.2K / 118M by the architecture
        "inception (4c)": {"params"},
        "inception (5a)": {"params", "ops"},
        "linear": {"ops"},
    }
    for r in rows:
        for col in ("params", "ops"):
            if r[f"paper_{col}"] is not None and col not in r["flags"]:
                assert abs(r[col] - r[f"paper_{col}"]) <= 0.02 * r[f"paper_{col}"], (r["name"], col)
    sizes = {r["name"]: r["output_size"] for r in rows}
    assert sizes["inception (3b)"] == "28x28x480" and sizes["inception (5b)"] == "7x7x1024"
    assert sizes["linear"] == "1x1x1000"


def test_table_module_prints_markdown(capsys):
    from googlenet.table import main

    main([])
    out = capsys.readouterr().out
    assert out.startswith("| type |") and "inception (4c)" in out and "⚠" in out


def test_runs_under_autocast_and_channels_last():
    model = GoogLeNet(num_classes=10, aux_logits=False).eval().to(memory_format=torch.channels_last)
    x = torch.randn(2, 3, 64, 64).to(memory_format=torch.channels_last)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(x)
    assert out.shape == (2, 10) and torch.isfinite(out.float()).all()
