"""``wpgdkit models``: the registered networks and their size for a dataset."""

from __future__ import annotations

from typing import Annotated, Optional

import typer
from rich.table import Table

from wpgdkit.cli._common import choices, safe, stdout, write_json, output_file
from wpgdkit.datasets import get_dataset, list_datasets
from wpgdkit.models import describe_models, format_shape

# model_rows is the library's describe_models, kept importable under its old name.
model_rows = describe_models

__all__ = ["models", "model_rows"]

ModelsDatasetName = choices("ModelsDatasetName", list_datasets())


def models(
    dataset: Annotated[
        ModelsDatasetName, typer.Option(help="Dataset whose class count and input shape size the models.")
    ] = ModelsDatasetName("cifar10"),
    json_out: Annotated[
        Optional[str], typer.Option("--json", help="Write the list as JSON to PATH, or - for stdout.", callback=output_file)
    ] = None,
) -> None:
    """List the registered models: supported inputs and parameter count for a dataset.

    Every model takes pixel-space inputs and normalises them itself with the
    dataset's mean and std, so attacks work in pixel space.
    """
    spec = get_dataset(dataset.value)
    rows = describe_models(spec.name)
    if json_out is not None:
        write_json(
            {"dataset": spec.name, "num_classes": spec.num_classes, "input_shape": list(spec.input_shape),
             "models": rows},
            json_out,
        )
        if json_out == "-":
            return
    table = Table(
        title=f"models for {safe(spec.name)} ({spec.num_classes} classes, inputs {format_shape(spec.input_shape)})",
        title_justify="left",
    )
    for column, justify in (("name", "left"), ("description", "left"), ("inputs", "left"), ("parameters", "right")):
        table.add_column(column, justify=justify)
    for row in rows:
        count = f"{row['parameters']:,}" if row["parameters"] is not None else f"n/a ({row['note']})"
        table.add_row(safe(row["name"]), safe(row["description"]), safe(row["supported_inputs"]), safe(count))
    stdout.print(table)
