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

Your own data: :func:`open_dataset` reads ``data.npz``, ``data.csv`` or
``imagefolder:PATH`` (see :mod:`wpgdkit.datasets.files`), and
:func:`dataset_from_arrays` takes arrays in memory; :func:`get_dataset`
finds either by name afterwards.
"""

from __future__ import annotations


from wpgdkit.lazy import lazy_attributes

from wpgdkit.datasets.catalog import register_builtin_datasets
from wpgdkit.datasets.files import (
    DataFormatError,
    DataOptions,
    dataset_from_arrays,
    is_dataset_reference,
    open_dataset,
    reopen_dataset,
)
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

# The torch Dataset classes, loaded on first use (PEP 562): the registry, the specs
# and `wpgdkit datasets` need no torch.
_LAZY = {
    "FolderImageDataset": "wpgdkit.datasets.imagefiles",
    "ImageFileDataset": "wpgdkit.datasets.imagefiles",
    "TensorFeatureDataset": "wpgdkit.datasets.memory",
    "TensorImageDataset": "wpgdkit.datasets.memory",
}

__all__ = [
    "SPLITS",
    "DataFormatError",
    "DataOptions",
    "DatasetSpec",
    "FolderImageDataset",
    "ImageFileDataset",
    "TensorFeatureDataset",
    "TensorImageDataset",
    "dataset_from_arrays",
    "get_dataset",
    "is_dataset_reference",
    "list_datasets",
    "load_split",
    "load_tensors",
    "open_dataset",
    "register_dataset",
    "reopen_dataset",
    "resolve_data_dir",
]

register_builtin_datasets()


__getattr__, __dir__ = lazy_attributes(__name__, globals(), _LAZY)
