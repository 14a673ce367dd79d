"""Heatmaps of K×K matrices with class names on the axes.

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

# The figure helpers live in wpgdkit.figures; re-exported here for older imports.
from wpgdkit.figures import PLOT_SUFFIXES, agg_pyplot, check_plot_suffix, save_figure

__all__ = [
    "plot_heatmap",
    "draw_heatmap",
    "heatmap_size",
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
) -> Any:
    """Draw ``matrix`` on ``ax`` with the class names on both axes and a colour bar.

    NaN entries are drawn light grey (e.g. a masked diagonal) and never
    annotated. With ``annotate`` each cell shows its value (``value_format``)
    in black or white, whichever reads better on the cell's colour; cells are
    annotated only up to 40 classes.

    Returns
    -------
    image : matplotlib.image.AxesImage
    """
    import matplotlib

    values = np.asarray(matrix, dtype=np.float64)
    k = len(classes)
    colormap = matplotlib.colormaps[cmap].with_extremes(bad="#dddddd")
    image = ax.imshow(np.ma.masked_invalid(values), cmap=colormap, interpolation="nearest", vmin=vmin, vmax=vmax)
    if k <= MAX_NAMED_CLASSES:
        ax.set_xticks(range(k), labels=classes, rotation=90, fontsize=8)
        ax.set_yticks(range(k), labels=classes, fontsize=8)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
    else:
        step = max(1, k // 20)
        ax.set_xticks(range(0, k, step))
        ax.set_yticks(range(0, k, step))
        ax.set_xlabel(f"{xlabel} (index)" if xlabel else "class index")
        ax.set_ylabel(f"{ylabel} (index)" if ylabel else "class index")
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
) -> Path:
    """Write a heatmap of ``matrix`` with the class names on both axes.

    Names are shown for up to 40 classes; beyond that the axes show indices
    every few classes so the picture stays readable. The format follows the
    ending of ``path`` (.png, .pdf or .svg); the file is written atomically.

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
                     ylabel=ylabel)
        fig.tight_layout()
        save_figure(fig, path)
    finally:
        plt.close(fig)
    return path
