"""The label metrics shipped in ``metrics/`` and how each was built.

``metrics/manifest.json`` lists every shipped metric file with its provenance
(including the exact ``wpgdkit metric build`` command) and its SHA-256, so a
user can rebuild and compare any of them. CSV files carry no provenance of
their own; :func:`load_shipped_metric` reattaches it from the manifest.

Rebuild everything with ``python -m wpgdkit.labelmetric.shipped`` (or
``make metrics``).
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import numpy as np

from wpgdkit import __version__
from wpgdkit.errors import DataNotFoundError
from wpgdkit.jsonutil import write_json
from wpgdkit.labelmetric.core import LabelMetric, Provenance
from wpgdkit.labelmetric.io import read_metric, write_metric
from wpgdkit.labelmetric.sources import BuildConfig, build_metric
from wpgdkit.resources import metrics_dir

__all__ = ["SHIPPED_BUILDS", "PAPER_TOY_METRIC", "read_manifest", "load_shipped_metric", "build_shipped_metrics"]

MANIFEST = "manifest.json"

#: Metrics built from a source, by file name. MNIST's linear metric is not
#: shipped: MNIST cannot be downloaded where the shipped files are built;
#: `wpgdkit metric build --dataset mnist --source linear --download` makes it.
SHIPPED_BUILDS: dict[str, BuildConfig] = {
    "cifar10-wordnet.csv": BuildConfig(source="wordnet", dataset="cifar10"),
    "cifar100-wordnet.csv": BuildConfig(source="wordnet", dataset="cifar100"),
    "tiny-imagenet-wordnet.csv": BuildConfig(source="wordnet", dataset="tiny-imagenet"),
    "fashion-mnist-wordnet.csv": BuildConfig(source="wordnet", dataset="fashion-mnist"),
    "fashion-mnist-linear.csv": BuildConfig(source="linear", dataset="fashion-mnist"),
}

#: The cost matrix of the paper's three-class toy problem (Sec. 3.4): mistaking
#: 0 for 1 costs 10, 1 for 2 costs 1, 0 for 2 costs 0.01. Note it breaks the
#: triangle inequality (10 > 0.01 + 1).
PAPER_TOY_METRIC = LabelMetric(
    ("0", "1", "2"),
    np.array([[0.0, 10.0, 0.01], [10.0, 0.0, 1.0], [0.01, 1.0, 0.0]]),
    Provenance(
        source="paper", dataset="toy", tool_version=__version__,
        parameters={"reference": "Wasserstein Projected Gradient Descent, Sec. 3.4 (Figs. 8 and 9)"},
    ),
)
_PAPER_FILES = {"toy-paper.csv": PAPER_TOY_METRIC}


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def read_manifest(folder: Path | None = None) -> dict:
    """Return ``{"metrics": [{"file", "sha256", "provenance"}, ...]}`` from ``manifest.json``."""
    path = (folder or metrics_dir()) / MANIFEST
    if not path.is_file():
        raise DataNotFoundError(f"no {MANIFEST} in {path.parent}")
    return json.loads(path.read_text(encoding="utf-8"))


def load_shipped_metric(file: str) -> LabelMetric:
    """Read a shipped metric (e.g. ``"cifar10-wordnet.csv"``) with its provenance.

    Raises
    ------
    DataNotFoundError
        If no such file is shipped; the message lists the shipped ones.
    """
    entries = {e["file"]: e for e in read_manifest()["metrics"]}
    if file not in entries:
        raise DataNotFoundError(f"no shipped metric {file!r}; shipped: {', '.join(entries)}")
    metric = read_metric(metrics_dir() / file)
    return LabelMetric(metric.classes, metric.matrix, Provenance.from_dict(entries[file]["provenance"]))


def build_shipped_metrics(folder: Path | None = None, *, only: list[str] | None = None) -> dict:
    """Build the shipped metrics into ``folder`` and write its manifest.

    Parameters
    ----------
    folder : Path, optional
        Defaults to the shipped metrics folder.
    only : list of str, optional
        Rebuild only these files; the others keep their manifest entries.

    Returns
    -------
    manifest : dict
    """
    folder = folder or metrics_dir()
    try:
        entries = {e["file"]: e for e in read_manifest(folder)["metrics"]}
    except DataNotFoundError:
        entries = {}
    targets = {**{f: None for f in _PAPER_FILES}, **SHIPPED_BUILDS}
    for file, config in targets.items():
        if only is not None and file not in only:
            continue
        metric = _PAPER_FILES[file] if config is None else build_metric(config)
        path = write_metric(metric, folder / file)
        entries[file] = {"file": file, "sha256": _sha256(path), "provenance": metric.provenance.to_dict()}
        print(f"built {file}", file=sys.stderr)
    manifest = {"format": "wpgdkit-metrics-manifest", "version": 1, "metrics": [entries[f] for f in sorted(entries)]}
    write_json(manifest, folder / MANIFEST, indent=1)
    return manifest


if __name__ == "__main__":
    build_shipped_metrics(only=sys.argv[1:] or None)
