"""The dataset registry: datasets by name, their classes, shapes and splits.

>>> from wpgdkit.datasets import get_dataset, load_tensors
>>> get_dataset("cifar10").classes[:3]
('airplane', 'automobile', 'bird')
>>> x, y = load_tensors("toy", "test", limit=100, seed=0)
>>> tuple(x.shape), y.dtype
((100, 2), torch.int64)

Built-in datasets: ``mnist``, ``fashion-mnist``, ``cifar10``, ``cifar100``,
``tiny-imagenet`` and ``toy``. Files are looked for under ``data_dir``
(default ``$WPGDKIT_DATA_DIR``, else ``./data``); see each spec's ``how_to_get``.
"""

from __future__ import annotations

from wpgdkit.datasets.catalog import register_builtin_datasets
from wpgdkit.datasets.memory import TensorFeatureDataset, TensorImageDataset
from wpgdkit.datasets.registry import (
    SPLITS,
    DatasetSpec,
    get_dataset,
    list_datasets,
    load_split,
    load_tensors,
    register_dataset,
    resolve_data_dir,
)
from wpgdkit.datasets.tiny_imagenet import ImageFileDataset

__all__ = [
    "SPLITS",
    "DatasetSpec",
    "ImageFileDataset",
    "TensorFeatureDataset",
    "TensorImageDataset",
    "get_dataset",
    "list_datasets",
    "load_split",
    "load_tensors",
    "register_dataset",
    "resolve_data_dir",
]

register_builtin_datasets()
