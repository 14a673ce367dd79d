"""Label metrics: build, read, write, validate, check and compare K×K class costs.

The code that *builds* cost matrices lives here; the top-level ``metrics/``
folder holds *data*, the metrics shipped with the project
(:func:`wpgdkit.resources.shipped_file`).

>>> from wpgdkit.labelmetric import BuildConfig, build_metric
>>> metric = build_metric(BuildConfig(source="wordnet", dataset="cifar10"))  # doctest: +SKIP
>>> metric.matrix[3, 5]   # cat–dog, shortest hypernym path  # doctest: +SKIP
4.0
"""

from __future__ import annotations

from wpgdkit.labelmetric.compare import Correlation, matrix_correlation, metric_correlation, offdiagonal
from wpgdkit.labelmetric.core import NORMALIZATIONS, LabelMetric, Provenance, resolve_class_indices
from wpgdkit.labelmetric.describe import metric_origin, metric_summary, nearest_and_farthest
from wpgdkit.labelmetric.io import FORMATS, read_class_list, read_metric, write_metric
from wpgdkit.labelmetric.ot_check import OTCheckReport, entropy, reference_check, wasserstein_to_onehot
from wpgdkit.labelmetric.sources import (
    BuildConfig,
    MetricSource,
    build_metric,
    get_source,
    list_sources,
    rebuild_command,
    register_source,
)
from wpgdkit.labelmetric.validate import MetricReport, analyze_metric, validate_metric

# Imported on first use: they need torch, which the rest of this package does not.
_LAZY = {
    "boundary_distance_matrix": "wpgdkit.labelmetric.network",
    "confusion_distance_matrix": "wpgdkit.labelmetric.network",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

__all__ = [
    "FORMATS",
    "NORMALIZATIONS",
    "BuildConfig",
    "Correlation",
    "LabelMetric",
    "MetricReport",
    "MetricSource",
    "OTCheckReport",
    "Provenance",
    "analyze_metric",
    "boundary_distance_matrix",
    "build_metric",
    "confusion_distance_matrix",
    "entropy",
    "get_source",
    "list_sources",
    "matrix_correlation",
    "metric_correlation",
    "metric_origin",
    "metric_summary",
    "nearest_and_farthest",
    "offdiagonal",
    "read_class_list",
    "read_metric",
    "rebuild_command",
    "reference_check",
    "register_source",
    "resolve_class_indices",
    "validate_metric",
    "wasserstein_to_onehot",
    "write_metric",
]
