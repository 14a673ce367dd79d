"""Reading and writing label metrics: CSV, JSON and NPY, chosen by extension.

CSV layout (the contract other tools rely on)::

    ,airplane,automobile,...
    airplane,0,11,...
    automobile,11,0,...

the first row is an empty cell then the K class names; each further row is a
class name (in the same order) then K numbers. Numbers are written in the
shortest form that reads back to the same float (integers without ``.0``),
so every format round-trips exactly.

JSON: ``{"format": "wpgdkit-label-metric", "version": 1, "classes": [...],
"matrix": [[...]], "provenance": {...}}``.

NPY: the matrix alone; the class names come from elsewhere (a list, or a text
file with one name per line).
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from wpgdkit.atomic import atomic_write_bytes
from wpgdkit.errors import DataNotFoundError, MetricFormatError, WpgdkitError
from wpgdkit.inputs import input_file, read_text
from wpgdkit.jsonutil import dumps_json
from wpgdkit.labelmetric.core import LabelMetric, Provenance
from wpgdkit.labelmetric.validate import check_entries

__all__ = [
    "FORMATS",
    "read_metric",
    "write_metric",
    "metric_file_bytes",
    "metric_to_csv",
    "metric_from_csv",
    "read_class_list",
    "parse_csv_rows",
    "check_class_names",
    "MAX_CLASS_NAME",
    "JSON_VERSION",
]

FORMATS = (".csv", ".json", ".npy")
_JSON_TAG = "wpgdkit-label-metric"
#: The newest JSON metric version this wpgdkit reads (and the one it writes).
JSON_VERSION = 1
#: The longest class name accepted, in characters: far above any real one.
MAX_CLASS_NAME = 1000

# A number in a metric CSV: plain decimal, optional exponent, ASCII digits only.
# float() would also take "1_000", "inf", "nan", " ٣ " and "0x1p3"-like spellings.
_DECIMAL = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_NON_FINITE = re.compile(r"[+-]?(?:inf|infinity|nan)", re.IGNORECASE)


def _format_of(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise MetricFormatError(
            f"cannot tell the format of {path} from its extension; use one of: {', '.join(FORMATS)}"
        )
    return suffix


def _number(x: float) -> str:
    # repr() is the shortest string that parses back to the same double.
    return str(int(x)) if float(x).is_integer() and abs(x) < 2**53 else repr(float(x))


def metric_to_csv(metric: LabelMetric) -> str:
    """Return the CSV text of a metric (see the module docstring for the layout)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["", *metric.classes])
    for name, row in zip(metric.classes, metric.matrix):
        writer.writerow([name, *(_number(v) for v in row)])
    return buffer.getvalue()


def metric_from_csv(text: str, *, origin: str = "<csv>", provenance: Provenance | None = None) -> LabelMetric:
    """Parse CSV text in the layout of :func:`metric_to_csv`.

    Raises
    ------
    MetricFormatError
        With the row and column of the first problem found.
    """
    rows = [row for _, row in parse_csv_rows(text, origin=origin) if any(cell.strip() for cell in row)]
    if not rows:
        raise MetricFormatError(f"{origin}: empty file")
    header = rows[0]
    if header[0].strip() != "":
        raise MetricFormatError(
            f"{origin}: the first cell of the header must be empty, found {header[0]!r} "
            "(layout: an empty cell then the class names)"
        )
    classes = [c.strip() for c in header[1:]]
    k = len(classes)
    if k == 0:
        raise MetricFormatError(f"{origin}: the header names no classes")
    check_class_names(classes, f"{origin}: line 1")
    if len(rows) - 1 != k:
        raise MetricFormatError(f"{origin}: {k} class names in the header but {len(rows) - 1} matrix rows")
    matrix = np.empty((k, k), dtype=np.float64)
    for i, row in enumerate(rows[1:]):
        line = i + 2
        if len(row) != k + 1:
            raise MetricFormatError(f"{origin}: line {line} has {len(row) - 1} numbers, expected {k}")
        if row[0].strip() != classes[i]:
            raise MetricFormatError(
                f"{origin}: line {line} is labelled {row[0].strip()!r} but column {i + 1} is {classes[i]!r}; "
                "rows must follow the header's class order"
            )
        for j, cell in enumerate(row[1:]):
            matrix[i, j] = _csv_number(cell, f"{origin}: line {line}, column {classes[j]!r}")
    return LabelMetric(tuple(classes), matrix, provenance or Provenance(source="file", parameters={"path": origin}))


def parse_csv_rows(text: str, *, origin: str = "<csv>") -> list[tuple[int, list[str]]]:
    """The rows of CSV text with their line numbers, any field size handled.

    Python's ``csv`` module refuses a field over ``csv.field_size_limit()``
    (131,072 characters) with ``_csv.Error``; the limit is process-wide, so it
    is left alone and such a field is refused here as one MetricFormatError
    naming the line (no real field comes near it: class names are limited to
    :data:`MAX_CLASS_NAME`).
    """
    reader = csv.reader(io.StringIO(text.lstrip("\ufeff")))
    rows: list[tuple[int, list[str]]] = []
    try:
        for row in reader:
            rows.append((reader.line_num, row))
    except csv.Error as exc:
        line = reader.line_num
        if "field limit" in str(exc):
            raise MetricFormatError(
                f"{origin}: line {line} has a field over {csv.field_size_limit():,} characters "
                f"(class names are limited to {MAX_CLASS_NAME:,})"
            ) from None
        raise MetricFormatError(f"{origin}: line {line} is not valid CSV ({exc})") from None
    return rows


def _csv_number(cell: str, where: str) -> float:
    text = cell.strip()
    if _NON_FINITE.fullmatch(text):
        raise MetricFormatError(f"{where}: {text!r} is not a finite number; entries must be finite")
    if not _DECIMAL.fullmatch(text):
        shown = text if len(text) <= 40 else text[:40] + "..."
        raise MetricFormatError(f"{where}: {shown!r} is not a number (plain decimal like 3, 0.25 or 1e-3)")
    value = float(text)
    if not math.isfinite(value):
        raise MetricFormatError(f"{where}: {text!r} overflows a double; entries must be finite")
    return value


# C0 controls, DEL and C1 controls: invisible in a table, and NUL ends a C string.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def check_class_names(classes: Sequence[str], origin: str, *, lines: Sequence[int] | None = None) -> None:
    """Refuse a non-list, missing, over-long (:data:`MAX_CLASS_NAME`), duplicate class names
    or names holding control characters (C0, DEL, C1).

    ``lines``, when given, are the line numbers of ``classes`` in ``origin``
    (one per name); errors then name the line instead of the position.
    """
    if isinstance(classes, (str, bytes)) or not isinstance(classes, (list, tuple)):
        raise MetricFormatError(f"{origin}: class names must be a list of strings, got {type(classes).__name__}")
    not_str = [i for i, c in enumerate(classes) if not isinstance(c, str)]
    if not_str:
        raise MetricFormatError(f"{origin}: class name at position {not_str[0]} is not a string")

    def where(i: int) -> str:
        return f"line {lines[i]}" if lines is not None else f"position {i}"

    empty = [i for i, c in enumerate(classes) if not c]
    if empty:
        raise MetricFormatError(f"{origin}: class name missing at {where(empty[0])}")
    long = [i for i, c in enumerate(classes) if len(c) > MAX_CLASS_NAME]
    if long:
        raise MetricFormatError(
            f"{origin}: class name at {where(long[0])} is {len(classes[long[0]]):,} characters; "
            f"the limit is {MAX_CLASS_NAME:,}"
        )
    for i, c in enumerate(classes):
        found = _CONTROL.search(c)
        if found:
            shown = c if len(c) <= 40 else c[:40] + "..."
            raise MetricFormatError(
                f"{origin}: class name at {where(i)} holds control character U+{ord(found.group()):04X} "
                f"({shown!r})"
            )
    seen: set[str] = set()
    dup = [c for c in classes if c in seen or seen.add(c)]
    if dup:
        raise MetricFormatError(f"{origin}: duplicate class names: {', '.join(sorted(set(dup)))}")


# The old private name, kept for callers elsewhere in the package.
_check_class_names = check_class_names


def read_class_list(path: str | os.PathLike[str]) -> list[str]:
    """Read class names, one per line (blank lines ignored).

    Raises
    ------
    DataNotFoundError, WpgdkitError
        As :func:`wpgdkit.inputs.read_text` (missing, a folder, not UTF-8, too large).
    MetricFormatError
        For a duplicate or over-long name.
    """
    text = read_text(path, what="class list")
    lines = [(n, line.strip()) for n, line in enumerate(text.splitlines(), start=1) if line.strip()]
    long = [n for n, name in lines if len(name) > MAX_CLASS_NAME]
    if long:
        raise MetricFormatError(f"{path}: line {long[0]}: class name longer than {MAX_CLASS_NAME:,} characters")
    names = [name for _, name in lines]
    check_class_names(names, str(path), lines=[n for n, _ in lines])
    return names


def read_metric(
    path: str | os.PathLike[str],
    *,
    classes: Sequence[str] | str | os.PathLike[str] | None = None,
) -> LabelMetric:
    """Read a label metric from a ``.csv``, ``.json`` or ``.npy`` file.

    Parameters
    ----------
    path : path-like
        The file; its extension picks the format.
    classes : sequence of str or path-like, optional
        Class names for an NPY file (a list, or a file with one name per
        line). For CSV and JSON, if given, they must equal the file's.

    Returns
    -------
    metric : LabelMetric
        Only the format is checked here; use
        :func:`~wpgdkit.labelmetric.validate_metric` for the structure.

    Raises
    ------
    DataNotFoundError
        If the file does not exist.
    MetricFormatError
        If it is malformed.
    """
    path = Path(path)
    fmt = _format_of(path)
    input_file(path, what="metric file")
    if classes is not None and not isinstance(classes, (list, tuple)):
        classes = read_class_list(classes)
    if fmt == ".csv":
        metric = metric_from_csv(_metric_text(path), origin=str(path))
    elif fmt == ".json":
        metric = _read_json(path)
    else:
        metric = _read_npy(path, classes)
    if classes is not None and tuple(classes) != metric.classes:
        raise MetricFormatError(f"{path}: its classes differ from the class list given")
    return metric


def _metric_text(path: Path) -> str:
    # read_text's refusals (not UTF-8, too large, a folder) are format errors of a metric file.
    try:
        return read_text(path, what="metric file")
    except DataNotFoundError:
        raise
    except WpgdkitError as exc:
        raise MetricFormatError(str(exc)) from None


def _no_constant(name: str):
    raise ValueError(f"{name} is not a JSON number")


def parse_json(text: str, origin: str):
    """``json.loads`` with every way it can fail as one MetricFormatError.

    Refuses NaN and Infinity (not JSON), nesting deep enough to exhaust the
    stack (``RecursionError``) and integers too long to convert.
    """
    try:
        return json.loads(text, parse_constant=_no_constant)
    except RecursionError:
        raise MetricFormatError(f"{origin}: not valid JSON (nested too deeply)") from None
    except ValueError as exc:  # JSONDecodeError, NaN/Infinity, integer digit limit
        raise MetricFormatError(f"{origin}: not valid JSON ({exc})") from None


def _read_json(path: Path) -> LabelMetric:
    data = parse_json(_metric_text(path), str(path))
    if not isinstance(data, dict) or not {"classes", "matrix"} <= set(data):
        raise MetricFormatError(f"{path}: expected an object with 'classes' and 'matrix'")
    if data.get("format", _JSON_TAG) != _JSON_TAG:
        raise MetricFormatError(f"{path}: format is {data.get('format')!r}, expected {_JSON_TAG!r}")
    version = data.get("version", JSON_VERSION)
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise MetricFormatError(f"{path}: 'version' must be a whole number ≥ 1, got {json.dumps(version)[:40]}")
    if version > JSON_VERSION:
        raise MetricFormatError(
            f"{path}: metric format version {version} is newer than this wpgdkit reads "
            f"(up to {JSON_VERSION}); upgrade wpgdkit"
        )
    classes, rows = data["classes"], data["matrix"]
    if not isinstance(classes, list) or not all(isinstance(c, str) for c in classes):
        raise MetricFormatError(f"{path}: 'classes' must be a list of strings")
    if not isinstance(rows, list) or not all(isinstance(r, list) for r in rows):
        raise MetricFormatError(f"{path}: 'matrix' must be a list of rows")
    if any(len(r) != len(rows) for r in rows):
        raise MetricFormatError(f"{path}: 'matrix' is not square")
    for i, row in enumerate(rows):
        for j, value in enumerate(row):
            # numpy would turn null into NaN and true or "1" into 1.0: refuse them.
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                shown = json.dumps(value)
                shown = shown if len(shown) <= 40 else shown[:40] + "..."
                raise MetricFormatError(f"{path}: matrix[{i}][{j}] is {shown}, not a number")
            if isinstance(value, int) and not math.isfinite(_int_to_float(value)):
                raise MetricFormatError(f"{path}: matrix[{i}][{j}] overflows a double; entries must be finite")
    matrix = np.array([[float(_int_to_float(v)) for v in row] for row in rows], dtype=np.float64)
    matrix = matrix.reshape(len(rows), len(rows))
    check_class_names(classes, str(path))
    prov = data.get("provenance")
    try:
        provenance = Provenance.from_dict(prov) if prov is not None else Provenance(source="file")
    except MetricFormatError as exc:
        raise MetricFormatError(f"{path}: {exc}") from None
    return LabelMetric(tuple(classes), matrix, provenance)


def _int_to_float(value: int | float) -> float:
    try:
        return float(value)
    except OverflowError:
        return math.inf


def _read_npy(path: Path, classes: Sequence[str] | None) -> LabelMetric:
    if classes is None:
        raise MetricFormatError(f"{path}: an .npy file holds only the matrix; give the class names as well")
    try:
        # allow_pickle=False: an .npy is data, never code.
        matrix = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise MetricFormatError(f"{path}: not a readable .npy array ({exc})") from None
    if not np.issubdtype(matrix.dtype, np.number) or np.iscomplexobj(matrix):
        raise MetricFormatError(f"{path}: the array has dtype {matrix.dtype}, expected real numbers")
    check_class_names(list(classes), str(path))
    return LabelMetric(tuple(classes), matrix.astype(np.float64), Provenance(source="file", parameters={"path": str(path)}))


def metric_file_bytes(metric: LabelMetric, path: str | os.PathLike[str]) -> bytes:
    """The bytes :func:`write_metric` writes to ``path`` (the extension picks the format).

    Deterministic: the same metric gives the same bytes, so a caller can tell
    whether an existing file already holds it.

    Raises
    ------
    MetricFormatError
        For an extension other than :data:`FORMATS`, or a matrix no file may hold.
    """
    path = Path(path)
    fmt = _format_of(path)
    try:
        check_entries(metric.matrix, metric.classes)
    except MetricFormatError as exc:
        raise MetricFormatError(f"refusing to write {path}: {exc}") from None
    if fmt == ".csv":
        return metric_to_csv(metric).encode("utf-8")
    if fmt == ".json":
        payload = {
            "format": _JSON_TAG,
            "version": 1,
            "classes": list(metric.classes),
            "matrix": [[_json_number(v) for v in row] for row in metric.matrix],
            "provenance": metric.provenance.to_dict(),
        }
        return dumps_json(payload, indent=1).encode("utf-8")
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(metric.matrix), allow_pickle=False)
    return buffer.getvalue()


def write_metric(metric: LabelMetric, path: str | os.PathLike[str]) -> Path:
    """Write a metric atomically; the extension picks the format (:func:`metric_file_bytes`).

    For ``.npy`` only the matrix is written (keep the class names beside it).

    Returns
    -------
    path : Path
    """
    path = Path(path)
    atomic_write_bytes(path, metric_file_bytes(metric, path))
    return path


def _json_number(x: float) -> int | float:
    x = float(x)
    return int(x) if x.is_integer() and math.isfinite(x) and abs(x) < 2**53 else x
