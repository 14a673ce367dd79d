"""Normalisation inside the model, so that inputs stay in pixel space.

Attacks perturb and clip inputs in their natural range ([0, 1] for images);
an ε-ball measured after a per-channel standardisation would be a different,
channel-dependent ball. So every model built by
:func:`~wpgdkit.models.create_model` is a :class:`NormalizedModel`: a
:class:`Normalize` layer followed by the bare network.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Sequence

import torch
from torch import nn

from wpgdkit.errors import WpgdkitError

__all__ = ["DATASET_NORMALIZATION", "Normalize", "NormalizedModel", "dataset_normalization"]

#: Per-channel (mean, std) of each training split, as commonly quoted.
#: ``toy`` is absent on purpose: its features are already centred and scaled.
DATASET_NORMALIZATION: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
    "tiny-imagenet": ((0.4802, 0.4481, 0.3975), (0.2770, 0.2691, 0.2821)),
    "mnist": ((0.1307,), (0.3081,)),
    "fashion-mnist": ((0.2860,), (0.3530,)),
}


def dataset_normalization(dataset_name: str) -> tuple[tuple[float, ...], tuple[float, ...]] | tuple[None, None]:
    """The standard per-channel mean and std of a registered dataset.

    Parameters
    ----------
    dataset_name : str
        A name from :func:`wpgdkit.datasets.list_datasets`.

    Returns
    -------
    mean, std : tuple of float, length C, or (None, None)
        ``(None, None)`` for datasets used without normalisation (``toy``,
        and any registered dataset with no published statistics).

    Raises
    ------
    UnknownNameError
        If no dataset of that name is registered; the message lists them.
    """
    from wpgdkit.datasets import get_dataset

    get_dataset(dataset_name)  # an unknown name fails with the list of datasets
    return DATASET_NORMALIZATION.get(dataset_name, (None, None))


def _as_floats(values: Sequence[float], what: str) -> tuple[float, ...]:
    try:
        out = tuple(float(v) for v in values)
    except (TypeError, ValueError):
        raise WpgdkitError(f"normalisation {what} must be a sequence of numbers, got {values!r}") from None
    if not out or not all(math.isfinite(v) for v in out):
        raise WpgdkitError(f"normalisation {what} must be non-empty and finite, got {values!r}")
    return out


class Normalize(nn.Module):
    """``(x - mean) / std`` per channel.

    Parameters
    ----------
    mean, std : sequence of float, length C
        Per-channel statistics; ``std`` must be positive.
    spatial_dims : int, keyword-only, default=2
        Number of axes after the channel axis: 2 for ``(N, C, H, W)`` images,
        0 for ``(N, D)`` feature vectors (then ``C`` is ``D``).

    Notes
    -----
    ``mean`` and ``std`` are buffers of shape ``(1, C, 1, ..., 1)``, so they
    move with ``.to(device)`` and are saved in the ``state_dict`` (a checkpoint
    restores the normalisation it was trained with).
    """

    def __init__(self, mean: Sequence[float], std: Sequence[float], *, spatial_dims: int = 2) -> None:
        super().__init__()
        mean_t, std_t = _as_floats(mean, "mean"), _as_floats(std, "std")
        if len(mean_t) != len(std_t):
            raise WpgdkitError(f"normalisation mean and std differ in length ({len(mean_t)} vs {len(std_t)})")
        if min(std_t) <= 0:
            raise WpgdkitError(f"normalisation std must be positive, got {std_t}")
        if spatial_dims < 0:
            raise ValueError(f"spatial_dims must be >= 0, got {spatial_dims}")
        shape = (1, len(mean_t)) + (1,) * spatial_dims
        self.register_buffer("mean", torch.tensor(mean_t, dtype=torch.float32).reshape(shape))
        self.register_buffer("std", torch.tensor(std_t, dtype=torch.float32).reshape(shape))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalise ``x`` of shape ``(N, C, *spatial)``; same shape out."""
        return (x - self.mean) / self.std

    def extra_repr(self) -> str:
        # On the meta device the values are unknown; show the shape only.
        if self.mean.is_meta:
            return f"channels={self.mean.shape[1]}"
        fmt = lambda t: "(" + ", ".join(f"{v:.4g}" for v in t.flatten().tolist()) + ")"  # noqa: E731
        return f"mean={fmt(self.mean)}, std={fmt(self.std)}"


class NormalizedModel(nn.Sequential):
    """A network that takes pixel-space inputs and normalises them itself.

    Parameters
    ----------
    normalize : Normalize
    net : nn.Module
        The bare network, mapping normalised inputs ``(N, *input_shape)`` to
        logits ``(N, K)``.
    model_name : str or None, keyword-only
        Registry name of the network, recorded in checkpoints.

    Notes
    -----
    A ``Sequential`` of ``normalize`` then ``net``: ``model(x)`` is
    ``net(normalize(x))`` and the ``state_dict`` keys are ``normalize.*`` and
    ``net.*``.
    """

    def __init__(self, normalize: Normalize, net: nn.Module, *, model_name: str | None = None) -> None:
        super().__init__(OrderedDict(normalize=normalize, net=net))
        self.model_name = model_name

    @property
    def mean(self) -> tuple[float, ...]:
        """Per-channel mean of the normalisation (zeros when there is none)."""
        return _short_floats(self.normalize.mean)

    @property
    def std(self) -> tuple[float, ...]:
        """Per-channel std of the normalisation (ones when there is none)."""
        return _short_floats(self.normalize.std)


def _short_floats(buffer: torch.Tensor) -> tuple[float, ...]:
    # The buffers are float32: 0.4914 reads back as 0.49140000343322754. The
    # shortest decimal that round-trips in float32 is what the user passed.
    return tuple(float(str(v)) for v in buffer.detach().cpu().flatten().numpy())
