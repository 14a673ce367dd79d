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
    parameters: Annotated[bool, typer.Option(
        "--parameters", help="Also count each model's parameters for the dataset (a column, and 'parameters' and "
        "'note' in the JSON). It builds every network on torch's meta device, so it imports torch (seconds); "
        "without it the listing needs no torch.")] = False,
    json_out: Annotated[
        Optional[str], typer.Option("--json", help="Write the list as JSON to PATH, or - for stdout.", callback=output_file)
    ] = None,
) -> None:
    """List the registered models: supported inputs and, with --parameters, parameter count for a dataset.

    Every model takes pixel-space inputs and normalises them itself with the
    dataset's mean and std, so attacks work in pixel space.
    """
    from wpgdkit.audit.subjects import open_spec

    options = data_options(test, label_column, test_fraction, bounds, standardize, image_size)
    spec = open_spec(dataset, None if options.is_default else options)
    rows = describe_models(spec.name, parameters=parameters)
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
    columns = (("name", "left"), ("description", "left"), ("inputs", "left"))
    for column, justify in columns + ((("parameters", "right"),) if parameters else ()):
        table.add_column(column, justify=justify)
    for row in rows:
        cells = [safe(row["name"]), safe(row["description"]), safe(row["supported_inputs"])]
        if parameters:
            count = f"{row['parameters']:,}" if row["parameters"] is not None else f"n/a ({row['note']})"
            cells.append(safe(count))
        table.add_row(*cells)
    stdout.print(table)
