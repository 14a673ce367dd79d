"""The shipped metrics/ files: intact, valid, and rebuilt exactly by their recorded commands."""

from __future__ import annotations

import hashlib
import shlex

import numpy as np
import pytest
from typer.testing import CliRunner

from wpgdkit.cli import app
from wpgdkit.labelmetric import analyze_metric, read_metric, validate_metric
from wpgdkit.labelmetric.shipped import SHIPPED_BUILDS, load_shipped_metric, read_manifest
from wpgdkit.resources import metrics_dir

MANIFEST = read_manifest()["metrics"]
ENTRIES = {e["file"]: e for e in MANIFEST}
WORDNET = sorted(f for f, e in ENTRIES.items() if e["provenance"]["source"] == "wordnet")


def test_manifest_covers_every_shipped_metric():
    expected = {"cifar10-wordnet.csv", "cifar100-wordnet.csv", "tiny-imagenet-wordnet.csv",
                "fashion-mnist-wordnet.csv", "fashion-mnist-linear.csv", "toy-paper.csv"}
    assert set(ENTRIES) == expected
    assert set(SHIPPED_BUILDS) <= set(ENTRIES)


@pytest.mark.parametrize("file", sorted(ENTRIES))
def test_shipped_file_matches_its_checksum_and_is_valid(file):
    path = metrics_dir() / file
    assert hashlib.sha256(path.read_bytes()).hexdigest() == ENTRIES[file]["sha256"]
    metric = load_shipped_metric(file)
    validate_metric(metric)
    assert metric.provenance.to_dict() == ENTRIES[file]["provenance"]


@pytest.mark.parametrize("file", WORDNET)
def test_wordnet_metric_is_rebuilt_exactly_by_its_command(tmp_path, file):
    command = ENTRIES[file]["provenance"]["command"]
    words = shlex.split(command)
    assert words[:3] == ["wpgdkit", "metric", "build"]
    out = tmp_path / file
    result = CliRunner().invoke(app, [*words[1:], "--out", str(out), "--quiet"])
    assert result.exit_code == 0, result.stderr
    assert out.read_bytes() == (metrics_dir() / file).read_bytes()


def test_shipped_shapes_and_hand_checked_entries():
    c10 = read_metric(metrics_dir() / "cifar10-wordnet.csv")
    assert c10.num_classes == 10 and c10.matrix[3, 5] == 4
    c100 = read_metric(metrics_dir() / "cifar100-wordnet.csv")
    assert c100.num_classes == 100
    i, j = c100.classes.index("maple_tree"), c100.classes.index("oak_tree")
    assert c100.matrix[i, j] == 3  # maple.n.02 → angiospermous_tree.n.01 → tree.n.01 ← oak.n.02
    tiny = read_metric(metrics_dir() / "tiny-imagenet-wordnet.csv")
    assert tiny.num_classes == 200 and tiny.classes[0] == "n02124075"


def test_fashion_mnist_linear_puts_garments_near_garments():
    metric = load_shipped_metric("fashion-mnist-linear.csv")
    assert metric.provenance.source == "linear" and metric.provenance.dataset == "fashion-mnist"
    row = dict(zip(metric.classes, metric.matrix[metric.classes.index("Shirt")]))
    del row["Shirt"]
    nearest = min(row, key=row.get)
    assert nearest in {"T-shirt/top", "Pullover", "Coat"}
    assert row["Trouser"] > row[nearest] and row["Ankle boot"] > row[nearest]


def test_paper_toy_metric_and_its_triangle_violation():
    metric = load_shipped_metric("toy-paper.csv")
    np.testing.assert_array_equal(metric.matrix, [[0, 10, 0.01], [10, 0, 1], [0.01, 1, 0]])
    report = analyze_metric(metric)
    assert report.triangle_violations == 2 and report.worst_triangle_violation.excess == pytest.approx(10 - 1.01)
