"""``wpgdkit models``: the registered networks and their size for a dataset."""

from __future__ import annotations

from typing import Annotated, Optional

import typer
from rich.table import Table

from wpgdkit.cli._common import safe, stdout, write_json, output_file
from wpgdkit.cli._dataopts import (
    DATASET_HELP,
    BoundsOption,
    DataTestOption,
    ImageSizeOption,
    LabelColumnOption,
    StandardizeOption,
    TestFractionOption,
    data_options,
)
from wpgdkit.models import describe_models, format_shape

# model_rows is the library's describe_models, kept importable under its old name.
model_rows = describe_models

__all__ = ["models", "model_rows"]

def models(
    dataset: Annotated[
        str, typer.Option(help=DATASET_HELP + " Its class count and input shape size the models.")
    ] = "cifar10",
    test: DataTestOption = None,
    label_column: LabelColumnOption = None,
    test_fraction: TestFractionOption = None,
    bounds: BoundsOption = "data",
    standardize: StandardizeOption = False,
    image_size: ImageSizeOption = None,
    json_out: Annotated[
        Optional[str], typer.Option("--json", help="Write the list as JSON to PATH, or - for stdout.", callback=output_file)
    ] = None,
) -> None:
    """List the registered models: supported inputs and parameter count for a dataset.

    Every model takes pixel-space inputs and normalises them itself with the
    dataset's mean and std, so attacks work in pixel space.
    """
    from wpgdkit.audit.subjects import open_spec

    options = data_options(test, label_column, test_fraction, bounds, standardize, image_size)
    spec = open_spec(dataset, None if options.is_default else options)
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
