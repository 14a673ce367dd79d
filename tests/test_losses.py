"""The Wasserstein loss of eq. 5 (wpgdkit.losses) against hand computations, POT and the NumPy closed form."""

from __future__ import annotations

import math

import numpy as np
import ot
import pytest
import torch

from wpgdkit.errors import WpgdkitError
from wpgdkit.labelmetric.ot_check import wasserstein_to_onehot
from wpgdkit.losses import WassersteinLoss, entropy_weight, wasserstein_loss

# C and C^2 (element-wise) for the hand-checked example.
C3 = torch.tensor([[0.0, 1.0, 2.0], [1.0, 0.0, 1.0], [2.0, 1.0, 0.0]], dtype=torch.float64)
C3_SQUARED = torch.tensor([[0.0, 1.0, 4.0], [1.0, 0.0, 1.0], [4.0, 1.0, 0.0]], dtype=torch.float64)


def random_metric(seed: int, k: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    c = rng.random((k, k)) * 5.0
    c = (c + c.T) / 2
    np.fill_diagonal(c, 0.0)
    return c


def random_logits(seed: int, n: int, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    logits = 3.0 * torch.randn(n, k, generator=g, dtype=torch.float64)
    target = torch.randint(0, k, (n,), generator=g)
    return logits, target


def hand_logits() -> torch.Tensor:
    # softmax(log q) = q: rows (1/2, 1/4, 1/4) and (1/3, 1/3, 1/3).
    return torch.log(torch.tensor([[0.5, 0.25, 0.25], [0.5, 0.25, 0.25], [1 / 3, 1 / 3, 1 / 3]], dtype=torch.float64))


# --- hand computations ---------------------------------------------------------------------------


def test_hand_computed_transport_cost():
    target = torch.tensor([0, 2, 1])
    # Row 0 of C^2 is (0, 1, 4): 0*.5 + 1*.25 + 4*.25 = 1.25.
    # Row 2 is (4, 1, 0): 4*.5 + 1*.25 + 0 = 2.25.  Row 1 is (1, 0, 1): (1 + 0 + 1)/3 = 2/3.
    expected = torch.tensor([1.25, 2.25, 2 / 3], dtype=torch.float64)
    loss = wasserstein_loss(hand_logits(), target, C3_SQUARED, reduction="none")
    torch.testing.assert_close(loss, expected, rtol=1e-14, atol=0)
    module = WassersteinLoss(C3, p=2, reduction="none")
    torch.testing.assert_close(module(hand_logits(), target), expected, rtol=1e-14, atol=0)


def test_hand_computed_entropy_term():
    target = torch.tensor([0, 2, 1])
    # H(1/2, 1/4, 1/4) = 0.5 ln 2 + 2 * 0.25 ln 4 = 1.5 ln 2;  H(uniform on 3) = ln 3.
    # λ = 1, K = 3: weight 1/ln 3, so the uniform row loses exactly 1.
    weight = entropy_weight(1.0, 3)
    assert weight == pytest.approx(1 / math.log(3), rel=1e-15)
    expected = torch.tensor(
        [1.25 - 1.5 * math.log(2) / math.log(3), 2.25 - 1.5 * math.log(2) / math.log(3), 2 / 3 - 1.0],
        dtype=torch.float64,
    )
    loss = wasserstein_loss(hand_logits(), target, C3_SQUARED, entropy_weight=weight, reduction="none")
    torch.testing.assert_close(loss, expected, rtol=1e-14, atol=1e-15)
    module = WassersteinLoss(C3, p=2, lam=1.0, reduction="none")
    torch.testing.assert_close(module(hand_logits(), target), expected, rtol=1e-14, atol=1e-15)


def test_reductions():
    target = torch.tensor([0, 2, 1])
    total = 1.25 + 2.25 + 2 / 3
    assert wasserstein_loss(hand_logits(), target, C3_SQUARED).item() == pytest.approx(total / 3, rel=1e-14)
    assert wasserstein_loss(hand_logits(), target, C3_SQUARED, reduction="sum").item() == pytest.approx(total, rel=1e-14)
    assert wasserstein_loss(hand_logits(), target, C3_SQUARED, reduction="none").shape == (3,)
    assert WassersteinLoss(C3, p=2)(hand_logits(), target).item() == pytest.approx(total / 3, rel=1e-14)


def test_uniform_metric_is_one_minus_true_probability():
    logits, target = random_logits(5, 40, 7)
    uniform = torch.ones(7, 7, dtype=torch.float64) - torch.eye(7, dtype=torch.float64)
    loss = WassersteinLoss(uniform, p=1, reduction="none")(logits, target)
    expected = 1 - torch.softmax(logits, dim=1)[torch.arange(40), target]
    torch.testing.assert_close(loss, expected, rtol=1e-12, atol=1e-15)


# --- optimal transport references ----------------------------------------------------------------


@pytest.mark.parametrize("p", [1.0, 2.5])
@pytest.mark.parametrize(("seed", "k"), [(0, 3), (1, 6), (2, 10)])
def test_matches_exact_optimal_transport(seed, k, p):
    cost = random_metric(seed, k)
    logits, target = random_logits(seed + 100, 25, k)
    loss = wasserstein_loss(logits, target, torch.from_numpy(cost**p), reduction="none").numpy()
    q = torch.softmax(logits, dim=1).numpy()
    onehots = np.eye(k)
    exact = np.array([ot.emd2(onehots[t], q[n] / q[n].sum(), cost**p) for n, t in enumerate(target.tolist())])
    rel = np.abs(loss - exact) / np.maximum(np.abs(exact), 1e-12)
    assert rel.max() < 1e-9


@pytest.mark.parametrize("p", [0.5, 1.0, 2.5, 10.0])
def test_matches_numpy_closed_form(p):
    cost = random_metric(7, 9)
    logits, target = random_logits(8, 30, 9)
    expected = wasserstein_to_onehot(cost, torch.softmax(logits, dim=1).numpy(), target.numpy(), p=p)
    loss = WassersteinLoss(torch.from_numpy(cost), p=p, reduction="none")(logits, target)
    np.testing.assert_allclose(loss.numpy(), expected, rtol=1e-12)


# --- gradients -----------------------------------------------------------------------------------


def test_gradcheck_float64():
    logits, target = random_logits(3, 6, 5)
    cost_p = torch.from_numpy(random_metric(3, 5) ** 2.5)
    logits.requires_grad_(True)
    assert torch.autograd.gradcheck(
        lambda z: wasserstein_loss(z, target, cost_p, entropy_weight=0.3, reduction="none"), (logits,)
    )


def test_gradient_matches_hand_formula():
    # d/dz_j (c · softmax(z)) = ŷ_j (c_j − c · ŷ), with c the target's row of C^p.
    logits, target = random_logits(4, 12, 6)
    cost_p = torch.from_numpy(random_metric(4, 6) ** 2)
    logits.requires_grad_(True)
    wasserstein_loss(logits, target, cost_p, reduction="sum").backward()
    q = torch.softmax(logits.detach(), dim=1)
    rows = cost_p[target]
    expected = q * (rows - (rows * q).sum(dim=1, keepdim=True))
    torch.testing.assert_close(logits.grad, expected, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("reduction", ["sum", "mean"])
@pytest.mark.parametrize("n, k", [(1, 2), (7, 3), (128, 10), (300, 100)])
def test_reduced_loss_without_entropy_has_the_per_sample_forms_gradient_bit_for_bit(dtype, reduction, n, k):
    # λ = ∞ takes one reduction over the batch (the attacks' step objective): the same gradient to the last bit as
    # reducing the per-sample losses, so WPGD's iterates do not move; the value agrees to rounding.
    logits, target = random_logits(n * k, n, k)
    logits = logits.to(dtype)
    cost_p = torch.from_numpy(random_metric(k, k) ** 2.5).to(dtype)
    fast = logits.clone().requires_grad_(True)
    slow = logits.clone().requires_grad_(True)
    value = wasserstein_loss(fast, target, cost_p, reduction=reduction)
    per_sample = wasserstein_loss(slow, target, cost_p, reduction="none")
    reference = per_sample.sum() if reduction == "sum" else per_sample.mean()
    (g_fast,) = torch.autograd.grad(value, fast)
    (g_slow,) = torch.autograd.grad(reference, slow)
    assert torch.equal(g_fast, g_slow)
    torch.testing.assert_close(value, reference, rtol=1e-6 if dtype == torch.float32 else 1e-13, atol=0)


def test_wpgd_steps_on_the_reduced_loss_to_the_same_iterates():
    from wpgdkit.attacks import WPGD
    from wpgdkit.attacks.base import Attack

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 5))
    x, y = torch.rand(16, 3, 2, 2), torch.randint(0, 5, (16,))
    metric = random_metric(0, 5)
    for lam in (math.inf, 2.0):
        now = WPGD(model, metric, p=2.5, lam=lam, eps=0.1, steps=5)
        before = WPGD(model, metric, p=2.5, lam=lam, eps=0.1, steps=5)
        before._summed = Attack._summed.__get__(before)  # the per-sample objective, then summed
        seed = torch.Generator().manual_seed
        assert torch.equal(now(x, y, generator=seed(1)), before(x, y, generator=seed(1)))


def test_one_hot_prediction_has_finite_value_and_gradient():
    # A logit gap of 1e4 makes ŷ exactly one-hot in float32; log ŷ would be −inf.
    logits = torch.tensor([[1e4, 0.0, 0.0], [0.0, 1e4, -1e4]], requires_grad=True)
    target = torch.tensor([0, 2])
    assert torch.softmax(logits, dim=1)[1, 0].item() == 0.0
    loss = wasserstein_loss(logits, target, C3_SQUARED, entropy_weight=0.5, reduction="none")
    assert torch.isfinite(loss).all()
    # H = 0 at a one-hot ŷ: the first sample is correct (cost 0), the second pays C^2[2, 1] = 1.
    torch.testing.assert_close(loss.detach(), torch.tensor([0.0, 1.0]))
    loss.sum().backward()
    assert torch.isfinite(logits.grad).all()


# --- the entropy term ----------------------------------------------------------------------------


def test_larger_entropy_lowers_the_loss():
    uniform = torch.ones(3, 3, dtype=torch.float64) - torch.eye(3, dtype=torch.float64)
    # ŷ = (1/2, 1/2, 0) and (1/2, 1/4, 1/4): the same transport cost 1/2 for target 0,
    # entropies ln 2 < 1.5 ln 2.
    logits = torch.log(torch.tensor([[0.5, 0.5, 1e-300], [0.5, 0.25, 0.25]], dtype=torch.float64))
    target = torch.tensor([0, 0])
    plain = wasserstein_loss(logits, target, uniform, reduction="none")
    torch.testing.assert_close(plain, torch.tensor([0.5, 0.5], dtype=torch.float64))
    regularised = wasserstein_loss(logits, target, uniform, entropy_weight=0.2, reduction="none")
    assert regularised[1] < regularised[0] < plain[0]
    assert (plain[1] - regularised[1]).item() == pytest.approx(0.2 * 1.5 * math.log(2), rel=1e-12)


def test_infinite_lambda_means_no_entropy_term():
    assert entropy_weight(math.inf, 10) == 0.0
    module = WassersteinLoss(C3, p=2, lam=math.inf, reduction="none")
    assert module.entropy_weight == 0.0
    target = torch.tensor([0, 2, 1])
    torch.testing.assert_close(module(hand_logits(), target), wasserstein_loss(hand_logits(), target, C3_SQUARED,
                                                                               reduction="none"))


def test_entropy_weight_formula():
    assert entropy_weight(2.0, 10) == pytest.approx(1 / (2 * math.log(10)), rel=1e-15)


# --- the module ----------------------------------------------------------------------------------


def test_module_holds_powered_cost_as_buffer_and_casts():
    module = WassersteinLoss(C3, p=2)
    assert "cost_p" in dict(module.named_buffers())
    torch.testing.assert_close(module.cost_p, C3_SQUARED)
    assert list(module.parameters()) == []
    # float64 cost, float32 logits: the loss follows the logits.
    loss = module(hand_logits().float(), torch.tensor([0, 2, 1]))
    assert loss.dtype == torch.float32
    # float32 is the point here: ~a dozen roundings (exp, sums, mean) of u = 6e-8 with no cancellation.
    assert loss.item() == pytest.approx((1.25 + 2.25 + 2 / 3) / 3, rel=1e-5)
    assert module.float().cost_p.dtype == torch.float32


# --- errors --------------------------------------------------------------------------------------


@pytest.mark.parametrize("lam", [0.0, -1.0, math.nan])
def test_nonpositive_lambda_rejected(lam):
    with pytest.raises(WpgdkitError, match="lambda"):
        entropy_weight(lam, 3)
    with pytest.raises(WpgdkitError, match="lambda"):
        WassersteinLoss(C3, p=1, lam=lam)


def test_single_class_rejected():
    with pytest.raises(WpgdkitError, match="2 classes"):
        entropy_weight(1.0, 1)


@pytest.mark.parametrize("p", [0.0, -1.0, math.nan, math.inf])
def test_nonpositive_p_rejected(p):
    with pytest.raises(WpgdkitError, match="p must be a positive finite number"):
        WassersteinLoss(C3, p=p)


def test_unknown_reduction_rejected():
    with pytest.raises(WpgdkitError, match="reduction"):
        wasserstein_loss(hand_logits(), torch.tensor([0, 1, 2]), C3, reduction="average")
    with pytest.raises(WpgdkitError, match="reduction"):
        WassersteinLoss(C3, reduction="max")


@pytest.mark.parametrize(
    "cost",
    [torch.zeros(3, 4), torch.zeros(3), torch.tensor([[0.0, -1.0], [1.0, 0.0]]), torch.tensor([[0.0, math.inf], [1.0, 0.0]])],
)
def test_bad_cost_rejected(cost):
    with pytest.raises(WpgdkitError, match="cost"):
        WassersteinLoss(cost)


def test_shape_mismatches_rejected():
    with pytest.raises(WpgdkitError, match="cost"):
        wasserstein_loss(torch.zeros(2, 4), torch.tensor([0, 1]), C3)
    with pytest.raises(WpgdkitError, match="target"):
        wasserstein_loss(torch.zeros(2, 3), torch.tensor([0, 1, 2]), C3)
    with pytest.raises(WpgdkitError, match="logits"):
        wasserstein_loss(torch.zeros(3), torch.tensor([0]), C3)


def test_a_power_that_overflows_float32_is_refused_where_c_p_is_made():
    from wpgdkit.attacks import WPGD
    from wpgdkit.errors import WpgdkitError
    from wpgdkit.losses import MAX_POWERED_COST, check_powered_cost

    cost = (1 - torch.eye(3, dtype=torch.float64)) * 1e10
    check_powered_cost(1e10, 3.0)  # 1e30: the largest allowed
    with pytest.raises(WpgdkitError, match=r"p must keep C\^p finite in float32"):
        WassersteinLoss(cost, p=3.1)
    with pytest.raises(WpgdkitError, match=r"p must keep C\^p finite in float32"):
        WPGD(torch.nn.Linear(2, 3), cost, p=4.0, eps=0.1, bounds=None)
    assert float(WassersteinLoss(cost, p=3.0).cost_p.max()) == pytest.approx(MAX_POWERED_COST)
