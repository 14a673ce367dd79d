"""``wpgdkit models``: the registered networks and their size for a dataset."""

from __future__ import annotations

from typing import Annotated, Any, Optional

import torch
import typer
from rich.table import Table

from wpgdkit.cli._common import choices, stdout, write_json, output_file
from wpgdkit.datasets import get_dataset, list_datasets
from wpgdkit.errors import WpgdkitError
from wpgdkit.models import count_parameters, create_model, format_shape, get_model_spec, list_models

__all__ = ["models", "model_rows"]

ModelsDatasetName = choices("ModelsDatasetName", list_datasets())


def model_rows(dataset: str) -> list[dict[str, Any]]:
    """One record per registered model, with its parameter count for ``dataset``.

    Parameters
    ----------
    dataset : str
        A registered dataset; its class count and input shape size the models.

    Returns
    -------
    rows : list of dict
        ``name``, ``description``, ``supported_inputs`` (text), ``input_shapes``
        (list of shapes, or None for a rule), ``parameters`` (int, or None when
        the dataset's inputs are not supported) and ``note`` (why not, or None).
    """
    spec = get_dataset(dataset)
    rows = []
    for name in list_models():
        model_spec = get_model_spec(name)
        parameters, note = _count(name, spec.num_classes, spec.input_shape)
        rows.append({
            "name": name,
            "description": model_spec.description,
            "supported_inputs": model_spec.supported_inputs,
            "input_shapes": None if model_spec.input_shapes is None else [list(s) for s in model_spec.input_shapes],
            "parameters": parameters,
            "note": note,
        })
    return rows


def _count(name: str, num_classes: int, input_shape: tuple[int, ...]) -> tuple[int | None, str | None]:
    # On the meta device a WRN-40-10 costs no memory and almost no time.
    try:
        with torch.device("meta"):
            model = create_model(name, num_classes=num_classes, input_shape=input_shape)
    except WpgdkitError:
        return None, f"needs {get_model_spec(name).supported_inputs}"
    return count_parameters(model), None


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
    rows = model_rows(spec.name)
    if json_out is not None:
        write_json(
            {"dataset": spec.name, "num_classes": spec.num_classes, "input_shape": list(spec.input_shape),
             "models": rows},
            json_out,
        )
        if json_out == "-":
            return
    table = Table(
        title=f"models for {spec.name} ({spec.num_classes} classes, inputs {format_shape(spec.input_shape)})",
        title_justify="left",
    )
    for column, justify in (("name", "left"), ("description", "left"), ("inputs", "left"), ("parameters", "right")):
        table.add_column(column, justify=justify)
    for row in rows:
        count = f"{row['parameters']:,}" if row["parameters"] is not None else f"n/a ({row['note']})"
        table.add_row(row["name"], row["description"], row["supported_inputs"], count)
    stdout.print(table)
