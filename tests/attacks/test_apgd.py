"""APGD and APGD-T (wpgdkit.attacks.apgd): Algorithm 1's schedule, the ball, and strength on a trained model.

The strength tests train a small MLP on 2,000 Fashion-MNIST images (1,500 to
train, 500 to attack) and compare adversarial errors (AE: the fraction of
the 500 points misclassified after the attack, clean mistakes included).
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from wpgdkit.attacks import PGD, ThreatModel
from wpgdkit.attacks.apgd import (APGD, APGDT, APGDRecord, apgd_attack, checkpoints, dlr_loss,
                                  targeted_dlr_loss)
from wpgdkit.errors import WpgdkitError

FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
needs_fashion_mnist = pytest.mark.skipif(not (FASHION_MNIST / "train-images-idx3-ubyte.gz").is_file(),
                                         reason="Fashion-MNIST is not in /usr/share/datasets")

EPS = 0.05  # on the trained MLP: clean error ≈ 0.2, PGD-20 error ≈ 0.6 — room for attacks to differ
STEPS = 20  # the same 20 gradients for APGD as for PGD-20


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# --- the schedule (Sec. 3.2) --------------------------------------------------------------


def test_checkpoints_for_100_iterations_follow_the_recurrence():
    # p: 0, .22, .22+max(.22-0-.03, .06)=.41, .41+.16=.57, .57+.13=.70, .70+.10=.80, .80+.07=.87,
    # .87+max(.04, .06)=.93, .99, then 1.05 > 1 stops; w_j = ⌈100 p_j⌉.
    assert checkpoints(100) == [0, 22, 41, 57, 70, 80, 87, 93, 99]


def test_checkpoints_for_few_iterations_are_distinct_and_within_the_budget():
    # 10: ⌈2.2⌉=3, ⌈4.1⌉=5, ⌈5.7⌉=6, 7, 8, ⌈8.7⌉=9, ⌈9.3⌉=10, ⌈9.9⌉=10 (kept once).
    assert checkpoints(10) == [0, 3, 5, 6, 7, 8, 9, 10]
    assert checkpoints(1) == [0, 1]
    with pytest.raises(WpgdkitError, match="n_iter"):
        checkpoints(0)


class _Scripted:
    """A loss whose values are a script, one column per evaluation (zero gradient: the iterate stays put)."""

    def __init__(self, script: torch.Tensor) -> None:
        self.script, self.calls = script, 0

    def __call__(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        value = self.script[:, self.calls] + 0.0 * logits.sum(dim=1)
        self.calls += 1
        return value


def _scripts(n_iter: int = 100) -> torch.Tensor:
    k = torch.arange(n_iter + 1, dtype=torch.float32)
    rising = k.clone()                                # every step increases the loss
    flat = torch.zeros_like(k)                        # no step does
    below_start = k.clone()                           # rises, but never above f(x^(0)) = 100 before the end
    below_start[0] = 100.0
    sixteen = k.clamp(max=16)                         # 16 rising steps in the first 22: 16 < 0.75·22 = 16.5
    seventeen = k.clamp(max=17)                       # 17 ≥ 16.5
    return torch.stack([rising, flat, below_start, sixteen, seventeen])


def test_step_size_halves_exactly_when_condition_1_or_2_holds():
    """Scripted losses with hand-worked checkpoints w = 22, 41, 57, 70, 80, 87, 93, 99 (ρ = 0.75)."""
    loss = _Scripted(_scripts())
    record = APGDRecord()
    x = torch.zeros(5, 3)
    threat = ThreatModel(eps=0.1, steps=100, random_start=False, bounds=None)
    apgd_attack(nn.Identity(), x, torch.zeros(5, dtype=torch.long), threat=threat, loss_fn=loss, record=record)
    assert loss.calls == 101  # x^(0) .. x^(100): one evaluation per iterate
    assert record.checkpoints == [0, 22, 41, 57, 70, 80, 87, 93, 99]
    c1, c2, halved = (torch.stack(r).T.tolist() for r in (record.condition1, record.condition2, record.halved))
    # rising: every step increases, f_max improves: never halved.
    assert c1[0] == [False] * 8 and c2[0] == [False] * 8 and halved[0] == [False] * 8
    # flat: Condition 1 always; Condition 2 at w_1 only (η unchanged since w_0, f_max = f(x^(0))), since
    # η is then halved at every checkpoint.
    assert c1[1] == [True] * 8 and c2[1] == [True] + [False] * 7 and halved[1] == [True] * 8
    # below_start: enough rises (restarting from x_max = x^(0) costs one per interval), but f_max = 100
    # never improves: Condition 2 every other checkpoint (not right after a halving).
    assert c1[2] == [False] * 8
    assert c2[2] == halved[2] == [True, False] * 4
    # The first interval's threshold: 16 rising steps halve, 17 do not.
    assert (c1[3][0], halved[3][0]) == (True, True)
    assert (c1[4][0], c2[4][0], halved[4][0]) == (False, False, False)
    # η: 2ε, halved right after each checkpoint that says so.
    eta = torch.stack(record.step_sizes).T  # (points, steps)
    for point in range(5):
        expected, value = [], 0.2
        for k in range(100):
            expected.append(value)
            if k + 1 in record.checkpoints[1:] and halved[point][record.checkpoints.index(k + 1) - 1]:
                value /= 2
        assert eta[point].tolist() == pytest.approx(expected, rel=1e-6)


def test_linear_objective_halves_at_every_checkpoint_once_at_the_corner():
    """f(x) = x·w: the first step (η = 2ε) reaches the best corner; no later step increases f (Condition 1)."""
    w = torch.tensor([1.0, -2.0, 0.5])
    model = nn.Linear(3, 1, bias=False)
    with torch.no_grad():
        model.weight.copy_(w)
    x = torch.rand(4, 3, generator=seeded(0))
    threat = ThreatModel(eps=0.25, steps=100, random_start=False, bounds=None)
    record = APGDRecord()
    x_adv = apgd_attack(model, x, torch.zeros(4, dtype=torch.long), threat=threat,
                        loss_fn=lambda logits, y: logits[:, 0], record=record)
    torch.testing.assert_close(x_adv, x + 0.25 * w.sign())
    assert all(bool(c.all()) for c in record.condition1)
    # Condition 2 fails at w_1 (f_max rose from f(x^(0))) and after every halving.
    assert not any(bool(c.any()) for c in record.condition2)
    assert torch.allclose(record.step_sizes[-1], torch.full((4,), 0.5 / 2 ** 8))


def test_record_conditions_agree_with_the_recorded_losses():
    """Any run: Condition 1 is '#rises < ρ·length' recomputed from the losses, with restarts from x_max."""
    model = _tiny_model(k=4)
    x, y = torch.rand(16, 1, 4, 4, generator=seeded(1)), torch.randint(0, 4, (16,), generator=seeded(2))
    record = APGDRecord()
    apgd_attack(model, x, y, threat=ThreatModel(eps=0.1, steps=30), rho=0.6,
                loss_fn=lambda logits, y: F.cross_entropy(logits, y, reduction="none"), generator=seeded(3),
                record=record)
    marks, losses = record.checkpoints, torch.stack(record.losses)  # (31, 16)
    current, f_max, f_max_before = losses[0].clone(), losses[0].clone(), losses[0].clone()
    halved_before = torch.zeros(16, dtype=torch.bool)
    rises = torch.zeros(16)
    for k in range(30):
        rises += losses[k + 1] > current
        current = losses[k + 1].clone()
        f_max = torch.maximum(f_max, current)
        if k + 1 in marks[1:]:
            j = marks.index(k + 1)
            c1 = rises < 0.6 * (marks[j] - marks[j - 1])
            c2 = ~halved_before & (f_max <= f_max_before)
            assert torch.equal(record.condition1[j - 1], c1) and torch.equal(record.condition2[j - 1], c2)
            halved_before, f_max_before = c1 | c2, f_max.clone()
            current = torch.where(halved_before, f_max, current)
            rises.zero_()


# --- the ball, the bounds, the model ----------------------------------------------------------


def _tiny_model(k: int = 5, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Dropout(0.3),
                          nn.Linear(16, k))
    with torch.no_grad():  # larger weights: confident predictions, gradients that matter
        for p in model.parameters():
            p.mul_(3.0)
    return model


@pytest.mark.parametrize("norm,eps", [("linf", 0.1), ("l2", 0.5)])
@pytest.mark.parametrize("make", [lambda m, t: APGD(m, threat=t, loss="dlr"),
                                  lambda m, t: APGDT(m, threat=t, n_targets=2)])
def test_output_stays_in_the_ball_and_the_scalar_bounds(norm, eps, make):
    model = _tiny_model()
    x, y = torch.rand(32, 1, 4, 4, generator=seeded(4)), torch.randint(0, 5, (32,), generator=seeded(5))
    x[:4] = 0.0  # on the bounds' edge
    x_adv = make(model, ThreatModel(eps=eps, steps=15, norm=norm))(x, y, generator=seeded(6))
    size = (x_adv - x).flatten(1).abs().amax(1) if norm == "linf" else (x_adv - x).flatten(1).norm(dim=1)
    assert size.max().item() <= eps * (1 + 1e-6)
    assert x_adv.min().item() >= 0.0 and x_adv.max().item() <= 1.0
    assert x_adv.shape == x.shape and x_adv.dtype == x.dtype and not x_adv.requires_grad


@pytest.mark.parametrize("norm,eps", [("linf", 0.3), ("l2", 1.0)])
def test_output_stays_in_per_feature_bounds_widened_to_hold_the_clean_point(norm, eps):
    model = _tiny_model()
    lows = tuple(-1.0 + 0.05 * i for i in range(16))
    highs = tuple(low + 0.4 for low in lows)
    g = seeded(7)
    x = (torch.tensor(lows) + 0.4 * torch.rand(24, 16, generator=g)).view(24, 1, 4, 4)
    x[0, 0, 0, 0] = highs[0] + 0.2  # a test point outside the training data's range
    y = torch.randint(0, 5, (24,), generator=g)
    threat = ThreatModel(eps=eps, steps=15, norm=norm, bounds=(lows, highs))
    x_adv = APGD(model, threat=threat)(x, y, generator=seeded(8))
    flat, flat0 = x_adv.flatten(1), x.flatten(1)
    low, high = torch.minimum(torch.tensor(lows), flat0), torch.maximum(torch.tensor(highs), flat0)
    assert bool((flat >= low - 1e-6).all()) and bool((flat <= high + 1e-6).all())
    size = (flat - flat0).abs().amax(1) if norm == "linf" else (flat - flat0).norm(dim=1)
    assert size.max().item() <= eps * (1 + 1e-6)


def test_model_modes_and_parameter_gradients_are_left_alone():
    model = _tiny_model()
    model.train()
    model[2].eval()  # a frozen BatchNorm inside a training model
    for p in model.parameters():
        p.grad = torch.full_like(p, 7.0)
    modes = [m.training for m in model.modules()]
    seen: list[bool] = []
    model.register_forward_pre_hook(lambda module, inputs: seen.append(module.training))
    x, y = torch.rand(8, 1, 4, 4, generator=seeded(9)), torch.randint(0, 5, (8,), generator=seeded(10))
    APGDT(model, threat=ThreatModel(eps=0.1, steps=5), n_targets=3)(x, y, generator=seeded(11))
    assert seen and not any(seen)  # attacked in eval mode
    assert [m.training for m in model.modules()] == modes
    assert all(bool((p.grad == 7.0).all()) for p in model.parameters())


def test_seeds_make_runs_reproducible_and_restarts_keep_each_points_worst():
    model = _tiny_model()
    model.eval()
    x, y = torch.rand(64, 1, 4, 4, generator=seeded(12)), torch.randint(0, 5, (64,), generator=seeded(13))
    one = ThreatModel(eps=0.08, steps=10)
    atk = APGD(model, threat=one)
    a, b = atk(x, y, seeds=[5]), atk(x, y, seeds=[5])
    assert torch.equal(a, b)
    with torch.no_grad():
        fooled = [model(atk(x, y, seeds=[s])).argmax(1) != y for s in (5, 6)]
        both = model(APGD(model, threat=one.replace(restarts=2))(x, y, seeds=[5, 6])).argmax(1) != y
    assert bool((both >= (fooled[0] | fooled[1])).all())  # a point fooled by either restart stays fooled
    with pytest.raises(WpgdkitError, match="need 2 seeds"):
        APGD(model, threat=one.replace(restarts=2))(x, y, seeds=[5])


def test_empty_batch():
    model = _tiny_model()
    x = torch.rand(0, 1, 4, 4)
    y = torch.zeros(0, dtype=torch.long)
    assert APGD(model, eps=0.1, steps=3)(x, y).shape == x.shape
    assert APGDT(model, eps=0.1, steps=3)(x, y).shape == x.shape


# --- the losses ------------------------------------------------------------------------------------


def test_dlr_losses_equal_the_reference_formulas():
    torchattacks = pytest.importorskip("torchattacks")
    logits = torch.randn(50, 10, generator=seeded(14)) * 3
    y = torch.randint(0, 10, (50,), generator=seeded(15))
    t = (y + 1 + torch.randint(0, 9, (50,), generator=seeded(16))) % 10
    apgd = torchattacks.APGD(nn.Linear(1, 1), eps=0.1)  # the losses do not use the model
    apgdt = torchattacks.APGDT(nn.Linear(1, 1), eps=0.1)
    torch.testing.assert_close(dlr_loss(logits, y), apgd.dlr_loss(logits, y))
    torch.testing.assert_close(targeted_dlr_loss(logits, t, label=y), apgdt.dlr_loss_targeted(logits, y, t))
    # Without the label, z_y becomes the top logit other than the target.
    top_other = logits.scatter(1, t.view(-1, 1), -math.inf).argmax(1)
    torch.testing.assert_close(targeted_dlr_loss(logits, t), targeted_dlr_loss(logits, t, label=top_other))
    # Scale and shift invariance (the point of eq. 4).
    torch.testing.assert_close(dlr_loss(5 * logits + 2, y), dlr_loss(logits, y), rtol=1e-4, atol=1e-5)


def test_wasserstein_objective_with_the_uniform_metric_is_one_minus_the_true_probability():
    k = 6
    logits, y = torch.randn(20, k, generator=seeded(17)), torch.randint(0, k, (20,), generator=seeded(18))
    atk = APGD(nn.Identity(), eps=0.1, loss="wasserstein", metric=1 - torch.eye(k))
    torch.testing.assert_close(atk.objective(logits, y), 1 - logits.softmax(1).gather(1, y.view(-1, 1)).squeeze(1))


def test_bad_options_are_one_line_errors_naming_the_parameter():
    model = _tiny_model(k=2)
    x, y = torch.rand(4, 1, 4, 4), torch.zeros(4, dtype=torch.long)
    cases = [
        (lambda: APGD(model, loss="cw"), "unknown loss 'cw'"),
        (lambda: APGD(model, loss="wasserstein"), "needs metric="),
        (lambda: APGD(model, metric=torch.ones(2, 2)), "metric= is only used by loss='wasserstein'"),
        (lambda: APGD(model, loss="wasserstein", metric=1 - torch.eye(2), p=0), "p must be"),
        (lambda: APGD(model, loss="wasserstein", metric=1 - torch.eye(2), lam=0.0), "lambda must be positive"),
        (lambda: APGD(model, rho=1.5), "rho must be"),
        (lambda: APGDT(model, n_targets=0), "n_targets must be"),
        (lambda: APGDT(model, loss="wasserstein"), "unknown loss"),
        (lambda: APGD(model, threat=ThreatModel(eps=0.1), steps=5), "either threat= or steps"),
        (lambda: APGD(model, loss="dlr", eps=0.1, steps=2)(x, y), "the dlr loss (eq. 4"),
        (lambda: APGDT(_tiny_model(k=3), eps=0.1, steps=2)(x, y), "needs at least 4 classes"),
        (lambda: APGD(model, loss="wasserstein", metric=1 - torch.eye(3), eps=0.1, steps=2)(x, y),
         "2 logits but the metric has 3"),
    ]
    for make, fragment in cases:
        with pytest.raises(WpgdkitError) as info:
            make()
        assert fragment in str(info.value) and "\n" not in str(info.value), str(info.value)


def test_apgdt_with_ce_runs_on_three_classes_and_targets_the_runner_ups():
    model = _tiny_model(k=3)
    model.eval()
    x, y = torch.rand(8, 1, 4, 4, generator=seeded(19)), torch.randint(0, 3, (8,), generator=seeded(20))
    atk = APGDT(model, eps=0.1, steps=4, loss="ce")
    assert atk.threat.steps == 4
    with torch.no_grad():
        logits = model(x)
    targets = atk.targets(logits, y)
    assert targets.shape == (8, 2) and not bool((targets == y.view(-1, 1)).any())
    ranked = logits.gather(1, targets)
    assert bool((ranked[:, 0] >= ranked[:, 1]).all())
    atk(x, y, generator=seeded(21))


def test_defaults_are_the_papers():
    atk = APGD(_tiny_model())
    assert (atk.threat.steps, atk.threat.eps, atk.rho) == (100, 8 / 255, 0.75)
    assert APGDT(_tiny_model()).n_targets == 9
    assert "loss=ce" in repr(atk) and "steps=100" in repr(atk)


# --- a cost-sensitive problem where the costly class is reachable ---------------------------------------


def _three_class_problem():
    """Two features in [0, 1]; class 0 around (0.5, 0.5). Class 1 (cost 1) takes over when x₁ > 0.6, class 2
    (cost 10) when x₂ > 0.7. With ε = 0.3 both are reachable; pushing both features up (what CE does) ends
    in class 1, the costly class 2 needs x₁ pushed *down* as well."""
    model = nn.Linear(2, 3)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]]))
        model.bias.copy_(torch.tensor([0.0, -6.0, -7.0]))
    x = 0.5 + 0.05 * (2 * torch.rand(40, 2, generator=seeded(22)) - 1)
    y = torch.zeros(40, dtype=torch.long)
    cost = torch.tensor([[0.0, 1.0, 10.0], [1.0, 0.0, 1.0], [10.0, 1.0, 0.0]])
    return model, x, y, cost


def test_wasserstein_apgd_reaches_the_costly_class_that_ce_misses():
    model, x, y, cost = _three_class_problem()
    threat = ThreatModel(eps=0.3, steps=20)
    with torch.no_grad():
        assert bool((model(x).argmax(1) == 0).all())

    def mean_cost(atk) -> float:
        with torch.no_grad():
            return cost[y, model(atk(x, y, generator=seeded(23))).argmax(1)].mean().item()

    s_ce = mean_cost(APGD(model, threat=threat))
    s_w = mean_cost(APGD(model, threat=threat, loss="wasserstein", metric=cost))
    s_w_p2 = mean_cost(APGD(model, threat=threat, loss="wasserstein", metric=cost, p=2.0, lam=10.0))
    assert s_ce == pytest.approx(1.0)  # every point fooled, into the cheap class
    assert s_w >= s_ce and s_w == pytest.approx(10.0)
    assert s_w_p2 == pytest.approx(10.0)


# --- strength on a trained model ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def trained():
    """An MLP trained for 300 SGD steps on 1,500 Fashion-MNIST images, and the 500 others to attack."""
    from wpgdkit.datasets import load_tensors

    x, y = load_tensors("fashion-mnist", "train", limit=2000)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 64), nn.ReLU(), nn.Linear(64, 10))
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    g = seeded(0)
    for _ in range(300):
        idx = torch.randint(0, 1500, (64,), generator=g)
        loss = F.cross_entropy(model(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model, x[1500:], y[1500:]


def _error(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return (model(x).argmax(1) != y).float().mean().item()


def _ae(atk, model, x, y, seed: int = 1) -> float:
    return _error(model, atk(x, y, generator=seeded(seed)), y)


@pytest.fixture(scope="module")
def pgd20(trained):
    model, x, y = trained
    return _ae(PGD(model, threat=ThreatModel(eps=EPS, steps=20)), model, x, y)


@needs_fashion_mnist
def test_apgd_ce_finds_at_least_as_many_errors_as_pgd20(trained, pgd20):
    model, x, y = trained
    clean = _error(model, x, y)
    apgd = _ae(APGD(model, threat=ThreatModel(eps=EPS, steps=STEPS)), model, x, y)
    assert clean < 0.3 and pgd20 > clean + 0.2  # a model worth attacking
    assert apgd >= pgd20


@needs_fashion_mnist
def test_apgd_dlr_matches_the_reference_and_survives_logit_scaling_where_pgd_does_not(trained, pgd20):
    """APGD-DLR is *not* asserted ≥ PGD-20 on this model: on naturally trained MLPs the DLR loss also spends
    its steps lowering z_π3 (the denominator), and finds a few % fewer errors than CE — torchattacks'
    APGD-DLR measures the same (≈ 0.57 against PGD-20's ≈ 0.60 at ε = 0.05), so this is the loss, not the
    code. What DLR is for (Sec. 4) is asserted instead: multiply the logits by 100 and CE saturates in float32
    (zero gradients, PGD-20 and APGD-CE collapse) while DLR, scale-invariant, finds exactly what it found."""
    torchattacks = pytest.importorskip("torchattacks")
    model, x, y = trained
    threat = ThreatModel(eps=EPS, steps=STEPS)
    dlr = _ae(APGD(model, threat=threat, loss="dlr"), model, x, y)
    with torch.random.fork_rng():  # torchattacks seeds the global RNG
        reference = _error(model, torchattacks.APGD(model, eps=EPS, steps=STEPS, loss="dlr", seed=1)(x, y), y)
    assert abs(dlr - reference) <= 0.01  # see test_apgd_ce_agrees_with_torchattacks for the tolerance

    class Scaled(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = model

        def forward(self, inputs: torch.Tensor) -> torch.Tensor:
            return 100.0 * self.inner(inputs)

    scaled = Scaled().eval()
    pgd_scaled = _ae(PGD(scaled, threat=ThreatModel(eps=EPS, steps=20)), scaled, x, y)
    dlr_scaled = _ae(APGD(scaled, threat=threat, loss="dlr"), scaled, x, y)
    assert pgd_scaled < pgd20 - 0.1  # gradient masking by saturation
    assert dlr_scaled > pgd_scaled + 0.1
    assert abs(dlr_scaled - dlr) <= 0.004  # ≤ 2 of 500 points: float rounding of the scaled logits


@needs_fashion_mnist
def test_apgd_ce_agrees_with_torchattacks(trained):
    """Same ε, steps, norm, loss CE, one restart. The tolerance, 0.01 (5 of 500 points): only the random
    starts differ (uniform in the ball here, a corner-heavy ℓ∞ sphere point there; the paper's Condition 2
    at w_1 and strict '<' in Condition 1 here), and the seed-to-seed spread of either attack on this model
    is 0.002-0.004 (measured over three seeds)."""
    torchattacks = pytest.importorskip("torchattacks")
    model, x, y = trained
    for norm, eps in (("linf", EPS), ("l2", 1.0)):
        ours = _ae(APGD(model, threat=ThreatModel(eps=eps, steps=STEPS, norm=norm)), model, x, y)
        with torch.random.fork_rng():
            ref = torchattacks.APGD(model, norm={"linf": "Linf", "l2": "L2"}[norm], eps=eps, steps=STEPS,
                                    n_restarts=1, seed=1, loss="ce")
            theirs = _error(model, ref(x, y), y)
        assert abs(ours - theirs) <= 0.01, (norm, ours, theirs)


@needs_fashion_mnist
def test_apgdt_finds_at_least_as_many_errors_as_apgd_ce_on_most_seeds(trained):
    """3 targets (the runner-ups) rather than the default 9, to keep the test to a few seconds."""
    model, x, y = trained
    threat = ThreatModel(eps=EPS, steps=STEPS)
    ce = [_ae(APGD(model, threat=threat), model, x, y, seed) for seed in (1, 2, 3)]
    t = [_ae(APGDT(model, threat=threat, n_targets=3), model, x, y, seed) for seed in (1, 2, 3)]
    assert sum(a >= b for a, b in zip(t, ce)) >= 2, (t, ce)


@needs_fashion_mnist
def test_wasserstein_with_the_uniform_metric_is_as_strong_as_pgd_on_ce(trained, pgd20):
    """ℓ_W = 1 − ŷ_y = 1 − exp(−CE): a monotone transform of CE, so the same comparisons and gradient signs."""
    model, x, y = trained
    uniform = 1 - torch.eye(10)
    w = _ae(APGD(model, threat=ThreatModel(eps=EPS, steps=STEPS), loss="wasserstein", metric=uniform), model, x, y)
    assert w >= pgd20


@needs_fashion_mnist
@pytest.mark.parametrize("loss", ["ce", "dlr"])
def test_targeted_mode_reaches_the_target_more_often_than_untargeted_runs_land_on_it(trained, loss):
    """A random wrong target per point, at ε = 0.1 (at 0.05 most targets are out of reach: ≈ 0.12 against
    ≈ 0.06). Measured at 0.1: targeted ≈ 0.40, untargeted landing there ≈ 0.10, for CE and DLR alike."""
    model, x, y = trained
    target = (y + 1 + torch.randint(0, 9, y.shape, generator=seeded(24))) % 10
    threat = ThreatModel(eps=0.1, steps=STEPS)
    with torch.no_grad():
        hit = (model(APGD(model, threat=threat, loss=loss, targeted=True)(x, target, generator=seeded(1))).argmax(1)
               == target).float().mean().item()
        landed = (model(APGD(model, threat=threat, loss=loss)(x, y, generator=seeded(1))).argmax(1)
                  == target).float().mean().item()
    assert hit > landed + 0.2, (hit, landed)
