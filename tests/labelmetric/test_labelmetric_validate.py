"""Validation and structural analysis of label metrics (wpgdkit.labelmetric.validate)."""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pytest

from wpgdkit.errors import MetricFormatError, WpgdkitError
from wpgdkit.labelmetric.core import LabelMetric
from wpgdkit.labelmetric.validate import (
    MAX_ENTRY,
    TriangleViolation,
    analyze_metric,
    check_power,
    metric_power,
    validate_metric,
)

NAMES = ("cat", "dog", "frog")
GOOD = np.array([[0.0, 1.0, 2.0], [1.0, 0.0, 1.5], [2.0, 1.5, 0.0]])
PAPER_TOY = np.array([[0.0, 10.0, 0.01], [10.0, 0.0, 1.0], [0.01, 1.0, 0.0]])


def with_entry(i, j, value, symmetric=True, base=GOOD):
    out = base.copy()
    out[i, j] = value
    if symmetric:
        out[j, i] = value
    return out


# --- reference implementations (brute force, written for the tests) ----------------------------


def brute_triangle(c: np.ndarray, tol: float):
    """All ordered triples (i, j, k) of distinct classes with C[i,j] > C[i,k] + C[k,j] + tol."""
    k = len(c)
    found = []
    for i, j, m in itertools.permutations(range(k), 3):
        excess = c[i, j] - (c[i, m] + c[m, j])
        if excess > tol:
            found.append((excess, i, j, m))
    return found


def euclid_embeddable(c: np.ndarray) -> bool:
    k = len(c)
    j = np.eye(k) - np.ones((k, k)) / k
    g = -0.5 * j @ (c**2) @ j
    return bool(np.linalg.eigvalsh(g).min() >= -1e-9 * max((c**2).max(), 1.0) * k)


def random_symmetric(rng, k):
    a = rng.random((k, k)) * 10
    a = (a + a.T) / 2
    np.fill_diagonal(a, 0.0)
    return a


# --- validate_metric: what passes ---------------------------------------------------------------


def test_valid_metric_passes():
    assert validate_metric(LabelMetric(NAMES, GOOD)) is None
    assert validate_metric(GOOD, NAMES) is None
    assert validate_metric(GOOD) is None  # names default to indices


def test_tiny_rounding_on_diagonal_and_symmetry_is_tolerated():
    mat = with_entry(0, 1, 1.0 + 1e-14, symmetric=False)
    mat[2, 2] = 1e-13 * 0.01
    validate_metric(LabelMetric(NAMES, mat))


def test_zero_matrix_is_valid():
    validate_metric(np.zeros((2, 2)), ["a", "b"])


# --- validate_metric: rejections, each naming the offending classes ---------------------------------


def test_non_square():
    with pytest.raises(MetricFormatError, match=r"square, got shape \(2, 3\)"):
        validate_metric(np.zeros((2, 3)), ["a", "b"])
    with pytest.raises(MetricFormatError, match="square"):
        validate_metric(np.zeros(4))


def test_size_mismatch():
    with pytest.raises(MetricFormatError, match="3×3 but there are 2 classes"):
        validate_metric(GOOD, ["a", "b"])


def test_too_few_classes():
    with pytest.raises(MetricFormatError, match="at least 2 classes"):
        validate_metric(np.zeros((1, 1)), ["only"])
    with pytest.raises(MetricFormatError, match="at least 2 classes"):
        validate_metric(LabelMetric(("only",), [[0.0]]))


@pytest.mark.parametrize(("value", "shown"), [(np.nan, "nan"), (np.inf, "inf"), (-np.inf, "-inf")])
def test_non_finite(value, shown):
    mat = with_entry(1, 2, value)
    with pytest.raises(MetricFormatError, match=rf"C\[dog, frog\] is {shown}: entries must be finite \(2 are not\)"):
        validate_metric(LabelMetric(NAMES, mat))


def test_negative():
    mat = with_entry(1, 2, -1.0)
    with pytest.raises(MetricFormatError, match=r"C\[dog, frog\] = -1 is negative \(2 negative entries\)"):
        validate_metric(LabelMetric(NAMES, mat))


def test_non_zero_diagonal():
    mat = GOOD.copy()
    mat[1, 1] = 0.5
    with pytest.raises(MetricFormatError, match=r"C\[dog, dog\] = 0.5: the diagonal must be zero"):
        validate_metric(LabelMetric(NAMES, mat))


def test_diagonal_tolerance_is_relative_to_the_largest_entry():
    big = GOOD * 1e6
    big[0, 0] = 1e-7  # 1e-7 / 2e6 < 1e-12: rounding
    validate_metric(big, NAMES)
    big[0, 0] = 1e-4  # 1e-4 / 2e6 > 1e-12
    with pytest.raises(MetricFormatError, match=r"C\[cat, cat\]"):
        validate_metric(big, NAMES)


def test_asymmetric_rejected_then_allowed():
    mat = with_entry(0, 1, 2.0, symmetric=False)  # C[cat, dog] = 2, C[dog, cat] = 1
    with pytest.raises(
        MetricFormatError, match=r"not symmetric: C\[cat, dog\] = 2 but C\[dog, cat\] = 1 \(pass --allow-asymmetric"
    ):
        validate_metric(LabelMetric(NAMES, mat))
    validate_metric(LabelMetric(NAMES, mat), allow_asymmetric=True)


def test_allow_asymmetric_still_checks_the_rest():
    mat = with_entry(0, 1, -2.0, symmetric=False)
    with pytest.raises(MetricFormatError, match="negative"):
        validate_metric(mat, NAMES, allow_asymmetric=True)


def test_duplicate_names():
    with pytest.raises(MetricFormatError, match="duplicate class names: cat"):
        validate_metric(LabelMetric(("cat", "dog", "cat"), GOOD))


@pytest.mark.parametrize(("names", "position"), [(("cat", "", "frog"), 1), (("cat", "dog", "   "), 2)])
def test_empty_names(names, position):
    with pytest.raises(MetricFormatError, match=f"class name missing at position {position}"):
        validate_metric(GOOD, names)


def test_bare_array_messages_use_indices():
    with pytest.raises(MetricFormatError, match=r"C\[1, 2\] = -1"):
        validate_metric(with_entry(1, 2, -1.0))


# --- analyze_metric ------------------------------------------------------------------------------


def test_paper_toy_matrix_breaks_the_triangle_inequality():
    m = LabelMetric(("0", "1", "2"), PAPER_TOY)
    report = analyze_metric(m)
    tol = 1e-9 * 10.0
    found = brute_triangle(PAPER_TOY, tol)
    # By hand: 10 > 0.01 + 1 for (0, 1) and (1, 0) through 2; nothing else.
    assert sorted((i, j, k) for _, i, j, k in found) == [(0, 1, 2), (1, 0, 2)]
    assert report.triangle_violations == len(found) == 2
    worst = report.worst_triangle_violation
    assert isinstance(worst, TriangleViolation)
    assert (worst.i, worst.j) in {("0", "1"), ("1", "0")} and worst.k == "2"
    assert worst.excess == pytest.approx(10 - 1.01, rel=1e-12)
    assert report.symmetric and not report.is_metric
    assert report.num_classes == 3


@pytest.mark.parametrize("seed", range(4))
def test_triangle_count_and_worst_match_brute_force(seed):
    rng = np.random.default_rng(seed)
    k = 7
    c = random_symmetric(rng, k) ** 2  # squaring makes violations likely
    names = tuple(f"c{i}" for i in range(k))
    report = analyze_metric(LabelMetric(names, c))
    found = brute_triangle(c, 1e-9 * max(c.max(), 1.0))
    assert found, "the seeded example should break the triangle inequality"
    assert report.triangle_violations == len(found)
    excess, i, j, m = max(found)
    worst = report.worst_triangle_violation
    assert worst.excess == pytest.approx(excess, rel=1e-12)
    # The triple reported is one that reaches the worst excess.
    best = {(names[a], names[b], names[d]) for e, a, b, d in found if e == pytest.approx(excess, rel=1e-12)}
    assert (worst.i, worst.j, worst.k) in best


def test_asymmetric_triangle_count_matches_brute_force():
    rng = np.random.default_rng(11)
    k = 6
    c = rng.random((k, k)) ** 3 * 5
    np.fill_diagonal(c, 0)
    report = analyze_metric(LabelMetric(tuple(map(str, range(k))), c))
    assert report.triangle_violations == len(brute_triangle(c, 1e-9 * max(c.max(), 1.0)))
    assert not report.symmetric and report.euclidean_embeddable is None
    assert report.min_eigenvalue == pytest.approx(np.linalg.eigvalsh((c + c.T) / 2)[0], abs=1e-12)


def test_triangle_tolerance():
    c = np.array([[0.0, 0.1, 0.3], [0.1, 0.0, 0.2], [0.3, 0.2, 0.0]])
    c_round = c.copy()
    c_round[0, 2] = c_round[2, 0] = 0.3 + 1e-15  # rounding, not a violation
    assert analyze_metric(LabelMetric("abc", c_round)).triangle_violations == 0
    c_bad = c.copy()
    c_bad[0, 2] = c_bad[2, 0] = 0.3 + 1e-6
    report = analyze_metric(LabelMetric("abc", c_bad))
    assert report.triangle_violations == 2  # (a, c) and (c, a) through b
    assert report.worst_triangle_violation.k == "b"
    assert report.worst_triangle_violation.excess == pytest.approx(1e-6, rel=1e-6)


@pytest.mark.parametrize("seed", range(3))
def test_euclidean_distance_matrix(seed):
    rng = np.random.default_rng(seed)
    points = rng.normal(size=(8, 2))
    d = np.sqrt(((points[:, None, :] - points[None, :, :]) ** 2).sum(-1))
    report = analyze_metric(LabelMetric(tuple(map(str, range(8))), d))
    assert report.euclidean_embeddable is True
    assert report.triangle_violations == 0 and report.worst_triangle_violation is None
    assert report.is_metric and report.symmetric
    assert report.positive_semidefinite is False
    assert report.min_eigenvalue == pytest.approx(np.linalg.eigvalsh(d)[0], rel=1e-10)
    assert report.min_eigenvalue < 0


def test_collinear_points_equality_is_not_a_violation():
    x = np.array([0.0, 1.0, 2.0, 3.5])
    d = np.abs(x[:, None] - x[None, :])
    report = analyze_metric(LabelMetric("abcd", d))
    assert report.triangle_violations == 0 and report.euclidean_embeddable


def test_star_graph_metric_is_a_metric_but_not_euclidean():
    # Centre at distance 1 from three leaves, leaves 2 apart: the centre would
    # have to be the midpoint of every pair of leaves.
    d = np.array([[0, 1, 1, 1], [1, 0, 2, 2], [1, 2, 0, 2], [1, 2, 2, 0]], dtype=float)
    report = analyze_metric(LabelMetric("olmn", d))
    assert report.triangle_violations == 0 and report.is_metric
    assert not euclid_embeddable(d)
    assert report.euclidean_embeddable is False


@pytest.mark.parametrize("seed", range(5))
def test_no_nonzero_zero_diagonal_symmetric_matrix_is_psd(seed):
    rng = np.random.default_rng(seed)
    k = int(rng.integers(2, 9))
    c = random_symmetric(rng, k)
    report = analyze_metric(LabelMetric(tuple(map(str, range(k))), c))
    expected = np.linalg.eigvalsh(c)[0]
    assert report.min_eigenvalue == pytest.approx(expected, rel=1e-10, abs=1e-12)
    assert expected < 0 and report.positive_semidefinite is False
    note = report.psd_note()
    assert "not positive semi-definite" in note and f"{expected:.4g}" in note


def test_zero_matrix_is_psd():
    report = analyze_metric(LabelMetric("ab", np.zeros((2, 2))))
    assert report.positive_semidefinite and report.min_eigenvalue == 0.0
    assert report.psd_note() == "positive semi-definite"
    assert report.euclidean_embeddable and report.is_metric


# --- hardening: entries at the edges of a double ---------------------------------------------------


@pytest.mark.parametrize("value", [1e101, 1e200, 1e308])
def test_entries_above_the_maximum_are_refused(value):
    with pytest.raises(MetricFormatError, match=r"C\[dog, frog\] = .* is too large: entries must be at most 1e\+100"):
        validate_metric(LabelMetric(NAMES, with_entry(1, 2, value)))


def test_the_maximum_entry_is_valid_and_analysed_without_warnings():
    metric = LabelMetric(NAMES, with_entry(1, 2, MAX_ENTRY))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an overflow RuntimeWarning would fail the test
        validate_metric(metric)
        report = analyze_metric(metric)
    assert report.triangle_violations == 2 and np.isfinite(report.min_eigenvalue)


@pytest.mark.parametrize("value", [1e200, 1e308])
def test_analysis_of_huge_entries_neither_overflows_nor_fails(value):
    # analyze_metric alone (no validate_metric): C∘C of 1e200 was inf and eigvalsh raised LinAlgError.
    metric = LabelMetric(NAMES, with_entry(1, 2, value))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        report = analyze_metric(metric)
    assert report.symmetric and report.triangle_violations == 2
    assert report.min_eigenvalue < 0 and not report.positive_semidefinite
    assert report.euclidean_embeddable is False


def test_a_failed_eigen_decomposition_is_a_clear_result(monkeypatch):
    def fail(_):
        raise np.linalg.LinAlgError("Eigenvalues did not converge")

    monkeypatch.setattr(np.linalg, "eigvalsh", fail)
    report = analyze_metric(LabelMetric(NAMES, GOOD))
    assert np.isnan(report.min_eigenvalue) and not report.positive_semidefinite
    assert report.euclidean_embeddable is None
    assert "did not converge" in report.psd_note()


@pytest.mark.parametrize("p", [float("inf"), float("nan"), 0.0, -2.0, True, "2"])
def test_power_must_be_finite_and_positive(p):
    with pytest.raises(WpgdkitError, match="p must be a number > 0"):
        check_power(p)


def test_metric_power_refuses_an_overflow():
    with pytest.raises(MetricFormatError, match=r"C\^p overflows: the largest entry 1e\+100 to the power p=4"):
        metric_power(with_entry(1, 2, MAX_ENTRY), 4.0)
    np.testing.assert_array_equal(metric_power(GOOD, 2.0), GOOD**2)
