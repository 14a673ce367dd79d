"""Class weights for the cross-entropy outer loss, for imbalanced data (fraud, faults, disease).

``class_weights`` is ``None`` (unweighted), the mode ``"balanced"`` or the
path of a weights file:

``"balanced"``
    scikit-learn's definition (``sklearn.utils.class_weight.compute_class_weight``
    with ``class_weight="balanced"``): ``w_k = n / (K · n_k)`` for ``n``
    training points of which ``n_k`` have label ``k``. Every class then carries
    the same total weight ``n / K``, and the weights average 1 over the
    training points (``Σ_k n_k w_k = n``). A class without training points has
    no such weight: refused.

A file, in one of two forms (UTF-8; blank lines and lines starting with
``#`` are skipped):

* a table with the header line ``class,weight`` and one row per class,
  ``name,weight`` or ``index,weight``, every class exactly once, in any
  order. A name is matched first, then a whole number as the run's label
  (``0 .. K-1`` in the run's class order, i.e. after ``--classes``), as
  :func:`~wpgdkit.labelmetric.resolve_class_indices` does. Quote a name
  holding a comma (CSV);
* a plain list of ``K`` numbers in label order, one per line or comma
  separated (or both), with no header.

Weights must be finite and > 0 (a weight of 0 would silently drop a class).
A file named ``balanced`` is reached as ``./balanced``.

What the weights mean in the loss
---------------------------------
``torch.nn.functional.cross_entropy(logits, y, weight=w)`` (``reduction=
"mean"``) is the weighted *mean* over the batch::

    Σ_i w[y_i] · ℓ_i  /  Σ_i w[y_i],        ℓ_i = -log softmax(logits_i)[y_i]

It divides by the sum of the weights of the batch's labels, not by the
batch size: multiplying every weight by a constant changes nothing, and
only the ratios between classes matter.
"""

from __future__ import annotations

import csv
import hashlib
import math
import numbers
import os
import re
from collections.abc import Sequence
from typing import Any

import torch

from wpgdkit.errors import WpgdkitError
from wpgdkit.inputs import MAX_TEXT_BYTES, input_file, read_text

__all__ = ["CLASS_WEIGHT_MODES", "class_weights_record", "resolve_class_weights"]

#: Modes of ``class_weights`` computed from the training labels; anything else is a file.
CLASS_WEIGHT_MODES: tuple[str, ...] = ("balanced",)

#: The header line of the table form of a weights file.
_HEADER = ["class", "weight"]
#: Most class names shown in one message (Tiny-ImageNet has 200).
_SHOWN = 12


def resolve_class_weights(
    spec: str | None,
    labels: torch.Tensor | None,
    num_classes: int,
    *,
    classes: Sequence[str] | None = None,
) -> torch.Tensor | None:
    """The per-class weights of the outer cross-entropy loss, or None for unweighted.

    Parameters
    ----------
    spec : str or None
        ``None``, ``"balanced"`` or the path of a weights file (see the
        module's documentation for the two file forms).
    labels : Tensor of shape (N,), integer, or None
        The run's training labels in ``0 .. K-1`` (after class selection,
        down-sampling and the validation split: the points the loss is
        averaged over). Only ``"balanced"`` reads them; ``None`` is accepted
        otherwise.
    num_classes : int
        Number of classes ``K``.
    classes : sequence of str, length K, keyword-only, optional
        Class names in label order: a table may name classes by them, and
        messages show them. Without them a table gives labels by index.

    Returns
    -------
    weights : Tensor of shape (K,), float32, or None
        ``weights[k]`` multiplies the loss of points labelled ``k``; pass it as
        ``weight=`` to :func:`torch.nn.functional.cross_entropy`. On the CPU.

    Raises
    ------
    WpgdkitError
        One line starting ``class_weights must``: an empty spec, a class
        without training points for ``"balanced"``, or a file that is
        missing (:class:`~wpgdkit.errors.DataNotFoundError`), unreadable or
        malformed: a value that is not a number or not finite and > 0, the
        wrong count, or in a table an unknown, repeated or missing class.
    ValueError
        For malformed arguments from the caller (labels that are not a 1-D
        integer tensor in ``0 .. K-1``, ``classes`` of the wrong length):
        programming errors, not bad input.

    Examples
    --------
    >>> import torch
    >>> resolve_class_weights("balanced", torch.tensor([0, 0, 0, 1]), 2)
    tensor([0.6667, 2.0000])
    """
    if spec is None:
        return None
    k = _check_num_classes(num_classes)
    if classes is not None:
        classes = tuple(str(c) for c in classes)
        if len(classes) != k:
            raise ValueError(f"classes has {len(classes)} names for num_classes={k}")
    if not isinstance(spec, (str, os.PathLike)) or not os.fspath(spec).strip():
        raise WpgdkitError(f"class_weights must be 'balanced' or the path of a weights file, got {spec!r}")
    if isinstance(spec, str) and spec in CLASS_WEIGHT_MODES:
        return _balanced(_check_labels(labels, k), k, classes)
    return _from_file(os.fspath(spec), k, classes)


def class_weights_record(spec: str | None, weights: torch.Tensor | Sequence[float] | None) -> dict[str, Any]:
    """A JSON-able record of the class weights, for the run's identity in the checkpoint.

    Parameters
    ----------
    spec : str or None
        What was passed to :func:`resolve_class_weights`.
    weights : Tensor of shape (K,) or sequence of float, or None
        What it returned. For ``"balanced"`` it may be None: the record of a
        run's settings made before the data is loaded (the weights follow from
        the training labels, which the data settings already pin down).

    Returns
    -------
    record : dict
        ``mode``: ``"none"``, ``"balanced"`` or ``"file"``; ``weights``: the
        ``K`` weights as floats (the float32 values the loss uses, exactly),
        or None when not given; ``sha256``: hex digest of the file's bytes
        for a file (what ``sha256sum`` prints), else None. The path is left
        out on purpose: a run resumed from another folder, with the same
        file, is the same run.

    Raises
    ------
    WpgdkitError
        If the file can no longer be read.
    ValueError
        If ``weights`` does not go with ``spec`` (not None for None, None for
        a file), or is not a non-empty 1-D sequence of finite positive numbers.

    Notes
    -----
    The file is read again to hash it: call this right after
    :func:`resolve_class_weights`, before the (long) training starts.
    """
    if spec is None:
        if weights is not None:
            raise ValueError("weights must be None when class_weights is None")
        return {"mode": "none", "weights": None, "sha256": None}
    is_mode = isinstance(spec, str) and spec in CLASS_WEIGHT_MODES
    if weights is None:
        if is_mode:
            return {"mode": spec, "weights": None, "sha256": None}
        raise ValueError(f"weights are missing for class_weights file {spec!r}")
    values = torch.as_tensor(weights, dtype=torch.float32).detach().cpu()
    if values.ndim != 1 or len(values) == 0 or not bool(torch.isfinite(values).all()) or bool((values <= 0).any()):
        raise ValueError(f"weights must be a non-empty 1-D sequence of finite positive numbers, got {weights!r}")
    listed = [float(v) for v in values.tolist()]
    if is_mode:
        return {"mode": spec, "weights": listed, "sha256": None}
    return {"mode": "file", "weights": listed, "sha256": _sha256(os.fspath(spec))}


# --- balanced ---------------------------------------------------------------------------


def _balanced(labels: torch.Tensor, k: int, classes: tuple[str, ...] | None) -> torch.Tensor:
    counts = torch.bincount(labels, minlength=k)
    empty = [c for c in range(k) if counts[c] == 0]
    if empty:
        raise WpgdkitError(
            "class_weights must not be 'balanced' when a class has no training points: "
            f"{_names(empty, classes)} {'has' if len(empty) == 1 else 'have'} none "
            "(give the weights in a file, or leave the class out)"
        )
    # In float64, as scikit-learn computes it, then rounded once to the loss's float32.
    weights = len(labels) / (k * counts.to(torch.float64))
    return weights.to(torch.float32)


def _check_num_classes(num_classes: int) -> int:
    if isinstance(num_classes, bool) or not isinstance(num_classes, numbers.Integral) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}")
    return int(num_classes)


def _check_labels(labels: torch.Tensor | None, k: int) -> torch.Tensor:
    if labels is None:
        raise ValueError("class_weights 'balanced' needs the training labels")
    labels = torch.as_tensor(labels)
    if labels.ndim != 1 or labels.dtype.is_floating_point or labels.dtype.is_complex or labels.dtype == torch.bool:
        raise ValueError(f"labels must be a 1-D integer tensor, got shape {tuple(labels.shape)} and {labels.dtype}")
    if len(labels) == 0:
        raise ValueError("labels are empty: there are no training points")
    labels = labels.to(torch.int64).cpu()
    low, high = int(labels.min()), int(labels.max())
    if low < 0 or high >= k:
        raise ValueError(f"labels must lie in 0..{k - 1}, found {low if low < 0 else high}")
    return labels


# --- files ------------------------------------------------------------------------------


def _from_file(path: str, k: int, classes: tuple[str, ...] | None) -> torch.Tensor:
    text = _read(path)
    # (line number, text) of the lines that hold something.
    lines = [(n, line.strip()) for n, line in enumerate(text.splitlines(), 1)]
    lines = [(n, line) for n, line in lines if line and not line.startswith("#")]
    if not lines:
        raise WpgdkitError(f"class_weights must list one weight per class: {path} has none")
    first = next(csv.reader([lines[0][1]]))
    if [field.strip().lower() for field in first] == _HEADER:
        return _from_table(path, lines[1:], k, classes)
    return _from_list(path, lines, k, classes)


def _from_list(path: str, lines: list[tuple[int, str]], k: int, classes: tuple[str, ...] | None) -> torch.Tensor:
    values: list[tuple[int, float]] = []
    for n, line in lines:
        for token in line.split(","):
            values.append((n, _number(path, n, token.strip(), hint=not values)))
    if len(values) != k:
        raise WpgdkitError(
            f"class_weights must list {k} weights, one per class ({_class_list(k, classes)}) in label order: "
            f"{path} has {len(values)}"
        )
    for label, (n, value) in enumerate(values):
        _check_weight(path, n, value, label, classes)
    return torch.tensor([v for _, v in values], dtype=torch.float64).to(torch.float32)


def _from_table(path: str, rows: list[tuple[int, str]], k: int, classes: tuple[str, ...] | None) -> torch.Tensor:
    position = {name: i for i, name in enumerate(classes)} if classes is not None else {}
    given: dict[int, tuple[int, float]] = {}  # label -> (line number, weight)
    for n, line in rows:
        fields = next(csv.reader([line]))
        if len(fields) != 2:
            raise WpgdkitError(f"class_weights must be rows 'class,weight': {path} line {n} has {len(fields)} fields")
        key, value = fields[0].strip(), _number(path, n, fields[1].strip(), hint=False)
        label = _label(key, position, k)
        if label is None:
            known = f"classes are: {_class_list(k, classes)}" if classes is not None else f"labels are 0..{k - 1}"
            raise WpgdkitError(f"class_weights must name the run's classes: {path} line {n}: unknown class "
                               f"{key!r}; {known}")
        if label in given:
            raise WpgdkitError(f"class_weights must give each class once: {path} lines {given[label][0]} and {n} "
                               f"both give {_names([label], classes)}")
        _check_weight(path, n, value, label, classes)
        given[label] = (n, value)
    missing = [c for c in range(k) if c not in given]
    if missing:
        raise WpgdkitError(f"class_weights must give every class a weight: {path} lacks {_names(missing, classes)}")
    return torch.tensor([given[c][1] for c in range(k)], dtype=torch.float64).to(torch.float32)


def _label(key: str, position: dict[str, int], k: int) -> int | None:
    # A name first, then a label: datasets whose names are digits (MNIST) agree either way.
    if key in position:
        return position[key]
    if re.fullmatch(r"[0-9]+", key):  # ASCII digits only: str.isdigit accepts "²"
        label = int(key)
        return label if label < k else None
    return None


def _number(path: str, n: int, token: str, *, hint: bool) -> float:
    try:
        return float(token)
    except ValueError:
        # A first value that is not a number is most often a header other than class,weight.
        extra = " (a table needs the header line 'class,weight')" if hint else ""
        shown = repr(token) if token else "an empty value"
        raise WpgdkitError(f"class_weights must be numbers: {path} line {n}: {shown} is not a number{extra}") from None


def _check_weight(path: str, n: int, value: float, label: int, classes: tuple[str, ...] | None) -> None:
    if not (math.isfinite(value) and value > 0):
        raise WpgdkitError(f"class_weights must be finite and > 0: {path} line {n} gives "
                           f"{_names([label], classes)} {value!r}")


def _read(path: str) -> str:
    try:
        return read_text(path, what="weights file")
    except WpgdkitError as exc:
        # Keep the type (DataNotFoundError for a missing file); say which parameter it was.
        raise type(exc)(f"class_weights must be 'balanced' or a readable weights file: {exc}") from None


def _sha256(path: str) -> str:
    try:
        checked = input_file(path, what="weights file")
        size = checked.stat().st_size
        if size > MAX_TEXT_BYTES:
            raise WpgdkitError(f"weights file {path} is {size:,} bytes; the limit is {MAX_TEXT_BYTES:,}")
        data = checked.read_bytes()
    except WpgdkitError as exc:  # first: DataNotFoundError is also an OSError
        raise type(exc)(f"class_weights must be a readable weights file: {exc}") from None
    except OSError as exc:
        raise WpgdkitError(f"class_weights must be a readable weights file: cannot read {path}: "
                           f"{exc.strerror or exc}") from None
    return hashlib.sha256(data).hexdigest()


# --- messages ---------------------------------------------------------------------------


def _names(labels: Sequence[int], classes: tuple[str, ...] | None) -> str:
    """``class 'cat'``, ``classes 'cat', 'dog'`` or by label ``class 3``; at most a dozen shown."""
    shown = [repr(classes[c]) if classes is not None else str(c) for c in labels[:_SHOWN]]
    more = f", ... ({len(labels)} in all)" if len(labels) > _SHOWN else ""
    return ("class " if len(labels) == 1 else "classes ") + ", ".join(shown) + more


def _class_list(k: int, classes: tuple[str, ...] | None) -> str:
    if classes is None:
        return f"labels 0..{k - 1}"
    return ", ".join(classes[:_SHOWN]) + (f", ... ({k} in all)" if k > _SHOWN else "")
