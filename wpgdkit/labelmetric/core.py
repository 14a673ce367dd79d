"""The label metric type: class names, a K×K cost matrix and its provenance."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from wpgdkit.errors import MetricFormatError, UnknownNameError

__all__ = ["NORMALIZATIONS", "Provenance", "LabelMetric", "check_normalization", "resolve_class_indices"]

#: What :meth:`LabelMetric.normalized` (and ``BuildConfig.normalize``) accepts:
#: ``none`` keeps the entries, ``max`` divides them by the largest.
NORMALIZATIONS: tuple[str, ...] = ("none", "max")


@dataclass(frozen=True)
class Provenance:
    """Where a label metric came from, enough to rebuild it.

    Attributes
    ----------
    source : str
        Registry name of the source (``wordnet``, ``linear``, ``uniform``, ``file``...).
    measure : str or None
        The source's measure, e.g. ``path`` for WordNet.
    dataset : str or None
        Dataset registry name whose classes the metric is over.
    wordnet_version : str or None
        WordNet version read (``"3.0"``), for WordNet-derived metrics.
    parameters : dict
        Source parameters (normalisation, subset, limit, seed, ...), JSON types only.
    tool_version : str
        wpgdkit version that built the metric.
    command : str or None
        The exact command line that rebuilds the metric.
    """

    source: str
    measure: str | None = None
    dataset: str | None = None
    wordnet_version: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    tool_version: str = ""
    command: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Provenance:
        if not isinstance(data, dict) or "source" not in data:
            raise MetricFormatError("provenance must be an object with at least a 'source' key")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise MetricFormatError(f"unknown provenance keys: {', '.join(unknown)}")
        for name in ("source", "tool_version"):
            if name in data and not isinstance(data[name], str):
                raise MetricFormatError(f"provenance {name!r} must be a string, got {_json_kind(data[name])}")
        for name in ("measure", "dataset", "wordnet_version", "command"):
            if data.get(name) is not None and not isinstance(data[name], str):
                raise MetricFormatError(f"provenance {name!r} must be a string or null, got {_json_kind(data[name])}")
        if "parameters" in data:
            if not isinstance(data["parameters"], dict):
                raise MetricFormatError(
                    f"provenance 'parameters' must be an object, got {_json_kind(data['parameters'])}"
                )
            check_json_value(data["parameters"], "provenance 'parameters'")
        return cls(**data)


#: How deep provenance parameters may nest (objects and lists): far above any real one.
MAX_JSON_DEPTH = 32


def _json_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, (list, tuple)):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def check_json_value(value: Any, what: str, *, max_depth: int = MAX_JSON_DEPTH) -> None:
    """Refuse anything but JSON types (str keys; finite numbers), nested at most ``max_depth`` deep.

    Iterative, so that no nesting can exhaust Python's stack.

    Raises
    ------
    MetricFormatError
        Naming ``what`` and the kind of value found.
    """
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if depth > max_depth:
            raise MetricFormatError(f"{what} nest deeper than {max_depth} levels")
        if item is None or isinstance(item, (str, bool, int)):
            continue
        if isinstance(item, float):
            if item != item or item in (float("inf"), float("-inf")):
                raise MetricFormatError(f"{what} hold a non-finite number ({item})")
            continue
        if isinstance(item, (list, tuple)):
            stack.extend((v, depth + 1) for v in item)
        elif isinstance(item, dict):
            for key, v in item.items():
                if not isinstance(key, str):
                    raise MetricFormatError(f"{what} have a key that is not a string ({key!r})")
                stack.append((v, depth + 1))
        else:
            raise MetricFormatError(f"{what} hold {_json_kind(item)}, not a JSON value")


@dataclass(frozen=True, eq=False)
class LabelMetric:
    """A label metric C over K classes (paper, Definition 3).

    ``matrix[k, k']`` is the cost of mistaking class ``k`` for class ``k'``
    (the cost of moving unit probability mass from ``k`` to ``k'``).

    Attributes
    ----------
    classes : tuple of str, length K
        Class names in label order; unique.
    matrix : ndarray of shape (K, K), float64
        The cost matrix. Read-only; structural checks are in
        :func:`wpgdkit.labelmetric.validate_metric`.
    provenance : Provenance
    """

    classes: tuple[str, ...]
    matrix: np.ndarray
    provenance: Provenance = field(default_factory=lambda: Provenance(source="unknown"))

    def __post_init__(self) -> None:
        classes = tuple(str(c) for c in self.classes)
        matrix = np.array(self.matrix, dtype=np.float64, copy=True)
        if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
            raise MetricFormatError(f"a label metric must be a square matrix, got shape {matrix.shape}")
        if matrix.shape[0] != len(classes):
            raise MetricFormatError(
                f"matrix is {matrix.shape[0]}×{matrix.shape[1]} but {len(classes)} class names were given"
            )
        # Expose a read-only view of a read-only private copy, so that neither
        # the caller's array nor setflags(write=True) on the view can change it.
        matrix.setflags(write=False)
        view = matrix.view()
        view.setflags(write=False)
        object.__setattr__(self, "classes", classes)
        object.__setattr__(self, "matrix", view)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, LabelMetric):
            return NotImplemented
        return (
            self.classes == other.classes
            and np.array_equal(self.matrix, other.matrix)
            and self.provenance == other.provenance
        )

    def __repr__(self) -> str:
        return f"LabelMetric(K={self.num_classes}, source={self.provenance.source!r}, classes={self.classes[:4]}...)"

    def subset(self, selection: Sequence[str | int]) -> LabelMetric:
        """Restrict to some classes, in the order given (names or indices)."""
        idx = resolve_class_indices(self.classes, selection)
        matrix = self.matrix[np.ix_(idx, idx)]
        return dataclasses.replace(self, classes=tuple(self.classes[i] for i in idx), matrix=matrix)

    def normalized(self, mode: str = "max") -> LabelMetric:
        """Scale the matrix: ``"max"`` divides by the largest entry, ``"none"`` keeps it (see :data:`NORMALIZATIONS`)."""
        check_normalization(mode)
        if mode == "none":
            return self
        top = float(self.matrix.max()) if self.matrix.size else 0.0
        if top <= 0:
            raise MetricFormatError("cannot normalise an all-zero metric by its maximum")
        return dataclasses.replace(self, matrix=self.matrix / top)

    def with_provenance(self, **changes: Any) -> LabelMetric:
        return dataclasses.replace(self, provenance=dataclasses.replace(self.provenance, **changes))


def check_normalization(mode: str) -> None:
    """Refuse a normalisation mode outside :data:`NORMALIZATIONS` (UnknownNameError listing them)."""
    if mode not in NORMALIZATIONS:
        raise UnknownNameError(f"unknown normalisation {mode!r}; choose one of: {', '.join(sorted(NORMALIZATIONS))}")


def resolve_class_indices(classes: Sequence[str], selection: Sequence[str | int]) -> list[int]:
    """Turn class names or indices (as ints or digit strings) into indices.

    A name is matched first, so datasets whose class names are digits
    (MNIST: ``"3"``) select by name, which is also their index.

    Raises
    ------
    UnknownNameError
        For a name not among ``classes`` or an index out of range.
    MetricFormatError
        For an empty selection or a class selected twice.
    """
    position = {name: i for i, name in enumerate(classes)}
    indices: list[int] = []
    for item in selection:
        key = str(item).strip()
        if key in position:
            indices.append(position[key])
        elif re.fullmatch(r"-?[0-9]+", key):  # ASCII digits only: str.isdigit accepts "²"
            i = int(key)
            if not 0 <= i < len(classes):
                raise UnknownNameError(f"class index {i} out of range 0..{len(classes) - 1}")
            indices.append(i)
        else:
            shown = ", ".join(classes[:12]) + (", ..." if len(classes) > 12 else "")
            raise UnknownNameError(f"unknown class {key!r}; classes are: {shown}")
    if not indices:
        raise MetricFormatError("the class selection is empty")
    dup = sorted({classes[i] for i in indices if indices.count(i) > 1})
    if dup:
        raise MetricFormatError(f"class selected twice: {', '.join(dup)}")
    return indices
