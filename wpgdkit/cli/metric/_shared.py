"""What the ``metric`` sub-commands share: the options of a metric file, reading one, describing its structure."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from wpgdkit.cli._common import output_file
from wpgdkit.labelmetric import LabelMetric, analyze_metric, read_metric, validate_metric
from wpgdkit.labelmetric.validate import MetricReport

__all__ = ["AsymmetricOption", "ClassListOption", "JsonOption", "MetricPathArgument", "cache_option", "load_metric_file",
           "new_table", "structure_lines"]

# The argument and options of the commands that read a metric file.
MetricPathArgument = Annotated[Path, typer.Argument(help="Metric file (.csv, .json, .npy).")]
ClassListOption = Annotated[Optional[Path], typer.Option("--classes", help="Class names, one per line (needed for .npy).")]
AsymmetricOption = Annotated[bool, typer.Option(help="Accept C[i,j] != C[j,i].")]
JsonOption = Annotated[Optional[str], typer.Option("--json", help="Write the result as JSON to PATH, or - for stdout.", callback=output_file)]


def cache_option(reuse: str, instead: str):
    """``--cache/--no-cache``, worded the same for every command that keeps what it can rebuild."""
    return Annotated[bool, typer.Option(
        "--cache/--no-cache", help=f"{reuse} saved in the cache folder ($WPGDKIT_CACHE_DIR, else "
        f"$XDG_CACHE_HOME/wpgdkit, ~/.cache/wpgdkit) instead of {instead}; --no-cache neither reads nor writes it. "
        "Same result either way.")]


def load_metric_file(path: Path, classes: Path | None, allow_asymmetric: bool) -> tuple[LabelMetric, MetricReport]:
    """The metric in ``path``, validated (WpgdkitError if it is not one), and its structure report."""
    metric = read_metric(path, classes=classes)
    validate_metric(metric, allow_asymmetric=allow_asymmetric)
    return metric, analyze_metric(metric)


def structure_lines(report: MetricReport) -> list[str]:
    # Plain text, not markup: "C[cat, dog]" would be a Rich tag, so print them through safe().
    lines = [f"symmetric: {'yes' if report.symmetric else 'no'}"]
    if report.triangle_violations:
        v = report.worst_triangle_violation
        lines.append(
            f"triangle inequality: violated by {report.triangle_violations} ordered triples; worst "
            f"C[{v.i}, {v.j}] exceeds C[{v.i}, {v.k}] + C[{v.k}, {v.j}] by {v.excess:.4g}"
        )
    else:
        lines.append("triangle inequality: holds")
    lines.append(f"PSD (Definition 3): {report.psd_note()}")
    if report.euclidean_embeddable is not None:
        lines.append(f"Euclidean distance matrix: {'yes' if report.euclidean_embeddable else 'no'}")
    return lines


def new_table(*args, **kwargs):
    """A Rich ``Table``, imported where a table is printed (a run with ``--json -`` prints none)."""
    from rich.table import Table

    return Table(*args, **kwargs)
