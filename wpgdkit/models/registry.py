"""The model registry: networks by name, in the style of timm's ``create_model``.

A builder registered with :func:`register_model` returns the bare network for
normalised inputs; :func:`create_model` wraps it in a
:class:`~wpgdkit.models.normalize.NormalizedModel` so that the model takes
pixel-space inputs, the space attacks work in.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, TypeVar

from wpgdkit.errors import WpgdkitError
from wpgdkit.registry import Registry

if TYPE_CHECKING:  # pragma: no cover
    from torch import nn

    from wpgdkit.models.normalize import Normalize, NormalizedModel

__all__ = [
    "ModelSpec",
    "count_parameters",
    "create_model",
    "format_shape",
    "get_model_spec",
    "list_models",
    "register_model",
]

_REGISTRY: Registry[ModelSpec] = Registry("model", entry_point_group="wpgdkit.models")

Builder = TypeVar("Builder", bound="Callable[..., nn.Module]")  # a string: listing models imports no torch


@dataclass(frozen=True)
class ModelSpec:
    """A registered model.

    Attributes
    ----------
    name : str
        Registry name, e.g. ``"wrn-28-10"``.
    description : str
        One line describing the network.
    builder : callable
        ``builder(*, num_classes, input_shape)`` returns the bare network, which
        maps normalised inputs ``(N, *input_shape)`` to logits ``(N, K)``. It
        raises :class:`~wpgdkit.errors.WpgdkitError` for a shape it cannot take.
    input_shapes : tuple of tuple of int, or None
        The input shapes the network supports; ``None`` when the builder
        decides (any shape, or a rule described by ``input_note``).
    input_note : str or None
        How to describe the supported inputs when ``input_shapes`` is ``None``
        ("C×H×W, H, W ≥ 8"); ``None`` means any shape.
    """

    name: str
    description: str
    builder: Callable[..., nn.Module]
    input_shapes: tuple[tuple[int, ...], ...] | None = None
    input_note: str | None = None

    def __post_init__(self) -> None:
        # A malformed spec is a programming error, so these are ValueErrors.
        if not self.name or self.name != self.name.strip():
            raise ValueError(f"model name {self.name!r} must be non-empty without surrounding spaces")
        if self.input_shapes is not None:
            shapes = tuple(tuple(int(d) for d in shape) for shape in self.input_shapes)
            if not shapes or any(not s or min(s) < 1 for s in shapes):
                raise ValueError(f"model {self.name!r} has invalid input shapes {self.input_shapes}")
            object.__setattr__(self, "input_shapes", shapes)

    @property
    def supported_inputs(self) -> str:
        """Human-readable supported inputs: ``"3×32×32 or 3×64×64"``, ``"any"``."""
        if self.input_shapes is not None:
            return " or ".join(format_shape(s) for s in self.input_shapes)
        return self.input_note or "any"


def format_shape(shape: Sequence[int]) -> str:
    """``(3, 32, 32)`` -> ``"3×32×32"``."""
    return "×".join(str(d) for d in shape)


def register_model(
    name: str,
    *,
    description: str,
    input_shapes: Sequence[Sequence[int]] | None = None,
    input_note: str | None = None,
) -> Callable[[Builder], Builder]:
    """Decorator registering a builder under ``name``; returns the builder unchanged.

    Examples
    --------
    >>> @register_model("tiny", description="flatten + linear")  # doctest: +SKIP
    ... def tiny(*, num_classes, input_shape):
    ...     return nn.Sequential(nn.Flatten(), nn.Linear(math.prod(input_shape), num_classes))

    Raises
    ------
    ValueError
        If the name is taken (a programming error, not bad input).
    """

    def decorator(builder: Builder) -> Builder:
        shapes = None if input_shapes is None else tuple(tuple(s) for s in input_shapes)
        _REGISTRY.register(name, ModelSpec(name, description, builder, shapes, input_note))
        return builder

    return decorator


def list_models() -> list[str]:
    """Names of the registered models, in registration order."""
    return _REGISTRY.names()


def get_model_spec(name: str) -> ModelSpec:
    """The :class:`ModelSpec` registered as ``name``.

    Raises
    ------
    UnknownNameError
        If there is none; the message lists the valid names.
    """
    return _REGISTRY.get(name)


def create_model(
    name: str,
    *,
    num_classes: int,
    input_shape: Sequence[int],
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
) -> NormalizedModel:
    """Build a registered network behind its input normalisation.

    Parameters
    ----------
    name : str
        A name from :func:`list_models`.
    num_classes : int, keyword-only
        Number of classes ``K``.
    input_shape : sequence of int, keyword-only
        Shape of one input: ``(C, H, W)`` for images, ``(D,)`` for features.
    mean, std : sequence of float, keyword-only, optional
        Per-channel statistics (length 1 or ``C``; for features length 1 or
        ``D``), e.g. from :func:`~wpgdkit.models.dataset_normalization`. Both
        ``None``: no normalisation (mean 0, std 1).

    Returns
    -------
    model : NormalizedModel
        Maps pixel-space inputs ``(N, *input_shape)`` to logits ``(N, K)``;
        ``model.net`` is the bare network, ``model.model_name`` is ``name``.

    Raises
    ------
    UnknownNameError
        For an unregistered name.
    WpgdkitError
        For an input shape the network does not support, a bad class count or
        bad normalisation statistics.

    Notes
    -----
    Under ``with torch.device("meta"):`` no memory is allocated, which is
    enough to count parameters or check output shapes.
    """
    spec = get_model_spec(name)
    shape = _check_shape(input_shape)
    if isinstance(num_classes, bool) or not isinstance(num_classes, numbers.Integral) or num_classes < 1:
        raise WpgdkitError(f"num_classes must be a positive integer, got {num_classes!r}")
    if spec.input_shapes is not None and shape not in spec.input_shapes:
        raise WpgdkitError(
            f"model {name!r} supports inputs of shape {spec.supported_inputs}; got {format_shape(shape)}"
        )
    from wpgdkit.models.normalize import NormalizedModel

    normalize = _normalize_layer(shape, mean, std)
    net = spec.builder(num_classes=int(num_classes), input_shape=shape)
    return NormalizedModel(normalize, net, model_name=name)


def _check_shape(input_shape: Sequence[int]) -> tuple[int, ...]:
    try:
        shape = tuple(int(d) for d in input_shape)
    except (TypeError, ValueError):
        raise WpgdkitError(f"input_shape must be a sequence of integers, got {input_shape!r}") from None
    if not shape or min(shape) < 1:
        raise WpgdkitError(f"input_shape must be non-empty with positive sizes, got {input_shape!r}")
    return shape


def _normalize_layer(shape: tuple[int, ...], mean: Sequence[float] | None, std: Sequence[float] | None) -> Normalize:
    from wpgdkit.models.normalize import Normalize

    channels = shape[0]
    if (mean is None) != (std is None):
        raise WpgdkitError("give both mean and std for the normalisation, or neither")
    if mean is None:
        mean, std = (0.0,), (1.0,)
    try:
        mean, std = tuple(mean), tuple(std)
    except TypeError:
        raise WpgdkitError(f"normalisation mean and std must be sequences, got {mean!r} and {std!r}") from None
    for what, values in (("mean", mean), ("std", std)):
        if len(values) not in (1, channels):
            raise WpgdkitError(
                f"normalisation {what} has {len(values)} values; the input {format_shape(shape)} needs 1 or {channels}"
            )
    # Expanded to C values so the buffers have one shape per input shape,
    # whatever was passed: checkpoints then load into any model built alike.
    return Normalize(_expand(mean, channels), _expand(std, channels), spatial_dims=len(shape) - 1)


def _expand(values: tuple[float, ...], channels: int) -> tuple[float, ...]:
    return values * channels if len(values) == 1 else values


def count_parameters(model: nn.Module) -> int:
    """Number of scalar parameters (shared ones once; buffers excluded).

    Works on the meta device, where no parameter holds memory.
    """
    return sum(p.numel() for p in model.parameters())

