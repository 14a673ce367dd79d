"""Class orders for K×K pictures (wpgdkit.labelmetric.ordering) and their use in the heatmaps and audit plots.

The drawn data are read back from matplotlib (``AxesImage.get_array``,
``get_clim``, tick labels) by recording every figure just before it is saved.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from wpgdkit.attacks import AttackConfig, ThreatModel
from wpgdkit.audit import AuditConfig, AuditReport, ModelAudit, ModelPredictions
from wpgdkit.audit.plots import audit_arrangement, gap_color_range, write_audit_plots
from wpgdkit.audit.scores import accuracy_gap, confusion_matrix, error_rate
from wpgdkit.errors import WpgdkitError
from wpgdkit.figures import agg_pyplot
from wpgdkit.labelmetric.core import LabelMetric, Provenance
from wpgdkit.labelmetric.ordering import (
    ClassArrangement,
    arrange_classes,
    default_group_count,
    metric_groups,
    metric_order,
)
from wpgdkit.labelmetric.plot import draw_heatmap, heatmap_arrangement, plot_heatmap


def block_metric(sizes: list[int], *, seed: int = 0, near: float = 1.0,
                 far: float = 4.0) -> tuple[np.ndarray, np.ndarray]:
    """A metric of clusters of the given sizes (cost ``near`` inside, ``far`` across), classes shuffled.

    Returns the matrix and each class's cluster.
    """
    cluster = np.repeat(np.arange(len(sizes)), sizes)
    cluster = cluster[np.random.default_rng(seed).permutation(len(cluster))]
    matrix = np.where(cluster[:, None] == cluster[None, :], near, far)
    np.fill_diagonal(matrix, 0.0)
    return matrix, cluster


def runs(values) -> int:
    """How many runs of equal values a sequence has."""
    values = list(values)
    return 1 + sum(a != b for a, b in zip(values, values[1:])) if values else 0


# --- the order -------------------------------------------------------------------------------


def test_each_cluster_of_a_shuffled_block_metric_is_contiguous():
    matrix, cluster = block_metric([6, 5], seed=1)
    assert runs(cluster) > 2  # label order scatters the clusters
    order = metric_order(matrix)
    assert sorted(order) == list(range(11))
    assert runs(cluster[order]) == 2


def test_nested_clusters_are_contiguous_at_every_level():
    # Four clusters in two super-clusters: costs 1 inside a cluster, 3 inside a super-cluster, 8 across.
    leaf = np.repeat(np.arange(4), [4, 3, 5, 4])
    perm = np.random.default_rng(3).permutation(len(leaf))
    leaf = leaf[perm]
    top = leaf // 2
    matrix = np.where(leaf[:, None] == leaf[None, :], 1.0, np.where(top[:, None] == top[None, :], 3.0, 8.0))
    np.fill_diagonal(matrix, 0.0)
    order = metric_order(matrix)
    assert sorted(order) == list(range(len(leaf)))
    assert runs(leaf[order]) == 4 and runs(top[order]) == 2
    assert [len(range(s, e)) for s, e, _ in metric_groups(matrix, order, n_groups=2)] == [
        int((top == top[order[0]]).sum()), int((top != top[order[0]]).sum())]
    assert [label for _, _, label in metric_groups(matrix, order, n_groups=4)] == ["A", "B", "C", "D"]


def test_order_is_deterministic_and_ties_keep_label_order():
    matrix, cluster = block_metric([6, 5], seed=1)
    first = metric_order(matrix)
    assert all(metric_order(matrix) == first for _ in range(3))
    # Inside a cluster every pair is tied: its classes come in label order (one way or the other).
    for c in (0, 1):
        inside = [i for i in first if cluster[i] == c]
        assert inside in (sorted(inside), sorted(inside, reverse=True))
    # No structure at all: label order, and no groups (every cut would split ties).
    uniform = np.ones((7, 7)) - np.eye(7)
    assert metric_order(uniform) == list(range(7))
    assert metric_groups(uniform, range(7), n_groups=3) == [(0, 7, "A")]
    # An order that is already the metric's survives.
    line = np.abs(np.subtract.outer(np.arange(6.0), np.arange(6.0)))
    assert metric_order(line) == list(range(6))


@pytest.mark.parametrize("k", [0, 1, 2])
def test_tiny_metrics(k):
    matrix = np.ones((k, k)) - np.eye(k)
    assert metric_order(matrix) == list(range(k))
    arrangement = arrange_classes(k, matrix)
    assert arrangement.order == tuple(range(k)) and arrangement.groups == ()
    if k == 1:
        assert metric_groups(matrix, [0], n_groups=3) == [(0, 1, "A")]
    if k == 2:
        assert metric_groups(matrix, [0, 1], n_groups=1) == [(0, 2, "A")]
        assert metric_groups(matrix, [1, 0], n_groups=2) == [(0, 1, "A"), (1, 2, "B")]


def test_asymmetric_metric_and_masked_diagonal():
    matrix, cluster = block_metric([4, 4], seed=2)
    skewed = matrix.copy()
    skewed[np.triu_indices(8, 1)] *= 1.5  # asymmetric, same clusters
    masked = matrix.copy()
    np.fill_diagonal(masked, np.nan)  # a plot's grey diagonal plays no part
    assert runs(cluster[metric_order(skewed)]) == 2
    assert metric_order(masked) == metric_order(matrix)


def test_groups_along_label_order_share_their_cluster_label():
    matrix, cluster = block_metric([6, 5], seed=1)
    groups = metric_groups(matrix, range(11), n_groups=2)
    assert groups[0][0] == 0 and groups[-1][1] == 11
    assert all(a[1] == b[0] for a, b in zip(groups, groups[1:]))  # contiguous, covering the axis
    assert len(groups) == runs(cluster) and {label for _, _, label in groups} == {"A", "B"}
    for start, end, label in groups:
        assert len(set(cluster[start:end])) == 1
        assert all(lab == label for s, e, lab in groups if cluster[s] == cluster[start])


def test_bad_input_is_one_line_error():
    with pytest.raises(WpgdkitError, match="square"):
        metric_order(np.zeros((2, 3)))
    with pytest.raises(WpgdkitError, match="negative"):
        metric_order(-(np.ones((3, 3)) - np.eye(3)))
    with pytest.raises(WpgdkitError, match="NaN or infinite"):
        metric_order(np.array([[0.0, np.inf, 1.0], [1.0, 0.0, 1.0], [1.0, 1.0, 0.0]]))
    with pytest.raises(WpgdkitError, match="unknown linkage"):
        metric_order(np.ones((3, 3)) - np.eye(3), method="centroids")
    with pytest.raises(WpgdkitError, match="permutation"):
        metric_groups(np.ones((3, 3)) - np.eye(3), [0, 0, 1], n_groups=2)
    with pytest.raises(WpgdkitError, match="number of groups"):
        metric_groups(np.ones((3, 3)) - np.eye(3), [0, 1, 2], n_groups=-1)
    with pytest.raises(WpgdkitError, match="unknown plot order"):
        arrange_classes(3, np.ones((3, 3)) - np.eye(3), order="alphabetical")


def test_arrangements():
    matrix, cluster = block_metric([6, 5, 4], seed=4)
    arrangement = arrange_classes(15, matrix)
    assert arrangement.by == "metric" and runs(cluster[list(arrangement.order)]) == 3
    # Three equidistant clusters cannot be cut into default_group_count(15) = 2 without splitting a tie: no marks.
    assert default_group_count(15) == 2 and arrangement.groups == ()
    three = arrange_classes(15, matrix, n_groups=3)
    assert three.order == arrangement.order
    assert sorted(end - start for start, end, _ in three.groups) == [4, 5, 6]
    for start, end, _ in three.groups:
        assert len(set(cluster[list(three.order[start:end])])) == 1
    assert np.array_equal(arrangement.matrix(matrix), matrix[np.ix_(arrangement.order, arrangement.order)])
    names = [f"c{i}" for i in range(15)]
    assert arrangement.names(names) == [f"c{i}" for i in arrangement.order]
    # Label order on request, or without a metric: no groups either.
    assert arrange_classes(15, matrix, order="label") == ClassArrangement(tuple(range(15)), (), "label")
    assert arrange_classes(15, None) == ClassArrangement(tuple(range(15)), (), "label")
    assert arrange_classes(15, matrix, n_groups=0).groups == ()
    assert default_group_count(3) == 0 and default_group_count(100) == 5 and default_group_count(10_000) == 8
    with pytest.raises(WpgdkitError, match=r"\(15, 15\)"):
        arrangement.matrix(np.zeros((3, 3)))


# --- heatmaps ---------------------------------------------------------------------------------


def image_of(ax) -> np.ndarray:
    (image,) = ax.images
    return np.ma.filled(image.get_array().astype(np.float64), np.nan)


def tick_names(ax) -> list[str]:
    return [t.get_text() for t in ax.get_xticklabels()]


def test_draw_heatmap_draws_the_permuted_matrix():
    plt = agg_pyplot()
    matrix, cluster = block_metric([6, 5], seed=1)
    names = [f"class {i}" for i in range(11)]
    order = metric_order(matrix)
    fig, axes = plt.subplots(1, 2)
    try:
        draw_heatmap(fig, axes[0], matrix, names, order="metric", n_groups=2)
        draw_heatmap(fig, axes[1], matrix, names, order="label")
        assert np.array_equal(image_of(axes[0]), matrix[np.ix_(order, order)])
        assert tick_names(axes[0]) == [names[i] for i in order]
        assert "metric order" in axes[0].get_xlabel()
        # Group marks: a boundary line on each axis (two strokes each) and the labels above.
        assert len(axes[0].lines) == 4
        assert np.array_equal(image_of(axes[1]), matrix)
        assert tick_names(axes[1]) == names and not axes[1].lines
    finally:
        plt.close(fig)


def test_a_confusion_is_ordered_by_the_metric_given():
    plt = agg_pyplot()
    metric, _ = block_metric([6, 5], seed=1)
    confusion = np.random.default_rng(0).random((11, 11))
    order = metric_order(metric)
    fig, ax = plt.subplots()
    try:
        draw_heatmap(fig, ax, confusion, [str(i) for i in range(11)], metric=metric)
        assert np.array_equal(image_of(ax), confusion[np.ix_(order, order)])
    finally:
        plt.close(fig)


def test_signed_matrix_without_a_metric_keeps_label_order():
    signed = np.random.default_rng(1).normal(size=(5, 5))
    assert heatmap_arrangement(signed, 5).order == tuple(range(5))
    arrangement = ClassArrangement((2, 0, 1), (), "metric")
    assert heatmap_arrangement(signed[:3, :3], 3, order=arrangement) is arrangement
    with pytest.raises(WpgdkitError, match="over 3 classes"):
        heatmap_arrangement(signed, 5, order=arrangement)
    with pytest.raises(WpgdkitError, match="unknown plot order"):
        heatmap_arrangement(signed, 5, order="random")


@pytest.fixture
def recorded(monkeypatch):
    """Every figure saved by the heatmap and audit plot modules: file name → [(array, clim, x tick names)]."""
    import wpgdkit.audit.plots as audit_plots
    import wpgdkit.labelmetric.plot as heatmaps

    seen: dict[str, list[tuple[np.ndarray, tuple[float, float], list[str]]]] = {}

    def recording(real):
        def save(fig, path, **kwargs):
            seen[Path(path).name] = [(image_of(ax), ax.images[0].get_clim(), tick_names(ax))
                                     for ax in fig.axes if ax.images]
            return real(fig, path, **kwargs)
        return save

    monkeypatch.setattr(heatmaps, "save_figure", recording(heatmaps.save_figure))
    monkeypatch.setattr(audit_plots, "save_figure", recording(audit_plots.save_figure))
    return seen


def test_plot_heatmap_orders_by_the_matrix_itself_or_keeps_label_order(tmp_path, recorded):
    matrix, _ = block_metric([5, 4], seed=6)
    names = [f"n{i}" for i in range(9)]
    order = metric_order(matrix)
    assert order != list(range(9))
    plot_heatmap(matrix, names, tmp_path / "metric.png")
    plot_heatmap(matrix, names, tmp_path / "label.png", order="label")
    (array, _, ticks), = recorded["metric.png"]
    assert np.array_equal(array, matrix[np.ix_(order, order)]) and ticks == [names[i] for i in order]
    (array, _, ticks), = recorded["label.png"]
    assert np.array_equal(array, matrix) and ticks == names


def test_many_classes_are_ordered_with_index_ticks(tmp_path, recorded):
    matrix, cluster = block_metric([30, 20, 10], seed=8)
    plot_heatmap(matrix, [f"class {i}" for i in range(60)], tmp_path / "big.png")
    (array, _, ticks), = recorded["big.png"]
    order = metric_order(matrix)
    assert np.array_equal(array, matrix[np.ix_(order, order)])
    assert ticks[:3] == [str(order[p]) for p in (0, 3, 6)]  # every third position, by class index


# --- audit plots: one arrangement and one gap scale ---------------------------------------------


def two_model_report(k: int = 9, n: int = 450) -> AuditReport:
    """Two models and a baseline's gaps over a block metric, built without training."""
    metric_matrix, _ = block_metric([4, 5], seed=9)
    g = torch.Generator().manual_seed(1)
    y = torch.arange(n) % k
    baseline = torch.where(torch.rand(n, generator=g) < 0.8, y, torch.randint(0, k, (n,), generator=g))
    base_rates = confusion_matrix(y, baseline, k, normalize="true")
    models = []
    for index, (name, accuracy) in enumerate((("weak", 0.4), ("strong", 0.9))):
        natural = torch.where(torch.rand(n, generator=g) < accuracy, y, torch.randint(0, k, (n,), generator=g))
        adversarial = torch.where(torch.rand(n, generator=g) < accuracy / 2, y,
                                  torch.randint(0, k, (n,), generator=g))
        entropy = torch.rand(n, generator=g, dtype=torch.float64) * math.log(k)
        gap = accuracy_gap(confusion_matrix(y, natural, k, normalize="true"), base_rates)
        models.append(ModelAudit(
            name=name, checkpoint=f"{name}.pt", method="pgd", p=None, train_eps=0.5,
            natural_error=error_rate(y, natural), adversarial_error=error_rate(y, adversarial),
            confusion_natural=confusion_matrix(y, natural, k),
            confusion_adversarial=confusion_matrix(y, adversarial, k),
            predictions=ModelPredictions(natural, adversarial, entropy * 0.5, entropy), gap=gap))
    classes = tuple(f"c{i}" for i in range(k))
    return AuditReport(config=AuditConfig(checkpoints=("weak.pt", "strong.pt"), bins=5),
                       attack=AttackConfig("pgd", ThreatModel(eps=0.5, norm="l2", steps=2)), dataset="synthetic",
                       classes=classes, labels=y, metric=LabelMetric(classes, metric_matrix, Provenance(source="test")),
                       metric_origin="test", models=models, baseline="base.pt")


@pytest.fixture(scope="module")
def report() -> AuditReport:
    return two_model_report()


def test_gap_pictures_share_one_colour_scale(report, tmp_path, recorded):
    gaps = [m.gap.numpy() for m in report.models]
    tops = [float(g[~np.eye(9, dtype=bool)].max()) for g in gaps]
    assert tops[0] != tops[1]  # each model alone would get its own scale
    assert gap_color_range(report.models) == (0.0, max(tops))
    write_audit_plots(report, tmp_path / "plots")
    order = list(audit_arrangement(report).order)
    for model, gap in zip(report.models, gaps):
        (metric, metric_clim, _), (drawn, clim, ticks) = recorded[f"{model.name}-gap.png"]
        assert clim == (0.0, max(tops))
        expected = gap[np.ix_(order, order)].copy()
        np.fill_diagonal(expected, np.nan)
        assert np.array_equal(drawn, expected, equal_nan=True)
        assert np.array_equal(metric, report.metric.matrix[np.ix_(order, order)])
        assert ticks == [report.classes[i] for i in order]
    # The confusion matrices are rates of the true class's points: [0, 1] for every model and kind.
    for model in report.models:
        for kind in ("natural", "adversarial"):
            (drawn, clim, _), = recorded[f"{model.name}-confusion-{kind}.png"]
            assert clim == (0.0, 1.0)
            predictions = getattr(model.predictions, kind)
            rates = confusion_matrix(report.labels, predictions, 9, normalize="true").numpy()
            assert np.array_equal(drawn, rates[np.ix_(order, order)])
    (drawn, _, _), = recorded["metric.png"]
    assert np.array_equal(drawn, report.metric.matrix[np.ix_(order, order)])


def test_audit_plots_in_label_order(report, tmp_path, recorded):
    assert list(audit_arrangement(report).order) != list(range(9))  # the metric does reorder this audit
    write_audit_plots(report, tmp_path / "plots", order="label")
    (metric, _, ticks), = recorded["metric.png"]
    assert np.array_equal(metric, report.metric.matrix) and ticks == list(report.classes)
    (drawn, _, _), = recorded["strong-confusion-natural.png"]
    rates = confusion_matrix(report.labels, report.models[1].predictions.natural, 9, normalize="true").numpy()
    assert np.array_equal(drawn, rates)
    with pytest.raises(WpgdkitError, match="unknown plot order"):
        write_audit_plots(report, tmp_path / "bad", order="random")
    assert not (tmp_path / "bad").exists()


def test_the_shared_scale_falls_back_to_one_without_a_gap(report):
    import dataclasses

    assert gap_color_range([dataclasses.replace(m, gap=None) for m in report.models]) == (0.0, 1.0)
    flat = dataclasses.replace(report.models[0], gap=torch.zeros(9, 9, dtype=torch.float64))
    assert gap_color_range([flat]) == (0.0, 1.0)
