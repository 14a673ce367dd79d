"""Describing a label metric: each class's nearest and farthest classes, where it came from, a summary.

What ``wpgdkit metric show`` and ``metric build`` report, computed here so
that the command line only prints it.
"""

from __future__ import annotations

import numbers

import numpy as np

from wpgdkit.errors import WpgdkitError
from wpgdkit.labelmetric.core import LabelMetric

__all__ = ["nearest_and_farthest", "metric_origin", "metric_summary"]


def nearest_and_farthest(metric: LabelMetric, *, top: int = 3) -> list[dict]:
    """Each class's ``top`` nearest and ``top`` farthest other classes under the metric.

    Row ``i`` of the matrix is read: the distance from class ``i`` to ``j``
    is ``C[i, j]`` (the cost of mistaking ``i`` for ``j``). Ties keep label
    order, so the listing is deterministic; the farthest list is the reverse
    of the full nearest-first order.

    Parameters
    ----------
    metric : LabelMetric
    top : int, keyword-only, default=3
        How many classes to list each way (fewer when there are fewer others).

    Returns
    -------
    neighbours : list of dict, one per class in label order
        ``{"class": name, "nearest": [(name, cost), ...], "farthest": [(name, cost), ...]}``
        with ``cost`` a Python float.

    Raises
    ------
    WpgdkitError
        If ``top`` is not a whole number of at least 1.
    """
    if isinstance(top, bool) or not isinstance(top, numbers.Integral) or top < 1:
        raise WpgdkitError(f"top must be a whole number of at least 1, got {top!r}")
    top = int(top)
    out = []
    for i, name in enumerate(metric.classes):
        others = [j for j in range(metric.num_classes) if j != i]
        # Stable sort: ties keep label order.
        by_distance = sorted(others, key=lambda j: metric.matrix[i, j])

        def pick(js: list[int]) -> list[tuple[str, float]]:
            return [(metric.classes[j], float(metric.matrix[i, j])) for j in js]

        out.append({"class": name, "nearest": pick(by_distance[:top]), "farthest": pick(by_distance[::-1][:top])})
    return out


def metric_origin(metric: LabelMetric) -> str:
    """Where a metric came from in a few words: ``"wordnet/path, dataset cifar10"``.

    Returns
    -------
    origin : str
        ``source[/measure][, dataset NAME]``, or ``""`` when the metric
        records nothing (a CSV or NPY file read without provenance).
    """
    prov = metric.provenance
    if prov.source == "file" and not prov.command and not prov.dataset:
        return ""
    return prov.source + (f"/{prov.measure}" if prov.measure else "") + (f", dataset {prov.dataset}" if prov.dataset else "")


def metric_summary(metric: LabelMetric) -> str:
    """One line about a built metric: ``"10 classes, wordnet/path, entries 1..12"``.

    The range is over the off-diagonal entries (the diagonal is zero), from
    the smallest to the largest, in 4 significant digits.

    Returns
    -------
    summary : str
    """
    prov = metric.provenance
    text = f"{metric.num_classes} classes, {prov.source}" + (f"/{prov.measure}" if prov.measure else "")
    off = metric.matrix[~np.eye(metric.num_classes, dtype=bool)]
    if off.size:
        text += f", entries {off.min():.4g}..{metric.matrix.max():.4g}"
    return text
