"""Orders of the classes for K×K pictures: the metric's hierarchy instead of label order.

In label order a heatmap of 100 or 200 classes shows the structure of a
WordNet metric as noise: related classes (the dogs, the vehicles) sit far
apart on the axes. Clustering the metric and reading the classes off the
dendrogram's leaves puts every subtree in one contiguous block, and the few
top-level subtrees can be marked on the axes as groups.

======================  ==================================================
:func:`metric_order`    the classes in the order of the metric's dendrogram
:func:`metric_groups`   a few contiguous groups along an order, to mark
:func:`arrange_classes` both at once, or label order (what the plots use)
======================  ==================================================

Only numpy is imported with this module; scipy on first use.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from wpgdkit.errors import WpgdkitError

__all__ = [
    "PLOT_ORDERS",
    "LINKAGE_METHODS",
    "ClassArrangement",
    "metric_order",
    "metric_groups",
    "default_group_count",
    "arrange_classes",
]

#: The orders a K×K plot can show its classes in (``--plot-order``).
PLOT_ORDERS = ("metric", "label")
#: The linkages of :func:`scipy.cluster.hierarchy.linkage`; the last three assume Euclidean distances.
LINKAGE_METHODS = ("average", "complete", "single", "weighted", "centroid", "median", "ward")
#: Share of the smallest gap between distinct costs by which ties are broken (see :func:`metric_order`).
_TIE_BREAK = 1e-3
#: Optimal leaf ordering costs about K³ steps (a second at 600 classes, ten at 1000); beyond this many
#: classes the dendrogram's own leaf order is used, whose subtrees are contiguous all the same.
OPTIMAL_LEAF_ORDERING_MAX_CLASSES = 500


def _distances(matrix: Any) -> np.ndarray:
    """The metric as a symmetric dissimilarity with a zero diagonal, checked."""
    d = np.array(matrix, dtype=np.float64)
    if d.ndim != 2 or d.shape[0] != d.shape[1]:
        raise WpgdkitError(f"the metric must be a square matrix, got shape {d.shape}")
    k = d.shape[0]
    off = ~np.eye(k, dtype=bool)
    # The diagonal plays no part in a clustering (a class is not compared with itself): a plot's masked
    # diagonal (NaN) is as good as zeros.
    if not np.isfinite(d[off]).all():
        raise WpgdkitError("cannot order the classes by a metric with NaN or infinite costs off the diagonal")
    if (d[off] < 0).any():
        raise WpgdkitError("cannot order the classes by a metric with negative costs")
    d = (d + d.T) / 2.0  # an asymmetric metric (allowed for audits) clusters by its symmetric part
    np.fill_diagonal(d, 0.0)
    return d


def _tie_broken(d: np.ndarray) -> tuple[np.ndarray, float]:
    """``d`` plus a tiny |i − j| term, so ties resolve toward label order; and the term's bound.

    WordNet path lengths are integers: many pairs are equally far apart, and
    the tree scipy builds (and the leaf order that results) would then hang on
    the arbitrary way ties are met. Adding ``δ·|i − j| / K`` with δ a
    thousandth of the smallest gap between two distinct costs never reorders
    two distinct costs, but among equal ones prefers classes close in label
    order: a metric with no structure at all keeps label order, and tied
    classes inside a group stay together in label order (or its reverse).
    Every added term is below δ, the value returned: merge heights closer
    than δ are ties.
    """
    k = d.shape[0]
    values = np.unique(d[~np.eye(k, dtype=bool)])
    scale = float(np.abs(values).max()) if values.size else 0.0
    if scale == 0.0:
        scale = 1.0
    gaps = np.diff(values)
    # Differences at the level of rounding noise (0.1 + 0.2 vs 0.3) are ties too, not the gap to respect.
    gaps = gaps[gaps > 1e-9 * scale]
    step = _TIE_BREAK * (float(gaps.min()) if gaps.size else scale)
    index = np.arange(k)
    return d + step * np.abs(index[:, None] - index[None, :]) / k, step


def _ordered_tree(d: np.ndarray, method: str) -> tuple[np.ndarray, list[int], float]:
    """The linkage of the (checked) dissimilarity ``d``, its leaf order and the tie bound (K ≥ 2)."""
    from scipy.cluster.hierarchy import leaves_list, linkage, optimal_leaf_ordering
    from scipy.spatial.distance import squareform

    if method not in LINKAGE_METHODS:
        raise WpgdkitError(f"unknown linkage {method!r}; choose one of: {', '.join(LINKAGE_METHODS)}")
    broken, step = _tie_broken(d)
    condensed = squareform(broken, checks=False)
    tree = linkage(condensed, method=method)
    if d.shape[0] <= OPTIMAL_LEAF_ORDERING_MAX_CLASSES:
        tree = optimal_leaf_ordering(tree, condensed)
    return tree, [int(i) for i in leaves_list(tree)], step


def _canonical(order: list[int]) -> list[int]:
    # A dendrogram read backwards is as good an order; pick the one that starts with the lower label, so
    # label order survives where the metric has nothing to say.
    return order[::-1] if order and order[0] > order[-1] else order


def metric_order(matrix: Any, *, method: str = "average") -> list[int]:
    """The classes in the order of the leaves of the metric's dendrogram.

    C is symmetrised, (C + Cᵀ)/2, its diagonal ignored, condensed
    (:func:`scipy.spatial.distance.squareform`), clustered
    (:func:`scipy.cluster.hierarchy.linkage`) and the leaves ordered so that
    neighbours are as close as possible
    (:func:`~scipy.cluster.hierarchy.optimal_leaf_ordering`): every subtree,
    a group of classes closer to each other than to the rest, is one
    contiguous block.

    The order is a function of the matrix alone. Ties between equal costs,
    common in WordNet path lengths, are broken toward label order (a
    perturbation far below the smallest gap between distinct costs), and of
    the two directions of the dendrogram the one starting with the lower
    label is returned: a metric without structure keeps label order.

    Parameters
    ----------
    matrix : array of shape (K, K)
        The label metric C: finite, non-negative off the diagonal.
    method : str, keyword-only, default="average"
        The linkage (:data:`LINKAGE_METHODS`); ``"average"`` (UPGMA) suits a
        tree distance such as WordNet's.

    Returns
    -------
    order : list of int
        A permutation of 0..K−1: ``order[p]`` is the class drawn at position p.

    Raises
    ------
    WpgdkitError
        A matrix that is not square, has NaN, infinite or negative costs off
        the diagonal, or an unknown linkage.
    """
    d = _distances(matrix)
    if method not in LINKAGE_METHODS:
        raise WpgdkitError(f"unknown linkage {method!r}; choose one of: {', '.join(LINKAGE_METHODS)}")
    k = d.shape[0]
    if k <= 2:  # one or two classes: every order is the same picture
        return list(range(k))
    return _canonical(_ordered_tree(d, method)[1])


def _group_label(index: int) -> str:
    """A, B, …, Z, AA, AB, …: short marks that do not read as class indices."""
    label = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        label = chr(ord("A") + rest) + label
    return label


def _check_order(order: Sequence[int], k: int) -> list[int]:
    try:
        values = [int(i) for i in order]
    except (TypeError, ValueError):
        raise WpgdkitError("an order must be a sequence of class indices") from None
    if sorted(values) != list(range(k)) or any(int(i) != i for i in order):
        raise WpgdkitError(f"an order must be a permutation of 0..{k - 1}, got {list(order)[:10]}"
                           + ("…" if len(order) > 10 else ""))
    return values


def metric_groups(
    matrix: Any, order: Sequence[int], *, n_groups: int, method: str = "average"
) -> list[tuple[int, int, str]]:
    """A few groups of related classes, as contiguous runs along ``order``, to mark on a plot's axes.

    The metric's dendrogram (as in :func:`metric_order`) is cut into at most
    ``n_groups`` clusters (:func:`scipy.cluster.hierarchy.fcluster`). A cut
    must fall between two merges of different height: where the merges
    around it are tied (a flat stretch of a WordNet tree, or a metric without
    structure) the cut moves up to fewer clusters, so the groups never hang
    on how ties were broken. Along the order of :func:`metric_order` each
    cluster is one run; along another order (label order) a cluster may be
    split into several runs, which then carry the same label.

    Parameters
    ----------
    matrix : array of shape (K, K)
        The label metric C.
    order : sequence of int
        A permutation of 0..K−1, the classes along the axis.
    n_groups : int, keyword-only
        At most this many clusters; fewer when the dendrogram has ties at the
        cut (0 or 1: one group).
    method : str, keyword-only, default="average"

    Returns
    -------
    groups : list of (start, end, label)
        Positions along ``order``, ``start`` included and ``end`` excluded,
        covering 0..K; labels ``"A"``, ``"B"``, … in order of first
        appearance.
    """
    d = _distances(matrix)
    k = d.shape[0]
    positions = _check_order(order, k)
    _check_group_count(n_groups)
    if k == 0:
        return []
    if k == 1:
        return [(0, 1, "A")]
    tree, _, step = _ordered_tree(d, method)
    return _runs(tree, step, positions, int(n_groups))


def _check_group_count(n_groups: Any) -> None:
    if isinstance(n_groups, bool) or not isinstance(n_groups, (int, np.integer)) or n_groups < 0:
        raise WpgdkitError(f"the number of groups must be a non-negative integer, got {n_groups!r}")


def _runs(tree: np.ndarray, step: float, positions: list[int], n_groups: int) -> list[tuple[int, int, str]]:
    """Cut ``tree`` into at most ``n_groups`` clusters at a real gap; their runs along ``positions``."""
    from scipy.cluster.hierarchy import fcluster

    k = len(positions)
    heights = np.sort(tree[:, 2])  # K − 1 merges; t clusters leave the last t − 1 undone
    cluster = np.ones(k, dtype=int)
    for t in range(min(n_groups, k), 1, -1):
        done = heights[k - t - 1] if k - t - 1 >= 0 else 0.0
        undone = heights[k - t]
        if undone - done > step:  # a real gap, not two tied merges told apart by the tie break
            cluster = fcluster(tree, t=(done + undone) / 2.0, criterion="distance")
            break
    labels: dict[int, str] = {}
    groups: list[tuple[int, int, str]] = []
    start = 0
    for p in range(1, k + 1):
        if p == k or cluster[positions[p]] != cluster[positions[start]]:
            ident = int(cluster[positions[start]])
            labels.setdefault(ident, _group_label(len(labels)))
            groups.append((start, p, labels[ident]))
            start = p
    return groups


def default_group_count(k: int) -> int:
    """How many groups a plot of ``k`` classes marks: none below 8 classes, then about √K / 2, 2 to 8."""
    if k < 8:
        return 0  # a few classes are read by name; marks would only clutter
    return int(min(8, max(2, round(math.sqrt(k) / 2))))


@dataclass(frozen=True)
class ClassArrangement:
    """Where each class goes on the axes of a K×K plot, and the groups to mark there.

    Attributes
    ----------
    order : tuple of int
        ``order[p]`` is the class at position p (both axes).
    groups : tuple of (start, end, label)
        Runs of positions to mark (see :func:`metric_groups`); empty for none.
    by : {"metric", "label"}
        What the order follows (the axis titles say it).
    """

    order: tuple[int, ...]
    groups: tuple[tuple[int, int, str], ...] = ()
    by: str = "label"

    @property
    def num_classes(self) -> int:
        return len(self.order)

    def matrix(self, matrix: Any) -> np.ndarray:
        """``matrix`` with rows and columns in this order: entry (p, q) is ``matrix[order[p], order[q]]``."""
        values = np.asarray(matrix)
        if values.shape != (self.num_classes, self.num_classes):
            raise WpgdkitError(f"a matrix over {self.num_classes} classes must be "
                               f"({self.num_classes}, {self.num_classes}), got shape {values.shape}")
        index = np.asarray(self.order, dtype=np.intp)
        return values[np.ix_(index, index)]

    def names(self, classes: Sequence[str]) -> list[str]:
        """The class names in this order."""
        if len(classes) != self.num_classes:
            raise WpgdkitError(f"expected {self.num_classes} class names, got {len(classes)}")
        return [classes[i] for i in self.order]


def arrange_classes(
    num_classes: int,
    metric: Any = None,
    *,
    order: str = "metric",
    n_groups: int | None = None,
    method: str = "average",
) -> ClassArrangement:
    """The arrangement of a K×K plot's classes: by the metric's hierarchy, or in label order.

    Parameters
    ----------
    num_classes : int
    metric : array of shape (K, K) or None
        The label metric C. Without one there is no hierarchy: label order.
    order : {"metric", "label"}, keyword-only, default="metric"
    n_groups : int or None, keyword-only
        Groups to mark (0: none); default :func:`default_group_count`. Only
        in metric order: in label order a cluster falls apart into scattered
        runs, and marking them would hide the label order asked for.
    method : str, keyword-only, default="average"
        The linkage of :func:`metric_order`.

    Returns
    -------
    arrangement : ClassArrangement
    """
    if order not in PLOT_ORDERS:
        raise WpgdkitError(f"unknown plot order {order!r}; choose one of: {', '.join(PLOT_ORDERS)}")
    k = int(num_classes)
    if metric is None:
        return ClassArrangement(tuple(range(k)), (), "label")
    if np.shape(metric) != (k, k):
        raise WpgdkitError(f"the metric must be ({k}, {k}) for {k} classes, got shape {np.shape(metric)}")
    count = default_group_count(k) if n_groups is None else n_groups
    _check_group_count(count)
    if order == "label":
        return ClassArrangement(tuple(range(k)), (), "label")
    d = _distances(metric)
    if k <= 2:
        if method not in LINKAGE_METHODS:
            raise WpgdkitError(f"unknown linkage {method!r}; choose one of: {', '.join(LINKAGE_METHODS)}")
        return ClassArrangement(tuple(range(k)), (), "metric")
    # One tree for both the order and the groups: optimal leaf ordering is the costly step.
    tree, leaves, step = _ordered_tree(d, method)
    positions = _canonical(leaves)
    groups = _runs(tree, step, positions, int(count)) if count else []
    if len(groups) < 2:
        groups = []  # one group spanning the axis marks nothing
    return ClassArrangement(tuple(positions), tuple(groups), "metric")
