"""Datasets read from files: ``.npz`` arrays, ``.csv`` tables and image folders.

Wherever wpgdkit takes a dataset name, it also takes a reference to files:

``data.npz``
    Arrays ``x_train``, ``y_train``, ``x_test``, ``y_test`` (the test pair may
    be left out when ``test_fraction`` is given) and optionally
    ``class_names`` (a string array). Inputs of any shape: tabular (N, F),
    series (N, C, T), images (N, C, H, W) or (N, H, W).
``data.csv``
    A header row, a label column (default ``label``) and numeric feature
    columns; the test split comes from a second file (``test``) or is held
    out (``test_fraction``).
``imagefolder:PATH``
    ``PATH/train/<class>/<image>`` and ``PATH/test/`` (or ``PATH/val/``) laid
    out as for torchvision's ``ImageFolder``: the class is the folder name,
    labels follow the sorted names.

:func:`open_dataset` reads the files once, checks them (every problem is one
:class:`~wpgdkit.errors.WpgdkitError` line, and nothing is recorded when one
is raised) and returns a :class:`~wpgdkit.datasets.DatasetSpec` named by the
reference, which :func:`~wpgdkit.datasets.get_dataset` then finds for the
rest of the process. :func:`dataset_from_arrays` does the same for arrays
already in memory.

Value ranges and ε. Images (``uint8`` arrays of rank 3 or 4, float arrays of
rank 4 within [0, 1], image folders) are float32 in [0, 1] with range
``(0, 1)``: ε is in pixel intensity. Anything else is "features": by default
each feature is bounded by its own [min, max] over the training split
(:attr:`DataOptions.bounds`), and ε is in the features' own units, or in
standard deviations of each feature with :attr:`DataOptions.standardize`.

Importing this module imports neither PIL nor the label-metric package.
"""

from __future__ import annotations

import csv
import hashlib
import math
import os
import pickle
import re
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from wpgdkit.datasets.registry import DatasetSpec, list_datasets
from wpgdkit.errors import DataNotFoundError, WpgdkitError
from wpgdkit.inputs import Range, check_number, check_seed, input_file

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from torch.utils.data import Dataset

    from wpgdkit.datasets.imagefiles import FolderImageDataset

__all__ = [
    "EPS_UNITS",
    "IMAGEFOLDER_PREFIX",
    "IMAGE_EXTENSIONS",
    "DataFormatError",
    "DataOptions",
    "FolderImageDataset",
    "dataset_from_arrays",
    "is_dataset_reference",
    "open_dataset",
    "opened_dataset",
    "reopen_dataset",
    "wordnet_id_to_name",
]

#: The prefix of an image-folder reference, ``imagefolder:PATH``.
IMAGEFOLDER_PREFIX = "imagefolder:"

#: Image files looked for in class folders (torchvision's ``IMG_EXTENSIONS``), compared case-insensitively.
IMAGE_EXTENSIONS: tuple[str, ...] = (".bmp", ".jpeg", ".jpg", ".pgm", ".png", ".ppm", ".tif", ".tiff", ".webp")

#: What ε is measured in, by kind of data (:attr:`~wpgdkit.datasets.DatasetSpec.eps_units`).
EPS_UNITS: dict[str, str] = {
    "images": "pixel intensity in [0, 1]",
    "standardized": "standard deviations of each feature",
    "features": "the features' own units",
}

_WNID = re.compile(r"^n\d{8}$")
_SYNSET = re.compile(r"^(?:n\d{8}|\S+\.n\.\d+)$")
_INTEGER = re.compile(r"^[+-]?\d+$")
_NPZ_ARRAYS = ("x_train", "y_train", "x_test", "y_test", "class_names")
_GREY_BANDS = {"1", "L", "I", "F"}

# Datasets opened in this process, by name, for get_dataset.
_OPENED: dict[str, DatasetSpec] = {}


class DataFormatError(WpgdkitError, ValueError):
    """A dataset file, folder or array is malformed, or an option does not fit it."""


# --- options -------------------------------------------------------------------


@dataclass(frozen=True)
class DataOptions:
    """How to read a dataset from files; each field is refused where it does not apply.

    Attributes
    ----------
    test : str or None
        CSV: a second file holding the test split (same columns).
    label_column : str or None
        CSV: the label column; ``None`` means ``"label"``.
    test_fraction : float or None
        CSV/NPZ without a test split: hold out this share of the training
        points as the test split, stratified by class and seeded by ``seed``.
    bounds : str
        ``"data"``: images in [0, 1], other data bounded per feature by the
        training split's [min, max]; ``"none"``: unbounded; ``"LOW,HIGH"``:
        the same bounds for every value (the data must lie inside them).
    standardize : bool
        Replace each feature by ``(x - mean) / std`` with the training
        split's statistics (a constant feature's std counts as 1), so ε is in
        standard deviations; bounds are computed after standardising.
    image_size : int or None
        Image folders: resize every image to this square size. ``None``
        requires all images to be the same size.
    synsets : str or None
        A CSV with columns ``class`` and ``synset`` giving each class's
        WordNet noun synset (``dog.n.01`` or ``n02084071``). Without it,
        classes all named by WordNet ids (``n02084071``) get those synsets.
    seed : int
        Seed of the ``test_fraction`` hold-out.

    Raises
    ------
    WpgdkitError
        On construction, for a value out of range (named by its flag).
    """

    test: str | None = None
    label_column: str | None = None
    test_fraction: float | None = None
    bounds: str = "data"
    standardize: bool = False
    image_size: int | None = None
    synsets: str | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("test", "synsets"):
            value = getattr(self, name)
            if value is not None:
                value = os.fspath(value)  # a Path is welcome; the record keeps a string
                if not isinstance(value, str) or not value.strip():
                    raise WpgdkitError(f"--{name} must name a file, got {value!r}")
                object.__setattr__(self, name, value)
        if self.label_column is not None and (not isinstance(self.label_column, str) or not self.label_column.strip()):
            raise WpgdkitError(f"--label-column must be a column name, got {self.label_column!r}")
        if self.test_fraction is not None:
            check_number("--test-fraction", self.test_fraction, Range(0, 1, low_open=True, high_open=True))
            object.__setattr__(self, "test_fraction", float(self.test_fraction))
        if not isinstance(self.bounds, str):
            raise WpgdkitError(f"--bounds must be data, none or LOW,HIGH, got {self.bounds!r}")
        _ = self.scalar_bounds  # parsed here so that a bad value fails on construction
        if not isinstance(self.standardize, bool):
            raise WpgdkitError(f"--standardize must be true or false, got {self.standardize!r}")
        if self.image_size is not None:
            check_number("--image-size", self.image_size, Range(1, 65536, integer=True))
        check_seed("--seed", self.seed)

    @property
    def scalar_bounds(self) -> tuple[float, float] | None:
        """``(LOW, HIGH)`` when :attr:`bounds` is ``"LOW,HIGH"``, else ``None``.

        Raises
        ------
        WpgdkitError
            If :attr:`bounds` is neither ``data``, ``none`` nor two finite numbers with LOW < HIGH.
        """
        text = self.bounds.strip()
        if text in ("data", "none"):
            return None
        problem = f"--bounds must be data, none or LOW,HIGH with LOW < HIGH (e.g. 0,1), got {self.bounds!r}"
        parts = text.split(",")
        if len(parts) != 2:
            raise WpgdkitError(problem)
        try:
            low, high = float(parts[0]), float(parts[1])
        except ValueError:
            raise WpgdkitError(problem) from None
        if not (math.isfinite(low) and math.isfinite(high) and low < high):
            raise WpgdkitError(problem)
        return (low, high)

    @property
    def is_default(self) -> bool:
        """Whether nothing but the seed is set: no file-reading option was given (a registered dataset's case)."""
        return all(getattr(self, f.name) == f.default for f in fields(self) if f.name != "seed")

    @property
    def bounds_mode(self) -> str:
        """``"data"``, ``"none"`` or ``"scalar"``."""
        text = self.bounds.strip()
        return text if text in ("data", "none") else "scalar"

    def record(self) -> dict[str, Any]:
        """The options that shape the data, as JSON types (``test`` is recorded beside them).

        ``seed`` is kept only with ``test_fraction``, the one thing it changes.
        """
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("test", "seed")}
        if self.test_fraction is not None:
            out["seed"] = self.seed
        return out

    @classmethod
    def from_record(cls, record: Mapping[str, Any], *, test: str | None = None) -> DataOptions:
        """The options of a :meth:`record` (with ``test`` given apart).

        Raises
        ------
        DataFormatError
            For a key that is no option (a record from a newer wpgdkit).
        """
        known = {f.name for f in fields(cls)} - {"test"}
        unknown = sorted(set(record) - known)
        if unknown:
            raise DataFormatError(f"unknown dataset option(s) in the record: {', '.join(map(str, unknown))}")
        return cls(test=test, **dict(record))


def _refuse_options(options: DataOptions, kind: str, *names: str) -> None:
    """Refuse options set away from their default that mean nothing for ``kind`` of data."""
    defaults = DataOptions()
    where = {
        "test": "applies to .csv files (arrays carry their test split as x_test and y_test)",
        "label_column": "applies to .csv files",
        "test_fraction": "applies to .csv and .npz data (an image folder has its own test/ or val/ folder)",
        "standardize": "applies to .csv and .npz data",
        "image_size": "applies to imagefolder: datasets",
    }
    for name in names:
        if getattr(options, name) != getattr(defaults, name):
            raise DataFormatError(f"--{name.replace('_', '-')} {where[name]}, not to {kind} data")


# --- references and the opened table -------------------------------------------


def is_dataset_reference(text: str) -> bool:
    """Whether ``text`` names files rather than a registered dataset.

    True for ``imagefolder:...`` and for paths ending in ``.npz`` or ``.csv``
    (any case); nothing is read.
    """
    if not isinstance(text, str):
        return False
    return text.startswith(IMAGEFOLDER_PREFIX) or text.lower().endswith((".npz", ".csv"))


def opened_dataset(name: str) -> DatasetSpec | None:
    """The spec opened as ``name`` in this process (by :func:`open_dataset` or :func:`dataset_from_arrays`), or ``None``."""
    return _OPENED.get(name)


def open_dataset(reference: str | os.PathLike[str], options: DataOptions = DataOptions()) -> DatasetSpec:
    """Read a dataset from files and make it available by name.

    Parameters
    ----------
    reference : str
        ``path.npz``, ``path.csv`` or ``imagefolder:PATH``; it becomes the
        spec's name, exactly as given.
    options : DataOptions
        How to read it.

    Returns
    -------
    DatasetSpec
        Its ``loader`` ignores ``data_dir``, ``download`` and ``seed`` (the
        data are fixed when opened); ``source`` records how to reopen it:
        ``kind`` (npz, csv, imagefolder), ``reference``, ``path``, ``test``
        (the CSV test file, or the folder used as test split: ``test`` or
        ``val``), ``sha256`` (of the file's bytes; for an image folder, of
        the list of image files used with their sizes in bytes, not of their
        contents), ``test_sha256`` (CSV test file) and ``options``
        (:meth:`DataOptions.record`). Later :func:`~wpgdkit.datasets.get_dataset`
        calls with ``reference`` return it; opening again replaces it.

    Raises
    ------
    DataNotFoundError
        If a file or folder is missing.
    WpgdkitError
        If the data are malformed or an option does not fit them; nothing is
        recorded then.
    """
    spec = _open(reference, options)
    _OPENED[spec.name] = spec
    return spec


def reopen_dataset(source: Mapping[str, Any], *, check: bool = True) -> DatasetSpec:
    """Open the dataset a :attr:`DatasetSpec.source` record describes, as :func:`open_dataset`.

    Parameters
    ----------
    source : mapping
        A spec's :meth:`~wpgdkit.datasets.DatasetSpec.source_record` (e.g.
        from a checkpoint). Relative paths are relative to the current folder.
    check : bool
        Refuse files whose hash differs from the recorded one.

    Raises
    ------
    DataFormatError
        For a malformed record, or changed files when ``check``.
    DataNotFoundError, WpgdkitError
        As :func:`open_dataset`.
    """
    kind, path = source.get("kind"), source.get("path")
    if kind not in ("npz", "csv", "imagefolder") or not isinstance(path, str):
        raise DataFormatError(f"not a dataset source record (kind {kind!r}, path {path!r})")
    reference = source.get("reference") or (IMAGEFOLDER_PREFIX + path if kind == "imagefolder" else path)
    test = source.get("test") if kind == "csv" else None
    spec = _open(reference, DataOptions.from_record(source.get("options") or {}, test=test))
    if check:
        for key in ("sha256", "test_sha256"):
            found, recorded = spec.source.get(key), source.get(key)
            if found != recorded:
                what = test if key == "test_sha256" else path
                raise DataFormatError(
                    f"{what} changed since it was recorded: sha256 {str(found)[:12]}..., recorded {str(recorded)[:12]}..."
                )
    _OPENED[spec.name] = spec
    return spec


def _open(reference: str | os.PathLike[str], options: DataOptions) -> DatasetSpec:
    reference = os.fspath(reference)
    if not is_dataset_reference(reference):
        raise DataFormatError(f"{reference!r} is no dataset file: give a .npz or .csv file, or imagefolder:PATH")
    if reference != reference.strip():
        raise DataFormatError(f"dataset reference {reference!r} has surrounding spaces")
    if not isinstance(options, DataOptions):
        raise TypeError(f"options must be DataOptions, got {type(options).__name__}")
    if reference.startswith(IMAGEFOLDER_PREFIX):
        return _open_imagefolder(reference, options)
    if reference.lower().endswith(".npz"):
        return _open_npz(reference, options)
    return _open_csv(reference, options)


# --- arrays -> spec --------------------------------------------------------------


def dataset_from_arrays(
    name: str,
    x_train: Any,
    y_train: Any,
    x_test: Any = None,
    y_test: Any = None,
    *,
    class_names: Sequence[str] | None = None,
    options: DataOptions = DataOptions(),
) -> DatasetSpec:
    """Make a dataset of arrays in memory, available by ``name`` as :func:`open_dataset` does for files.

    Parameters
    ----------
    name : str
        The dataset's name; not a registered dataset's.
    x_train, x_test : array-like of shape (N, ...)
        Inputs (NumPy arrays or CPU tensors), read as described in the module
        docstring: ``uint8`` of rank 3/4 and float of rank 4 within [0, 1]
        are images, anything else features.
    y_train, y_test : array-like of int, shape (N,)
        Labels 0..K-1. ``x_test`` and ``y_test`` may be ``None`` when
        ``options.test_fraction`` is given.
    class_names : sequence of str, optional
        Names of the K classes in label order; default ``"0"``..``"K-1"`` with
        K the largest label plus one.
    options : DataOptions
        ``test_fraction``, ``bounds``, ``standardize``, ``synsets``, ``seed``.

    Returns
    -------
    DatasetSpec
        With ``source`` ``None``: there is no file to reopen.

    Raises
    ------
    WpgdkitError
        As :func:`open_dataset`, naming the arrays by their parameter names.
    """
    if not isinstance(name, str) or not name or name != name.strip():
        raise DataFormatError(f"dataset name {name!r} must be non-empty without surrounding spaces")
    if name in list_datasets():
        raise DataFormatError(f"{name!r} is a registered dataset; give the arrays another name")
    _refuse_options(options, "in-memory", "test", "label_column", "image_size")
    arrays = {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}
    given = {key: _as_array(value) for key, value in arrays.items() if value is not None}
    spec = _spec_from_arrays(
        name, given, class_names=None if class_names is None else list(class_names), options=options, origin=name,
        source=None, how_to_get="built in memory with wpgdkit.datasets.dataset_from_arrays",
    )
    _OPENED[name] = spec
    return spec


def _as_array(value: Any) -> np.ndarray:
    import torch

    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    return np.asarray(value)


def _spec_from_arrays(
    name: str,
    arrays: dict[str, np.ndarray],
    *,
    class_names: list[str] | None,
    options: DataOptions,
    origin: str,
    source: dict[str, Any] | None,
    how_to_get: str,
) -> DatasetSpec:
    """Check arrays named as in an .npz, hold out a test split if asked, and wrap them in a spec."""
    x_train, y_train = _check_split_arrays(arrays, "train", origin)
    has_test = "x_test" in arrays or "y_test" in arrays
    if has_test and options.test_fraction is not None:
        raise DataFormatError(f"{origin} has a test split (x_test, y_test); drop --test-fraction or the test arrays")
    if not has_test and options.test_fraction is None:
        raise DataFormatError(
            f"{origin} has no test split: add x_test and y_test, or give --test-fraction F to hold out a share of the training data"
        )
    if has_test:
        x_test, y_test = _check_split_arrays(arrays, "test", origin)
        if x_test.shape[1:] != x_train.shape[1:]:
            raise DataFormatError(
                f"{origin}: x_test points have shape {_shape(x_test.shape[1:])} but x_train points {_shape(x_train.shape[1:])}"
            )
    classes = _classes(class_names, [y_train] + ([y_test] if has_test else []), origin)
    _check_finite(x_train, "train", origin)
    if has_test:
        _check_finite(x_test, "test", origin)
    else:
        train_rows, test_rows = _hold_out(y_train, options.test_fraction, options.seed, origin)
        x_train, y_train, x_test, y_test = x_train[train_rows], y_train[train_rows], x_train[test_rows], y_train[test_rows]
    values = _prepare_values(x_train, x_test, options, origin)
    synset_ids = _synset_ids(classes, options, origin)
    splits = {"train": (values.train, y_train), "test": (values.test, y_test)}
    return DatasetSpec(
        name=name,
        classes=classes,
        input_shape=values.shape,
        input_range=values.input_range,
        description=f"{origin}: {len(y_train):,} train / {len(y_test):,} test {values.what}, {len(classes)} classes",
        how_to_get=how_to_get,
        loader=_MemorySplits({split: _tensors(x, y) for split, (x, y) in splits.items()}),
        eps_units=values.eps_units,
        source=source,
        synset_ids=synset_ids,
    )


def _shape(shape: tuple[int, ...]) -> str:
    return "x".join(map(str, shape)) if shape else "()"


def _check_split_arrays(arrays: dict[str, np.ndarray], split: str, origin: str) -> tuple[np.ndarray, np.ndarray]:
    """The checked ``x_<split>`` and ``y_<split>`` (labels as int64)."""
    x_name, y_name = f"x_{split}", f"y_{split}"
    missing = [key for key in (x_name, y_name) if key not in arrays]
    if missing:
        raise DataFormatError(f"{origin} lacks {', '.join(missing)}; it holds {', '.join(sorted(arrays)) or 'no arrays'}")
    x = _check_features(arrays[x_name], x_name, split, origin)
    y = _check_labels(arrays[y_name], y_name, origin)
    if len(y) != len(x):
        raise DataFormatError(f"{origin}: {x_name} has {len(x):,} points but {y_name} {len(y):,} labels")
    return x, y


def _check_features(x: np.ndarray, key: str, split: str, origin: str) -> np.ndarray:
    if x.dtype == np.bool_ or np.issubdtype(x.dtype, np.integer):
        pass
    elif not np.issubdtype(x.dtype, np.floating):
        raise DataFormatError(f"{origin}: {key} has dtype {x.dtype}; inputs must be real numbers")
    if x.ndim < 2:
        raise DataFormatError(f"{origin}: {key} has shape {x.shape}; expected one row per point, (N, ...) with at least 2 dimensions")
    if x.shape[0] == 0:
        raise DataFormatError(f"{origin}: the {split} split is empty ({key} has no points)")
    if x.size == 0:
        raise DataFormatError(f"{origin}: {key} has shape {x.shape}: its points hold no values")
    return x


def _check_labels(y: np.ndarray, key: str, origin: str) -> np.ndarray:
    if y.ndim != 1:
        raise DataFormatError(f"{origin}: {key} has shape {y.shape}; expected one label per point, shape (N,)")
    if y.dtype == np.bool_ or np.issubdtype(y.dtype, np.integer):
        labels = y.astype(np.int64)
    elif np.issubdtype(y.dtype, np.floating):
        integral = np.isfinite(y) & (y == np.round(y))
        if not integral.all():
            raise DataFormatError(f"{origin}: {key} holds non-integer labels (e.g. {y[~integral][0]!r}); labels are 0..K-1")
        labels = y.astype(np.int64)
    else:
        raise DataFormatError(f"{origin}: {key} has dtype {y.dtype}; labels must be integers 0..K-1 (names go in class_names)")
    if len(labels) and labels.min() < 0:
        raise DataFormatError(f"{origin}: {key} holds negative labels (e.g. {labels.min()}); labels are 0..K-1")
    return labels


def _classes(class_names: list[str] | None, labels: list[np.ndarray], origin: str) -> tuple[str, ...]:
    """Class names in label order: ``class_names`` checked against the labels, or ``"0"``..``"K-1"``."""
    top = max(int(y.max()) for y in labels)
    if class_names is None:
        names = tuple(str(k) for k in range(top + 1))
    else:
        names = tuple(class_names)
        if top >= len(names):
            raise DataFormatError(f"{origin}: label {top} is out of range for the {len(names)} class_names")
        if top + 1 != len(names):
            raise DataFormatError(
                f"{origin}: class_names holds {len(names)} names but the labels run 0..{top} ({top + 1} classes)"
            )
    if len(names) < 2:
        raise DataFormatError(f"{origin}: a classifier needs at least 2 classes; the labels hold only {len(names)}")
    _check_class_names(names, origin)
    return names


def _check_class_names(names: Sequence[str], origin: str) -> None:
    """The rules every class list follows (labelmetric's, one home), as a data-format error."""
    from wpgdkit.errors import MetricFormatError
    from wpgdkit.labelmetric.io import check_class_names

    try:
        check_class_names(list(names), origin)
    except MetricFormatError as exc:
        raise DataFormatError(str(exc)) from None


def _check_finite(x: np.ndarray, split: str, origin: str) -> None:
    if np.issubdtype(x.dtype, np.floating):
        bad = int(np.count_nonzero(~np.isfinite(x)))
        if bad:
            raise DataFormatError(f"{origin}: the {split} split holds {bad:,} NaN or infinite feature values")


def _hold_out(y: np.ndarray, fraction: float, seed: int, origin: str) -> tuple[np.ndarray, np.ndarray]:
    """Rows kept for training and rows held out, stratified: round(n_k · fraction) of each class k."""
    rng = np.random.default_rng(seed)
    held = []
    for label in np.unique(y):
        members = np.flatnonzero(y == label)
        # Half-up rounding, so 2.5 points give 3 as one would expect (np.round gives 2).
        count = int(math.floor(len(members) * fraction + 0.5))
        held.append(rng.permutation(members)[:count])
    test_rows = np.sort(np.concatenate(held))
    keep = np.ones(len(y), dtype=bool)
    keep[test_rows] = False
    train_rows = np.flatnonzero(keep)
    if len(test_rows) == 0 or len(train_rows) == 0:
        left = "the test split" if len(test_rows) == 0 else "the train split"
        raise DataFormatError(f"{origin}: --test-fraction {fraction:g} of {len(y):,} points leaves {left} empty")
    return train_rows, test_rows


@dataclass(frozen=True)
class _Values:
    """Inputs ready for tensors, with what the spec says about them."""

    train: np.ndarray
    test: np.ndarray
    shape: tuple[int, ...]
    input_range: Any
    eps_units: str
    what: str


def _prepare_values(x_train: np.ndarray, x_test: np.ndarray, options: DataOptions, origin: str) -> _Values:
    """Tell images from features, standardise and bound them as the options say."""
    kind = _value_kind(x_train, x_test)
    if kind == "uint8 images" and x_train.ndim == 3:  # (N, H, W): one channel
        x_train, x_test = x_train[:, None], x_test[:, None]
    shape = tuple(int(d) for d in x_train.shape[1:])
    if options.standardize:
        x_train, x_test = _standardize(x_train, x_test, scale=255.0 if kind == "uint8 images" else 1.0)
        units = EPS_UNITS["standardized"]
    elif kind == "features":
        x_train, x_test = x_train.astype(np.float32), x_test.astype(np.float32)
        units = EPS_UNITS["features"]
    else:
        units = EPS_UNITS["images"]
        if kind == "float images":
            x_train, x_test = x_train.astype(np.float32), x_test.astype(np.float32)
    images = kind != "features" and not options.standardize
    input_range = _input_range(x_train, x_test, options, images=images, origin=origin)
    if images:
        what = f"images of shape {_shape(shape)}"
    else:
        what = f"feature vectors of length {shape[0]}" if len(shape) == 1 else f"inputs of shape {_shape(shape)}"
    return _Values(x_train, x_test, shape, input_range, units, what)


def _value_kind(x_train: np.ndarray, x_test: np.ndarray) -> str:
    """``"uint8 images"``, ``"float images"`` or ``"features"``, judged on both splits."""
    if x_train.dtype == np.uint8 and x_test.dtype == np.uint8 and x_train.ndim in (3, 4):
        return "uint8 images"
    floats = np.issubdtype(x_train.dtype, np.floating) and np.issubdtype(x_test.dtype, np.floating)
    if floats and x_train.ndim == 4 and all(x.min() >= 0 and x.max() <= 1 for x in (x_train, x_test)):
        return "float images"
    return "features"


def _standardize(x_train: np.ndarray, x_test: np.ndarray, *, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature ``(x - mean) / std`` with the training split's statistics, computed in float64."""
    train = x_train.astype(np.float64) / scale
    mean, std = train.mean(axis=0), train.std(axis=0)
    std[std == 0] = 1.0  # a constant feature stays 0 rather than becoming NaN
    test = x_test.astype(np.float64) / scale
    return ((train - mean) / std).astype(np.float32), ((test - mean) / std).astype(np.float32)


def _input_range(x_train: np.ndarray, x_test: np.ndarray, options: DataOptions, *, images: bool, origin: str) -> Any:
    mode = options.bounds_mode
    if mode == "none":
        return None
    if mode == "scalar":
        low, high = options.scalar_bounds
        for split, x in (("train", x_train), ("test", x_test)):
            scale = 255.0 if x.dtype == np.uint8 and images else 1.0
            found = (float(x.min()) / scale, float(x.max()) / scale)
            # The attack clamps to the bounds, so data outside them would be moved before any attack.
            if found[0] < low or found[1] > high:
                raise DataFormatError(
                    f"{origin}: the {split} split has values in [{found[0]:g}, {found[1]:g}], outside --bounds {low:g},{high:g}"
                )
        return (low, high)
    if images:
        return (0.0, 1.0)
    flat = x_train.reshape(len(x_train), -1)
    return (tuple(flat.min(axis=0).astype(np.float64).tolist()), tuple(flat.max(axis=0).astype(np.float64).tolist()))


def _tensors(x: np.ndarray, y: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    import torch

    return torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(np.ascontiguousarray(y, dtype=np.int64))


@dataclass(frozen=True, eq=False)
class _MemorySplits:
    """The loader of a dataset held in memory: both splits as tensors, fixed when opened."""

    splits: dict[str, tuple[torch.Tensor, torch.Tensor]] = field(repr=False)

    def __call__(self, split: str, *, data_dir: Path, download: bool, seed: int) -> Dataset:
        import torch

        from wpgdkit.datasets.memory import TensorFeatureDataset, TensorImageDataset

        x, y = self.splits[split]
        # A fresh wrapper per call over the shared tensors; items and take() hand out copies.
        if x.dtype == torch.uint8:
            return TensorImageDataset(x, y)
        return TensorFeatureDataset(x, y)


# --- synsets -----------------------------------------------------------------------


def _synset_ids(classes: tuple[str, ...], options: DataOptions, origin: str) -> tuple[str, ...] | None:
    """The classes' synsets: from ``options.synsets``, else the classes themselves when all are WordNet ids."""
    if options.synsets is None:
        return classes if all(_WNID.match(c) for c in classes) else None
    from wpgdkit.labelmetric.sources import read_synset_map

    mapped, synsets = read_synset_map(options.synsets)
    table = dict(zip(mapped, synsets))
    missing = [c for c in classes if c not in table]
    if missing:
        shown = ", ".join(repr(c) for c in missing[:3]) + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")
        raise DataFormatError(f"{options.synsets} maps no synset for class(es) {shown} of {origin}")
    bad = [(c, table[c]) for c in classes if not _SYNSET.match(table[c])]
    if bad:
        raise DataFormatError(
            f"{options.synsets}: {bad[0][1][:80]!r} (class {bad[0][0]!r}) is neither a noun synset name (dog.n.01) "
            "nor a WordNet id (n02084071)"
        )
    return tuple(table[c] for c in classes)


def wordnet_id_to_name(ids: Sequence[str | None], database: Any) -> tuple[str | None, ...]:
    """Synset names for WordNet ids: ``n02084071`` -> ``dog.n.01``; names and ``None`` pass through.

    Not needed to build WordNet metrics
    (:func:`~wpgdkit.labelmetric.wordnet_distance.lookup_synsets` takes both
    forms); it serves to show readable names.

    Parameters
    ----------
    ids : sequence of str or None
    database : nltk WordNet corpus reader
        E.g. :func:`wpgdkit.wordnet.load_wordnet`'s.

    Raises
    ------
    WordNetError
        For an id that is not a noun synset of ``database``.
    """
    from wpgdkit.labelmetric.wordnet_distance import lookup_synsets

    return tuple(lookup_synsets([s], database)[0].name() if s is not None and _WNID.match(s) else s for s in ids)


# --- hashing -----------------------------------------------------------------------


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    try:
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    except OSError as exc:
        raise WpgdkitError(f"cannot read {path}: {exc.strerror or exc}") from None
    return digest.hexdigest()


# --- .npz ----------------------------------------------------------------------------


def _open_npz(reference: str, options: DataOptions) -> DatasetSpec:
    _refuse_options(options, ".npz", "test", "label_column", "image_size")
    path = input_file(reference, what="dataset file")
    arrays = _read_npz(path)
    class_names = arrays.pop("class_names", None)
    source = {
        "kind": "npz", "reference": reference, "path": reference, "test": None,
        "sha256": _sha256_file(path), "options": options.record(),
    }
    return _spec_from_arrays(
        reference, arrays, class_names=None if class_names is None else _npz_class_names(class_names, path),
        options=options, origin=str(path), source=source, how_to_get=f"read from the file {path}",
    )


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    """The arrays wpgdkit reads from an .npz, without unpickling anything."""
    not_npz = f"{path} is not an .npz archive (a zip of .npy arrays, as written by numpy.savez)"
    try:
        archive = np.load(path, allow_pickle=False)
    except (ValueError, EOFError, OSError, zipfile.BadZipFile, pickle.UnpicklingError):
        raise DataFormatError(not_npz) from None
    if not hasattr(archive, "files"):  # a single .npy array
        raise DataFormatError(f"{not_npz}; it holds one .npy array")
    with archive:
        present = set(archive.files)
        required = [key for key in ("x_train", "y_train") if key not in present]
        if required:
            raise DataFormatError(f"{path} lacks array(s) {', '.join(required)}; it holds {', '.join(sorted(present)) or 'no arrays'}")
        out = {}
        for key in _NPZ_ARRAYS:
            if key in present:
                out[key] = _read_member(archive, key, path)
    return out


def _read_member(archive: Any, key: str, path: Path) -> np.ndarray:
    try:
        return archive[key]
    except ValueError as exc:
        if "allow_pickle" in str(exc) or "Object arrays" in str(exc):
            raise DataFormatError(
                f"{path}: array {key} holds Python objects (dtype object), which are not unpickled for safety; "
                "save numbers, and class names as a string array"
            ) from None
        raise DataFormatError(f"{path}: cannot read array {key}: {' '.join(str(exc).split())}") from None
    except (EOFError, OSError, zipfile.BadZipFile, pickle.UnpicklingError) as exc:
        raise DataFormatError(f"{path}: cannot read array {key}: {' '.join(str(exc).split())}") from None


def _npz_class_names(names: np.ndarray, path: Path) -> list[str]:
    if names.ndim != 1 or names.dtype.kind not in "US":
        raise DataFormatError(f"{path}: class_names must be a 1-D array of strings, got {names.dtype} of shape {names.shape}")
    if names.dtype.kind == "S":
        try:
            return [bytes(n).decode("utf-8") for n in names]
        except UnicodeDecodeError:
            raise DataFormatError(f"{path}: class_names are bytes that are not UTF-8") from None
    return [str(n) for n in names]


# --- .csv ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Table:
    """One CSV file: features in the train file's column order, label cells, and their line numbers."""

    columns: tuple[str, ...]
    features: np.ndarray
    labels: list[str]
    lines: list[int]


def _open_csv(reference: str, options: DataOptions) -> DatasetSpec:
    _refuse_options(options, ".csv", "image_size")
    path = input_file(reference, what="dataset file")
    if options.test is None and options.test_fraction is None:
        raise DataFormatError(
            f"{path} holds one split: give --test FILE (a CSV with the test points) or --test-fraction F (hold out a share)"
        )
    if options.test is not None and options.test_fraction is not None:
        raise DataFormatError("give either --test or --test-fraction, not both")
    label_column = options.label_column or "label"
    train = _read_table(path, label_column)
    test = None
    if options.test is not None:
        test = _read_table(input_file(options.test, what="test file"), label_column, columns=train.columns, train_path=path)
    y_train, y_test, class_names = _encode_labels(train, test, path, Path(options.test) if options.test else None)
    arrays = {"x_train": train.features, "y_train": y_train}
    if test is not None:
        arrays.update(x_test=test.features, y_test=y_test)
    source = {
        "kind": "csv", "reference": reference, "path": reference, "test": options.test,
        "sha256": _sha256_file(path), "options": options.record(),
    }
    if options.test is not None:
        source["test_sha256"] = _sha256_file(Path(options.test))
    return _spec_from_arrays(
        reference, arrays, class_names=class_names, options=options, origin=str(path), source=source,
        how_to_get=f"read from the file {path}" + (f" and {options.test}" if options.test else ""),
    )


def _read_table(path: Path, label_column: str, *, columns: tuple[str, ...] | None = None, train_path: Path | None = None) -> _Table:
    """Parse a CSV with a header; ``columns`` (the train file's) fixes the feature order of a test file."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.reader(handle)
            try:
                return _parse_rows(reader, path, label_column, columns, train_path)
            except csv.Error as exc:
                raise DataFormatError(f"{path}: line {reader.line_num}: {exc}") from None
    except UnicodeDecodeError:
        raise DataFormatError(f"{path} is not UTF-8 text") from None
    except OSError as exc:
        raise WpgdkitError(f"cannot read {path}: {exc.strerror or exc}") from None


def _parse_rows(reader: Any, path: Path, label_column: str, columns: tuple[str, ...] | None, train_path: Path | None) -> _Table:
    header: list[str] | None = None
    order: list[int] = []
    at_label = -1
    rows: list[list[float]] = []
    labels: list[str] = []
    lines: list[int] = []
    for row in reader:
        if not any(cell.strip() for cell in row):
            continue  # blank lines, as spreadsheets leave at the end
        if header is None:
            header = [cell.strip() for cell in row]
            at_label, order = _header_layout(header, path, label_column, columns, train_path)
            continue
        if len(row) != len(header):
            raise DataFormatError(f"{path}: line {reader.line_num} has {len(row)} cells, the header {len(header)}")
        label = row[at_label].strip()
        if not label:
            raise DataFormatError(f"{path}: line {reader.line_num}: no label in column {label_column!r}")
        rows.append([_number(row[j], path, reader.line_num, header[j]) for j in order])
        labels.append(label)
        lines.append(reader.line_num)
    if header is None:
        raise DataFormatError(f"{path} is empty; expected a header row, then one row per point")
    feature_names = tuple(header[j] for j in order)
    features = np.array(rows, dtype=np.float64) if rows else np.empty((0, len(order)))
    return _Table(feature_names, features, labels, lines)


def _header_layout(
    header: list[str], path: Path, label_column: str, columns: tuple[str, ...] | None, train_path: Path | None
) -> tuple[int, list[int]]:
    """The label column's index and the feature columns' indices (in ``columns`` order when given)."""
    unnamed = [i + 1 for i, name in enumerate(header) if not name]
    if unnamed:
        raise DataFormatError(f"{path}: column {unnamed[0]} of the header has no name")
    seen: set[str] = set()
    repeated = sorted({n for n in header if n in seen or seen.add(n)})
    if repeated:
        raise DataFormatError(f"{path}: the header repeats column(s) {', '.join(repeated)}")
    if label_column not in header:
        raise DataFormatError(
            f"{path} has no column {label_column!r} (choose the label column with --label-column); its columns are: {', '.join(header)}"
        )
    features = [name for name in header if name != label_column]
    if not features:
        raise DataFormatError(f"{path} has no feature columns besides {label_column!r}")
    if columns is not None and set(features) != set(columns):
        missing, extra = sorted(set(columns) - set(features)), sorted(set(features) - set(columns))
        parts = [f"lacks {', '.join(missing)}" if missing else "", f"adds {', '.join(extra)}" if extra else ""]
        raise DataFormatError(f"{path}: its feature columns differ from {train_path}'s: {'; '.join(p for p in parts if p)}")
    names = columns if columns is not None else tuple(features)
    return header.index(label_column), [header.index(name) for name in names]


def _number(cell: str, path: Path, line: int, column: str) -> float:
    text = cell.strip()
    try:
        return float(text)
    except ValueError:
        shown = "empty" if not text else f"{text[:40]!r}, not a number"
        raise DataFormatError(f"{path}: line {line}, column {column!r}: {shown}") from None


def _encode_labels(
    train: _Table, test: _Table | None, path: Path, test_path: Path | None
) -> tuple[np.ndarray, np.ndarray | None, list[str] | None]:
    """Labels as int64: integer cells as they are (classes "0".."K-1"), otherwise strings by sorted name.

    Returns ``(y_train, y_test, class_names)``; ``class_names`` is ``None`` for integer labels.
    """
    tables = [(train, path)] + ([(test, test_path)] if test is not None else [])
    if all(_INTEGER.match(cell) for table, _ in tables for cell in table.labels):
        for table, where in tables:
            for cell, line in zip(table.labels, table.lines):
                if int(cell) < 0:
                    raise DataFormatError(f"{where}: line {line}: label {cell} is negative; integer labels are 0..K-1")
        encoded = [np.array([int(c) for c in table.labels], dtype=np.int64) for table, _ in tables]
        return encoded[0], encoded[1] if test is not None else None, None
    # Sorted names make the label order independent of the rows' order.
    names = sorted({cell for table, _ in tables for cell in table.labels})
    index = {name: k for k, name in enumerate(names)}
    encoded = [np.array([index[c] for c in table.labels], dtype=np.int64) for table, _ in tables]
    return encoded[0], encoded[1] if test is not None else None, names


# --- image folders ---------------------------------------------------------------------


@contextmanager
def _reading_image(path: Path) -> Iterator[None]:
    """Turn whatever PIL raises for a missing, corrupt or hostile file into one line."""
    from PIL import Image, UnidentifiedImageError

    try:
        yield
    except WpgdkitError:
        raise
    except FileNotFoundError:
        raise DataNotFoundError(f"image {path} does not exist") from None
    # PIL reports corrupt or hostile files as any of these.
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, SyntaxError, ValueError) as exc:
        raise DataFormatError(f"cannot read image {path}: {' '.join(str(exc).split())}") from None


@dataclass(frozen=True, eq=False)
class _FolderSplits:
    """The loader of an image folder: file lists fixed when opened, pixels read on access."""

    splits: dict[str, tuple[list[Path], torch.Tensor]] = field(repr=False)
    mode: str
    size: tuple[int, int]
    resize: bool

    def __call__(self, split: str, *, data_dir: Path, download: bool, seed: int) -> Dataset:
        from wpgdkit.datasets.imagefiles import FolderImageDataset

        paths, labels = self.splits[split]
        return FolderImageDataset(paths, labels, mode=self.mode, size=self.size, resize=self.resize)


def _open_imagefolder(reference: str, options: DataOptions) -> DatasetSpec:
    import torch

    _refuse_options(options, "imagefolder:", "test", "label_column", "test_fraction", "standardize")
    text = reference[len(IMAGEFOLDER_PREFIX):]
    if not text:
        raise DataFormatError(f"{IMAGEFOLDER_PREFIX} needs a folder, e.g. {IMAGEFOLDER_PREFIX}data/pets")
    root = Path(text).expanduser()
    if not root.exists():
        raise DataNotFoundError(f"image folder {root} not found")
    if not root.is_dir():
        raise DataFormatError(f"{root} is not a folder (imagefolder: takes a folder holding train/ and test/ or val/)")
    layout = f"expected {root / 'train'}/<class>/<image> and {root / 'test'} (or val) alike"
    train_dir = root / "train"
    if not train_dir.is_dir():
        raise DataNotFoundError(f"{root} has no train folder; {layout}")
    test_name = next((name for name in ("test", "val") if (root / name).is_dir()), None)
    if test_name is None:
        raise DataNotFoundError(f"{root} has no test or val folder; {layout}")
    test_dir = root / test_name
    classes = _class_folders(train_dir)
    if not classes:
        raise DataFormatError(f"{train_dir} holds no class folders; {layout}")
    _check_class_names(classes, str(train_dir))
    unknown = sorted(set(_class_folders(test_dir)) - set(classes))
    if unknown:
        raise DataFormatError(f"{test_dir} holds class folder(s) {', '.join(map(repr, unknown[:3]))} that {train_dir} lacks")
    train = _folder_files(train_dir, classes, every_class=True)
    test = _folder_files(test_dir, classes, every_class=False)
    if not test:
        raise DataFormatError(f"the test split is empty: {test_dir} holds no images ({', '.join(IMAGE_EXTENSIONS)})")
    mode, size = _probe_images([p for p, _ in train + test], options.image_size)
    input_range = _folder_range(options, reference)
    what = f"{'greyscale' if mode == 'L' else 'colour'} images of shape {_shape(((1 if mode == 'L' else 3), *size))}"
    source = {
        "kind": "imagefolder", "reference": reference, "path": text, "test": test_name,
        "sha256": _listing_sha256(root, [p for p, _ in train + test]), "options": options.record(),
    }
    splits = {
        split: ([p for p, _ in files], torch.tensor([k for _, k in files], dtype=torch.int64))
        for split, files in (("train", train), ("test", test))
    }
    return DatasetSpec(
        name=reference,
        classes=classes,
        input_shape=(1 if mode == "L" else 3, *size),
        input_range=input_range,
        description=f"{root}: {len(train):,} train / {len(test):,} {test_name} {what}, {len(classes)} classes",
        how_to_get=f"read from the image folder {root} (train/ and {test_name}/)",
        loader=_FolderSplits(splits, mode, size, options.image_size is not None),
        eps_units=EPS_UNITS["images"],
        source=source,
        synset_ids=_synset_ids(classes, options, str(train_dir)),
    )


def _class_folders(split_dir: Path) -> tuple[str, ...]:
    # Sorted names as torchvision's ImageFolder, but hidden folders (.ipynb_checkpoints) are no class.
    return tuple(sorted(entry.name for entry in os.scandir(split_dir) if entry.is_dir() and not entry.name.startswith(".")))


def _folder_files(split_dir: Path, classes: tuple[str, ...], *, every_class: bool) -> list[tuple[Path, int]]:
    """``(path, label)`` of every image under ``split_dir/<class>``, by label then path."""
    files: list[tuple[Path, int]] = []
    for label, name in enumerate(classes):
        folder = split_dir / name
        found = _images_under(folder) if folder.is_dir() else []
        if every_class and not found:
            raise DataFormatError(f"class folder {folder} holds no images ({', '.join(IMAGE_EXTENSIONS)})")
        files += [(path, label) for path in found]
    return files


def _images_under(folder: Path) -> list[Path]:
    found = []
    for here, dirs, names in os.walk(folder, followlinks=True):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found += [Path(here) / n for n in sorted(names) if not n.startswith(".") and n.lower().endswith(IMAGE_EXTENSIONS)]
    return found


def _probe_images(paths: list[Path], image_size: int | None) -> tuple[str, tuple[int, int]]:
    """The colour mode (the first image's: L or RGB) and ``(height, width)``; every header is read once.

    Reading headers (not pixels) finds unreadable files and differing sizes
    before anything is recorded, at a small cost per file.
    """
    from PIL import Image

    first: tuple[Path, tuple[int, int]] | None = None
    mode = "RGB"
    for path in paths:
        with _reading_image(path):
            with Image.open(path) as image:
                size, bands = image.size, image.getbands()
        if first is None:
            first = (path, size)
            mode = "L" if set(bands) - {"A"} <= _GREY_BANDS else "RGB"
        elif image_size is None and size != first[1]:
            raise DataFormatError(
                f"{path} is {size[0]}x{size[1]} pixels but {first[0]} is {first[1][0]}x{first[1][1]}; "
                "give --image-size N to resize every image to NxN"
            )
    if image_size is not None:
        return mode, (image_size, image_size)
    width, height = first[1]
    return mode, (height, width)


def _folder_range(options: DataOptions, reference: str) -> tuple[float, float] | None:
    mode = options.bounds_mode
    if mode == "none":
        return None
    if mode == "data":
        return (0.0, 1.0)
    low, high = options.scalar_bounds
    if low > 0 or high < 1:
        raise DataFormatError(f"{reference}: images are read into [0, 1], outside --bounds {low:g},{high:g}")
    return (low, high)


def _listing_sha256(root: Path, paths: list[Path]) -> str:
    """Hash of the images' paths (relative to ``root``) and sizes in bytes.

    Not of their contents: hashing every pixel of a large folder on each open
    would cost as much as reading it; the list with sizes still changes when
    files are added, removed, renamed or rewritten with another length.
    """
    digest = hashlib.sha256()
    for path in paths:
        try:
            size = path.stat().st_size
        except OSError as exc:
            raise WpgdkitError(f"cannot read {path}: {exc.strerror or exc}") from None
        digest.update(f"{path.relative_to(root).as_posix()}\t{size}\n".encode("utf-8", "surrogateescape"))
    return digest.hexdigest()


def __getattr__(name: str) -> Any:
    # FolderImageDataset is a torch Dataset: it lives in wpgdkit.datasets.imagefiles, loaded on first use.
    if name == "FolderImageDataset":
        from wpgdkit.datasets.imagefiles import FolderImageDataset

        return FolderImageDataset
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
