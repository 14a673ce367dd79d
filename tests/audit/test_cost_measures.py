"""Cost-sensitive robust error, hierarchical distance@1 and standard errors (wpgdkit.audit.scores).

Hand-computed values on the 9-point example of test_audit_scores, independent
recomputations with plain loops, and Monte Carlo simulations for the
standard errors (seeded, float64, tolerances from the simulation's own error).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from wpgdkit.audit.scores import (
    binomial_standard_error,
    confusion_matrix,
    cost_sensitive_robust_error,
    cost_sensitive_robust_error_per_class,
    default_cost_threshold,
    error_rate,
    hierarchical_distance_at_1,
    mistake_severity,
    score_standard_error,
    seed_classes,
    weighted_score,
)
from wpgdkit.errors import WpgdkitError

Y = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2, 2])
P = torch.tensor([0, 1, 2, 1, 1, 0, 2, 2, 1])
C = torch.tensor([[0.0, 1.0, 4.0], [1.0, 0.0, 2.0], [4.0, 2.0, 0.0]])
# The cost of each of the nine answers, C[y, ŷ]: 0→0, 0→1, 0→2, 1→1, 1→1, 2→0, 2→2, 2→2, 2→1.
COSTS = [0.0, 1.0, 4.0, 0.0, 0.0, 4.0, 0.0, 0.0, 2.0]


def nan_equal(a, b) -> bool:
    return np.allclose(np.asarray(a, dtype=float), np.asarray(b, dtype=float), equal_nan=True)


# --- the threshold ----------------------------------------------------------------------


def test_binary_metric_counts_any_positive_cost():
    binary = torch.tensor([[0.0, 1.0, 0.0], [0.0, 0.0, 0.0], [1.0, 1.0, 0.0]])
    assert default_cost_threshold(binary) == 1.0
    # Binary up to scale, mostly zeros (the median is 0), or mostly ones (the median is the value itself).
    assert default_cost_threshold(2.5 * binary) == 2.5
    assert default_cost_threshold(torch.ones(4, 4) - torch.eye(4)) == 1.0
    # Rounding noise from a text file does not make a binary metric real-valued.
    assert default_cost_threshold(binary * (1 + 1e-15)) == pytest.approx(1.0)


def test_real_metric_uses_the_median_of_the_offdiagonal_costs():
    # Off-diagonal costs, both triangles: 1, 4, 1, 2, 4, 2 → median (2 + 2) / 2.
    assert default_cost_threshold(C) == 2.0
    # An even count with distinct middle values: their mean. 1, 2, 3, 4, 5, 6 → 3.5.
    odd = torch.tensor([[0.0, 1.0, 2.0], [3.0, 0.0, 4.0], [5.0, 6.0, 0.0]])
    assert default_cost_threshold(odd) == 3.5
    assert default_cost_threshold(odd.numpy()) == 3.5  # arrays as well as tensors


def test_threshold_never_falls_to_a_zero_cost():
    # A pseudo-metric with mostly zero costs: the median is 0, the threshold the smallest positive cost.
    pseudo = torch.zeros(4, 4)
    pseudo[0, 1], pseudo[1, 0], pseudo[2, 3] = 3.0, 5.0, 7.0
    assert default_cost_threshold(pseudo) == 3.0


def test_no_positive_cost_means_nothing_is_costly():
    assert default_cost_threshold(torch.zeros(1, 1)) == math.inf
    assert default_cost_threshold(torch.zeros(3, 3)) == math.inf
    with pytest.raises(WpgdkitError, match="NaN or infinite"):
        default_cost_threshold(torch.tensor([[0.0, math.nan], [1.0, 0.0]]))
    with pytest.raises(WpgdkitError, match="square"):
        default_cost_threshold(torch.zeros(2, 3))


def test_seed_classes_have_a_class_at_cost_at_least_tau():
    assert seed_classes(C, threshold=2.0).tolist() == [True, True, True]
    assert seed_classes(C, threshold=3.0).tolist() == [True, False, True]  # class 1 is at most 2 from anything
    assert seed_classes(C, threshold=5.0).tolist() == [False, False, False]
    with pytest.raises(WpgdkitError, match="positive"):
        seed_classes(C, threshold=0.0)


# --- the cost-sensitive robust error ---------------------------------------------------------


def test_cost_sensitive_robust_error_by_hand():
    # τ = 2: the costly answers are 0→2 (4), 2→0 (4) and 2→1 (2); every class is a seed class.
    assert cost_sensitive_robust_error(Y, P, C, threshold=2.0) == pytest.approx(100 * 3 / 9)
    assert nan_equal(cost_sensitive_robust_error_per_class(Y, P, C, threshold=2.0), [100 / 3, 0.0, 50.0])
    # The default threshold of C is 2.
    assert cost_sensitive_robust_error(Y, P, C) == pytest.approx(100 * 3 / 9)
    # τ = 3: only 0↔2 is costly; class 1 has no costly target and leaves the denominator (the paper's seeds).
    assert cost_sensitive_robust_error(Y, P, C, threshold=3.0) == pytest.approx(100 * 2 / 7)
    assert cost_sensitive_robust_error(Y, P, C, threshold=3.0, over="all") == pytest.approx(100 * 2 / 9)
    assert nan_equal(cost_sensitive_robust_error_per_class(Y, P, C, threshold=3.0), [100 / 3, math.nan, 25.0])
    assert nan_equal(cost_sensitive_robust_error_per_class(Y, P, C, threshold=3.0, over="all"), [100 / 3, 0.0, 25.0])


def test_binary_cost_matrix_as_in_zhang_and_evans():
    # Protect class 0: turning it into anything else matters, nothing else does (an asymmetric binary matrix).
    protect = torch.zeros(3, 3)
    protect[0, 1] = protect[0, 2] = 1.0
    assert default_cost_threshold(protect) == 1.0
    assert seed_classes(protect, threshold=1.0).tolist() == [True, False, False]
    # Class 0's points: 0→0, 0→1, 0→2: two of three reach a class of cost 1.
    assert cost_sensitive_robust_error(Y, P, protect) == pytest.approx(100 * 2 / 3)
    assert nan_equal(cost_sensitive_robust_error_per_class(Y, P, protect), [200 / 3, math.nan, math.nan])
    # With all classes in the denominator: 2 of 9.
    assert cost_sensitive_robust_error(Y, P, protect, over="all") == pytest.approx(100 * 2 / 9)


def test_cost_sensitive_robust_error_equals_a_plain_loop():
    rng = np.random.default_rng(7)
    k, n = 6, 500
    cost = rng.integers(1, 6, (k, k)).astype(float)
    np.fill_diagonal(cost, 0.0)
    y, p = rng.integers(0, k, n), rng.integers(0, k, n)
    tau = default_cost_threshold(cost)
    seeds = [any(cost[i, j] >= tau for j in range(k) if j != i) for i in range(k)]
    counted = [t for t in range(n) if seeds[y[t]]]
    hits = [t for t in counted if p[t] != y[t] and cost[y[t], p[t]] >= tau]
    value = cost_sensitive_robust_error(torch.from_numpy(y), torch.from_numpy(p), torch.from_numpy(cost))
    assert value == pytest.approx(100 * len(hits) / len(counted))
    per_class = cost_sensitive_robust_error_per_class(torch.from_numpy(y), torch.from_numpy(p), cost)
    # The overall value is the per-class values weighted by the classes' points.
    points = np.bincount(y, minlength=k)
    finite = ~np.isnan(per_class.numpy())
    assert value == pytest.approx(float((per_class.numpy()[finite] * points[finite]).sum() / points[finite].sum()))


def test_correct_answers_never_count_and_odd_inputs():
    assert cost_sensitive_robust_error(Y, Y, C, threshold=1e-9) == 0.0
    # Nothing costly: no seed class, nothing to count (NaN), or 0 over all points.
    assert math.isnan(cost_sensitive_robust_error(Y, P, C, threshold=math.inf))
    assert cost_sensitive_robust_error(Y, P, C, threshold=math.inf, over="all") == 0.0
    assert math.isnan(cost_sensitive_robust_error(Y, P, torch.zeros(3, 3)))
    empty = torch.tensor([], dtype=torch.int64)
    assert math.isnan(cost_sensitive_robust_error(empty, empty, C))
    # A class without points is NaN in the per-class values, not 0.
    assert math.isnan(float(cost_sensitive_robust_error_per_class(Y[:5], P[:5], C)[2]))
    for bad in (0.0, -1.0, math.nan, "2"):
        with pytest.raises(WpgdkitError, match="threshold"):
            cost_sensitive_robust_error(Y, P, C, threshold=bad)
    with pytest.raises(WpgdkitError, match="denominator"):
        cost_sensitive_robust_error(Y, P, C, over="seeds")
    with pytest.raises(WpgdkitError, match="0..2"):
        cost_sensitive_robust_error(Y, P + 1, C)


# --- hierarchical distance@1 -----------------------------------------------------------------


def test_hierarchical_distance_by_hand():
    assert hierarchical_distance_at_1(Y, P, C) == pytest.approx(sum(COSTS) / 9)
    assert hierarchical_distance_at_1(Y, Y, C) == 0.0
    # Over all points, correct ones counting 0: error rate × mistake severity (the mean over mistakes).
    assert hierarchical_distance_at_1(Y, P, C) == pytest.approx(error_rate(Y, P) / 100 * mistake_severity(Y, P, C))
    empty = torch.tensor([], dtype=torch.int64)
    assert math.isnan(hierarchical_distance_at_1(empty, empty, C))


def test_hierarchical_distance_is_the_score_normalised_over_all_points():
    # Both are Σ_ij c_ij m_ij / N: hdist@1 of the adversarial answers is S with normalize="all".
    expected = weighted_score(confusion_matrix(Y, P, 3), C, normalize="all")
    assert hierarchical_distance_at_1(Y, P, C) == pytest.approx(expected)
    rng = np.random.default_rng(11)
    for k, n in ((2, 50), (5, 400), (17, 1000)):
        cost = rng.random((k, k))
        cost = cost + cost.T
        np.fill_diagonal(cost, 0.0)
        y, p = torch.from_numpy(rng.integers(0, k, n)), torch.from_numpy(rng.integers(0, k, n))
        c = torch.from_numpy(cost)
        expected = weighted_score(confusion_matrix(y, p, k), c, normalize="all")
        assert hierarchical_distance_at_1(y, p, c) == pytest.approx(expected, rel=1e-12)


def test_correct_answers_count_zero_even_with_a_noisy_diagonal():
    noisy = C + 1e-9 * torch.eye(3)
    assert hierarchical_distance_at_1(Y, Y, noisy) == 0.0
    assert hierarchical_distance_at_1(Y, P, noisy) == pytest.approx(sum(COSTS) / 9, abs=0.0, rel=1e-15)


# --- standard errors -----------------------------------------------------------------------


def simulated_sd(draws: np.ndarray) -> tuple[float, float]:
    """The standard deviation of ``draws`` and the standard error of that estimate (from the fourth moment)."""
    centred = draws - draws.mean()
    variance = float(np.mean(centred**2))
    fourth = float(np.mean(centred**4))
    sd = math.sqrt(variance)
    # Var(s²) ≈ (m4 − s⁴) / R; by the delta method se(s) = se(s²) / (2 s).
    return sd, math.sqrt(max(fourth - variance**2, 0.0) / len(draws)) / (2 * sd)


def test_binomial_standard_error_by_hand_and_edges():
    assert binomial_standard_error(20.0, 100) == pytest.approx(4.0)
    assert binomial_standard_error(50.0, 10_000) == pytest.approx(0.5)
    assert binomial_standard_error(0.0, 30) == 0.0
    assert math.isnan(binomial_standard_error(20.0, 0))
    assert math.isnan(binomial_standard_error(math.nan, 100))
    with pytest.raises(WpgdkitError, match=r"\[0, 100\]"):
        binomial_standard_error(120.0, 10)
    for bad in (-1, 2.5, True):
        with pytest.raises(WpgdkitError, match="number of points"):
            binomial_standard_error(20.0, bad)


def test_binomial_standard_error_matches_a_simulation():
    rng = np.random.default_rng(2024)
    n, rate = 400, 30.0
    draws = rng.binomial(n, rate / 100, size=200_000).astype(np.float64) / n * 100
    sd, sd_error = simulated_sd(draws)
    assert binomial_standard_error(rate, n) == pytest.approx(sd, abs=5 * sd_error)


COUNTS = torch.tensor([[1, 1, 1], [0, 2, 0], [1, 1, 2]])  # confusion_matrix(Y, P, 3)


def test_score_standard_error_by_hand():
    assert torch.equal(confusion_matrix(Y, P, 3), COUNTS)
    # "true": per row, the variance of the costs of its answers over its n_i points, divided by n_i.
    row0 = (0 + 1 + 16) / 3 - ((0 + 1 + 4) / 3) ** 2  # costs 0, 1, 4
    row1 = 0.0  # costs 0, 0
    row2 = (16 + 4 + 0 + 0) / 4 - ((4 + 2 + 0 + 0) / 4) ** 2  # costs 4, 2, 0, 0
    expected_true = math.sqrt((row0 / 3 + row1 / 2 + row2 / 4) / 3**2)
    assert score_standard_error(COUNTS, C, normalize="true") == pytest.approx(expected_true)
    assert score_standard_error(COUNTS, C) == pytest.approx(expected_true)  # "true" is the default, as for S
    # "all": the variance of the nine costs over 9 points.
    costs = np.array(COSTS)
    expected_all = math.sqrt(costs.var() / 9)
    assert score_standard_error(COUNTS, C, normalize="all") == pytest.approx(expected_all)
    assert score_standard_error(COUNTS, C, normalize="none") == pytest.approx(9 * expected_all)


def test_score_standard_error_ignores_absent_classes_as_the_score_does():
    # Class 3 has no points: S and its standard error are those of the three classes present.
    counts = torch.zeros(4, 4, dtype=torch.int64)
    counts[:3, :3] = COUNTS
    cost = torch.zeros(4, 4, dtype=torch.float64)
    cost[:3, :3] = C
    cost[3, :3] = cost[:3, 3] = 9.0
    assert weighted_score(counts, cost) == pytest.approx(weighted_score(COUNTS, C))
    assert score_standard_error(counts, cost) == pytest.approx(score_standard_error(COUNTS, C))
    assert math.isnan(score_standard_error(torch.zeros(3, 3), C))
    assert math.isnan(score_standard_error(torch.zeros(3, 3), C, normalize="all"))


def test_score_standard_error_rejects_bad_input():
    with pytest.raises(WpgdkitError, match="normalisation"):
        score_standard_error(COUNTS, C, normalize="rows")
    with pytest.raises(WpgdkitError, match="non-negative"):
        score_standard_error(-COUNTS, C)
    with pytest.raises(WpgdkitError, match=r"\(3, 3\)"):
        score_standard_error(COUNTS, torch.ones(4, 4))


@pytest.fixture(scope="module")
def audit_like():
    """A 4-class adversarial confusion (counts) and metric, unbalanced classes."""
    rng = np.random.default_rng(5)
    k = 4
    cost = rng.integers(1, 8, (k, k)).astype(np.float64)
    cost = cost + cost.T
    np.fill_diagonal(cost, 0.0)
    sizes = np.array([25, 60, 40, 90])
    counts = np.stack([rng.multinomial(n, rng.dirichlet(np.ones(k))) for n in sizes])
    return counts, cost


def test_score_standard_error_true_matches_a_simulation(audit_like):
    # Each row a multinomial with the row's empirical probabilities, n_i fixed: the model the formula assumes.
    counts, cost = audit_like
    rng = np.random.default_rng(99)
    draws = 100_000
    k = len(counts)
    per_class = np.zeros((draws, k))
    for i, row in enumerate(counts):
        n = int(row.sum())
        simulated = rng.multinomial(n, row / n, size=draws).astype(np.float64)
        per_class[:, i] = simulated @ cost[i] / n
    scores = per_class.mean(axis=1)
    sd, sd_error = simulated_sd(scores)
    se = score_standard_error(torch.from_numpy(counts), torch.from_numpy(cost), normalize="true")
    assert se == pytest.approx(sd, abs=5 * sd_error)
    # And the simulation is centred on S itself.
    assert float(scores.mean()) == pytest.approx(weighted_score(torch.from_numpy(counts), torch.from_numpy(cost)),
                                                 abs=5 * sd / math.sqrt(draws))


def test_score_standard_error_all_matches_a_simulation(audit_like):
    # N points drawn independently from the joint empirical distribution of (class, answer).
    counts, cost = audit_like
    rng = np.random.default_rng(100)
    draws = 100_000
    total = int(counts.sum())
    simulated = rng.multinomial(total, (counts / total).ravel(), size=draws).astype(np.float64)
    raw = simulated @ cost.ravel()
    for normalize, scores in (("all", raw / total), ("none", raw)):
        sd, sd_error = simulated_sd(scores)
        se = score_standard_error(torch.from_numpy(counts), torch.from_numpy(cost), normalize=normalize)
        assert se == pytest.approx(sd, abs=5 * sd_error), normalize


def test_hierarchical_distance_standard_error_is_the_all_score_one():
    # hdist@1 is S over all points, so its standard error is score_standard_error(normalize="all").
    costs = np.array(COSTS)
    assert score_standard_error(confusion_matrix(Y, P, 3), C, normalize="all") == pytest.approx(
        costs.std() / math.sqrt(len(costs)))
