"""Plain JSON values: NumPy scalars, paths, tuples and non-finite floats."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from wpgdkit.jsonutil import json_value


def test_json_value_converts_recursively_and_nulls_non_finite_floats():
    value = {"a": (np.float64(1.5), np.int64(3)), 2: [math.nan, -math.inf, np.float32(math.inf)], "p": Path("x/y")}
    out = json_value(value)
    assert out == {"a": [1.5, 3], "2": [None, None, None], "p": "x/y"}
    json.dumps(out, allow_nan=False)  # would raise on NaN or a NumPy type
    assert isinstance(out["a"][1], int)
