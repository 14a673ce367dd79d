"""``wpgdkit metric show``: each class's nearest and farthest classes, the metric's structure and provenance."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from wpgdkit.cli._common import choices, output_file, safe, stdout, write_json
from wpgdkit.cli.metric._shared import (
    AsymmetricOption,
    ClassListOption,
    JsonOption,
    MetricPathArgument,
    load_metric_file,
    new_table,
    structure_lines,
)
from wpgdkit.figures import check_plot_suffix
from wpgdkit.labelmetric import metric_origin, nearest_and_farthest

__all__ = ["show"]

PlotOrder = choices("PlotOrder", ["metric", "label"])


def show(
    path: MetricPathArgument,
    classes: ClassListOption = None,
    allow_asymmetric: AsymmetricOption = False,
    top: Annotated[int, typer.Option(help="How many nearest and farthest classes to list.", min=1)] = 3,
    plot: Annotated[Optional[Path], typer.Option(help="Write a heatmap (.png, .pdf, .svg) with class names.", callback=output_file)] = None,
    plot_order: Annotated[PlotOrder, typer.Option(help="Class order of the heatmap: the metric's hierarchy (clusters "
                                                  "contiguous, groups marked) or label order.")] = PlotOrder("metric"),
    json_out: JsonOption = None,
) -> None:
    """Summarise a metric: each class's nearest and farthest classes, structure, provenance."""
    if plot is not None:
        check_plot_suffix(plot)  # before any work, and before matplotlib is imported
    metric, report = load_metric_file(path, classes, allow_asymmetric)
    neighbours = nearest_and_farthest(metric, top=top)
    origin = metric_origin(metric)
    if plot is not None:
        from wpgdkit.labelmetric.plot import plot_heatmap

        plot_heatmap(metric.matrix, metric.classes, plot, title=f"{path.name}" + (f" ({origin})" if origin else ""),
                     colorbar_label="cost", order=plot_order.value)
    if json_out is not None:
        write_json(
            {"path": str(path), "classes": list(metric.classes), "provenance": metric.provenance.to_dict(),
             "structure": report.to_dict(), "neighbours": neighbours},
            json_out,
        )
    if json_out == "-":
        return
    prov = metric.provenance
    stdout.print(f"[bold]{safe(path)}[/]: {metric.num_classes} classes, "
                 + (f"source {safe(origin)}" if origin else "no provenance (CSV and NPY files carry none; JSON keeps it)"))
    if prov.command:
        stdout.print(f"  rebuild: {safe(prov.command)}")
    for line in structure_lines(report):
        stdout.print(f"  {safe(line)}")
    table = new_table(show_lines=False)
    table.add_column("class")
    table.add_column(f"nearest {top}")
    table.add_column(f"farthest {top}")
    for entry in neighbours:
        fmt = lambda items: safe(", ".join(f"{n} ({d:.3g})" for n, d in items))  # noqa: E731
        table.add_row(safe(entry["class"]), fmt(entry["nearest"]), fmt(entry["farthest"]))
    stdout.print(table)
    if plot is not None:
        stdout.print(f"heatmap written to {safe(plot)}")
