"""Comparing two label metrics (or a metric and an accuracy gap)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from wpgdkit.errors import MetricFormatError
from wpgdkit.labelmetric.core import LabelMetric

__all__ = ["offdiagonal", "Correlation", "matrix_correlation", "mantel_test", "metric_correlation", "align_metrics"]


def offdiagonal(matrix: np.ndarray) -> np.ndarray:
    """The K(K-1) entries ``matrix[i, j]``, ``i != j``, in row-major order.

    Both triangles are kept so that asymmetric matrices (an accuracy gap)
    compare correctly; for symmetric ones this duplicates every pair, which
    leaves Pearson's and Spearman's coefficients unchanged.
    """
    matrix = np.asarray(matrix)
    return matrix[~np.eye(matrix.shape[0], dtype=bool)]


@dataclass(frozen=True)
class Correlation:
    """Correlation of off-diagonal entries.

    Attributes
    ----------
    pearson, spearman : float
        Coefficients in [-1, 1] (NaN when one side is constant).
    pearson_pvalue, spearman_pvalue : float
        Two-sided p-values from scipy (pairs counted once per ordered pair;
        treat them as indicative for symmetric matrices, whose pairs repeat).
    pairs : int
        Number of off-diagonal entries compared.
    """

    pearson: float
    spearman: float
    pearson_pvalue: float
    spearman_pvalue: float
    pairs: int

    def to_dict(self) -> dict:
        return asdict(self)


def matrix_correlation(a: np.ndarray, b: np.ndarray) -> Correlation:
    """Pearson and Spearman correlation of the off-diagonal entries of two K×K matrices.

    Parameters
    ----------
    a, b : ndarray of shape (K, K)

    Returns
    -------
    correlation : Correlation
    """
    from scipy import stats

    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 2 or a.shape[0] != a.shape[1]:
        raise MetricFormatError(f"need two square matrices of the same size, got {a.shape} and {b.shape}")
    if a.shape[0] < 3:
        raise MetricFormatError("correlation needs at least 3 classes (with 2 there is a single pair)")
    x, y = offdiagonal(a), offdiagonal(b)
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        nan = float("nan")
        return Correlation(nan, nan, nan, nan, len(x))
    pearson = stats.pearsonr(x, y)
    spearman = stats.spearmanr(x, y)
    return Correlation(
        float(pearson.statistic), float(spearman.statistic), float(pearson.pvalue), float(spearman.pvalue), len(x)
    )


def mantel_test(a: np.ndarray, b: np.ndarray, *, permutations: int = 9999, seed: int = 0) -> float:
    """Two-sided Mantel permutation p-value of the Pearson correlation of two K×K matrices' off-diagonal entries.

    The entries of a distance matrix are not independent (each class appears in
    2(K−1) of them), so the textbook p-value of :func:`matrix_correlation`
    overstates the evidence. The Mantel test relabels the classes of ``b`` at
    random (rows and columns by the same permutation) and counts how often the
    permuted correlation is at least as far from zero as the observed one
    (Mantel 1967; Legendre & Legendre, *Numerical Ecology*, Sec. 10.5.1).

    Parameters
    ----------
    a, b : ndarray of shape (K, K)
        Square matrices over the same classes in the same order, K ≥ 3.
    permutations : int, keyword-only
        Random relabellings. For K ≤ 7 every one of the K! relabellings is
        enumerated instead and the p-value is exact.
    seed : int, keyword-only

    Returns
    -------
    p_value : float
        ``(1 + #{|r_perm| ≥ |r_obs|}) / (1 + permutations)``; with the exact
        enumeration, the share of all K! relabellings (the identity included);
        NaN when either side is constant.
    """
    import itertools
    import math

    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 2 or a.shape[0] != a.shape[1] or a.shape[0] < 3:
        raise MetricFormatError(f"need two square matrices of the same size, K >= 3, got {a.shape} and {b.shape}")
    if permutations < 1:
        raise MetricFormatError(f"permutations must be at least 1, got {permutations}")
    k = a.shape[0]
    mask = ~np.eye(k, dtype=bool)
    x = a[mask] - a[mask].mean()
    if not np.any(x) or np.ptp(b[mask]) == 0:
        return float("nan")
    x /= np.linalg.norm(x)

    def correlations(perms: np.ndarray) -> np.ndarray:
        y = b[perms[:, :, None], perms[:, None, :]][:, mask]  # (P, K(K-1)): b with its classes relabelled
        y = y - y.mean(1, keepdims=True)
        return (y @ x) / np.linalg.norm(y, axis=1)

    observed = abs(correlations(np.arange(k)[None])[0])
    tolerance = 1e-12 * max(1.0, observed)  # ties with the observed value count as "at least as far"
    if math.factorial(k) <= 5040:
        everything = np.array(list(itertools.permutations(range(k))))
        return float(np.mean(np.abs(correlations(everything)) >= observed - tolerance))
    rng = np.random.default_rng(seed)
    chunk = max(1, 2_000_000 // (k * k))
    hits, done = 0, 0
    while done < permutations:
        size = min(chunk, permutations - done)
        perms = np.argsort(rng.random((size, k)), axis=1)
        hits += int(np.sum(np.abs(correlations(perms)) >= observed - tolerance))
        done += size
    return (1 + hits) / (1 + permutations)


def align_metrics(a: LabelMetric, b: LabelMetric) -> tuple[LabelMetric, LabelMetric]:
    """Reorder ``b`` to ``a``'s class order; the class sets must be equal."""
    if a.classes == b.classes:
        return a, b
    if set(a.classes) != set(b.classes):
        only_a = sorted(set(a.classes) - set(b.classes))[:5]
        only_b = sorted(set(b.classes) - set(a.classes))[:5]
        raise MetricFormatError(
            f"the metrics are over different classes (only in the first: {', '.join(only_a) or '-'}; "
            f"only in the second: {', '.join(only_b) or '-'})"
        )
    return a, b.subset(a.classes)


def metric_correlation(a: LabelMetric, b: LabelMetric) -> Correlation:
    """Correlation of two metrics over the same classes (aligned by name)."""
    a, b = align_metrics(a, b)
    return matrix_correlation(a.matrix, b.matrix)
