"""Heatmaps of K×K matrices with class names on the axes.

By default the classes follow the label metric's hierarchy
(:mod:`wpgdkit.labelmetric.ordering`): related classes sit side by side,
so a WordNet metric shows as blocks rather than noise at 100 or 200
classes, and a few groups of related classes are marked on the axes.
``order="label"`` keeps label order.

``agg_pyplot``, ``check_plot_suffix``, ``save_figure`` and ``PLOT_SUFFIXES``
live in :mod:`wpgdkit.figures`; they stay importable from here.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from wpgdkit.errors import WpgdkitError

# The figure helpers live in wpgdkit.figures; re-exported here for older imports.
from wpgdkit.figures import PLOT_SUFFIXES, agg_pyplot, check_plot_suffix, save_figure
from wpgdkit.labelmetric.ordering import PLOT_ORDERS, ClassArrangement, arrange_classes

__all__ = [
    "plot_heatmap",
    "draw_heatmap",
    "heatmap_size",
    "heatmap_arrangement",
    "PLOT_ORDERS",
    "save_figure",
    "agg_pyplot",
    "check_plot_suffix",
    "PLOT_SUFFIXES",
]

#: Class names are written on the axes up to this many classes; beyond, indices.
MAX_NAMED_CLASSES = 40


def heatmap_size(k: int) -> float:
    """Side in inches of a heatmap panel of ``k`` classes (grows with K, capped)."""
    return min(4 + 0.28 * min(k, MAX_NAMED_CLASSES), 16)


def heatmap_arrangement(
    matrix: np.ndarray,
    num_classes: int,
    *,
    order: str | ClassArrangement = "metric",
    metric: np.ndarray | None = None,
    n_groups: int | None = None,
) -> ClassArrangement:
    """How a heatmap arranges its classes (see :func:`plot_heatmap`'s ``order`` and ``metric``).

    A :class:`~wpgdkit.labelmetric.ordering.ClassArrangement` is used as it
    is (computed once, it serves every plot of an audit). ``"metric"`` orders
    by ``metric``, else by ``matrix`` itself when that can serve as a
    dissimilarity (finite and non-negative off the diagonal), else keeps
    label order: a matrix of signed values has no hierarchy to show.
    """
    if isinstance(order, ClassArrangement):
        if order.num_classes != num_classes:
            raise WpgdkitError(f"the class arrangement is over {order.num_classes} classes, "
                               f"the plot over {num_classes}")
        return order
    if order not in PLOT_ORDERS:
        raise WpgdkitError(f"unknown plot order {order!r}; choose one of: {', '.join(PLOT_ORDERS)}")
    if order == "label":
        return arrange_classes(num_classes, None)
    if metric is None:
        values = np.asarray(matrix, dtype=np.float64)
        off = values[~np.eye(num_classes, dtype=bool)] if values.shape == (num_classes, num_classes) else values
        if values.shape != (num_classes, num_classes) or not np.isfinite(off).all() or (off < 0).any():
            return arrange_classes(num_classes, None)
        metric = values
    return arrange_classes(num_classes, metric, order="metric", n_groups=n_groups)


def _mark_groups(ax: Any, arrangement: ClassArrangement) -> None:
    """Lines between the groups across the heatmap, and each group's label above its columns."""
    groups = arrangement.groups
    if not groups:
        return
    for start, _, _ in groups[1:]:
        edge = start - 0.5
        # A dark line under a light one: visible on every colour of every colour map.
        for color, width in (("black", 1.6), ("white", 0.7)):
            ax.axhline(edge, color=color, linewidth=width, alpha=0.85)
            ax.axvline(edge, color=color, linewidth=width, alpha=0.85)
    top = ax.secondary_xaxis("top")
    top.set_xticks([(start + end - 1) / 2 for start, end, _ in groups],
                   labels=[label for _, _, label in groups], fontsize=8, fontweight="bold")
    top.tick_params(length=0)


def draw_heatmap(
    fig: Any,
    ax: Any,
    matrix: np.ndarray,
    classes: Sequence[str],
    *,
    title: str = "",
    colorbar_label: str = "",
    cmap: str = "viridis",
    annotate: bool = False,
    value_format: str = ".2f",
    vmin: float | None = None,
    vmax: float | None = None,
    xlabel: str = "",
    ylabel: str = "",
    order: str | ClassArrangement = "metric",
    metric: np.ndarray | None = None,
    n_groups: int | None = None,
) -> Any:
    """Draw ``matrix`` on ``ax`` with the class names on both axes and a colour bar.

    The classes are arranged as :func:`heatmap_arrangement` says (by default
    the hierarchy of ``metric``, else of the matrix itself), the same on both
    axes, with the groups of related classes marked. NaN entries are drawn
    light grey (e.g. a masked diagonal) and never annotated. With
    ``annotate`` each cell shows its value (``value_format``) in black or
    white, whichever reads better on the cell's colour; cells are annotated
    only up to 40 classes.

    Returns
    -------
    image : matplotlib.image.AxesImage
        Its array is the matrix in the plot's order.
    """
    import matplotlib

    k = len(classes)
    arrangement = heatmap_arrangement(matrix, k, order=order, metric=metric, n_groups=n_groups)
    values = arrangement.matrix(np.asarray(matrix, dtype=np.float64))
    names = arrangement.names(classes)
    colormap = matplotlib.colormaps[cmap].with_extremes(bad="#dddddd")
    image = ax.imshow(np.ma.masked_invalid(values), cmap=colormap, interpolation="nearest", vmin=vmin, vmax=vmax)
    # Say so when the axes are not in label order: a reader would otherwise assume they are.
    reordered = arrangement.by == "metric" and k > 2
    if k <= MAX_NAMED_CLASSES:
        ax.set_xticks(range(k), labels=names, rotation=90, fontsize=8)
        ax.set_yticks(range(k), labels=names, fontsize=8)
        suffix = " (metric order)" if reordered else ""
        ax.set_xlabel(f"{xlabel}{suffix}" if xlabel else suffix.strip(" ()"))
        ax.set_ylabel(f"{ylabel}{suffix}" if ylabel else suffix.strip(" ()"))
    else:
        step = max(1, k // 20)
        ticks = list(range(0, k, step))
        # The labels are the classes' indices, wherever the order puts them.
        ax.set_xticks(ticks, labels=[str(arrangement.order[p]) for p in ticks], rotation=90 if reordered else 0,
                      fontsize=8)
        ax.set_yticks(ticks, labels=[str(arrangement.order[p]) for p in ticks], fontsize=8)
        suffix = "index, metric order" if reordered else "index"
        ax.set_xlabel(f"{xlabel} ({suffix})" if xlabel else f"class {suffix}")
        ax.set_ylabel(f"{ylabel} ({suffix})" if ylabel else f"class {suffix}")
    if annotate and 0 < k <= MAX_NAMED_CLASSES:
        fontsize = max(4.0, min(9.0, 90.0 / k))
        for i in range(values.shape[0]):
            for j in range(values.shape[1]):
                value = values[i, j]
                if not math.isfinite(value):
                    continue
                r, g, b, _ = colormap(image.norm(value))
                color = "black" if 0.299 * r + 0.587 * g + 0.114 * b > 0.5 else "white"
                ax.text(j, i, format(value, value_format), ha="center", va="center", fontsize=fontsize, color=color)
    _mark_groups(ax, arrangement)
    ax.set_title(title)
    bar = fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    bar.set_label(colorbar_label)
    return image


def plot_heatmap(
    matrix: np.ndarray,
    classes: Sequence[str],
    path: str | os.PathLike[str],
    *,
    title: str = "",
    colorbar_label: str = "",
    cmap: str = "viridis",
    annotate: bool = False,
    value_format: str = ".2f",
    vmin: float | None = None,
    vmax: float | None = None,
    xlabel: str = "",
    ylabel: str = "",
    order: str | ClassArrangement = "metric",
    metric: np.ndarray | None = None,
    n_groups: int | None = None,
) -> Path:
    """Write a heatmap of ``matrix`` with the class names on both axes.

    Names are shown for up to 40 classes; beyond that the axes show indices
    every few classes so the picture stays readable. The classes follow the
    hierarchy of the label metric unless ``order="label"``. The format
    follows the ending of ``path`` (.png, .pdf or .svg); the file is written
    atomically.

    Parameters
    ----------
    matrix : array of shape (K, K)
    classes : sequence of K str
    path : path-like
    title, colorbar_label, cmap : str, keyword-only
    annotate : bool, keyword-only, default=False
        Write each cell's value into it (for up to 40 classes).
    value_format : str, keyword-only, default=".2f"
        Format spec of the annotations.
    vmin, vmax : float or None, keyword-only
        Ends of the colour scale (default: the matrix's range); fix them to
        compare several pictures.
    xlabel, ylabel : str, keyword-only
        Axis titles (e.g. "predicted class", "true class").
    order : {"metric", "label"} or ClassArrangement, keyword-only, default="metric"
        ``"metric"``: classes in the order of the dendrogram of ``metric``
        (:func:`~wpgdkit.labelmetric.ordering.metric_order`), the same on both
        axes, groups of related classes marked; ``"label"``: label order; an
        arrangement: that one.
    metric : array of shape (K, K) or None, keyword-only
        The label metric whose hierarchy orders the classes; default
        ``matrix`` itself (the metric's own heatmap), or label order when
        ``matrix`` has negative or non-finite entries off the diagonal. Give
        it to order a confusion matrix or a gap by the metric.
    n_groups : int or None, keyword-only
        Groups to mark in metric order (0: none); default about √K / 2,
        none below 8 classes.

    Returns
    -------
    path : Path
    """
    plt = agg_pyplot()
    path = Path(path)
    check_plot_suffix(path)
    size = heatmap_size(len(classes))
    fig, ax = plt.subplots(figsize=(size + 1.5, size))
    try:
        draw_heatmap(fig, ax, matrix, classes, title=title, colorbar_label=colorbar_label, cmap=cmap,
                     annotate=annotate, value_format=value_format, vmin=vmin, vmax=vmax, xlabel=xlabel,
                     ylabel=ylabel, order=order, metric=metric, n_groups=n_groups)
        fig.tight_layout()
        save_figure(fig, path)
    finally:
        plt.close(fig)
    return path
