"""The audit's measures against hand-computed values and independent recomputations (numpy, scipy)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats

from wpgdkit.audit.scores import (
    accuracy_gap,
    confusion_matrix,
    entropy_histogram,
    error_rate,
    gap_correlation,
    mistake_severity,
    prediction_entropy,
    weighted_score,
)
from wpgdkit.errors import WpgdkitError

Y = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2, 2])
P = torch.tensor([0, 1, 2, 1, 1, 0, 2, 2, 1])
C = torch.tensor([[0.0, 1.0, 4.0], [1.0, 0.0, 2.0], [4.0, 2.0, 0.0]])


def test_confusion_counts_and_rates_by_hand():
    counts = confusion_matrix(Y, P, 3)
    assert counts.tolist() == [[1, 1, 1], [0, 2, 0], [1, 1, 2]]
    rates = confusion_matrix(Y, P, 3, normalize="true")
    assert torch.allclose(rates, torch.tensor([[1 / 3, 1 / 3, 1 / 3], [0, 1, 0], [0.25, 0.25, 0.5]], dtype=torch.float64))
    assert torch.allclose(confusion_matrix(Y, P, 3, normalize="all").sum(), torch.tensor(1.0, dtype=torch.float64))


def test_confusion_matches_a_plain_loop_on_random_labels():
    rng = np.random.default_rng(0)
    y, p = rng.integers(0, 7, 500), rng.integers(0, 7, 500)
    expected = np.zeros((7, 7), dtype=np.int64)
    for a, b in zip(y, p):
        expected[a, b] += 1
    assert np.array_equal(confusion_matrix(torch.from_numpy(y), torch.from_numpy(p), 7).numpy(), expected)


def test_absent_class_has_a_zero_row_not_nan():
    rates = confusion_matrix(torch.tensor([0, 0]), torch.tensor([0, 1]), 3, normalize="true")
    assert rates[2].tolist() == [0.0, 0.0, 0.0] and not rates.isnan().any()


def test_error_rate_in_percent():
    assert error_rate(Y, P) == pytest.approx(100 * 4 / 9)
    assert error_rate(Y, Y) == 0.0


def test_accuracy_gap_is_the_absolute_difference_of_rates():
    a = torch.tensor([[0.9, 0.1], [0.2, 0.8]], dtype=torch.float64)
    b = torch.tensor([[0.7, 0.3], [0.2, 0.8]], dtype=torch.float64)
    assert torch.allclose(accuracy_gap(a, b), torch.tensor([[0.2, 0.2], [0.0, 0.0]], dtype=torch.float64))
    with pytest.raises(WpgdkitError, match="baseline"):
        accuracy_gap(a, torch.eye(3))


def test_gap_correlation_equals_scipy_on_the_offdiagonal_pairs():
    rng = np.random.default_rng(1)
    gap, cost = rng.random((5, 5)), rng.random((5, 5))
    mask = ~np.eye(5, dtype=bool)
    result = gap_correlation(torch.from_numpy(gap), torch.from_numpy(cost))
    assert result.pearson == pytest.approx(stats.pearsonr(gap[mask], cost[mask]).statistic)
    assert result.spearman == pytest.approx(stats.spearmanr(gap[mask], cost[mask]).statistic)
    assert result.pairs == 20


def test_gap_correlation_of_a_model_with_itself_is_undefined():
    result = gap_correlation(torch.zeros(3, 3), C)
    assert math.isnan(result.pearson) and math.isnan(result.spearman)


def test_weighted_score_by_hand_for_each_normalisation():
    m = confusion_matrix(Y, P, 3)  # [[1,1,1],[0,2,0],[1,1,2]]
    raw = 1 * 1 + 1 * 4 + 0 + 1 * 4 + 1 * 2  # eq. 7: Σ c_ij m_ij = 11
    assert weighted_score(m, C, normalize="none") == pytest.approx(raw)
    assert weighted_score(m, C, normalize="all") == pytest.approx(raw / 9)
    per_class = [(1 + 4) / 3, 0 / 2, (4 + 2) / 4]
    assert weighted_score(m, C, normalize="true") == pytest.approx(sum(per_class) / 3)


def test_normalised_score_does_not_grow_with_the_test_set():
    m = confusion_matrix(Y, P, 3)
    for normalize in ("true", "all"):
        assert weighted_score(3 * m, C, normalize=normalize) == pytest.approx(weighted_score(m, C, normalize=normalize))
    assert weighted_score(3 * m, C, normalize="none") == pytest.approx(3 * weighted_score(m, C, normalize="none"))


def test_class_balanced_score_ignores_the_class_balance_of_the_test_set():
    m = confusion_matrix(Y, P, 3).double()
    skewed = m.clone()
    skewed[1] *= 10  # ten times more class-1 points, same per-class behaviour
    assert weighted_score(skewed, C) == pytest.approx(weighted_score(m, C))
    assert weighted_score(skewed, C, normalize="all") != pytest.approx(weighted_score(m, C, normalize="all"))


def test_weighted_score_rejects_unknown_normalisation_and_shape_mismatch():
    with pytest.raises(WpgdkitError, match="normalisation"):
        weighted_score(torch.eye(3), C, normalize="rows")
    with pytest.raises(WpgdkitError, match=r"\(3, 3\)"):
        weighted_score(torch.eye(3), torch.ones(4, 4))


def test_mistake_severity_averages_the_cost_of_mistakes_only():
    # mistakes: 0→1 (1), 0→2 (4), 2→0 (4), 2→1 (2)
    assert mistake_severity(Y, P, C) == pytest.approx((1 + 4 + 4 + 2) / 4)
    assert math.isnan(mistake_severity(Y, Y, C))


def test_prediction_entropy_matches_scipy():
    logits = torch.randn(20, 6, generator=torch.Generator().manual_seed(0))
    probs = torch.softmax(logits.double(), 1).numpy()
    assert np.allclose(prediction_entropy(logits).numpy(), stats.entropy(probs, axis=1))


def test_prediction_entropy_limits_without_nan():
    logits = torch.tensor([[0.0, 0.0, 0.0, 0.0], [0.0, -math.inf, -math.inf, -math.inf], [1e4, 0.0, 0.0, 0.0]])
    h = prediction_entropy(logits)
    assert h[0] == pytest.approx(math.log(4)) and h[1] == 0.0 and h[2] == pytest.approx(0.0, abs=1e-12)
    assert not h.isnan().any()


def test_entropy_histogram_equals_numpy_per_class():
    rng = np.random.default_rng(3)
    k, bins = 4, 8
    y = rng.integers(0, k, 300)
    h = rng.random(300) * math.log(k)
    h[:3] = math.log(k)  # the right edge belongs to the last bin, as in numpy
    edges, counts = entropy_histogram(torch.from_numpy(h), torch.from_numpy(y), k, bins=bins)
    for c in range(k):
        expected, np_edges = np.histogram(h[y == c], bins=bins, range=(0, math.log(k)))
        assert counts[c].tolist() == expected.tolist()
    assert np.allclose(edges.numpy(), np_edges)
    assert int(counts.sum()) == 300


def test_labels_out_of_range_are_refused():
    with pytest.raises(WpgdkitError, match="0..2"):
        confusion_matrix(torch.tensor([0, 3]), torch.tensor([0, 1]), 3)
    with pytest.raises(WpgdkitError, match="1-D"):
        error_rate(torch.tensor([0, 1]), torch.tensor([0]))


@pytest.mark.parametrize("bad", [torch.tensor([0.0, 1.0]), torch.tensor([0.5, 1.0]), torch.tensor([False, True])])
def test_non_integer_labels_are_refused_not_truncated(bad):
    # A float 0.5 would otherwise be cast to class 0 and counted silently.
    with pytest.raises(WpgdkitError, match="integer tensors"):
        confusion_matrix(bad, torch.tensor([0, 1]), 2)
    with pytest.raises(WpgdkitError, match="integer tensors"):
        error_rate(torch.tensor([0, 1]), bad)


def test_num_classes_must_be_positive():
    with pytest.raises(WpgdkitError, match="num_classes must be at least 1, got 0"):
        confusion_matrix(torch.tensor([0]), torch.tensor([0]), 0)
