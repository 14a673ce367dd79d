"""Closed-form Wasserstein distance to a one-hot target against POT (wpgdkit.labelmetric.ot_check)."""

from __future__ import annotations

import math
import warnings

import numpy as np
import ot
import pytest
from scipy import stats

from wpgdkit.errors import WpgdkitError
from wpgdkit.labelmetric.core import LabelMetric
from wpgdkit.labelmetric.ot_check import (
    OTCheckReport,
    entropy,
    reference_check,
    sample_predictions,
    wasserstein_to_onehot,
)


def random_metric(seed: int, k: int, symmetric: bool = True) -> np.ndarray:
    rng = np.random.default_rng(seed)
    c = rng.random((k, k)) * rng.choice([0.1, 1.0, 50.0])
    if symmetric:
        c = (c + c.T) / 2
    np.fill_diagonal(c, 0.0)
    return c


def as_metric(c: np.ndarray) -> LabelMetric:
    return LabelMetric(tuple(f"c{i}" for i in range(len(c))), c)


def dirichlet_predictions(seed: int, k: int, n: int):
    rng = np.random.default_rng(seed)
    q = rng.dirichlet(np.full(k, 0.5), size=n)
    q[1] = 0.0
    q[1, rng.integers(k)] = 1.0  # a one-hot prediction
    q[2, : k // 2] = 0.0  # a prediction with zeros
    q[2] /= q[2].sum()
    return q, rng.integers(0, k, size=n)


# --- the closed form -----------------------------------------------------------------------------


def test_closed_form_hand_checked():
    c = np.array([[0.0, 1.0, 2.0], [1.0, 0.0, 3.0], [2.0, 3.0, 0.0]])
    q = np.array([[0.2, 0.3, 0.5], [0.2, 0.3, 0.5], [0.0, 1.0, 0.0]])
    target = np.array([0, 2, 1])
    # Row 0: 0.3*1 + 0.5*2; row 1 (target 2): 0.2*2 + 0.3*3; row 2: q is the target.
    np.testing.assert_allclose(wasserstein_to_onehot(c, q, target), [1.3, 1.3, 0.0], rtol=1e-15)
    np.testing.assert_allclose(wasserstein_to_onehot(c, q, target, p=2), [2.3, 3.5, 0.0], rtol=1e-15)


@pytest.mark.parametrize("p", [0.5, 1.0, 2.5])
@pytest.mark.parametrize(("seed", "k", "symmetric"), [(0, 3, True), (1, 7, True), (2, 5, False), (3, 12, False)])
def test_closed_form_matches_ot_emd2(p, seed, k, symmetric):
    c = random_metric(seed, k, symmetric)
    q, target = dirichlet_predictions(seed + 100, k, 25)
    got = wasserstein_to_onehot(c, q, target, p=p)
    cost = c**p
    exact = np.array([ot.emd2(np.eye(k)[t], q[n], cost) for n, t in enumerate(target)])
    assert got.shape == (25,)
    scale = np.maximum(np.abs(exact), 1e-300)
    nonzero = exact != 0
    assert np.all(np.abs(got - exact)[nonzero] / scale[nonzero] < 1e-9)
    np.testing.assert_allclose(got[~nonzero], 0.0, atol=1e-15 * cost.max())


def test_closed_form_uses_the_row_of_the_target():
    # Asymmetric cost: moving mass out of class 0 is cheap, into class 0 expensive.
    c = np.array([[0.0, 1.0], [9.0, 0.0]])
    q = np.array([[0.5, 0.5]])
    assert wasserstein_to_onehot(c, q, np.array([0]))[0] == pytest.approx(0.5)
    assert wasserstein_to_onehot(c, q, np.array([1]))[0] == pytest.approx(4.5)
    assert ot.emd2(np.array([1.0, 0.0]), q[0], c) == pytest.approx(0.5)


# --- entropic optimal transport (log-domain Sinkhorn) ----------------------------------------------------


@pytest.mark.parametrize("rel_reg", [1.0, 0.1, 0.01])
def test_entropic_relation_with_log_domain_sinkhorn(rel_reg):
    k = 6
    c = random_metric(7, k)
    q, target = dirichlet_predictions(8, k, 5)
    closed = wasserstein_to_onehot(c, q, target)
    reg = rel_reg * c.max()
    for n, t in enumerate(target):
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            plan = ot.sinkhorn(np.eye(k)[t], q[n], c, reg, method="sinkhorn_log", numItermax=10_000, stopThr=1e-13)
        # The plan is forced: all mass sits on row t, and that row is q.
        np.testing.assert_allclose(plan, np.outer(np.eye(k)[t], q[n]), atol=1e-12)
        transport = float((plan * c).sum())
        assert transport == pytest.approx(closed[n], rel=1e-9, abs=1e-12)
        # <π, C> - ε H(π) falls short of W by exactly ε H(q) (H(π) = H(q) for the forced plan).
        h_plan = stats.entropy(plan.ravel()[plan.ravel() > 0])
        h_q = stats.entropy(q[n][q[n] > 0]) if q[n].max() < 1 else 0.0
        assert closed[n] - (transport - reg * h_plan) == pytest.approx(reg * h_q, rel=1e-8, abs=1e-12)


def test_reference_check_sinkhorn_rows_match_a_recomputation():
    c = random_metric(4, 5)
    report = reference_check(as_metric(c), samples=30, sinkhorn_samples=6, regs=(1.0, 0.1, 0.01))
    q, target = sample_predictions(5, 30, seed=0)
    h = np.array([stats.entropy(row[row > 0]) for row in q[:6]])
    assert [row.reg_relative for row in report.sinkhorn] == [1.0, 0.1, 0.01]
    for row in report.sinkhorn:
        assert row.reg == pytest.approx(row.reg_relative * c.max(), rel=1e-15)
        assert row.expected_gap == pytest.approx(row.reg * h.mean(), rel=1e-12)
        assert row.objective_gap == pytest.approx(row.expected_gap, rel=1e-7, abs=1e-12)
        assert row.cost_error < 1e-9
    gaps = [row.objective_gap for row in report.sinkhorn]
    assert gaps[0] > gaps[1] > gaps[2] > 0  # the entropic objective approaches W as ε shrinks


# --- reference_check -------------------------------------------------------------------------------------


@pytest.mark.parametrize("p", [0.5, 1.0, 2.5])
def test_reference_check_passes_on_a_valid_metric(p):
    metric = as_metric(random_metric(5, 6))
    report = reference_check(metric, p=p, samples=60, sinkhorn_samples=3)
    assert isinstance(report, OTCheckReport)
    assert report.passed, report.failures
    assert report.failures == []
    assert report.num_classes == 6 and report.p == p and report.samples == 60 and report.sinkhorn_samples == 3
    assert report.emd_max_relative_error < 1e-9 and report.emd_tolerance == 1e-9
    assert len(report.sinkhorn) == 4
    data = report.to_dict()
    assert data["passed"] is True and data["num_classes"] == 6 and len(data["sinkhorn"]) == 4


def test_reference_check_fails_when_the_power_is_forgotten():
    c = random_metric(6, 5)
    metric = as_metric(c)

    def forgot_power(cost_p, q, target):
        return wasserstein_to_onehot(c, q, target, p=1.0)  # C instead of C^p

    report = reference_check(metric, p=2.0, samples=40, sinkhorn_samples=2, closed_form=forgot_power)
    assert not report.passed
    assert "ot.emd2" in report.failures[0]
    assert report.emd_max_relative_error > 1e-3
    assert report.to_dict()["passed"] is False


def test_reference_check_fails_with_the_column_on_an_asymmetric_metric():
    c = random_metric(9, 5, symmetric=False)

    def column(cost_p, q, target):
        return np.einsum("nk,nk->n", cost_p.T[target], q)

    report = reference_check(as_metric(c), p=1.0, samples=40, sinkhorn_samples=2, closed_form=column)
    assert not report.passed and "ot.emd2" in report.failures[0]
    # The right closed form on the same metric passes.
    assert reference_check(as_metric(c), p=1.0, samples=40, sinkhorn_samples=2).passed


def test_reference_check_without_sinkhorn():
    report = reference_check(as_metric(random_metric(1, 4)), samples=10, sinkhorn_samples=0)
    assert report.passed and report.sinkhorn == [] and report.sinkhorn_samples == 0


@pytest.mark.parametrize("p", [0.0, -1.0, float("nan")])
def test_reference_check_rejects_non_positive_p(p):
    with pytest.raises(WpgdkitError, match="p must be a number > 0"):
        reference_check(as_metric(random_metric(1, 3)), p=p, samples=5)


@pytest.mark.parametrize(("samples", "sinkhorn_samples"), [(0, 0), (5, -1)])
def test_reference_check_rejects_bad_sample_counts(samples, sinkhorn_samples):
    with pytest.raises(WpgdkitError, match="samples"):
        reference_check(as_metric(random_metric(1, 3)), samples=samples, sinkhorn_samples=sinkhorn_samples)


# --- entropy and the prediction sampler ----------------------------------------------------------------------


@pytest.mark.parametrize("k", [2, 3, 10, 100])
def test_entropy_uniform_and_one_hot(k):
    assert entropy(np.full(k, 1.0 / k)) == pytest.approx(math.log(k), rel=1e-14)
    assert entropy(np.eye(k)[k // 2]) == 0.0


def test_entropy_hand_values_and_rows():
    q = np.array([[0.5, 0.5, 0.0], [0.25, 0.75, 0.0], [1.0, 0.0, 0.0]])
    got = entropy(q)
    assert got.shape == (3,)
    expected = [math.log(2), -(0.25 * math.log(0.25) + 0.75 * math.log(0.75)), 0.0]
    np.testing.assert_allclose(got, expected, rtol=1e-14)
    np.testing.assert_allclose(got[:2], stats.entropy(q[:2].T), rtol=1e-14)


@pytest.mark.parametrize("k", [2, 5, 20])
def test_sample_predictions(k):
    q, target = sample_predictions(k, 30, seed=3)
    assert q.shape == (30, k) and target.shape == (30,)
    assert np.all((0 <= target) & (target < k))
    np.testing.assert_array_equal(q[0], np.eye(k)[target[0]])  # first row equals its one-hot target
    np.testing.assert_allclose(q.sum(1), 1.0, rtol=0, atol=1e-12)
    assert np.all(q >= 0)
    q2, target2 = sample_predictions(k, 30, seed=3)
    np.testing.assert_array_equal(q, q2)
    np.testing.assert_array_equal(target, target2)
    q3, _ = sample_predictions(k, 30, seed=4)
    assert not np.array_equal(q, q3)


def test_sample_predictions_has_sparse_rows():
    q, _ = sample_predictions(20, 30, seed=0)
    # Every third row from index 2 is supported on a random subset.
    assert all((q[n] == 0).any() for n in range(2, 30, 3))


@pytest.mark.parametrize("p", [float("inf"), float("-inf")])
def test_reference_check_rejects_an_infinite_p(p):
    # p = inf once ran, with NumPy warnings, into a check of a matrix of 0 and inf.
    with pytest.raises(WpgdkitError, match=r"p must be a number > 0, got -?inf"):
        reference_check(as_metric(random_metric(1, 3)), p=p, samples=5)


def test_reference_check_refuses_a_power_that_overflows():
    c = np.array([[0.0, 1e100], [1e100, 0.0]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(WpgdkitError, match=r"C\^p overflows"):
            reference_check(as_metric(c), p=4.0, samples=5, sinkhorn_samples=0)


# --- the numbers reference_check takes are checked up front (regressions: --seed -1 was a ValueError) ---


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        ({"seed": -1}, "seed"),
        ({"seed": 2**32}, "seed"),
        ({"seed": 1.5}, "seed"),
        ({"samples": 0}, "samples"),
        ({"samples": 10**9}, "samples"),
        ({"samples": 2.0}, "samples"),
        ({"sinkhorn_samples": -1}, "sinkhorn_samples"),
        ({"emd_tolerance": float("nan")}, "emd_tolerance"),
        ({"sinkhorn_tolerance": -1.0}, "sinkhorn_tolerance"),
        ({"regs": (1.0, 0.0)}, "regularisation"),
    ],
)
def test_reference_check_refuses_bad_numbers(kwargs, fragment):
    metric = LabelMetric(("a", "b"), [[0.0, 1.0], [1.0, 0.0]])
    with pytest.raises(WpgdkitError, match=fragment):
        reference_check(metric, **{"samples": 5, "sinkhorn_samples": 0, **kwargs})


def test_reference_check_accepts_the_largest_seed():
    metric = LabelMetric(("a", "b"), [[0.0, 1.0], [1.0, 0.0]])
    assert reference_check(metric, samples=5, sinkhorn_samples=0, seed=2**32 - 1).passed
