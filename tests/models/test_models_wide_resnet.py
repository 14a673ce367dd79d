"""Wide ResNets: name parsing, architecture, parameter counts."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from wpgdkit.errors import WpgdkitError
from wpgdkit.models import WideResNet, count_parameters, create_model, parse_wrn_name
from wpgdkit.models.wide_resnet import WRN_NAMES, BasicBlock


def _wrn_parameters(depth: int, width: int, num_classes: int, in_channels: int = 3) -> int:
    """Parameters of WRN-depth-width counted from the paper's description, not from a module.

    conv3x3(C, 16); per group, n blocks of BN(in) conv3x3(in, w) BN(w) conv3x3(w, w)
    plus a bias-free 1×1 projection where in != w; BN(64k); Linear(64k, K) with bias.
    """
    n = (depth - 4) // 6
    total = 9 * in_channels * 16
    in_planes = 16
    for w in (16 * width, 32 * width, 64 * width):
        for i in range(n):
            c = in_planes if i == 0 else w
            total += 2 * c + 9 * c * w + 2 * w + 9 * w * w + (c * w if c != w else 0)
        in_planes = w
    return total + 2 * 64 * width + 64 * width * num_classes + num_classes


@pytest.mark.parametrize(
    ("name", "expected"),
    [("wrn-16-10", (16, 10)), ("wrn-28-10", (28, 10)), ("wrn-40-10", (40, 10)), ("wrn-10-1", (10, 1)), ("wrn-34-20", (34, 20))],
)
def test_parse_wrn_name(name, expected):
    assert parse_wrn_name(name) == expected


@pytest.mark.parametrize(
    ("name", "match"),
    [
        ("wrn-27-10", "6n \\+ 4"),
        ("wrn-4-10", "6n \\+ 4"),
        ("wrn-28-0", "widening factor"),
        ("wrn-28", "wrn-DEPTH-WIDTH"),
        ("WRN-28-10", "wrn-DEPTH-WIDTH"),
        ("wrn-28-10-x", "wrn-DEPTH-WIDTH"),
        ("resnet-18", "wrn-DEPTH-WIDTH"),
    ],
)
def test_parse_wrn_name_errors(name, match):
    with pytest.raises(WpgdkitError, match=match):
        parse_wrn_name(name)


def test_the_formula_matches_the_quoted_size():
    # The widely quoted 36.5M of WRN-28-10 on CIFAR-10, independently of any module.
    assert _wrn_parameters(28, 10, 10) == 36_479_194


@pytest.mark.parametrize(
    ("name", "dataset_shape", "k", "expected"),
    [
        ("wrn-16-10", (3, 32, 32), 10, 17_116_634),
        ("wrn-28-10", (3, 32, 32), 10, 36_479_194),
        ("wrn-40-10", (3, 32, 32), 10, 55_841_754),
        ("wrn-28-10", (3, 32, 32), 100, 36_536_884),
        ("wrn-28-10", (3, 64, 64), 200, 36_600_984),
    ],
)
def test_parameter_counts(name, dataset_shape, k, expected):
    depth, width = parse_wrn_name(name)
    assert _wrn_parameters(depth, width, k) == expected
    with torch.device("meta"):
        model = create_model(name, num_classes=k, input_shape=dataset_shape)
    assert count_parameters(model) == expected


def test_architecture_of_wrn_28_10():
    with torch.device("meta"):
        net = create_model("wrn-28-10", num_classes=10, input_shape=(3, 32, 32)).net
    assert isinstance(net, WideResNet)
    groups = [net.block1, net.block2, net.block3]
    assert [len(g) for g in groups] == [4, 4, 4]
    assert [g[0].conv1.out_channels for g in groups] == [160, 320, 640]
    assert [g[0].conv1.stride for g in groups] == [(1, 1), (2, 2), (2, 2)]
    # A projection exactly where the shape changes: the first block of each group.
    assert [[b.shortcut is not None for b in g] for g in groups] == [[True, False, False, False]] * 3
    assert all(isinstance(m, BasicBlock) and m.dropout == 0 for g in groups for m in g)
    assert net.fc.in_features == 640 and not any(isinstance(m, nn.Dropout) for m in net.modules())


def test_64x64_inputs_use_the_same_network():
    with torch.device("meta"):
        small = create_model("wrn-16-10", num_classes=200, input_shape=(3, 32, 32))
        large = create_model("wrn-16-10", num_classes=200, input_shape=(3, 64, 64))
        assert tuple(large(torch.empty(2, 3, 64, 64)).shape) == (2, 200)
    assert count_parameters(small) == count_parameters(large)


def test_initialisation():
    torch.manual_seed(0)
    net = WideResNet(10, 1, num_classes=5)
    assert all(torch.equal(m.weight, torch.ones_like(m.weight)) and not m.bias.any()
               for m in net.modules() if isinstance(m, nn.BatchNorm2d))
    assert not net.fc.bias.any()
    # He-normal over fan-out: std sqrt(2 / (9 * out_channels)).
    weight = net.block3[0].conv2.weight
    assert weight.std().item() == pytest.approx((2 / (9 * 64)) ** 0.5, rel=0.05)


def test_small_wrn_trains_and_passes_gradients_to_the_input():
    torch.manual_seed(0)
    net = WideResNet(10, 1, num_classes=3)
    x = torch.rand(4, 3, 32, 32, requires_grad=True)
    loss = nn.functional.cross_entropy(net(x), torch.tensor([0, 1, 2, 0]))
    loss.backward()
    assert x.grad is not None and x.grad.abs().sum() > 0  # what PGD needs
    assert all(p.grad is not None for p in net.parameters())


def test_wrn_rejects_a_bad_depth():
    with pytest.raises(WpgdkitError, match="6n \\+ 4"):
        WideResNet(20, 2, num_classes=10)


@pytest.mark.parametrize("name", WRN_NAMES)
def test_registered_names_parse(name):
    parse_wrn_name(name)
