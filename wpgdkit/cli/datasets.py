"""``wpgdkit datasets``: the dataset registry as a table or JSON."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from wpgdkit.cli import _common
from wpgdkit.cli._common import output_file, safe, stdout

__all__ = ["datasets"]


def datasets(
    json_out: Annotated[Optional[str], typer.Option("--json", help="Write the list as JSON to PATH, or - for stdout.",
                                                    callback=output_file)] = None,
) -> None:
    """List the registered datasets: classes, input shape, WordNet synsets, how to get them."""
    from rich.table import Table

    from wpgdkit.datasets import get_dataset, list_datasets

    specs = [get_dataset(name) for name in list_datasets()]
    if json_out is not None:
        _common.write_json({"datasets": [s.to_dict() for s in specs]}, json_out)
        if json_out == "-":
            return
    table = Table()
    for col in ("name", "classes", "input", "WordNet", "description"):
        table.add_column(col)
    for s in specs:
        table.add_row(safe(s.name), str(s.num_classes), "×".join(map(str, s.input_shape)),
                      "yes" if s.synsets else "-", safe(s.description))
    stdout.print(table)
