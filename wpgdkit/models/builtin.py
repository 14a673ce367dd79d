"""The built-in models' registry entries: names, descriptions and inputs, without torch.

Listing the models (``wpgdkit models``, ``wpgdkit train --help``) reads these
entries only; the module that defines a network (:mod:`~wpgdkit.models.simple`,
:mod:`~wpgdkit.models.wide_resnet`) is imported when one is first built.
The sizes the descriptions quote live here and are re-exported there.
"""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass
from typing import Any

from wpgdkit.errors import WpgdkitError
from wpgdkit.models.registry import register_model

__all__ = [
    "CONV1D_KERNELS",
    "CONV1D_MIN_LENGTH",
    "MLP_HIDDEN",
    "SMALL_CNN_MIN_SIZE",
    "WRN_INPUT_SHAPES",
    "WRN_NAMES",
    "parse_wrn_name",
]

MLP_HIDDEN = 256
SMALL_CNN_MIN_SIZE = 8  # two 2×2 max-pools leave at least 2×2 to average-pool

#: Kernel lengths of the three blocks of the FCN of Wang, Yan & Oates (2017).
CONV1D_KERNELS: tuple[int, int, int] = (8, 5, 3)
#: Shortest series ``conv1d`` takes: the first kernel must fit inside the series at least once.
CONV1D_MIN_LENGTH = CONV1D_KERNELS[0]

#: The registered Wide ResNets (the paper's W-16-10, W-28-10, W-40-10).
WRN_NAMES: tuple[str, ...] = ("wrn-16-10", "wrn-28-10", "wrn-40-10")
#: Input shapes they support: CIFAR and Tiny-ImageNet images.
WRN_INPUT_SHAPES: tuple[tuple[int, ...], ...] = ((3, 32, 32), (3, 64, 64))

_WRN_NAME = re.compile(r"wrn-(\d+)-(\d+)")


def parse_wrn_name(name: str) -> tuple[int, int]:
    """``"wrn-28-10"`` -> ``(28, 10)``: depth and widening factor.

    Raises
    ------
    WpgdkitError
        If the name is not ``wrn-{depth}-{width}`` with ``depth = 6n + 4``,
        ``n >= 1``, and ``width >= 1``.
    """
    match = _WRN_NAME.fullmatch(name)
    if match is None:
        raise WpgdkitError(f"{name!r} is not a Wide ResNet name of the form wrn-DEPTH-WIDTH (e.g. wrn-28-10)")
    depth, width = int(match[1]), int(match[2])
    if depth < 10 or (depth - 4) % 6:
        raise WpgdkitError(f"{name!r}: a Wide ResNet's depth must be 6n + 4 with n >= 1 (10, 16, 22, 28, 34, 40, ...)")
    if width < 1:
        raise WpgdkitError(f"{name!r}: the widening factor must be at least 1")
    return depth, width


@dataclass(frozen=True)
class _Deferred:
    """A builder whose module is imported at its first call: ``module.function(*args, **kwargs)``."""

    module: str
    function: str
    args: tuple[Any, ...] = ()

    def __call__(self, **kwargs: Any) -> Any:
        return getattr(importlib.import_module(self.module), self.function)(*self.args, **kwargs)


_SIMPLE = "wpgdkit.models.simple"

# Registration order is the order of list_models().
register_model("linear", description="Flatten + one linear layer (logistic regression).")(
    _Deferred(_SIMPLE, "build_linear"))
register_model("mlp", description=f"MLP, two hidden ReLU layers of {MLP_HIDDEN}.")(_Deferred(_SIMPLE, "build_mlp"))
register_model(
    "small-cnn",
    description="Two conv layers + MLP head; fast on a CPU.",
    input_note=f"C×H×W images, H, W ≥ {SMALL_CNN_MIN_SIZE}",
)(_Deferred(_SIMPLE, "build_small_cnn"))
register_model(
    "conv1d",
    description="1-D CNN for series (FCN of Wang et al. 2017, half width).",
    input_note=f"C×T series, T ≥ {CONV1D_MIN_LENGTH}",
)(_Deferred(_SIMPLE, "build_conv1d"))
for _name in WRN_NAMES:
    _depth, _width = parse_wrn_name(_name)
    register_model(
        _name,
        description=f"Wide ResNet {_depth}-{_width} (Zagoruyko & Komodakis 2016), dropout 0.",
        input_shapes=WRN_INPUT_SHAPES,
    )(_Deferred("wpgdkit.models.wide_resnet", "build_wide_resnet", (_name,)))
del _name, _depth, _width
