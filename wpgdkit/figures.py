"""Writing figures: matplotlib without a display, and one atomic ``save_figure``.

Every picture wpgdkit writes (metric heatmaps, audit plots, decision
boundaries) goes through :func:`save_figure`, so the accepted endings, the
error for a wrong one and the atomic write are the same everywhere.
Importing this module does not import matplotlib; :func:`agg_pyplot` does.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from wpgdkit.atomic import atomic_path
from wpgdkit.errors import WpgdkitError

__all__ = ["PLOT_SUFFIXES", "agg_pyplot", "check_plot_suffix", "save_figure"]

#: File endings a plot can be written as (matplotlib picks the format from them).
PLOT_SUFFIXES = (".png", ".pdf", ".svg")


def agg_pyplot() -> Any:
    """``matplotlib.pyplot`` on the Agg backend (files only; never needs a display)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def check_plot_suffix(path: str | os.PathLike[str]) -> str:
    """The format of ``path`` from its ending: ``"png"``, ``"pdf"`` or ``"svg"``.

    Raises
    ------
    WpgdkitError
        If ``path`` ends in anything else.
    """
    path = Path(path)
    if path.suffix.lower() not in PLOT_SUFFIXES:
        raise WpgdkitError(f"plot file must end in .png, .pdf or .svg, got {path.name}")
    return path.suffix.lstrip(".").lower()


def save_figure(fig: Any, path: str | os.PathLike[str], *, dpi: int = 120) -> Path:
    """Write ``fig`` atomically to ``path``, in the format its ending names.

    Parameters
    ----------
    fig : matplotlib.figure.Figure
    path : path-like
        Ends in .png, .pdf or .svg; missing folders are created.
    dpi : int, keyword-only, default=120

    Returns
    -------
    path : Path

    Raises
    ------
    WpgdkitError
        For another ending (checked before anything is drawn or written).
    """
    path = Path(path)
    fmt = check_plot_suffix(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, format=fmt)
    return path
