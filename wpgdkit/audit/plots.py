"""Pictures of an audit: the paper's figures for your own checkpoints.

:func:`write_audit_plots` writes, into one folder (``NAME`` is a model's
name made safe for a file name):

==================================  =============================================
``metric.png``                      the label metric C (beside which the paper
                                    draws every gap, Figs. 1–4)
``NAME-confusion-natural.png``      row-normalised confusion on clean inputs
``NAME-confusion-adversarial.png``  the same under attack: the share of class-k
                                    points the adversary sends to k' (Fig. 11)
``NAME-gap.png``                    accuracy gap G to the baseline beside the
                                    metric, with ρ(G, C) (Figs. 1–4, Table 1)
``NAME-entropy.png``                prediction-entropy histograms, natural vs
                                    adversarial, all points and per class
                                    (Fig. 7)
``comparison.png``                  NE, AE and S (or S − S_ref) per model
                                    (Tables 2 and 3), for two models or more
==================================  =============================================

Every file is written atomically; class names label the axes up to 40
classes, indices beyond. Every K×K picture shows the classes in one
arrangement, by default the label metric's hierarchy with a few groups of
related classes marked (label order without a metric, or with
``order="label"``), so blocks of related classes line up from one picture to
the next. Colour scales are shared where pictures are compared: the
confusion matrices span [0, 1], and the gaps of all models one range.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from wpgdkit.atomic import _current_umask
from wpgdkit.audit.core import AuditReport, ModelAudit
from wpgdkit.audit.scores import confusion_matrix, entropy_histogram
from wpgdkit.errors import WpgdkitError
from wpgdkit.figures import PLOT_SUFFIXES, agg_pyplot, save_figure
from wpgdkit.labelmetric.ordering import PLOT_ORDERS, ClassArrangement, arrange_classes
from wpgdkit.labelmetric.plot import draw_heatmap, heatmap_size, plot_heatmap

__all__ = ["write_audit_plots", "PLOT_FORMATS", "PLOT_ORDERS", "safe_file_stem", "plot_file_stems",
           "audit_arrangement", "gap_color_range"]

#: The formats :func:`write_audit_plots` can write.
PLOT_FORMATS = tuple(suffix.lstrip(".") for suffix in PLOT_SUFFIXES)

#: Cells carry their values up to this many classes.
ANNOTATE_MAX_CLASSES = 12
#: Entropy histograms get one small panel per class up to this many classes.
PER_CLASS_ENTROPY_MAX_CLASSES = 20

_NATURAL_COLOR = "tab:blue"
_ADVERSARIAL_COLOR = "tab:red"


def safe_file_stem(name: str) -> str:
    """``name`` with everything but letters, digits, ``.``, ``_``, ``+`` and ``-`` replaced by ``_``.

    ``"baseline:ce"`` becomes ``"baseline_ce"``; leading dots are dropped so
    no plot is a hidden file, and an empty result becomes ``"model"``.
    """
    stem = re.sub(r"[^A-Za-z0-9._+-]+", "_", name).lstrip(".")
    return stem or "model"


def plot_file_stems(names: list[str]) -> list[str]:
    """Safe, distinct file stems for model names: ``a:b`` and ``a_b`` become ``a_b`` and ``a_b-2``."""
    used: set[str] = set()
    stems = []
    for name in names:
        base = stem = safe_file_stem(name)
        n = 1
        while stem in used:
            n += 1
            stem = f"{base}-{n}"
        used.add(stem)
        stems.append(stem)
    return stems


def _attack_text(report: AuditReport) -> str:
    a, t = report.attack, report.attack.threat
    text = f"{a.name} {t.norm} ε={t.eps_label}, {t.steps} steps"
    if t.restarts > 1:
        text += f", {t.restarts} restarts"
    return text


def _stem_of(path: str | None) -> str | None:
    return None if path is None else Path(path).stem


def _correlation_text(model: ModelAudit) -> str:
    c = model.correlation
    if c is None:
        return ""
    if math.isnan(c.pearson) or math.isnan(c.spearman):
        return "ρ(G, metric) undefined: G or the metric is constant off the diagonal"
    return f"ρ(G, metric): Pearson {c.pearson:+.2f}, Spearman {c.spearman:+.2f} over {c.pairs} pairs"


def audit_arrangement(report: AuditReport, *, order: str = "metric") -> ClassArrangement:
    """The one arrangement of the classes every K×K picture of ``report`` uses.

    ``"metric"``: the hierarchy of the audit's label metric
    (:func:`~wpgdkit.labelmetric.ordering.arrange_classes`), label order
    without a metric; ``"label"``: label order.
    """
    metric = report.metric.matrix if report.metric is not None else None
    return arrange_classes(report.num_classes, metric, order=order)


def gap_color_range(models: list[ModelAudit]) -> tuple[float, float]:
    """(vmin, vmax) of the gap pictures: 0 to the largest off-diagonal gap of any model.

    One range for all models, so that the same colour means the same gap in
    every model's picture; (0, 1) when no model has a positive gap.
    """
    top = 0.0
    for model in models:
        if model.gap is None:
            continue
        gap = model.gap.double().cpu().numpy()
        off = gap[~np.eye(gap.shape[0], dtype=bool)]
        if off.size and np.isfinite(off).any():
            top = max(top, float(np.nanmax(off)))
    return 0.0, top if top > 0 else 1.0


# --- the pictures ------------------------------------------------------------------------


def _plot_metric(report: AuditReport, path: Path, arrangement: ClassArrangement | None = None) -> Path:
    k = report.num_classes
    origin = f" ({report.metric_origin})" if report.metric_origin else ""
    return plot_heatmap(report.metric.matrix, report.classes, path, title=f"label metric{origin}",
                        colorbar_label="cost c(i, j)", annotate=k <= ANNOTATE_MAX_CLASSES, value_format=".2g",
                        vmin=0.0, xlabel="class j", ylabel="class i",
                        order=arrangement if arrangement is not None else "label")


def _plot_confusion(report: AuditReport, model: ModelAudit, kind: str, path: Path,
                    arrangement: ClassArrangement | None = None) -> Path:
    k = report.num_classes
    predictions = model.predictions.natural if kind == "natural" else model.predictions.adversarial
    rates = confusion_matrix(report.labels, predictions, k, normalize="true").numpy()
    if kind == "natural":
        title = f"{model.name}: clean inputs (NE {model.natural_error:.1f}%)"
        bar = "share of the true class's points"
    else:
        title = (f"{model.name}: where the adversary sends each class (AE {model.adversarial_error:.1f}%)\n"
                 f"{_attack_text(report)}")
        bar = "share of the true class's points sent there"
    # Rates of the true class's points: [0, 1] for every model and both kinds, so pictures compare directly.
    return plot_heatmap(rates, report.classes, path, title=title, colorbar_label=bar, cmap="Blues",
                        annotate=k <= ANNOTATE_MAX_CLASSES, value_format=".2f", vmin=0.0, vmax=1.0,
                        xlabel="predicted class", ylabel="true class",
                        order=arrangement if arrangement is not None else "label")


def _plot_gap(report: AuditReport, model: ModelAudit, path: Path, arrangement: ClassArrangement | None = None,
              color_range: tuple[float, float] | None = None) -> Path:
    """The gap beside the metric; ``color_range`` default: this model's own (see :func:`gap_color_range`)."""
    plt = agg_pyplot()
    k = report.num_classes
    gap = model.gap.double().cpu().numpy().copy()
    # The diagonal (how much each class's own accuracy moved) would swamp the
    # colour scale; ρ and the paper's figures are about the off-diagonal pairs.
    np.fill_diagonal(gap, np.nan)
    vmin, vmax = color_range if color_range is not None else gap_color_range([model])
    order = arrangement if arrangement is not None else "label"
    annotate = k <= ANNOTATE_MAX_CLASSES
    size = heatmap_size(k)
    panels = 2 if report.metric is not None else 1
    fig, axes = plt.subplots(1, panels, figsize=(panels * (size + 1.5), size + 0.6), squeeze=False)
    try:
        ax_gap = axes[0, -1]
        if report.metric is not None:
            draw_heatmap(fig, axes[0, 0], report.metric.matrix, report.classes, title="label metric C",
                         colorbar_label="cost c(i, j)", annotate=annotate, value_format=".2g", vmin=0.0,
                         xlabel="class j", ylabel="class i", order=order)
        baseline = _stem_of(report.baseline) or "baseline"
        draw_heatmap(fig, ax_gap, gap, report.classes,
                     title=f"accuracy gap G = |C_{model.name} − C_{baseline}|\n(off-diagonal; diagonal grey)",
                     colorbar_label="|Δ share of the true class| (natural)", cmap="magma",
                     annotate=annotate, value_format=".3f", vmin=vmin, vmax=vmax,
                     xlabel="predicted class", ylabel="true class", order=order)
        heading = f"{model.name} vs baseline {baseline}"
        correlation = _correlation_text(model)
        fig.suptitle(f"{heading}\n{correlation}" if correlation else heading)
        fig.tight_layout()
        save_figure(fig, path)
    finally:
        plt.close(fig)
    return path


def _stairs(ax: Any, counts: np.ndarray, edges: np.ndarray, mean: float, label: str, color: str) -> None:
    ax.stairs(counts, edges, fill=True, alpha=0.35, color=color)
    ax.stairs(counts, edges, color=color, linewidth=1.2, label=f"{label} (mean {mean:.2f})")
    if math.isfinite(mean):
        ax.axvline(mean, color=color, linestyle="--", linewidth=1)


def _plot_entropy(report: AuditReport, model: ModelAudit, path: Path) -> Path:
    plt = agg_pyplot()
    k = report.num_classes
    y = report.labels
    top = math.log(k)
    series = []
    for kind, values, color in (("natural", model.predictions.natural_entropy, _NATURAL_COLOR),
                                ("adversarial", model.predictions.adversarial_entropy, _ADVERSARIAL_COLOR)):
        edges, counts = entropy_histogram(values, y, k, bins=report.config.bins)
        series.append((kind, values.double().cpu().numpy(), edges.numpy(), counts.numpy(), color))
    per_class = k <= PER_CLASS_ENTROPY_MAX_CLASSES
    columns = min(k, 5) if per_class else 1
    rows = math.ceil(k / columns) if per_class else 0
    fig = plt.figure(figsize=(max(8.0, 2.6 * columns), 4.0 + 2.2 * rows))
    try:
        grid = fig.add_gridspec(1 + rows, columns, height_ratios=[2.2] + [1.0] * rows)
        ax = fig.add_subplot(grid[0, :])
        labels = np.asarray(y.cpu())
        for kind, values, edges, counts, color in series:
            _stairs(ax, counts.sum(axis=0), edges, float(values.mean()) if len(values) else math.nan, kind, color)
        ax.set_xlim(0.0, top)
        ax.set_xlabel("entropy of the softmax prediction (nats)")
        ax.set_ylabel("points")
        ax.set_title(f"{model.name}: prediction entropy of all {len(labels)} points, clean vs attacked\n"
                     f"(max log K = {top:.2f} nats; attack {_attack_text(report)})", fontsize=10)
        ax.legend(fontsize=8)
        for i in range(k if per_class else 0):
            sub = fig.add_subplot(grid[1 + i // columns, i % columns])
            mask = labels == i
            for kind, values, edges, counts, color in series:
                mean = float(values[mask].mean()) if mask.any() else math.nan
                sub.stairs(counts[i], edges, fill=True, alpha=0.35, color=color)
                sub.stairs(counts[i], edges, color=color, linewidth=1)
                if math.isfinite(mean):
                    sub.axvline(mean, color=color, linestyle="--", linewidth=0.8)
            sub.set_xlim(0.0, top)
            name = report.classes[i]
            sub.set_title(name if len(name) <= 24 else name[:23] + "…", fontsize=8)
            sub.tick_params(labelsize=7)
        fig.tight_layout()
        save_figure(fig, path)
    finally:
        plt.close(fig)
    return path


def _plot_comparison(report: AuditReport, path: Path) -> Path:
    plt = agg_pyplot()
    models = report.models
    n = len(models)
    x = np.arange(n)
    names = [m.name for m in models]
    deltas = report.reference_score is not None and any(m.score_delta is not None for m in models)
    scores = [(m.score_delta if deltas else m.score) for m in models]
    has_scores = any(s is not None for s in scores)
    panels = 2 if has_scores else 1
    width = max(5.0, 1.1 * n + 2.5)
    fig, axes = plt.subplots(1, panels, figsize=(panels * width, 4.8), squeeze=False)
    rotation = 0 if n <= 4 and max(len(s) for s in names) <= 12 else 30
    try:
        ax = axes[0, 0]
        ne = [m.natural_error for m in models]
        ae = [m.adversarial_error for m in models]
        bars_ne = ax.bar(x - 0.2, ne, 0.4, label="NE (clean)", color=_NATURAL_COLOR)
        bars_ae = ax.bar(x + 0.2, ae, 0.4, label="AE (attacked)", color=_ADVERSARIAL_COLOR)
        for bars in (bars_ne, bars_ae):
            ax.bar_label(bars, fmt="%.1f", fontsize=8)
        finite = [v for v in ne + ae if math.isfinite(v)]
        ax.set_ylim(0.0, max(max(finite, default=0.0) * 1.15, 1.0))
        ax.set_ylabel("error (%)")
        ax.set_title("natural and adversarial error\nlower is better")
        ax.legend(fontsize=8)
        if has_scores:
            ax = axes[0, 1]
            values = [math.nan if s is None else s for s in scores]
            bars = ax.bar(x, values, 0.5, color="tab:purple")
            ax.bar_label(bars, labels=["" if math.isnan(v) else f"{v:+.3g}" if deltas else f"{v:.3g}"
                                       for v in values], fontsize=8)
            ax.axhline(0.0, color="black", linewidth=0.8)
            finite = [v for v in values if math.isfinite(v)]
            low, high = min(finite + [0.0]), max(finite + [0.0])
            pad = 0.15 * (high - low) or 0.1
            ax.set_ylim(low - (pad if low < 0 else 0.0), high + pad)
            if deltas:
                reference = _stem_of(report.reference) or "reference"
                ax.set_ylabel("S − S_ref")
                ax.set_title(f"weighted score S − S_ref ({reference} = 0)\n"
                             "lower: the adversary reaches closer classes")
            else:
                ax.set_ylabel("S")
                ax.set_title("weighted robustness score S\nlower: the adversary reaches closer classes")
        for ax in axes[0]:
            ax.set_xticks(x, labels=names, rotation=rotation, ha="right" if rotation else "center", fontsize=8)
        fig.suptitle(f"{report.dataset}, {len(report.labels)} points; attack {_attack_text(report)}")
        fig.tight_layout()
        save_figure(fig, path)
    finally:
        plt.close(fig)
    return path


def write_audit_plots(report: AuditReport, folder: str | os.PathLike[str], *, fmt: str = "png",
                      order: str = "metric") -> list[Path]:
    """Write the pictures of an audit into ``folder`` (created if missing).

    Parameters
    ----------
    report : AuditReport
        The result of :func:`~wpgdkit.audit.audit`.
    folder : path-like
    fmt : {"png", "pdf", "svg"}, keyword-only, default="png"
    order : {"metric", "label"}, keyword-only, default="metric"
        The classes of every K×K picture in the order of the label metric's
        hierarchy, groups of related classes marked (label order when the
        audit has no metric), or in label order (:func:`audit_arrangement`).

    Returns
    -------
    paths : list of Path
        The files written, in this order: ``metric`` (with a metric); per
        model ``NAME-confusion-natural``, ``NAME-confusion-adversarial``,
        ``NAME-gap`` (with a baseline), ``NAME-entropy``; ``comparison``
        (with two models or more). ``NAME`` is :func:`safe_file_stem` of the
        model's name, made unique.

    Raises
    ------
    WpgdkitError
        An unknown format or order, or a folder that is a file or cannot be created.
    """
    fmt = str(fmt).lower().lstrip(".")
    if fmt not in PLOT_FORMATS:
        raise WpgdkitError(f"unknown plot format {fmt!r}; choose one of: {', '.join(PLOT_FORMATS)}")
    if order not in PLOT_ORDERS:
        raise WpgdkitError(f"unknown plot order {order!r}; choose one of: {', '.join(PLOT_ORDERS)}")
    # Both computed once, before any folder exists: one arrangement and one gap scale for every picture.
    arrangement = audit_arrangement(report, order=order)
    gap_range = gap_color_range(report.models)
    final = Path(folder)
    with _staged_folder(final) as out:
        written: list[Path] = []
        if report.metric is not None:
            written.append(_plot_metric(report, out / f"metric.{fmt}", arrangement))
        for model, stem in zip(report.models, plot_file_stems([m.name for m in report.models])):
            written.append(_plot_confusion(report, model, "natural", out / f"{stem}-confusion-natural.{fmt}",
                                           arrangement))
            written.append(_plot_confusion(report, model, "adversarial",
                                           out / f"{stem}-confusion-adversarial.{fmt}", arrangement))
            if model.gap is not None:
                written.append(_plot_gap(report, model, out / f"{stem}-gap.{fmt}", arrangement, gap_range))
            if report.num_classes >= 2:
                written.append(_plot_entropy(report, model, out / f"{stem}-entropy.{fmt}"))
        if len(report.models) >= 2:
            written.append(_plot_comparison(report, out / f"comparison.{fmt}"))
    return [final / path.name for path in written]


@contextlib.contextmanager
def _staged_folder(final: Path) -> Iterator[Path]:
    """A hidden temporary folder beside ``final`` to draw into; its files are moved into ``final`` at the end.

    The plots are one batch: an interrupt (Ctrl-C) or an error while drawing
    removes the temporary folder and leaves ``final`` as it was (not created
    if it did not exist). A missing ``final`` is the temporary folder renamed,
    one atomic step; an existing one receives the files by ``os.replace``
    (same file system, so each move is a rename, not a copy).
    """
    if final.exists() and not final.is_dir():
        raise WpgdkitError(f"plot folder {final} exists and is not a folder")
    parent = final.parent
    created = [p for p in (parent, *parent.parents) if not p.exists()]
    try:
        parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".partial", dir=parent))
        os.chmod(staging, 0o777 & ~_current_umask())  # mkdtemp makes 0700; the folder a plain mkdir would
    except OSError as exc:
        raise WpgdkitError(f"cannot create plot folder {final}: {exc.strerror or exc}") from None
    try:
        yield staging
        if not final.exists():
            os.replace(staging, final)
        else:
            for item in sorted(staging.iterdir()):
                os.replace(item, final / item.name)
            staging.rmdir()
    except BaseException as exc:
        shutil.rmtree(staging, ignore_errors=True)
        for folder in created:  # the folders made for it, innermost first, if still empty
            try:
                folder.rmdir()
            except OSError:
                break
        if isinstance(exc, OSError) and not isinstance(exc, WpgdkitError):
            raise WpgdkitError(f"cannot write the plots into {final}: {exc.strerror or exc}") from None
        raise

