"""Comparing two label metrics (or a metric and an accuracy gap)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from wpgdkit.errors import MetricFormatError
from wpgdkit.labelmetric.core import LabelMetric

__all__ = ["offdiagonal", "Correlation", "matrix_correlation", "metric_correlation", "align_metrics"]


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
