"""The ``--model`` family of options, shared by ``train``, ``audit`` and ``metric build``.

Each option is an ``Annotated`` type to put in a command's signature;
:func:`model_source` turns their strings into a
:class:`~wpgdkit.models.foreign.ModelSource`. typer is imported here only:
the library (:mod:`wpgdkit.models.foreign`) does not depend on it.

Example
-------
>>> def audit(model: ModelOpt = None, model_kwargs: ModelKwargsOpt = None, weights: WeightsOpt = None,
...           input_shape: InputShapeOpt = None, mean: MeanOpt = None, std: StdOpt = None):  # doctest: +SKIP
...     source = model_source(model, model_kwargs, weights, input_shape, mean, std)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Optional

import typer

from wpgdkit.errors import WpgdkitError

if TYPE_CHECKING:  # pragma: no cover
    from wpgdkit.models.foreign import ModelSource

__all__ = ["InputShapeOpt", "MeanOpt", "ModelKwargsOpt", "ModelOpt", "StdOpt", "WeightsOpt", "model_source"]

# Help texts avoid square brackets: typer renders help as Rich markup, where "[timm]" would vanish.
_MODEL_HELP = (
    "The network: a registry name (see `wpgdkit models`), PKG.MODULE:FACTORY or path/to/file.py:FACTORY "
    "(a function or class returning a torch.nn.Module), torchvision:NAME, timm:NAME (needs the timm extra), "
    "robustbench:NAME (needs the robustbench extra), or a TorchScript / torch.export model file. "
    "Importing a module or .py file runs its code, so name only code you trust; a TorchScript or exported "
    "file runs its author's operators; a --weights file never runs code."
)

#: ``--model SPEC``: where the network comes from.
ModelOpt = Annotated[Optional[str], typer.Option("--model", help=_MODEL_HELP, metavar="SPEC", show_default=False)]
#: ``--model-kwargs JSON``: keyword arguments of the factory.
ModelKwargsOpt = Annotated[Optional[str], typer.Option(
    "--model-kwargs", metavar="JSON", show_default=False,
    help='Keyword arguments for the --model factory, a JSON object, e.g. \'{"num_classes": 10}\'.')]
#: ``--weights FILE``: a state_dict for the network.
WeightsOpt = Annotated[Optional[str], typer.Option(
    "--weights", metavar="FILE", show_default=False,
    help="State dict for --model: .pt/.pth (torch.save, read with weights_only=True) or .safetensors; "
         "state_dict/model wrappers and a DataParallel 'module.' prefix are undone. Never runs code.")]
#: ``--input-shape C,H,W``: the shape of one input, when the data does not say.
InputShapeOpt = Annotated[Optional[str], typer.Option(
    "--input-shape", metavar="SHAPE", show_default=False,
    help="Shape of one input for --model, e.g. 3,32,32 (when the data does not give it).")]
#: ``--mean M1,M2,...``: the per-channel mean the network expects inputs normalised with.
MeanOpt = Annotated[Optional[str], typer.Option(
    "--mean", metavar="FLOATS", show_default=False,
    help="Per-channel mean the --model network expects inputs normalised with, e.g. 0.4914,0.4822,0.4465; "
         "wpgdkit normalises pixel-space inputs before the network (needs --std).")]
#: ``--std S1,S2,...``: the per-channel standard deviation, with ``--mean``.
StdOpt = Annotated[Optional[str], typer.Option(
    "--std", metavar="FLOATS", show_default=False,
    help="Per-channel standard deviation, with --mean, e.g. 0.2470,0.2435,0.2616.")]


def model_source(model: str | None, model_kwargs: str | None = None, weights: str | None = None,
                 input_shape: str | None = None, mean: str | None = None,
                 std: str | None = None) -> ModelSource | None:
    """The :class:`~wpgdkit.models.foreign.ModelSource` the options describe, or None without ``--model``.

    Parameters
    ----------
    model, model_kwargs, weights, input_shape, mean, std : str or None
        The options' values as typed.

    Returns
    -------
    source : ModelSource or None
        None when no option of the family is given (the command's default model).

    Raises
    ------
    WpgdkitError
        One line naming the flag: an option given without ``--model``, JSON
        that is not an object, a malformed shape or list of numbers, ``--mean``
        without ``--std`` (or the reverse), a malformed ``--model``.
    """
    given = [flag for flag, value in (("--model-kwargs", model_kwargs), ("--weights", weights),
                                      ("--input-shape", input_shape), ("--mean", mean), ("--std", std))
             if value is not None]
    if model is None:
        if not given:
            return None
        verb = "needs" if len(given) == 1 else "need"
        raise WpgdkitError(f"{' and '.join(given)} {verb} --model: name the network they are for")
    if (mean is None) != (std is None):
        raise WpgdkitError("--mean and --std go together: give both")
    from wpgdkit.models.foreign import ModelSource, parse_floats, parse_model_kwargs, parse_shape  # torch: only for --model

    return ModelSource(
        spec=model,
        kwargs=parse_model_kwargs(model_kwargs, name="--model-kwargs"),
        weights=weights,
        input_shape=parse_shape(input_shape, name="--input-shape") if input_shape is not None else None,
        mean=parse_floats(mean, name="--mean") if mean is not None else None,
        std=parse_floats(std, name="--std", positive=True) if std is not None else None,
    )
