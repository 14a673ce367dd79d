"""Heatmaps of K×K matrices with class names on the axes."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from wpgdkit.atomic import atomic_path
from wpgdkit.errors import WpgdkitError

__all__ = ["plot_heatmap"]


def plot_heatmap(
    matrix: np.ndarray,
    classes: Sequence[str],
    path: str | os.PathLike[str],
    *,
    title: str = "",
    colorbar_label: str = "",
    cmap: str = "viridis",
) -> Path:
    """Write a PNG heatmap of ``matrix`` with the class names on both axes.

    Names are shown for up to 40 classes; beyond that the axes show indices
    every few classes so the picture stays readable.

    Returns
    -------
    path : Path
    """
    import matplotlib

    matplotlib.use("Agg")  # files only; never needs a display
    import matplotlib.pyplot as plt

    path = Path(path)
    if path.suffix.lower() not in (".png", ".pdf", ".svg"):
        raise WpgdkitError(f"plot file must end in .png, .pdf or .svg, got {path.name}")
    k = len(classes)
    size = min(4 + 0.28 * min(k, 40), 16)
    fig, ax = plt.subplots(figsize=(size + 1.5, size))
    try:
        image = ax.imshow(np.asarray(matrix), cmap=cmap, interpolation="nearest")
        if k <= 40:
            ax.set_xticks(range(k), labels=classes, rotation=90, fontsize=8)
            ax.set_yticks(range(k), labels=classes, fontsize=8)
        else:
            step = max(1, k // 20)
            ax.set_xticks(range(0, k, step))
            ax.set_yticks(range(0, k, step))
            ax.set_xlabel("class index")
            ax.set_ylabel("class index")
        ax.set_title(title)
        bar = fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
        bar.set_label(colorbar_label)
        fig.tight_layout()
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=120, format=path.suffix.lstrip(".").lower())
    finally:
        plt.close(fig)
    return path
