"""The dataset registry: datasets by name, in the style of timm's ``create_model``.

A :class:`DatasetSpec` says everything the rest of wpgdkit needs to know about a
dataset without loading it (its classes in label order, input shape and range,
where its files come from) plus an internal ``loader`` that builds a split.
Built-in datasets are registered when :mod:`wpgdkit.datasets` is imported.
"""

from __future__ import annotations

import csv
import functools
import json
import math
import numbers
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Callable, Protocol, Union, runtime_checkable

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from torch.utils.data import Dataset

from wpgdkit.registry import Registry
from wpgdkit.errors import MetricFormatError, UnknownNameError, WpgdkitError
from wpgdkit.resources import metrics_dir

__all__ = [
    "DATA_DIR_ENV",
    "FILE_FORMS",
    "SPLITS",
    "DatasetSpec",
    "InputRange",
    "TensorSource",
    "get_dataset",
    "list_datasets",
    "load_split",
    "load_tensors",
    "register_dataset",
    "resolve_data_dir",
]

#: The splits every dataset provides.
SPLITS: tuple[str, ...] = ("train", "test")

#: Environment variable naming the default data folder.
DATA_DIR_ENV = "WPGDKIT_DATA_DIR"

#: How an unknown-name message mentions the dataset forms besides registry names.
FILE_FORMS = "or a .npz/.csv file, or imagefolder:PATH"

#: ``(low, high)`` for every input value alike, or ``(lows, highs)``: one bound per
#: input value, flattened in C order (length ``prod(input_shape)``).
InputRange = Union[tuple[float, float], tuple[tuple[float, ...], tuple[float, ...]]]

# A WordNet noun synset name (dog.n.01) or an ImageNet-style WordNet id (n02084071);
# whether it exists is checked where WordNet is loaded.
_SYNSET = re.compile(r"^(?:n\d{8}|\S+\.n\.\d+)$")

_REGISTRY: Registry[DatasetSpec] = Registry("dataset", sort=True, entry_point_group="wpgdkit.datasets")


@runtime_checkable
class TensorSource(Protocol):
    """A dataset that can hand out a batch of items as tensors in one go.

    :func:`load_tensors` uses it to avoid a Python loop over every item;
    datasets without it are stacked item by item.
    """

    def take(self, indices: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``(x, y)`` for ``indices`` (int64, sorted), or for all items if ``None``."""
        ...


@dataclass(frozen=True)
class DatasetSpec:
    """A registered dataset.

    Attributes
    ----------
    name : str
        Registry name, e.g. ``"cifar10"``; for a dataset read from files, the
        reference as given (``"data.npz"``, ``"imagefolder:pets"``).
    classes : tuple of str, length K
        Class names in label order: label ``k`` is ``classes[k]``.
    input_shape : tuple of int
        Shape of one input, ``(C, H, W)`` for images, ``(2,)`` for the toy problem.
    input_range : (float, float), ((float, ...), (float, ...)) or None
        Range of the input values: ``(0.0, 1.0)`` for images; per-feature
        bounds ``(lows, highs)``, each of length ``prod(input_shape)`` in C
        order, for features bounded by their training data; ``None`` for
        unbounded features. See :attr:`per_feature_range`.
    description : str
        One line describing the dataset.
    how_to_get : str
        One line telling the user how to obtain the files.
    loader : callable
        Internal: ``loader(split, *, data_dir, download, seed)`` returns a
        :class:`torch.utils.data.Dataset`; use :func:`load_split` instead.
    eps_units : str or None
        What ε is measured in on this data, e.g. ``"standard deviations of
        each feature"``; ``None`` lets :attr:`eps_unit_text` derive it from
        the input range.
    source : mapping or None
        For datasets read from files, a JSON-able record of how to reopen
        them (``kind``, ``reference``, ``path``, ``test``, ``sha256``,
        ``options``; see :func:`wpgdkit.datasets.files.open_dataset`). Kept
        read-only and out of equality and hashing; :meth:`source_record`
        returns a plain copy.
    synset_ids : tuple of (str or None) or None
        WordNet noun synsets of the classes (``dog.n.01`` or ImageNet-style
        ``n02084071``) for datasets without a shipped mapping; see :attr:`synsets`.
    """

    name: str
    classes: tuple[str, ...]
    input_shape: tuple[int, ...]
    input_range: InputRange | None
    description: str
    how_to_get: str
    loader: Callable[..., Dataset]
    eps_units: str | None = None
    source: Mapping[str, Any] | None = field(default=None, compare=False, hash=False, repr=False)
    synset_ids: tuple[str | None, ...] | None = None

    def __post_init__(self) -> None:
        # Tuples keep the spec hashable (synsets are cached by classes) and immutable.
        object.__setattr__(self, "classes", tuple(self.classes))
        object.__setattr__(self, "input_shape", tuple(self.input_shape))
        # A malformed spec is a programming error in wpgdkit or a plugin, so
        # these are plain ValueErrors, not user-facing WpgdkitErrors.
        if not self.name or self.name != self.name.strip():
            raise ValueError(f"dataset name {self.name!r} must be non-empty without surrounding spaces")
        if not self.classes:
            raise ValueError(f"dataset {self.name!r} has no classes")
        if len(set(self.classes)) != len(self.classes):
            raise ValueError(f"dataset {self.name!r} has duplicate class names")
        if not self.input_shape or any(d < 1 for d in self.input_shape):
            raise ValueError(f"dataset {self.name!r} has an invalid input shape {self.input_shape}")
        object.__setattr__(self, "input_range", self._checked_range())
        if self.eps_units is not None and (not isinstance(self.eps_units, str) or not self.eps_units.strip()):
            raise ValueError(f"dataset {self.name!r} has empty eps_units")
        object.__setattr__(self, "source", self._checked_source())
        object.__setattr__(self, "synset_ids", self._checked_synset_ids())

    def _checked_range(self) -> InputRange | None:
        """The input range with floats and tuples throughout, after checking it is a valid range."""
        value = self.input_range
        if value is None:
            return None
        if len(value) != 2:
            raise ValueError(f"dataset {self.name!r}: input_range must be (low, high) or (lows, highs)")
        low, high = value
        if isinstance(low, numbers.Real) and isinstance(high, numbers.Real):
            if not float(low) < float(high):
                raise ValueError(f"dataset {self.name!r} has an empty input range {value}")
            return (float(low), float(high))
        lows, highs = tuple(float(v) for v in low), tuple(float(v) for v in high)
        size = math.prod(self.input_shape)
        if len(lows) != size or len(highs) != size:
            raise ValueError(
                f"dataset {self.name!r}: per-feature input range has {len(lows)} lows and {len(highs)} highs, "
                f"expected {size} each (prod of input shape {self.input_shape})"
            )
        if not all(math.isfinite(a) and math.isfinite(b) and a <= b for a, b in zip(lows, highs)):
            raise ValueError(f"dataset {self.name!r}: per-feature input range needs finite lows <= highs")
        return (lows, highs)

    def _checked_source(self) -> Mapping[str, Any] | None:
        if self.source is None:
            return None
        try:
            # A JSON round trip both checks the record can be written and detaches it from the caller's dict.
            plain = json.loads(json.dumps(dict(self.source), allow_nan=False))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"dataset {self.name!r}: source must be a JSON-able mapping ({exc})") from None
        return MappingProxyType(plain)

    def _checked_synset_ids(self) -> tuple[str | None, ...] | None:
        if self.synset_ids is None:
            return None
        ids = tuple(self.synset_ids)
        if len(ids) != len(self.classes):
            raise ValueError(f"dataset {self.name!r} has {len(ids)} synset ids for {len(self.classes)} classes")
        bad = [s for s in ids if s is not None and not (isinstance(s, str) and _SYNSET.match(s))]
        if bad:
            raise ValueError(f"dataset {self.name!r}: {bad[0]!r} is neither a noun synset name (dog.n.01) nor a WordNet id (n02084071)")
        return ids

    @property
    def num_classes(self) -> int:
        """Number of classes ``K``."""
        return len(self.classes)

    @property
    def per_feature_range(self) -> bool:
        """Whether :attr:`input_range` holds one ``(low, high)`` per input value rather than one for all."""
        return self.input_range is not None and not isinstance(self.input_range[0], float)

    @property
    def eps_unit_text(self) -> str:
        """What ε is measured in on this data, for the command line.

        :attr:`eps_units` when set; otherwise ``"pixel intensity in [0, 1]"``
        for images in [0, 1], ``"input units in [low, high]"`` for other
        scalar ranges and ``"the features' own units"`` for unbounded or
        per-feature-bounded features.
        """
        if self.eps_units is not None:
            return self.eps_units
        if self.input_range is None or self.per_feature_range:
            return "the features' own units"
        low, high = self.input_range
        if (low, high) == (0.0, 1.0) and len(self.input_shape) == 3:
            return "pixel intensity in [0, 1]"
        return f"input units in [{low:g}, {high:g}]"

    @property
    def synsets(self) -> tuple[str | None, ...] | None:
        """WordNet 3.0 noun synsets per class, or ``None`` if none are known.

        :attr:`synset_ids` when set (synset names such as ``dog.n.01`` or
        WordNet ids such as ``n02084071``; both are accepted by
        :func:`wpgdkit.labelmetric.wordnet_distance.lookup_synsets`);
        otherwise read from the shipped mapping ``metrics/<name>-synsets.csv``.
        An empty synset cell (a class with no WordNet noun) gives ``None`` for that class.

        Raises
        ------
        MetricFormatError
            If the file exists but its ``class`` column differs from :attr:`classes`.
        """
        if self.synset_ids is not None:
            return self.synset_ids
        return _read_synsets(self.name, self.classes)

    def source_record(self) -> dict[str, Any] | None:
        """A plain, JSON-able copy of :attr:`source` (``None`` for datasets not read from files)."""
        return None if self.source is None else json.loads(json.dumps(dict(self.source)))

    def to_dict(self) -> dict[str, Any]:
        """The spec as JSON types, without the loader.

        Returns
        -------
        dict
            ``name``, ``num_classes``, ``classes`` (list), ``input_shape``
            (list), ``synsets`` (list, or None when none are known),
            ``description`` and ``how_to_get``.

        Raises
        ------
        MetricFormatError
            If the shipped synset file disagrees with the classes (see :attr:`synsets`).
        """
        synsets = self.synsets
        return {
            "name": self.name,
            "num_classes": self.num_classes,
            "classes": list(self.classes),
            "input_shape": list(self.input_shape),
            "synsets": list(synsets) if synsets else None,
            "description": self.description,
            "how_to_get": self.how_to_get,
        }


@functools.cache
def _read_synsets(name: str, classes: tuple[str, ...]) -> tuple[str | None, ...] | None:
    path = metrics_dir() / f"{name}-synsets.csv"
    if not path.is_file():
        return None
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = {"class", "synset"} - set(reader.fieldnames or ())
        if missing:
            raise MetricFormatError(f"{path} lacks column(s) {', '.join(sorted(missing))}; expected header index,class,synset,gloss")
        rows = list(reader)
    found = tuple(row["class"] for row in rows)
    if found != classes:
        raise MetricFormatError(
            f"{path} lists {len(found)} classes that differ from dataset {name!r} "
            f"({_first_difference(found, classes)}); the label order is a contract"
        )
    return tuple((row["synset"] or "").strip() or None for row in rows)


def _first_difference(found: tuple[str, ...], expected: tuple[str, ...]) -> str:
    """Describe where two class lists first differ, for one-line error messages."""
    for i, (a, b) in enumerate(zip(found, expected)):
        if a != b:
            return f"row {i}: {a!r}, expected {b!r}"
    return f"{len(found)} rows, expected {len(expected)}"


def register_dataset(spec: DatasetSpec) -> DatasetSpec:
    """Add ``spec`` to the registry and return it.

    Raises
    ------
    ValueError
        If a dataset of that name is already registered (a programming error).
    """
    return _REGISTRY.register(spec.name, spec)


def list_datasets() -> list[str]:
    """Return the registered dataset names, sorted."""
    return _REGISTRY.names()


def get_dataset(name: str) -> DatasetSpec:
    """Return the spec of dataset ``name``.

    Looked for in the registry first, then among the datasets opened from
    files in this process (:func:`wpgdkit.datasets.files.open_dataset`,
    :func:`~wpgdkit.datasets.files.dataset_from_arrays`); a file reference
    not opened yet (``data.npz``, ``data.csv``, ``imagefolder:PATH``) is
    opened with the default :class:`~wpgdkit.datasets.files.DataOptions`.

    Raises
    ------
    UnknownNameError
        If no dataset has that name and it is no file reference; the message
        lists the valid names and the file forms.
    DataNotFoundError, WpgdkitError
        If a file reference cannot be opened.
    """
    try:
        return _REGISTRY.get(name)
    except UnknownNameError as exc:
        unknown = exc
    from wpgdkit.datasets import files  # not before: a registered name needs neither it nor torch

    opened = files.opened_dataset(name)
    if opened is not None:
        return opened
    if isinstance(name, str) and files.is_dataset_reference(name):
        return files.open_dataset(name)
    raise UnknownNameError(f"{unknown}, {FILE_FORMS}") from None


def resolve_data_dir(data_dir: str | Path | None = None) -> Path:
    """Return the data folder: ``data_dir``, else ``$WPGDKIT_DATA_DIR``, else ``./data``.

    The path is left relative when given relative, so error messages show it
    the way the user wrote it.
    """
    if data_dir is None:
        data_dir = os.environ.get(DATA_DIR_ENV) or "data"
    return Path(data_dir).expanduser()


def load_split(
    name: str,
    split: str,
    *,
    data_dir: str | Path | None = None,
    download: bool = False,
    seed: int = 0,
) -> Dataset:
    """Load one split of a registered dataset.

    Parameters
    ----------
    name : str
        Registry name, see :func:`list_datasets`.
    split : {"train", "test"}
        Which split.
    data_dir : str or Path, optional
        Folder holding the data; defaults to ``$WPGDKIT_DATA_DIR`` or ``./data``.
    download : bool
        Fetch missing files (through torchvision) instead of failing. With
        ``False`` the network is never touched.
    seed : int
        Seed of generated datasets (``toy``); file-backed datasets ignore it.

    Returns
    -------
    torch.utils.data.Dataset
        Items are ``(x, y)``: ``x`` a float32 tensor of shape ``input_shape``
        (values in [0, 1] for images), ``y`` a Python ``int`` label.

    Raises
    ------
    UnknownNameError
        If the dataset or the split is unknown.
    DataNotFoundError
        If the files are missing.
    WpgdkitError
        If the files are malformed.
    """
    spec = get_dataset(name)
    _check_split(name, split)
    return spec.loader(split, data_dir=resolve_data_dir(data_dir), download=download, seed=seed)


def load_tensors(
    name: str,
    split: str,
    *,
    data_dir: str | Path | None = None,
    download: bool = False,
    limit: int | None = None,
    seed: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Load a split (or a seeded random subset of it) as two tensors.

    Parameters
    ----------
    name, split, data_dir, download, seed
        As in :func:`load_split`; ``seed`` also draws the subset.
    limit : int, optional
        Keep a random subset of this many items, drawn with
        ``torch.Generator().manual_seed(seed)`` and kept in dataset order.
        A limit larger than the split keeps everything.

    Returns
    -------
    x : torch.Tensor of float32, shape (N, *input_shape)
    y : torch.Tensor of int64, shape (N,)

    Raises
    ------
    WpgdkitError
        If ``limit`` is below 1, or for any reason :func:`load_split` raises.
    """
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, numbers.Integral) or limit < 1):
        raise WpgdkitError(f"limit must be a positive integer, got {limit!r}")
    dataset = load_split(name, split, data_dir=data_dir, download=download, seed=seed)
    indices = _subset_indices(len(dataset), limit=limit, seed=seed)
    if isinstance(dataset, TensorSource):
        return dataset.take(indices)
    return _stack_items(dataset, indices)


def _check_split(name: str, split: str) -> None:
    if split not in SPLITS:
        raise UnknownNameError(f"unknown split {split!r} for dataset {name!r}; choose one of: {', '.join(SPLITS)}")


def _subset_indices(n: int, *, limit: int | None, seed: int) -> torch.Tensor | None:
    """Sorted int64 indices of a seeded random subset, or ``None`` for everything."""
    import torch

    if limit is None or limit >= n:
        return None
    limit = int(limit)
    generator = torch.Generator().manual_seed(seed)
    # Sorting keeps the dataset's own order, so a subset of a class-sorted
    # split stays class-sorted and files are read front to back.
    return torch.randperm(n, generator=generator)[:limit].sort().values


def _stack_items(dataset: Dataset, indices: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Fallback for datasets without :class:`TensorSource`: stack items one by one."""
    import torch

    order = range(len(dataset)) if indices is None else indices.tolist()
    xs, ys = [], []
    for i in order:
        x, y = dataset[i]
        xs.append(torch.as_tensor(x, dtype=torch.float32))
        ys.append(int(y))
    if not xs:
        raise WpgdkitError("the split is empty")
    return torch.stack(xs), torch.tensor(ys, dtype=torch.int64)
