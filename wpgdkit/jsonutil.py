"""Plain JSON values from what the library computes (NumPy scalars, paths, tuples, NaN)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["json_value"]


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
