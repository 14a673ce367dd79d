"""Correlation between label metrics (wpgdkit.labelmetric.compare)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from wpgdkit.errors import MetricFormatError
from wpgdkit.labelmetric.compare import (
    Correlation,
    align_metrics,
    matrix_correlation,
    metric_correlation,
    offdiagonal,
)
from wpgdkit.labelmetric.core import LabelMetric, Provenance


def pairs_of(matrix) -> list[float]:
    """Off-diagonal entries, row by row, written out with loops."""
    k = len(matrix)
    return [float(matrix[i][j]) for i in range(k) for j in range(k) if i != j]


def test_offdiagonal_order():
    m = np.arange(9).reshape(3, 3)
    np.testing.assert_array_equal(offdiagonal(m), [1, 2, 3, 5, 6, 7])
    m4 = np.arange(16).reshape(4, 4)
    assert offdiagonal(m4).tolist() == pairs_of(m4)


@pytest.mark.parametrize("seed", range(3))
def test_matches_scipy_on_random_asymmetric_matrices(seed):
    rng = np.random.default_rng(seed)
    k = 6
    a = rng.random((k, k))
    b = a + 0.5 * rng.random((k, k))
    np.fill_diagonal(a, 0)
    np.fill_diagonal(b, 0)
    x, y = pairs_of(a), pairs_of(b)
    got = matrix_correlation(a, b)
    p, s = stats.pearsonr(x, y), stats.spearmanr(x, y)
    assert got.pairs == 30
    assert got.pearson == pytest.approx(p.statistic, abs=1e-12)
    assert got.spearman == pytest.approx(s.statistic, abs=1e-12)
    assert got.pearson_pvalue == pytest.approx(p.pvalue, rel=1e-9, abs=1e-300)
    assert got.spearman_pvalue == pytest.approx(s.pvalue, rel=1e-9, abs=1e-300)
    assert isinstance(got.pearson, float) and -1 <= got.pearson <= 1


def test_integer_matrices_with_ties_match_scipy():
    rng = np.random.default_rng(5)
    a = rng.integers(1, 5, size=(7, 7)).astype(float)
    a = a + a.T
    b = rng.integers(1, 4, size=(7, 7)).astype(float) + a
    b = b + b.T
    np.fill_diagonal(a, 0)
    np.fill_diagonal(b, 0)
    got = matrix_correlation(a, b)
    assert got.spearman == pytest.approx(stats.spearmanr(pairs_of(a), pairs_of(b)).statistic, abs=1e-12)
    assert got.pearson == pytest.approx(stats.pearsonr(pairs_of(a), pairs_of(b)).statistic, abs=1e-12)


def test_diagonal_is_ignored():
    rng = np.random.default_rng(1)
    a, b = rng.random((5, 5)), rng.random((5, 5))
    a2 = a.copy()
    np.fill_diagonal(a2, 1000.0)
    assert matrix_correlation(a, b) == matrix_correlation(a2, b)


def test_perfect_and_monotone_relations():
    rng = np.random.default_rng(2)
    a = rng.random((5, 5))
    assert matrix_correlation(a, 3 * a + 1).pearson == pytest.approx(1.0, abs=1e-12)
    assert matrix_correlation(a, -a).pearson == pytest.approx(-1.0, abs=1e-12)
    got = matrix_correlation(a, np.exp(5 * a))
    assert got.spearman == pytest.approx(1.0, abs=1e-12) and got.pearson < 1.0


def test_constant_side_gives_nan():
    uniform = np.ones((4, 4)) - np.eye(4)
    rng = np.random.default_rng(3)
    other = rng.random((4, 4))
    for a, b in ((uniform, other), (other, uniform), (uniform, uniform)):
        got = matrix_correlation(a, b)
        assert all(math.isnan(v) for v in (got.pearson, got.spearman, got.pearson_pvalue, got.spearman_pvalue))
        assert got.pairs == 12


@pytest.mark.parametrize(
    ("a", "b", "pattern"),
    [
        (np.zeros((2, 2)), np.zeros((2, 2)), "at least 3 classes"),
        (np.zeros((3, 3)), np.zeros((4, 4)), "same size"),
        (np.zeros((3, 4)), np.zeros((3, 4)), "square"),
        (np.zeros(9), np.zeros(9), "square"),
    ],
)
def test_bad_shapes(a, b, pattern):
    with pytest.raises(MetricFormatError, match=pattern):
        matrix_correlation(a, b)


def test_correlation_to_dict():
    c = Correlation(0.5, 0.25, 0.1, 0.2, 6)
    assert c.to_dict() == {"pearson": 0.5, "spearman": 0.25, "pearson_pvalue": 0.1, "spearman_pvalue": 0.2, "pairs": 6}


# --- aligning by class name -----------------------------------------------------------------------------


def _metric(classes, matrix):
    return LabelMetric(classes, matrix, Provenance(source="test"))


def test_align_reorders_by_name():
    a = _metric(("x", "y", "z"), [[0, 1, 2], [1, 0, 3], [2, 3, 0]])
    # The same distances with the classes listed in another order.
    b = _metric(("z", "x", "y"), [[0, 20, 30], [20, 0, 10], [30, 10, 0]])
    a2, b2 = align_metrics(a, b)
    assert a2 is a and b2.classes == ("x", "y", "z")
    # By name: d(x,y)=10, d(x,z)=20, d(y,z)=30.
    assert b2.matrix.tolist() == [[0, 10, 20], [10, 0, 30], [20, 30, 0]]
    assert metric_correlation(a, b).pearson == pytest.approx(1.0, abs=1e-12)
    # Without aligning, the entries would be paired wrongly.
    assert matrix_correlation(a.matrix, b.matrix).pearson < 0.99


def test_align_same_order_is_a_no_op():
    a = _metric(("x", "y", "z"), np.ones((3, 3)) - np.eye(3))
    b = _metric(("x", "y", "z"), 2 * (np.ones((3, 3)) - np.eye(3)))
    assert align_metrics(a, b) == (a, b)


def test_align_rejects_different_class_sets():
    a = _metric(("x", "y", "z"), np.zeros((3, 3)))
    b = _metric(("x", "y", "w"), np.zeros((3, 3)))
    with pytest.raises(MetricFormatError, match=r"only in the first: z; only in the second: w"):
        align_metrics(a, b)
    c = _metric(("x", "y"), np.zeros((2, 2)))
    with pytest.raises(MetricFormatError, match=r"only in the first: z; only in the second: -"):
        metric_correlation(a, c)


def _pearson_offdiagonal(a, b):
    from scipy import stats

    mask = ~np.eye(len(a), dtype=bool)
    return stats.pearsonr(a[mask], b[mask]).statistic


def test_mantel_test_exact_enumeration_matches_brute_force():
    import itertools

    from wpgdkit.labelmetric.compare import mantel_test

    rng = np.random.default_rng(3)
    a = rng.random((5, 5))
    b = a + 0.8 * rng.random((5, 5))
    observed = abs(_pearson_offdiagonal(a, b))
    hits = sum(abs(_pearson_offdiagonal(a, b[np.ix_(p, p)])) >= observed - 1e-12
               for p in itertools.permutations(range(5)))
    assert mantel_test(a, b) == pytest.approx(hits / 120)
    assert mantel_test(b, b) == pytest.approx(1 / 120)  # only the identity reaches |r| = 1 for a generic matrix


def test_mantel_test_sampled_agrees_with_exact_within_binomial_noise():
    import itertools

    from wpgdkit.labelmetric.compare import mantel_test

    rng = np.random.default_rng(5)
    a = rng.random((8, 8))
    b = a + 2.0 * rng.random((8, 8))
    observed = abs(_pearson_offdiagonal(a, b))
    mask = ~np.eye(8, dtype=bool)
    perms = np.array(list(itertools.permutations(range(8))))
    y = b[perms[:, :, None], perms[:, None, :]][:, mask]
    x = a[mask] - a[mask].mean()
    y = y - y.mean(1, keepdims=True)
    r = (y @ x) / (np.linalg.norm(y, axis=1) * np.linalg.norm(x))
    exact = float(np.mean(np.abs(r) >= observed - 1e-12))
    sampled = mantel_test(a, b, permutations=20000, seed=1)
    assert abs(sampled - exact) < 4 * np.sqrt(exact * (1 - exact) / 20000) + 1e-4


def test_mantel_test_rejects_bad_shapes_and_is_nan_for_constant_input():
    from wpgdkit.errors import MetricFormatError
    from wpgdkit.labelmetric.compare import mantel_test

    with pytest.raises(MetricFormatError):
        mantel_test(np.zeros((2, 2)), np.zeros((2, 2)))
    with pytest.raises(MetricFormatError):
        mantel_test(np.zeros((3, 3)), np.zeros((4, 4)))
    assert np.isnan(mantel_test(np.ones((4, 4)), np.random.default_rng(0).random((4, 4))))
