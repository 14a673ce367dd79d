"""The model registry: networks by name, behind their input normalisation.

>>> from wpgdkit.models import create_model, dataset_normalization, list_models
>>> list_models()
['linear', 'mlp', 'small-cnn', 'conv1d', 'wrn-16-10', 'wrn-28-10', 'wrn-40-10']
>>> mean, std = dataset_normalization("cifar10")
>>> model = create_model("small-cnn", num_classes=10, input_shape=(3, 32, 32), mean=mean, std=std)
>>> model.model_name, model.mean
('small-cnn', (0.4914, 0.4822, 0.4465))

Every model takes pixel-space inputs (``[0, 1]`` for images) and normalises
them itself, so attacks perturb and clip in pixel space. Built-in models:
``linear``, ``mlp`` (any input shape), ``small-cnn`` (images of at least 8×8),
``conv1d`` (series C×T, T ≥ 8) and the Wide ResNets ``wrn-16-10``, ``wrn-28-10``, ``wrn-40-10`` (3×32×32 or
3×64×64). Register more with :func:`register_model`; :func:`describe_models`
lists them with their size for a dataset.
"""

from __future__ import annotations


from wpgdkit.lazy import lazy_attributes

from wpgdkit.models.registry import (
    ModelSpec,
    count_parameters,
    create_model,
    format_shape,
    get_model_spec,
    list_models,
    register_model,
)

# Registers the built-in models, in order, without importing torch: their networks'
# modules (simple, wide_resnet) are imported when a model is first built.
from wpgdkit.models.builtin import parse_wrn_name  # noqa: E402  isort: skip
from wpgdkit.models.describe import describe_models, model_parameter_count  # noqa: E402

# The names that need torch, loaded on first use (PEP 562).
_LAZY = {
    "DATASET_NORMALIZATION": "wpgdkit.models.normalize",
    "Normalize": "wpgdkit.models.normalize",
    "NormalizedModel": "wpgdkit.models.normalize",
    "dataset_normalization": "wpgdkit.models.normalize",
    "WideResNet": "wpgdkit.models.wide_resnet",
}

__all__ = [
    "DATASET_NORMALIZATION",
    "ModelSpec",
    "Normalize",
    "NormalizedModel",
    "WideResNet",
    "count_parameters",
    "create_model",
    "dataset_normalization",
    "describe_models",
    "format_shape",
    "get_model_spec",
    "list_models",
    "model_parameter_count",
    "parse_wrn_name",
    "register_model",
]


__getattr__, __dir__ = lazy_attributes(__name__, globals(), _LAZY)
