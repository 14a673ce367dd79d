"""Per-feature bounds in the threat model: tabular data bounded by its training data's min and max."""

from __future__ import annotations

import math

import pytest
import torch

from wpgdkit.attacks import PGD, ThreatModel
from wpgdkit.errors import WpgdkitError


def _box(features: int, seed: int = 0) -> tuple[tuple[float, ...], tuple[float, ...]]:
    g = torch.Generator().manual_seed(seed)
    low = torch.randn(features, generator=g, dtype=torch.float64)
    width = torch.rand(features, generator=g, dtype=torch.float64) * 3
    return tuple(low.tolist()), tuple((low + width).tolist())


def test_per_feature_bounds_are_normalised_and_compared():
    lows, highs = _box(4)
    threat = ThreatModel(eps=0.1, bounds=(list(lows), list(highs)))
    assert threat.per_feature and threat.bounds == (lows, highs)
    assert threat == ThreatModel(eps=0.1, bounds=(lows, highs))
    assert threat.max_width == pytest.approx(max(h - l for l, h in zip(lows, highs)))
    assert threat.to_dict()["bounds"] == [list(lows), list(highs)]
    assert ThreatModel.from_dict(threat.to_dict()) == threat


@pytest.mark.parametrize("bounds, message", [
    (((0.0, 1.0), (1.0,)), "as many lows as highs"),
    (((0.0, 2.0), (1.0, 1.0)), "low ≤ high"),
    (((0.0, math.nan), (1.0, 1.0)), "finite"),
    ((("a", 0.0), (1.0, 1.0)), "sequences"),
])
def test_malformed_per_feature_bounds_are_refused(bounds, message):
    with pytest.raises(WpgdkitError, match=message):
        ThreatModel(eps=0.1, bounds=bounds)


def test_linf_eps_wider_than_every_feature_is_refused():
    with pytest.raises(WpgdkitError, match="at most 2"):
        ThreatModel(eps=2.5, bounds=((0.0, 0.0), (1.0, 2.0)))


def test_l2_diameter_and_feature_count_use_the_per_feature_box():
    threat = ThreatModel(eps=2.0, norm="l2", bounds=((0.0, 0.0), (1.0, 1.0)))
    with pytest.raises(WpgdkitError, match=r"at most 1\.41421"):
        threat.check_inputs((2,))
    with pytest.raises(WpgdkitError, match="3 features"):
        ThreatModel(eps=0.5, bounds=((0.0, 0.0), (1.0, 1.0))).check_inputs((3,))


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_pgd_stays_in_the_ball_and_in_every_feature_box(norm):
    torch.manual_seed(0)
    features = 6
    lows, highs = _box(features, seed=1)
    low, high = torch.tensor(lows), torch.tensor(highs)
    model = torch.nn.Sequential(torch.nn.Linear(features, 3))
    x = low + (high - low) * torch.rand(32, features)
    y = torch.randint(0, 3, (32,))
    eps = 0.4
    attack = PGD(model, threat=ThreatModel(eps=eps, steps=10, norm=norm, bounds=(lows, highs)))
    x_adv = attack(x, y, generator=torch.Generator().manual_seed(0))
    assert bool((x_adv >= low - 1e-6).all()) and bool((x_adv <= high + 1e-6).all())
    delta = (x_adv - x).double()
    if norm == "linf":
        assert float(delta.abs().max()) <= eps + 1e-6
    else:
        assert float(delta.norm(dim=1).max()) <= eps + 1e-5
    # A constant feature (low == high) cannot move at all.
    frozen = (lows[0],) + lows[1:], (lows[0],) + highs[1:]
    x_adv = PGD(model, threat=ThreatModel(eps=eps, steps=5, norm=norm, bounds=frozen))(
        x.clamp(torch.tensor(frozen[0]), torch.tensor(frozen[1])), y)
    assert torch.equal(x_adv[:, 0], torch.full((32,), lows[0], dtype=x_adv.dtype))


def test_per_feature_clamp_equals_an_elementwise_reference_on_series_inputs():
    # (N, C, T) inputs: the bounds are flattened in C order, as the data files record them.
    from wpgdkit.attacks.pgd import _clamp

    g = torch.Generator().manual_seed(3)
    x = torch.randn(5, 2, 4, generator=g, dtype=torch.float64) * 3
    lows, highs = _box(8, seed=4)
    got = _clamp(x, (lows, highs))
    flat = x.reshape(5, 8)
    expected = torch.stack([torch.tensor([min(max(float(v), l), h) for v, l, h in zip(row, lows, highs)],
                                         dtype=torch.float64) for row in flat]).view(5, 2, 4)
    assert torch.equal(got, expected)


def test_a_test_point_outside_the_training_box_is_never_moved_beyond_eps():
    # Bounds from the training split; a test point beyond them must stay within ε of itself.
    model = torch.nn.Sequential(torch.nn.Linear(2, 2))
    x = torch.tensor([[5.0, -5.0], [0.5, 0.5]])
    y = torch.tensor([0, 1])
    for norm in ("linf", "l2"):
        threat = ThreatModel(eps=0.3, steps=5, norm=norm, bounds=((0.0, 0.0), (1.0, 1.0)))
        x_adv = PGD(model, threat=threat)(x, y, generator=torch.Generator().manual_seed(0))
        delta = (x_adv - x).double()
        radius = delta.abs().amax(dim=1) if norm == "linf" else delta.norm(dim=1)
        assert float(radius.max()) <= 0.3 + 1e-6
        # The in-box point stays in the box.
        assert bool((x_adv[1] >= 0).all()) and bool((x_adv[1] <= 1).all())
