"""Plain JSON values from what the library computes (NumPy scalars, paths, tuples, NaN), and the one way
wpgdkit serialises them: :func:`dumps_json` for the text, :func:`write_json` for a file or stdout."""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

from wpgdkit.atomic import atomic_write_text

__all__ = ["json_value", "dumps_json", "write_json"]


def json_value(value: Any) -> Any:
    """``value`` with NumPy scalars as Python numbers, paths as strings, tuples as lists,
    and NaN/±inf as None (JSON has no NaN; null says "undefined"), recursively."""
    if isinstance(value, (np.floating, np.integer)):
        value = value.item()
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): json_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_value(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def dumps_json(payload: Any, *, indent: int | None = 2) -> str:
    """The JSON text of ``payload``, after :func:`json_value`, with a trailing newline.

    Parameters
    ----------
    payload : any
        Dicts, lists, tuples, numbers (NumPy ones too), strings, paths, None.
    indent : int or None, keyword-only, default=2
        As in :func:`json.dumps`; None writes one line.

    Returns
    -------
    text : str

    Raises
    ------
    TypeError
        For a value JSON cannot hold (an object that is none of the above).
    """
    # allow_nan=False: json_value already turned NaN and infinities into null,
    # so anything left would be invalid JSON and is refused rather than written.
    return json.dumps(json_value(payload), indent=indent, allow_nan=False) + "\n"


def write_json(payload: Any, destination: str | os.PathLike[str], *, indent: int | None = 2) -> None:
    """Write :func:`dumps_json` of ``payload`` to a file, atomically, or to stdout for ``"-"``.

    Parameters
    ----------
    payload : any
        As for :func:`dumps_json`.
    destination : str or path-like
        A file path (missing folders are created), or the string ``"-"`` for
        standard output (``Path("-")`` is a file called ``-``).
    indent : int or None, keyword-only, default=2
    """
    text = dumps_json(payload, indent=indent)
    if isinstance(destination, str) and destination == "-":
        sys.stdout.write(text)
        sys.stdout.flush()
    else:
        atomic_write_text(Path(destination), text)
