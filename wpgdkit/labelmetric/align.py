"""Which label metric a run or an audit uses, over which classes: one policy for training, audits and experiments.

A metric file is over the classes of a run either exactly (same names, same
order) or over the whole dataset, in which case the run's classes are cut
out of it (``--classes 3,5`` trains on a sub-problem of a metric built for all
ten). When no file is given, the dataset's shipped metric is the default:
WordNet where the dataset has synsets, else the linear-classifier metric,
else the paper's own costs.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from wpgdkit.errors import MetricFormatError
from wpgdkit.labelmetric.core import LabelMetric

__all__ = ["align_metric", "shipped_metric_file", "SHIPPED_PREFERENCE"]

#: The order in which a dataset's shipped metrics are preferred as its default.
SHIPPED_PREFERENCE = ("wordnet", "linear", "paper")


def align_metric(metric: LabelMetric, classes: Sequence[str], dataset_classes: Sequence[str], *,
                 origin: str = "the metric") -> LabelMetric:
    """``metric`` over ``classes``: as it is when its classes are those, else cut from the dataset's full set.

    Parameters
    ----------
    metric : LabelMetric
    classes : sequence of str
        The run's classes, in label order.
    dataset_classes : sequence of str
        All classes of the dataset, in label order.
    origin : str, keyword-only
        How the message names the metric (a path, "checkpoint x.pt").

    Returns
    -------
    metric : LabelMetric
        Over exactly ``classes``, in that order.

    Raises
    ------
    MetricFormatError
        If the metric is over neither ``classes`` nor ``dataset_classes``.
    """
    classes, dataset_classes = tuple(classes), tuple(dataset_classes)
    if metric.classes == classes:
        return metric
    if metric.classes == dataset_classes:
        return metric.subset(list(classes))
    full = "" if dataset_classes == classes else f", nor the dataset's {len(dataset_classes)}"
    raise MetricFormatError(
        f"{origin} is over {len(metric.classes)} classes ({', '.join(metric.classes[:4])}, ...), not the "
        f"{len(classes)} classes ({', '.join(classes[:4])}, ...) in label order{full}"
    )


def shipped_metric_file(dataset: str) -> Path | None:
    """The path of the dataset's default shipped metric (:data:`SHIPPED_PREFERENCE`), or None if none is shipped."""
    from wpgdkit.labelmetric.shipped import read_manifest
    from wpgdkit.resources import metrics_dir

    shipped = {entry["file"] for entry in read_manifest()["metrics"]}
    for kind in SHIPPED_PREFERENCE:
        file = f"{dataset}-{kind}.csv"
        if file in shipped:
            return metrics_dir() / file
    return None
