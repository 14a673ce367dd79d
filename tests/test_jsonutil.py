"""Plain JSON values (NumPy scalars, paths, tuples, non-finite floats) and the one way JSON is written."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from wpgdkit.errors import OutputError
from wpgdkit.jsonutil import dumps_json, json_value, write_json


def test_json_value_converts_recursively_and_nulls_non_finite_floats():
    value = {"a": (np.float64(1.5), np.int64(3)), 2: [math.nan, -math.inf, np.float32(math.inf)], "p": Path("x/y")}
    out = json_value(value)
    assert out == {"a": [1.5, 3], "2": [None, None, None], "p": "x/y"}
    json.dumps(out, allow_nan=False)  # would raise on NaN or a NumPy type
    assert isinstance(out["a"][1], int)


# --- dumps_json and write_json: the one way JSON is written -------------------------------------


def test_dumps_json_converts_indents_and_ends_with_a_newline():
    text = dumps_json({"b": np.float32(0.5), "a": (1, math.nan)})
    assert text == '{\n  "b": 0.5,\n  "a": [\n    1,\n    null\n  ]\n}\n'
    assert dumps_json([1, 2], indent=None) == "[1, 2]\n"
    assert dumps_json({"x": [1]}, indent=1) == '{\n "x": [\n  1\n ]\n}\n'


def test_dumps_json_refuses_what_json_cannot_hold():
    with pytest.raises(TypeError):
        dumps_json({"x": object()})


def test_write_json_to_a_file_creates_folders_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "a" / "b.json"
    write_json({"k": np.int64(3)}, path)
    assert path.read_text(encoding="utf-8") == '{\n  "k": 3\n}\n'
    write_json({"k": 4}, str(path), indent=None)  # replaces the file; str paths work too
    assert path.read_text(encoding="utf-8") == '{"k": 4}\n'
    assert sorted(p.name for p in path.parent.iterdir()) == ["b.json"]


def test_write_json_dash_is_stdout(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_json({"k": [Path("p")]}, "-")
    assert capsys.readouterr().out == '{\n  "k": [\n    "p"\n  ]\n}\n'
    assert list(tmp_path.iterdir()) == []  # no file called "-"


def test_write_json_into_a_folder_is_an_output_error(tmp_path):
    with pytest.raises(OutputError, match="is a folder"):
        write_json({}, tmp_path)


def test_write_json_unserialisable_leaves_no_file(tmp_path):
    path = tmp_path / "x.json"
    with pytest.raises(TypeError):
        write_json({"x": object()}, path)
    assert list(tmp_path.iterdir()) == []
