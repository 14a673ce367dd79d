"""The PGD loop's speed-ups (issue 14) change no result: in-place steps and early stop, against plain references."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from wpgdkit.attacks import PGD, WPGD, AttackConfig, ThreatModel, create_attack, pgd_attack
from wpgdkit.errors import WpgdkitError


def _cnn(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                         nn.Linear(6 * 4 * 4, 5)).double().eval()


def _data(n: int = 24, seed: int = 1, model: nn.Module | None = None):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 3, 8, 8, generator=g, dtype=torch.float64)
    y = model(x).argmax(1) if model is not None else torch.randint(0, 5, (n,), generator=g)
    return x, y.detach()


def reference_pgd(model, x, y, *, eps, step, steps, low=0.0, high=1.0, start=None, record=None):
    """The textbook ℓ∞ loop, as torchattacks writes it: a new tensor per operation, nothing precomputed."""
    x0 = x.detach()
    x_adv = x0.clone() if start is None else start
    for _ in range(steps):
        x_adv = x_adv.detach().requires_grad_(True)
        logits = model(x_adv)
        if record is not None:
            record.append((x_adv.detach().clone(), logits.detach().argmax(1) != y))
        (grad,) = torch.autograd.grad(F.cross_entropy(logits, y, reduction="sum"), x_adv)
        x_adv = x_adv.detach() + step * grad.sign()
        x_adv = torch.min(torch.max(x_adv, x0 - eps), x0 + eps)
        x_adv = torch.clamp(x_adv, low, high)
    if record is not None:
        record.append((x_adv.clone(), model(x_adv).detach().argmax(1) != y))
    return x_adv


def _start(x, eps, seed, low=0.0, high=1.0):
    """The library's random start, drawn the same way (uniform in the ball, then the bounds)."""
    noise = torch.rand(x.shape, generator=torch.Generator().manual_seed(seed), dtype=x.dtype)
    return (x + (2 * noise - 1) * eps).clamp(low, high)


@pytest.mark.parametrize("random_start", [False, True])
@pytest.mark.parametrize("channels_last", [False, True])
def test_in_place_steps_match_the_textbook_loop_bit_for_bit(random_start, channels_last):
    model = _cnn()
    x, y = _data()
    threat = ThreatModel(eps=0.05, steps=7, random_start=random_start)
    start = _start(x, threat.eps, 5) if random_start else None
    expected = reference_pgd(model, x, y, eps=threat.eps, step=threat.step, steps=threat.steps, start=start)
    if channels_last:  # the layout the audit may pick for a conv model: only the storage differs
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    before = x.clone()
    got = pgd_attack(model, x, y, threat=threat, generator=torch.Generator().manual_seed(5))
    assert torch.equal(x, before)  # the clean inputs are never written to
    if channels_last:
        assert torch.allclose(got, expected, rtol=0, atol=1e-12)  # other kernels, float64 rounding
    else:
        assert torch.equal(got, expected)


def test_per_feature_bounds_match_the_textbook_loop():
    model = nn.Sequential(nn.Linear(4, 16), nn.Tanh(), nn.Linear(16, 3)).double().eval()
    g = torch.Generator().manual_seed(0)
    x = torch.randn(30, 4, generator=g, dtype=torch.float64)
    y = torch.randint(0, 3, (30,), generator=g)
    lows, highs = (-1.0, -0.5, -2.0, -1.0), (1.0, 0.5, 2.0, 0.2)
    threat = ThreatModel(eps=0.3, steps=5, bounds=(lows, highs), random_start=False)
    # A clean point outside the training bounds widens the box to hold it.
    low = torch.minimum(torch.tensor(lows, dtype=torch.float64), x)
    high = torch.maximum(torch.tensor(highs, dtype=torch.float64), x)
    expected = reference_pgd(model, x, y, eps=0.3, step=threat.step, steps=5, low=low, high=high)
    assert torch.equal(pgd_attack(model, x, y, threat=threat), expected)


def test_a_gradient_that_cannot_be_written_to_takes_a_buffer_of_its_own():
    """``x.sum(...)``'s input gradient is an expanded tensor (one value per channel): the step must not write into it."""
    class Pooled(nn.Module):
        def __init__(self):
            super().__init__()
            self.head = nn.Linear(3, 5).double()

        def forward(self, x):
            return self.head(x.sum(dim=(2, 3)))

    model = Pooled().eval()
    x, y = _data(10)
    probe = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(F.cross_entropy(model(probe), y, reduction="sum"), probe)
    assert 0 in grad.stride()  # the case this test is about
    threat = ThreatModel(eps=0.05, steps=4, random_start=False)
    expected = reference_pgd(model, x, y, eps=0.05, step=threat.step, steps=4)
    assert torch.equal(pgd_attack(model, x, y, threat=threat), expected)


# --- early stop ----------------------------------------------------------------------------------


class RowCounter(nn.Module):
    """Counts the points each forward pass runs on."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net
        self.rows = 0

    def forward(self, x):
        self.rows += len(x)
        return self.net(x)


def _fooling_setup():
    """A float64 CNN on points it classifies as their labels, and a budget that fools many of them at various steps."""
    model = _cnn(3)
    x, y = _data(40, seed=4, model=model)
    return model, x, y, ThreatModel(eps=0.06, steps=10)


def _misclassified(logits, y):
    return logits.argmax(1) != y


def test_early_stop_keeps_each_points_first_mistake_of_the_same_run():
    model, x, y, threat = _fooling_setup()
    record: list = []
    final = reference_pgd(model, x, y, eps=threat.eps, step=threat.step, steps=threat.steps,
                          start=_start(x, threat.eps, 9), record=record)
    counted = RowCounter(model)
    got = pgd_attack(counted, x, y, threat=threat, generator=torch.Generator().manual_seed(9),
                     stop_when=_misclassified)
    fooled_at = torch.stack([fooled for _, fooled in record[:-1]])  # (steps, N): the iterates the loop evaluates
    first = torch.where(fooled_at.any(0), fooled_at.int().argmax(0), torch.full_like(y, threat.steps))
    assert 0 < int(fooled_at.any(0).sum()) < len(y) and len(set(first.tolist())) > 3  # the test means something
    for i in range(len(y)):
        expected = record[int(first[i])][0][i] if first[i] < threat.steps else final[i]
        assert torch.allclose(got[i], expected, rtol=0, atol=1e-12), i
    # One forward (and backward) pass per evaluated iterate until the first mistake, the full run otherwise.
    assert counted.rows == int(torch.clamp(first + 1, max=threat.steps).sum())
    assert counted.rows < len(y) * threat.steps


def test_early_stop_error_is_at_least_the_last_iterates():
    """Every point fooled at some iterate counts: a superset of the points the last iterate fools (same start)."""
    model, x, y, threat = _fooling_setup()
    for seed in range(3):
        plain = pgd_attack(model, x, y, threat=threat, generator=torch.Generator().manual_seed(seed))
        early = pgd_attack(model, x, y, threat=threat, generator=torch.Generator().manual_seed(seed),
                           stop_when=_misclassified)
        with torch.no_grad():
            fooled_plain, fooled_early = model(plain).argmax(1) != y, model(early).argmax(1) != y
        assert not bool((fooled_plain & ~fooled_early).any()), seed
        assert (early - x).abs().max() <= threat.eps + 1e-12 and early.min() >= 0 and early.max() <= 1


def test_pgd_object_with_early_stop_spends_fewer_passes():
    model, x, y, threat = _fooling_setup()
    counted = RowCounter(model)
    plain = PGD(counted, threat=threat)
    early = create_attack(AttackConfig("pgd", threat, early_stop=True), counted)
    assert early.early_stop and not plain.early_stop and "early_stop=True" in repr(early)
    plain(x, y, seeds=[1])
    full = counted.rows
    counted.rows = 0
    early(x, y, seeds=[1])
    assert full == len(y) * threat.steps and 0 < counted.rows < full
    # Targeted: a point stops when it reaches its target.
    targets = (y + 1) % 5
    counted.rows = 0
    x_adv = PGD(counted, threat=threat, targeted=True, early_stop=True)(x, targets, seeds=[1])
    assert counted.rows < full
    with torch.no_grad():
        assert bool((model(x_adv).argmax(1) == targets).any())


def test_early_stop_with_restarts_keeps_a_fooling_restart():
    model, x, y, _ = _fooling_setup()
    threat = ThreatModel(eps=0.06, steps=10, restarts=3)
    one = PGD(model, threat=threat.replace(restarts=1), early_stop=True)(x, y, seeds=[0])
    three = PGD(model, threat=threat, early_stop=True)(x, y, seeds=[0, 1, 2])
    with torch.no_grad():
        fooled_one, fooled_three = model(one).argmax(1) != y, model(three).argmax(1) != y
    assert not bool((fooled_one & ~fooled_three).any())


def test_early_stop_is_refused_where_it_would_change_the_result():
    threat = ThreatModel(eps=0.1, steps=3)
    for name in ("wpgd", "worst-cost", "strong", "cost-targeted", "apgd-ce", "autoattack"):
        with pytest.raises(WpgdkitError, match=f"early stop is for plain PGD \\(pgd\\), not {name}"):
            AttackConfig(name, threat, early_stop=True)
    with pytest.raises(WpgdkitError, match="best_iterate"):
        PGD(_cnn(), threat=threat, early_stop=True, best_iterate=True)
    with pytest.raises(WpgdkitError, match="on_iterate"):
        x, y = _data(2)
        pgd_attack(_cnn(), x, y, threat=threat, stop_when=_misclassified, on_iterate=lambda *a: None)
    with pytest.raises(WpgdkitError, match="early_stop must be True or False"):
        AttackConfig("pgd", threat, early_stop="yes")
    assert not WPGD.early_stop  # the metric-aware attacks never stop early
    assert AttackConfig("pgd", threat).to_dict()["early_stop"] is False
    assert AttackConfig("pgd", threat, early_stop=True).to_dict()["early_stop"] is True
