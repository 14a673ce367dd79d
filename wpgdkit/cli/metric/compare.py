"""``wpgdkit metric compare``: how two metrics over the same classes agree (Pearson and Spearman)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from wpgdkit.cli._common import safe, stdout, write_json
from wpgdkit.cli.metric._shared import AsymmetricOption, ClassListOption, JsonOption, load_metric_file, new_table
from wpgdkit.labelmetric import metric_correlation

__all__ = ["compare"]


def compare(
    first: Annotated[Path, typer.Argument(help="First metric file.")],
    second: Annotated[Path, typer.Argument(help="Second metric file (same classes; aligned by name).")],
    classes: ClassListOption = None,
    allow_asymmetric: AsymmetricOption = False,
    json_out: JsonOption = None,
) -> None:
    """Correlate two metrics over their off-diagonal entries (Pearson and Spearman)."""
    a, _ = load_metric_file(first, classes, allow_asymmetric)
    b, _ = load_metric_file(second, classes, allow_asymmetric)
    corr = metric_correlation(a, b)
    if json_out is not None:
        write_json({"first": str(first), "second": str(second), "classes": list(a.classes), **corr.to_dict()}, json_out)
    if json_out == "-":
        return
    table = new_table(title=f"{safe(first.name)} vs {safe(second.name)} ({a.num_classes} classes, {corr.pairs} off-diagonal entries)")
    table.add_column("coefficient")
    table.add_column("value", justify="right")
    table.add_column("p-value", justify="right")
    table.add_row("Pearson", f"{corr.pearson:.4f}", f"{corr.pearson_pvalue:.3g}")
    table.add_row("Spearman", f"{corr.spearman:.4f}", f"{corr.spearman_pvalue:.3g}")
    stdout.print(table)
