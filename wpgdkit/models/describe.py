"""Describing the registered models for a dataset: what ``wpgdkit models`` lists."""

from __future__ import annotations

from typing import Any

from wpgdkit.errors import WpgdkitError
from wpgdkit.models.registry import count_parameters, create_model, get_model_spec, list_models

__all__ = ["describe_models", "model_parameter_count"]


def describe_models(dataset: str, *, parameters: bool = True) -> list[dict[str, Any]]:
    """One record per registered model, with its parameter count for ``dataset``.

    Parameters
    ----------
    dataset : str
        A registered dataset; its class count and input shape size the models.
    parameters : bool, keyword-only, default=True
        Count each model's parameters (builds every network on torch's meta
        device, so it imports torch). False leaves ``parameters`` and
        ``note`` out of the records and imports no torch.

    Returns
    -------
    rows : list of dict, in registration order
        ``name``, ``description``, ``supported_inputs`` (text), ``input_shapes``
        (list of shapes as lists, or None for a rule), ``parameters`` (int, or
        None when the dataset's inputs are not supported) and ``note`` (why
        not, or None).

    Raises
    ------
    UnknownNameError
        If no dataset is registered as ``dataset``.
    """
    from wpgdkit.datasets import get_dataset

    spec = get_dataset(dataset)
    rows = []
    for name in list_models():
        model_spec = get_model_spec(name)
        row = {
            "name": name,
            "description": model_spec.description,
            "supported_inputs": model_spec.supported_inputs,
            "input_shapes": None if model_spec.input_shapes is None else [list(s) for s in model_spec.input_shapes],
        }
        if parameters:
            row["parameters"], row["note"] = model_parameter_count(name, num_classes=spec.num_classes,
                                                                   input_shape=spec.input_shape)
        rows.append(row)
    return rows


def model_parameter_count(
    name: str, *, num_classes: int, input_shape: tuple[int, ...]
) -> tuple[int | None, str | None]:
    """The parameter count of model ``name`` for ``num_classes`` and ``input_shape``, built on the meta device.

    Returns
    -------
    parameters : int or None
        None when the model does not take ``input_shape``.
    note : str or None
        Why not (``"needs 3×32×32 or 3×64×64"``), or None.
    """
    import torch

    # On the meta device a WRN-40-10 costs no memory and almost no time.
    try:
        with torch.device("meta"):
            model = create_model(name, num_classes=num_classes, input_shape=input_shape)
    except WpgdkitError:
        return None, f"needs {get_model_spec(name).supported_inputs}"
    return count_parameters(model), None
