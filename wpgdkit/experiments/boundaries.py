"""Decision boundaries of 2-D classifiers on a grid: the paper's Figs. 8 and 9, and numbers that describe them.

A :class:`BoundaryGrid` covers the data with a square of cells;
:func:`predict_regions` labels every cell with a model's predicted class.
From those regions:

==========================  ======================================================
:func:`plot_boundaries`     panels of coloured class regions with the points on
                            top, e.g. a row per method and a column per ε
:func:`region_shares`       share of the square each class gets
:func:`boundary_bends`      how far each pairwise boundary is from a straight
                            line (0: flat)
:func:`boundary_distances`  median distance from the points of class i to the
                            region of class j (how far the adversary must go)
==========================  ======================================================

Everything here works for any number of classes and any model that maps
``(N, 2)`` points to ``(N, K)`` logits; nothing knows about the demo.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from wpgdkit.errors import WpgdkitError

__all__ = [
    "BoundaryGrid",
    "BoundaryPanel",
    "make_grid",
    "predict_regions",
    "region_shares",
    "boundary_bends",
    "boundary_distances",
    "plot_boundaries",
]


@dataclass(frozen=True)
class BoundaryGrid:
    """A square of ``resolution × resolution`` cells over the plane.

    Attributes
    ----------
    x_min, x_max, y_min, y_max : float
        The square's sides (``x_max − x_min == y_max − y_min``).
    resolution : int
        Cells per side.
    """

    x_min: float
    x_max: float
    y_min: float
    y_max: float
    resolution: int

    @property
    def cell(self) -> float:
        """Side of one cell."""
        return (self.x_max - self.x_min) / self.resolution

    @property
    def xs(self) -> np.ndarray:
        """Cell centres along x, shape (resolution,)."""
        return self.x_min + self.cell * (np.arange(self.resolution) + 0.5)

    @property
    def ys(self) -> np.ndarray:
        """Cell centres along y, shape (resolution,)."""
        return self.y_min + self.cell * (np.arange(self.resolution) + 0.5)

    @property
    def extent(self) -> tuple[float, float, float, float]:
        """``(x_min, x_max, y_min, y_max)`` for ``imshow``."""
        return (self.x_min, self.x_max, self.y_min, self.y_max)

    def centres(self) -> np.ndarray:
        """All cell centres, float32 of shape (resolution², 2), row by row from the bottom (y) and left (x)."""
        gx, gy = np.meshgrid(self.xs, self.ys)
        return np.stack([gx.ravel(), gy.ravel()], axis=1).astype(np.float32)


def make_grid(points: np.ndarray | torch.Tensor, *, margin: float = 0.5, resolution: int = 200) -> BoundaryGrid:
    """The square around ``points``, grown by ``margin`` on every side.

    Parameters
    ----------
    points : array of shape (N, 2)
    margin : float, keyword-only
        Added around the points' bounding box (≥ 0).
    resolution : int, keyword-only
        Cells per side (≥ 2).

    Raises
    ------
    WpgdkitError
        If the points are not a non-empty (N, 2) array of finite numbers, or
        ``margin``/``resolution`` are out of range.
    """
    pts = np.asarray(points.detach().cpu() if isinstance(points, torch.Tensor) else points, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[1] != 2 or len(pts) == 0:
        raise WpgdkitError(f"decision boundaries need (N, 2) points, got shape {pts.shape}")
    if not np.all(np.isfinite(pts)):
        raise WpgdkitError("decision boundaries need finite points")
    if not (math.isfinite(margin) and margin >= 0):
        raise WpgdkitError(f"the grid margin must be >= 0, got {margin}")
    if isinstance(resolution, bool) or not isinstance(resolution, int) or resolution < 2:
        raise WpgdkitError(f"the grid resolution must be an integer >= 2, got {resolution!r}")
    low, high = pts.min(axis=0), pts.max(axis=0)
    centre = (low + high) / 2
    half = max(float((high - low).max()) / 2, 1e-6) + margin
    return BoundaryGrid(float(centre[0] - half), float(centre[0] + half), float(centre[1] - half),
                        float(centre[1] + half), resolution)


def predict_regions(model: torch.nn.Module, grid: BoundaryGrid, *, device: str | torch.device = "cpu",
                    batch_size: int = 65536) -> np.ndarray:
    """The predicted class of every cell, int64 of shape (resolution, resolution); row 0 is the bottom."""
    centres = torch.from_numpy(grid.centres())
    was_training = model.training
    model.eval()
    out = []
    try:
        with torch.no_grad():
            for start in range(0, len(centres), batch_size):
                out.append(model(centres[start:start + batch_size].to(device)).argmax(dim=1).cpu())
    finally:
        model.train(was_training)
    return torch.cat(out).numpy().astype(np.int64).reshape(grid.resolution, grid.resolution)


def region_shares(regions: np.ndarray, num_classes: int) -> np.ndarray:
    """Share of the cells predicted as each class, float64 of shape (K,), summing to 1."""
    counts = np.bincount(np.asarray(regions).ravel(), minlength=num_classes)[:num_classes]
    return counts / max(int(counts.sum()), 1)


def boundary_bends(regions: np.ndarray, grid: BoundaryGrid, num_classes: int) -> np.ndarray:
    """How far each pairwise boundary is from a straight line, symmetric (K, K).

    ``B[i, j]`` is the root-mean-square distance of the boundary between
    classes ``i`` and ``j`` (the midpoints of the cell edges that separate
    them) from its best-fitting straight line (total least squares): 0 for a
    flat boundary, larger the more it bends. NaN where the two regions do not
    touch inside the square (or touch on fewer than 3 edges). The staircase of
    the grid alone gives about ``cell / √12``.
    """
    r = np.asarray(regions)
    k = num_classes
    xs, ys = grid.xs, grid.ys
    points: dict[tuple[int, int], list[np.ndarray]] = {}
    # Vertical edges between horizontal neighbours, then horizontal edges between vertical neighbours.
    for a, b, mid in (
        (r[:, :-1], r[:, 1:], lambda rows, cols: np.stack([(xs[cols] + xs[cols + 1]) / 2, ys[rows]], axis=1)),
        (r[:-1, :], r[1:, :], lambda rows, cols: np.stack([xs[cols], (ys[rows] + ys[rows + 1]) / 2], axis=1)),
    ):
        rows, cols = np.nonzero(a != b)
        lo, hi = np.minimum(a[rows, cols], b[rows, cols]), np.maximum(a[rows, cols], b[rows, cols])
        where = mid(rows, cols)
        for i in range(k):
            for j in range(i + 1, k):
                pick = (lo == i) & (hi == j)
                if pick.any():
                    points.setdefault((i, j), []).append(where[pick])
    out = np.full((k, k), np.nan)
    for (i, j), parts in points.items():
        pts = np.concatenate(parts)
        if len(pts) < 3:
            continue
        centred = pts - pts.mean(axis=0)
        # The smallest singular value measures the spread across the best line.
        smallest = np.linalg.svd(centred, compute_uv=False)[-1]
        out[i, j] = out[j, i] = float(smallest / math.sqrt(len(pts)))
    return out


def boundary_distances(regions: np.ndarray, grid: BoundaryGrid, points: np.ndarray | torch.Tensor,
                       labels: np.ndarray | torch.Tensor, num_classes: int) -> np.ndarray:
    """``D[i, j]``: median ℓ2 distance from the points of class ``i`` to the nearest cell predicted ``j``.

    0 for points already inside the region of ``j``; NaN where class ``i`` has
    no points, where no cell of the square is predicted ``j``, and on the
    diagonal. Measured between cell centres (a Euclidean distance transform
    of the grid), so accurate to about a cell.
    """
    from scipy.ndimage import distance_transform_edt

    pts = np.asarray(points.detach().cpu() if isinstance(points, torch.Tensor) else points, dtype=np.float64)
    y = np.asarray(labels.detach().cpu() if isinstance(labels, torch.Tensor) else labels)
    r = np.asarray(regions)
    cells = _cell_index(pts, grid)
    k = num_classes
    out = np.full((k, k), np.nan)
    for j in range(k):
        if not np.any(r == j):
            continue
        # Distance from every cell to the nearest cell of class j (0 inside it).
        to_j = distance_transform_edt(r != j, sampling=grid.cell).ravel()
        for i in range(k):
            if i != j and np.any(y == i):
                out[i, j] = float(np.median(to_j[cells[y == i]]))
    return out


def _cell_index(pts: np.ndarray, grid: BoundaryGrid) -> np.ndarray:
    col = np.clip(np.floor((pts[:, 0] - grid.x_min) / grid.cell).astype(np.int64), 0, grid.resolution - 1)
    row = np.clip(np.floor((pts[:, 1] - grid.y_min) / grid.cell).astype(np.int64), 0, grid.resolution - 1)
    return row * grid.resolution + col


# --- the picture --------------------------------------------------------------------------


@dataclass(frozen=True)
class BoundaryPanel:
    """One panel: a model's regions, a title, and optionally its ε drawn as a circle for scale."""

    regions: np.ndarray
    title: str
    eps: float | None = None


def _class_colours(k: int) -> np.ndarray:
    import matplotlib

    cmap = matplotlib.colormaps["tab10" if k <= 10 else "tab20" if k <= 20 else "hsv"]
    return np.array([cmap(i if k <= 20 else i / k)[:3] for i in range(k)])


def plot_boundaries(
    panels: Sequence[Sequence[BoundaryPanel | None]],
    grid: BoundaryGrid,
    points: np.ndarray | torch.Tensor,
    labels: np.ndarray | torch.Tensor,
    classes: Sequence[str],
    path: str | os.PathLike[str],
    *,
    row_titles: Sequence[str] | None = None,
    title: str | None = None,
    note: str | None = None,
    max_points: int = 600,
    dpi: int = 110,
) -> Path:
    """Write a figure of decision regions, one panel per model, atomically.

    Parameters
    ----------
    panels : rows of panels
        ``panels[r][c]`` is drawn at row ``r``, column ``c``; None leaves the
        place empty. Rows may differ in length.
    grid : BoundaryGrid
        The grid every panel's regions were predicted on.
    points, labels : arrays of shape (N, 2) and (N,)
        Drawn lightly on every panel (at most ``max_points``, the same ones everywhere).
    classes : sequence of str
        Class names, in label order, for the legend.
    path : path ending in .png, .pdf or .svg
    row_titles : sequence of str, keyword-only, optional
        Written left of each row.
    title, note : str, keyword-only, optional
        A title above and a line of small text below the panels.
    """
    from matplotlib.patches import Circle, Patch

    from wpgdkit.figures import agg_pyplot, check_plot_suffix, save_figure

    path = Path(path)
    check_plot_suffix(path)  # before any drawing
    rows = [list(row) for row in panels]
    n_rows, n_cols = len(rows), max((len(row) for row in rows), default=0)
    if n_rows == 0 or n_cols == 0:
        raise WpgdkitError("no panels to plot")
    k = len(classes)
    pts = np.asarray(points.detach().cpu() if isinstance(points, torch.Tensor) else points, dtype=np.float64)
    y = np.asarray(labels.detach().cpu() if isinstance(labels, torch.Tensor) else labels)
    if len(pts) > max_points:
        keep = np.sort(np.random.default_rng(0).choice(len(pts), size=max_points, replace=False))
        pts, y = pts[keep], y[keep]
    colours = _class_colours(k)
    light = 0.4 * colours + 0.6  # the region colours: each class's colour mixed with white
    from matplotlib.colors import BoundaryNorm, ListedColormap

    region_cmap = ListedColormap(light)
    region_norm = BoundaryNorm(np.arange(k + 1) - 0.5, k)

    plt = agg_pyplot()
    # A fixed layout in inches (tight_layout would draw the whole figure once more just to measure it).
    side, left, right, gap_x, gap_y = 3.0, 0.75, 0.15, 0.4, 0.6
    top = 0.8 if title else 0.45
    bottom = 0.55 + (0.2 if note else 0.0)
    width = left + right + n_cols * side + (n_cols - 1) * gap_x
    height = top + bottom + n_rows * side + (n_rows - 1) * gap_y
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(width, height), squeeze=False)
    fig.subplots_adjust(left=left / width, right=1 - right / width, bottom=bottom / height, top=1 - top / height,
                        wspace=gap_x / side, hspace=gap_y / side)
    try:
        for r, row in enumerate(rows):
            for c in range(n_cols):
                ax = axes[r][c]
                panel = row[c] if c < len(row) else None
                if panel is None:
                    ax.axis("off")
                    continue
                regions = np.asarray(panel.regions)
                if regions.shape != (grid.resolution, grid.resolution):
                    raise WpgdkitError(f"panel {panel.title!r}: regions of shape {regions.shape} do not fit the "
                                       f"{grid.resolution}×{grid.resolution} grid")
                ax.imshow(regions, origin="lower", extent=grid.extent, cmap=region_cmap, norm=region_norm,
                          interpolation="nearest", aspect="equal")
                for cls in range(k):
                    mask = (regions == cls).astype(float)
                    if 0 < mask.sum() < mask.size:
                        ax.contour(grid.xs, grid.ys, mask, levels=[0.5], colors="k", linewidths=0.8)
                ax.scatter(pts[:, 0], pts[:, 1], c=colours[y], s=4, alpha=0.45, linewidths=0)
                if panel.eps is not None and 0 < panel.eps < (grid.x_max - grid.x_min) / 4:
                    # The ℓ2 ball of radius ε, for scale, in the top right corner.
                    pad = 0.04 * (grid.x_max - grid.x_min)
                    centre = (grid.x_max - pad - panel.eps, grid.y_max - pad - panel.eps)
                    ax.add_patch(Circle(centre, panel.eps, fill=False, edgecolor="0.15", linewidth=0.9,
                                        linestyle="--"))
                    ax.text(centre[0] - panel.eps - pad / 4, centre[1], f"ε={panel.eps:g}", ha="right",
                            va="center", fontsize=7)
                ax.set_xlim(grid.x_min, grid.x_max)
                ax.set_ylim(grid.y_min, grid.y_max)
                ax.set_title(panel.title, fontsize=9)
                ax.tick_params(labelsize=7)
                if c == 0 and row_titles is not None and r < len(row_titles):
                    ax.set_ylabel(row_titles[r], fontsize=10, fontweight="bold")
        handles = [Patch(facecolor=light[i], edgecolor=colours[i], label=f"class {name}")
                   for i, name in enumerate(classes)]
        fig.legend(handles=handles, loc="lower center", ncol=min(k, 8), frameon=False, fontsize=8,
                   bbox_to_anchor=(0.5, 0.0))
        if note:
            fig.text(0.5, 0.3 / height, note, ha="center", va="bottom", fontsize=7, color="0.3")
        if title:
            fig.suptitle(title, fontsize=11, y=1 - 0.12 / height, va="top")
        save_figure(fig, path, dpi=dpi)
    finally:
        plt.close(fig)
    return path
