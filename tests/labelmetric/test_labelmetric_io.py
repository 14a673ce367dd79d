"""Reading and writing label metrics: CSV, JSON, NPY (wpgdkit.labelmetric.io)."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from wpgdkit.errors import DataNotFoundError, MetricFormatError, WpgdkitError
from wpgdkit.labelmetric import io as lmio
from wpgdkit.labelmetric.core import LabelMetric, Provenance
from wpgdkit.labelmetric.io import (
    FORMATS,
    MAX_CLASS_NAME,
    check_class_names,
    metric_from_csv,
    metric_to_csv,
    read_class_list,
    read_metric,
    write_metric,
)

# Awkward doubles: repeating binary fractions, extremes, integers small and
# beyond 2**53, a subnormal, and a sum with a rounding error.
AWKWARD = [
    0.0, 1 / 3, 1e-300, 123456789.123456789, 7.0, 2.0**60, 5e-324, 0.1 + 0.2,
    1e100, 2.0**53 - 1, 12.5, 1e16, 2 / 3, np.nextafter(1.0, 2.0), 3.0e-7, 42.0,
]


def awkward_metric(classes=("a", "b", "c", "d")) -> LabelMetric:
    k = len(classes)
    mat = np.array(AWKWARD[: k * k], dtype=np.float64).reshape(k, k)
    return LabelMetric(classes, mat, Provenance(source="test", measure="m", parameters={"x": [1, 2]}))


def assert_bitwise_equal(a: np.ndarray, b: np.ndarray) -> None:
    assert a.dtype == b.dtype == np.float64 and a.shape == b.shape
    assert np.array_equal(a, b)
    assert a.tobytes() == b.tobytes()


def only_files(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# --- round trips ---------------------------------------------------------------------


def test_csv_round_trip_is_exact(tmp_path):
    m = awkward_metric()
    path = write_metric(m, tmp_path / "m.csv")
    assert path == tmp_path / "m.csv"
    back = read_metric(path)
    assert back.classes == m.classes
    assert_bitwise_equal(back.matrix, m.matrix)
    assert back.provenance.source == "file" and back.provenance.parameters == {"path": str(path)}


def test_json_round_trip_is_exact_with_provenance(tmp_path):
    m = awkward_metric()
    back = read_metric(write_metric(m, tmp_path / "m.json"))
    assert back.classes == m.classes
    assert_bitwise_equal(back.matrix, m.matrix)
    assert back.provenance == m.provenance
    assert back == m


@pytest.mark.parametrize("classes_as", ["list", "tuple", "file"])
def test_npy_round_trip_is_exact(tmp_path, classes_as):
    m = awkward_metric()
    path = write_metric(m, tmp_path / "m.npy")
    if classes_as == "file":
        list_file = tmp_path / "classes.txt"
        list_file.write_text("a\n\nb\n  c  \nd\n\n")  # blank lines ignored, names stripped
        classes = list_file
    else:
        classes = list(m.classes) if classes_as == "list" else tuple(m.classes)
    back = read_metric(path, classes=classes)
    assert back.classes == m.classes
    assert_bitwise_equal(back.matrix, m.matrix)
    # The file is a plain float64 .npy.
    raw = np.load(path, allow_pickle=False)
    assert raw.dtype == np.float64 and np.array_equal(raw, m.matrix)


def test_npy_of_other_real_dtypes_is_read_as_float64(tmp_path):
    path = tmp_path / "ints.npy"
    np.save(path, np.array([[0, 3], [3, 0]], dtype=np.int32))
    m = read_metric(path, classes=["x", "y"])
    assert m.matrix.dtype == np.float64 and m.matrix.tolist() == [[0.0, 3.0], [3.0, 0.0]]


def test_every_format_round_trips_a_seeded_sample_of_doubles(tmp_path):
    rng = np.random.default_rng(0)
    k = 12
    # Entries span the valid range: non-negative, up to validate.MAX_ENTRY (1e100).
    mat = np.abs(rng.standard_normal((k, k))) * 10.0 ** rng.integers(-200, 99, size=(k, k))
    m = LabelMetric(tuple(f"c{i}" for i in range(k)), mat)
    for suffix in FORMATS:
        back = read_metric(write_metric(m, tmp_path / f"m{suffix}"), classes=list(m.classes))
        assert_bitwise_equal(back.matrix, m.matrix)


# --- the CSV layout contract ----------------------------------------------------------


def test_csv_layout_exact(tmp_path):
    m = LabelMetric(("a", "b", "c"), [[0, 1, 2.5], [1, 0, 1 / 3], [2.5, 1e-300, 0]])
    expected = (
        ",a,b,c\n"
        "a,0,1,2.5\n"
        "b,1,0,0.3333333333333333\n"
        "c,2.5,1e-300,0\n"
    )
    assert metric_to_csv(m) == expected
    path = write_metric(m, tmp_path / "m.csv")
    assert path.read_bytes() == expected.encode("utf-8")


def test_csv_integers_without_point_zero():
    m = LabelMetric(("a", "b"), [[0.0, 123456789.0], [2.0**52, 0.0]])
    assert metric_to_csv(m) == ",a,b\na,0,123456789\nb,4503599627370496,0\n"


def test_csv_awkward_class_names_survive(tmp_path):
    names = ("T-shirt/top", 'say "hi"', "a,b", "Ankle boot", "naïve")
    k = len(names)
    mat = np.arange(k * k, dtype=float).reshape(k, k)
    m = LabelMetric(names, mat)
    text = metric_to_csv(m)
    # The header is quoted the way RFC 4180 wants it.
    assert text.splitlines()[0] == ',T-shirt/top,"say ""hi""","a,b",Ankle boot,naïve'
    back = read_metric(write_metric(m, tmp_path / "m.csv"))
    assert back.classes == names
    assert_bitwise_equal(back.matrix, m.matrix)
    back_json = read_metric(write_metric(m, tmp_path / "m.json"))
    assert back_json.classes == names


def test_csv_reader_accepts_bom_blank_lines_and_spaces():
    m = metric_from_csv("\ufeff, a , b\n\na, 0 ,1\n\n b ,1, 0\n")
    assert m.classes == ("a", "b") and m.matrix.tolist() == [[0.0, 1.0], [1.0, 0.0]]


def test_csv_reader_records_origin():
    m = metric_from_csv(",a,b\na,0,1\nb,1,0\n", origin="here.csv")
    assert m.provenance == Provenance(source="file", parameters={"path": "here.csv"})


# --- malformed CSV -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "pattern"),
    [
        ("x,a,b\na,0,1\nb,1,0\n", r"first cell of the header must be empty, found 'x'"),
        (",a,b\na,0,1,2\nb,1,0\n", r"line 2 has 3 numbers, expected 2"),
        (",a,b\na,0,1\nb,1\n", r"line 3 has 1 numbers, expected 2"),
        (",a,b\nb,0,1\na,1,0\n", r"line 2 is labelled 'b' but column 1 is 'a'"),
        (",a,b\na,0,x\nb,1,0\n", r"line 2, column 'b': 'x' is not a number"),
        (",a,b\na,0,1\nb, ,0\n", r"line 3, column 'a': '' is not a number"),
        ("", r"empty file"),
        ("\n \n,,\n", r"empty file"),
        (",a,a\na,0,1\na,1,0\n", r"duplicate class names: a"),
        (",a,b\na,0,1\n", r"2 class names in the header but 1 matrix rows"),
        (",a,b\na,0,1\nb,1,0\nc,1,1\n", r"2 class names in the header but 3 matrix rows"),
        (",a,,c\na,0,1,2\n,1,0,2\nc,2,2,0\n", r"class name missing at position 1"),
    ],
)
def test_malformed_csv(tmp_path, text, pattern):
    with pytest.raises(MetricFormatError, match=pattern):
        metric_from_csv(text)
    # Through a file, the message names the file.
    path = tmp_path / "bad.csv"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(MetricFormatError, match=pattern) as info:
        read_metric(path)
    assert str(path) in str(info.value)


def test_csv_not_utf8(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_bytes(b",a,b\na,0,1\nb,1,\xff\n")
    with pytest.raises(MetricFormatError, match="UTF-8"):
        read_metric(path)


def test_csv_classes_argument_must_match(tmp_path):
    path = write_metric(LabelMetric(("a", "b"), [[0, 1], [1, 0]]), tmp_path / "m.csv")
    assert read_metric(path, classes=["a", "b"]).classes == ("a", "b")
    with pytest.raises(MetricFormatError, match="differ"):
        read_metric(path, classes=["b", "a"])


# --- malformed JSON ---------------------------------------------------------------------------


def _json_file(tmp_path, payload, raw=None):
    path = tmp_path / "m.json"
    path.write_text(raw if raw is not None else json.dumps(payload), encoding="utf-8")
    return path


GOOD = {"format": "wpgdkit-label-metric", "version": 1, "classes": ["a", "b"], "matrix": [[0, 1], [1, 0]]}


def test_json_minimal_reads(tmp_path):
    m = read_metric(_json_file(tmp_path, {"classes": ["a", "b"], "matrix": [[0, 1.5], [2, 0]]}))
    assert m.classes == ("a", "b") and m.matrix.tolist() == [[0.0, 1.5], [2.0, 0.0]]
    assert m.provenance == Provenance(source="file")


@pytest.mark.parametrize(
    ("payload", "pattern"),
    [
        ([["a", "b"], [[0, 1], [1, 0]]], "expected an object with 'classes' and 'matrix'"),
        ({"classes": ["a", "b"]}, "expected an object with 'classes' and 'matrix'"),
        ({**GOOD, "format": "something-else"}, "format is 'something-else'"),
        ({**GOOD, "classes": "ab"}, "'classes' must be a list of strings"),
        ({**GOOD, "classes": ["a", 2]}, "'classes' must be a list of strings"),
        ({**GOOD, "matrix": [0, 1]}, "'matrix' must be a list of rows"),
        ({**GOOD, "matrix": {"a": [0, 1]}}, "'matrix' must be a list of rows"),
        ({**GOOD, "matrix": [[0, 1], [1]]}, "not square"),
        ({**GOOD, "matrix": [[0, 1, 2], [1, 0, 2]]}, "not square"),
        ({**GOOD, "matrix": [[0, "x"], [1, 0]]}, "not a number"),
        ({**GOOD, "matrix": [[0, [1]], [1, 0]]}, "not a number"),
        ({**GOOD, "classes": ["a", "a"]}, "duplicate class names: a"),
        ({**GOOD, "classes": ["a", "b", "c"]}, "2×2 but 3 class names"),
        ({**GOOD, "provenance": {"source": "x", "bogus": 1}}, "unknown provenance keys: bogus"),
        ({**GOOD, "provenance": {"measure": "x"}}, "source"),
    ],
)
def test_malformed_json(tmp_path, payload, pattern):
    with pytest.raises(MetricFormatError, match=pattern):
        read_metric(_json_file(tmp_path, payload))


@pytest.mark.parametrize("raw", ["{not json", "", b"\xff\xfe".decode("latin-1")])
def test_invalid_json_text(tmp_path, raw):
    with pytest.raises(MetricFormatError, match="not valid JSON"):
        read_metric(_json_file(tmp_path, None, raw=raw))


@pytest.mark.parametrize("entry", [None, "1", True])
def test_json_matrix_entries_must_be_json_numbers(tmp_path, entry):
    # null, a numeric string and a boolean are not numbers; numpy would silently
    # turn them into nan, 1.0 and 1.0.
    payload = {**GOOD, "matrix": [[0, entry], [1, 0]]}
    with pytest.raises(MetricFormatError, match="not a number"):
        read_metric(_json_file(tmp_path, payload))


def test_json_layout(tmp_path):
    m = LabelMetric(("a", "b"), [[0, 1], [2.5, 0]], Provenance(source="s"))
    path = write_metric(m, tmp_path / "m.json")
    data = json.loads(path.read_text())
    assert data == {
        "format": "wpgdkit-label-metric", "version": 1, "classes": ["a", "b"], "matrix": [[0, 1], [2.5, 0]],
        "provenance": Provenance(source="s").to_dict(),
    }
    # Integral values are JSON integers.
    assert [type(v) for v in data["matrix"][0]] == [int, int]
    assert path.read_text().endswith("\n")


# --- NPY -------------------------------------------------------------------------------------


def test_npy_without_classes(tmp_path):
    path = tmp_path / "m.npy"
    np.save(path, np.zeros((2, 2)))
    with pytest.raises(MetricFormatError, match="give the class names"):
        read_metric(path)


def test_npy_pickled_object_array_refused(tmp_path):
    path = tmp_path / "m.npy"
    np.save(path, np.array([[0, {"a": 1}], [1, 0]], dtype=object), allow_pickle=True)
    with pytest.raises(MetricFormatError, match="not a readable .npy array"):
        read_metric(path, classes=["a", "b"])


@pytest.mark.parametrize(
    "array", [np.array([["0", "1"], ["1", "0"]]), np.zeros((2, 2), dtype=complex), np.zeros((2, 2), dtype=bool)]
)
def test_npy_non_real_dtypes_refused(tmp_path, array):
    path = tmp_path / "m.npy"
    np.save(path, array)
    with pytest.raises(MetricFormatError, match="expected real numbers"):
        read_metric(path, classes=["a", "b"])


def test_npy_not_an_npy_file(tmp_path):
    path = tmp_path / "m.npy"
    path.write_text("hello")
    with pytest.raises(MetricFormatError, match="not a readable .npy array"):
        read_metric(path, classes=["a", "b"])


def test_npy_class_count_or_duplicates(tmp_path):
    path = tmp_path / "m.npy"
    np.save(path, np.zeros((2, 2)))
    with pytest.raises(MetricFormatError, match="3 class names"):
        read_metric(path, classes=["a", "b", "c"])
    with pytest.raises(MetricFormatError, match="duplicate class names: a"):
        read_metric(path, classes=["a", "a"])
    with pytest.raises(MetricFormatError, match="square"):
        np.save(path, np.zeros(2))
        read_metric(path, classes=["a", "b"])


# --- class lists -----------------------------------------------------------------------------


def test_read_class_list(tmp_path):
    path = tmp_path / "classes.txt"
    path.write_text("cat\n\n  dog \nT-shirt/top\n", encoding="utf-8")
    assert read_class_list(path) == ["cat", "dog", "T-shirt/top"]
    path.write_text("cat\ndog\ncat\n")
    with pytest.raises(MetricFormatError, match="duplicate class names: cat"):
        read_class_list(path)
    with pytest.raises(DataNotFoundError, match="not found"):
        read_class_list(tmp_path / "missing.txt")


# --- file and extension errors ------------------------------------------------------------------


@pytest.mark.parametrize("name", ["m.txt", "m", "m.csv.gz", "m.npz"])
def test_unknown_extension(tmp_path, name):
    path = tmp_path / name
    path.write_text(",a\na,0\n")
    with pytest.raises(MetricFormatError, match=r"\.csv, \.json, \.npy"):
        read_metric(path)
    target = tmp_path / ("out-" + name)
    with pytest.raises(MetricFormatError, match=r"\.csv, \.json, \.npy"):
        write_metric(awkward_metric(), target)
    assert not target.exists()


def test_extension_is_case_insensitive(tmp_path):
    m = awkward_metric()
    back = read_metric(write_metric(m, tmp_path / "M.CSV"))
    assert_bitwise_equal(back.matrix, m.matrix)


@pytest.mark.parametrize("suffix", FORMATS)
def test_missing_file(tmp_path, suffix):
    path = tmp_path / f"missing{suffix}"
    with pytest.raises(DataNotFoundError, match="not found"):
        read_metric(path, classes=["a", "b"])
    with pytest.raises(FileNotFoundError):  # also the builtin family
        read_metric(path, classes=["a", "b"])


def test_missing_class_list_file(tmp_path):
    path = write_metric(awkward_metric(), tmp_path / "m.npy")
    with pytest.raises(DataNotFoundError, match="class list"):
        read_metric(path, classes=tmp_path / "nope.txt")


# --- failing writes leave nothing behind ------------------------------------------------------------


@pytest.mark.parametrize("suffix", FORMATS)
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_metric_is_not_written(tmp_path, suffix, bad):
    mat = np.zeros((2, 2))
    mat[0, 1] = bad
    m = LabelMetric(("a", "b"), mat)
    path = tmp_path / f"m{suffix}"
    with pytest.raises(MetricFormatError, match="refusing to write .* must be finite"):
        write_metric(m, path)
    assert not path.exists()
    assert only_files(tmp_path) == []


@pytest.mark.parametrize("suffix", FORMATS)
def test_failed_write_keeps_previous_file(tmp_path, suffix):
    good = awkward_metric()
    path = write_metric(good, tmp_path / f"m{suffix}")
    before = path.read_bytes()
    bad = LabelMetric(good.classes, np.full((4, 4), np.nan))
    with pytest.raises(MetricFormatError):
        write_metric(bad, path)
    assert path.read_bytes() == before
    assert only_files(tmp_path) == [path.name]


def test_npy_write_crashing_midway_leaves_no_partial_file(tmp_path, monkeypatch):
    def crash(fh, array, allow_pickle=True):
        fh.write(b"\x93NUMPY partial")
        raise OSError("disk full")

    monkeypatch.setattr(lmio.np, "save", crash)
    path = tmp_path / "m.npy"
    with pytest.raises(OSError, match="disk full"):
        write_metric(awkward_metric(), path)
    assert only_files(tmp_path) == []


def test_csv_write_crashing_midway_leaves_no_partial_file(tmp_path, monkeypatch):
    def crash(metric):
        raise RuntimeError("serialiser broke")

    monkeypatch.setattr(lmio, "metric_to_csv", crash)
    path = tmp_path / "m.csv"
    path.write_text("old")
    with pytest.raises(RuntimeError):
        write_metric(awkward_metric(), path)
    assert path.read_text() == "old" and only_files(tmp_path) == ["m.csv"]


# --- hardening: text encodings, CSV grammar, JSON versions and nesting ----------------------------


def test_class_list_not_utf8_is_one_error(tmp_path):
    path = tmp_path / "classes.txt"
    path.write_bytes(b"cat\n\xffdog\n")
    with pytest.raises(WpgdkitError, match=r"not UTF-8 text \(byte 4 is 0xff\)"):
        read_class_list(path)


def test_class_list_bom_is_dropped_and_folder_refused(tmp_path):
    path = tmp_path / "classes.txt"
    path.write_bytes(b"\xef\xbb\xbfcat\ndog\n")
    assert read_class_list(path) == ["cat", "dog"]
    with pytest.raises(WpgdkitError, match="is a folder, not a file"):
        read_class_list(tmp_path)


def test_class_list_name_too_long_names_the_line(tmp_path):
    path = tmp_path / "classes.txt"
    path.write_text("cat\n" + "d" * (MAX_CLASS_NAME + 1) + "\n")
    with pytest.raises(MetricFormatError, match=r"line 2: class name longer than 1,000"):
        read_class_list(path)


def test_json_metric_not_utf8(tmp_path):
    path = tmp_path / "m.json"
    path.write_bytes(b'{"classes": ["\xff", "b"], "matrix": [[0, 1], [1, 0]]}')
    with pytest.raises(MetricFormatError, match="not UTF-8"):
        read_metric(path)


@pytest.mark.parametrize("length", [MAX_CLASS_NAME + 1, 131_073, 300_000])
def test_csv_overlong_class_name_is_one_error(tmp_path, length):
    # Over 131,072 characters Python's csv module raises _csv.Error (field larger than field limit).
    path = tmp_path / "m.csv"
    name = "x" * length
    path.write_text(f",a,{name}\na,0,1\n{name},1,0\n")
    with pytest.raises(MetricFormatError, match=r"line 1") as info:
        read_metric(path)
    assert "1,000" in str(info.value)
    assert csv.field_size_limit() == 131_072  # the process-wide limit is left alone


def test_csv_at_most_max_class_name_reads(tmp_path):
    name = "x" * MAX_CLASS_NAME
    m = LabelMetric(("a", name), [[0, 1], [1, 0]])
    assert read_metric(write_metric(m, tmp_path / "m.csv")).classes == ("a", name)


@pytest.mark.parametrize(
    ("cell", "pattern"),
    [
        ("1_000", r"'1_000' is not a number"),
        ("\u0663", r"'\u0663' is not a number"),  # an Arabic-Indic digit: float() takes it
        ("0x10", r"'0x10' is not a number"),
        ("1e", r"'1e' is not a number"),
        ("inf", r"'inf' is not a finite number"),
        ("-Infinity", r"'-Infinity' is not a finite number"),
        ("nan", r"'nan' is not a finite number"),
        ("1e400", r"'1e400' overflows a double"),
    ],
)
def test_csv_numbers_follow_a_strict_decimal_grammar(tmp_path, cell, pattern):
    path = tmp_path / "m.csv"
    path.write_text(f",a,b\na,0,{cell}\nb,1,0\n", encoding="utf-8")
    with pytest.raises(MetricFormatError, match=r"line 2, column 'b': " + pattern):
        read_metric(path)


@pytest.mark.parametrize(("cell", "value"), [(" 1.5 ", 1.5), (".5", 0.5), ("2.", 2.0), ("+2e-3", 0.002), ("1E+2", 100.0)])
def test_csv_plain_decimals_read(tmp_path, cell, value):
    path = tmp_path / "m.csv"
    path.write_text(f",a,b\na,0,{cell}\nb,{cell},0\n")
    assert read_metric(path).matrix[0, 1] == value


@pytest.mark.parametrize(
    ("version", "pattern"),
    [
        (2, "metric format version 2 is newer than this wpgdkit reads"),
        (99, "version 99 is newer"),
        ("1", "'version' must be a whole number"),
        (1.5, "'version' must be a whole number"),
        (True, "'version' must be a whole number"),
        (0, "'version' must be a whole number"),
    ],
)
def test_json_version_is_checked(tmp_path, version, pattern):
    path = tmp_path / "m.json"
    path.write_text(json.dumps({"format": "wpgdkit-label-metric", "version": version, "classes": ["a", "b"],
                                "matrix": [[0, 1], [1, 0]]}))
    with pytest.raises(MetricFormatError, match=pattern):
        read_metric(path)


@pytest.mark.parametrize("where", ["top", "provenance"])
def test_deeply_nested_json_is_one_error(tmp_path, where):
    path = tmp_path / "m.json"
    deep = "[" * 100_000 + "]" * 100_000
    if where == "top":
        path.write_text(deep)
    else:
        path.write_text('{"classes": ["a", "b"], "matrix": [[0, 1], [1, 0]], '
                        '"provenance": {"source": "x", "parameters": {"p": ' + deep + "}}}")
    with pytest.raises(MetricFormatError, match="nested too deeply"):
        read_metric(path)


def test_moderately_nested_provenance_parameters_are_refused(tmp_path):
    path = tmp_path / "m.json"
    path.write_text('{"classes": ["a", "b"], "matrix": [[0, 1], [1, 0]], '
                    '"provenance": {"source": "x", "parameters": {"p": ' + "[" * 200 + "]" * 200 + "}}}")
    with pytest.raises(MetricFormatError, match="nest deeper than 32 levels"):
        read_metric(path)


@pytest.mark.parametrize(
    ("raw", "pattern"),
    [
        ('{"classes": ["a", "b"], "matrix": [[0, NaN], [1, 0]]}', "NaN is not a JSON number"),
        ('{"classes": ["a", "b"], "matrix": [[0, Infinity], [1, 0]]}', "Infinity is not a JSON number"),
        ('{"classes": ["a", "b"], "matrix": [[0, 1' + "0" * 400 + '], [1, 0]]}', r"matrix\[0\]\[1\] overflows a double"),
        ('{"classes": ["a", "b"], "matrix": [[0, 1' + "0" * 5000 + '], [1, 0]]}', "not valid JSON"),
    ],
)
def test_json_numbers_beyond_a_double(tmp_path, raw, pattern):
    path = tmp_path / "m.json"
    path.write_text(raw)
    with pytest.raises(MetricFormatError, match=pattern):
        read_metric(path)


@pytest.mark.parametrize(
    ("provenance", "pattern"),
    [
        ({"source": 3}, "provenance 'source' must be a string, got a number"),
        ({"source": "x", "measure": ["path"]}, "provenance 'measure' must be a string or null, got a list"),
        ({"source": "x", "dataset": {"a": 1}}, "'dataset' must be a string or null, got an object"),
        ({"source": "x", "tool_version": None}, "'tool_version' must be a string, got null"),
        ({"source": "x", "command": True}, "'command' must be a string or null, got a boolean"),
        ({"source": "x", "parameters": [1, 2]}, "'parameters' must be an object, got a list"),
        ({"source": "x", "parameters": "seed=1"}, "'parameters' must be an object, got a string"),
    ],
)
def test_provenance_field_types_are_checked(tmp_path, provenance, pattern):
    path = tmp_path / "m.json"
    path.write_text(json.dumps({"classes": ["a", "b"], "matrix": [[0, 1], [1, 0]], "provenance": provenance}))
    with pytest.raises(MetricFormatError, match=pattern) as info:
        read_metric(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize(
    ("value", "pattern"),
    [(-1.0, "is negative"), (1e101, "is too large: entries must be at most 1e\\+100")],
)
@pytest.mark.parametrize("suffix", FORMATS)
def test_negative_or_huge_metric_is_not_written(tmp_path, suffix, value, pattern):
    mat = np.zeros((2, 2))
    mat[0, 1] = value
    path = tmp_path / f"m{suffix}"
    with pytest.raises(MetricFormatError, match="refusing to write .*" + pattern):
        write_metric(LabelMetric(("a", "b"), mat), path)
    assert only_files(tmp_path) == []


# --- class names: control characters and non-lists (regressions) ------------------------------


@pytest.mark.parametrize("char", ["\x00", "\x01", "\t", "\x1b", "\x1f", "\x7f", "\x80", "\x9f"])
def test_control_characters_in_csv_class_names_are_refused(tmp_path, char):
    path = tmp_path / "m.csv"
    path.write_text(f",a,b{char}c\na,0,1\nb{char}c,1,0\n", encoding="utf-8")
    with pytest.raises(MetricFormatError, match=rf"line 1: class name at position 1 holds control character U\+{ord(char):04X}"):
        read_metric(path)


def test_control_characters_in_json_class_names_are_refused(tmp_path):
    path = tmp_path / "m.json"
    path.write_text(json.dumps({"classes": ["a", "b\u0000"], "matrix": [[0, 1], [1, 0]]}), encoding="utf-8")
    with pytest.raises(MetricFormatError, match=r"U\+0000"):
        read_metric(path)


def test_control_characters_in_a_class_list_name_the_line(tmp_path):
    path = tmp_path / "classes.txt"
    path.write_text("cat\n\ndog\x00\n", encoding="utf-8")
    with pytest.raises(MetricFormatError, match=r"class name at line 3 holds control character U\+0000"):
        read_class_list(path)


def test_non_control_unicode_class_names_are_kept(tmp_path):
    path = tmp_path / "m.csv"
    path.write_text(",café,naïve ü,日本\ncafé,0,1,1\nnaïve ü,1,0,1\n日本,1,1,0\n", encoding="utf-8")
    assert read_metric(path).classes == ("café", "naïve ü", "日本")


@pytest.mark.parametrize("classes", ["cat,dog,truck", {"cat": 1}, 3, None])
def test_json_classes_that_are_not_a_list_are_refused(tmp_path, classes):
    path = tmp_path / "m.json"
    path.write_text(json.dumps({"classes": classes, "matrix": [[0, 1, 1], [1, 0, 1], [1, 1, 0]]}), encoding="utf-8")
    with pytest.raises(MetricFormatError, match="'classes' must be a list of strings"):
        read_metric(path)


@pytest.mark.parametrize("classes", ["cat,dog,truck", b"ab", {"a", "b"}])
def test_check_class_names_refuses_a_non_list(classes):
    # A string would otherwise be checked character by character ("duplicate class names: ,, c, t").
    with pytest.raises(MetricFormatError, match="must be a list of strings"):
        check_class_names(classes, "x")


@pytest.mark.parametrize("suffix", [".csv", ".json", ".npy"])
def test_metric_file_bytes_are_what_write_metric_writes_and_read_back(tmp_path, suffix):
    rng = np.random.default_rng(0)
    c = rng.random((4, 4))
    c = (c + c.T) / 2
    np.fill_diagonal(c, 0.0)
    metric = LabelMetric(("a", "b", "c", "d"), c)
    path = tmp_path / f"m{suffix}"
    data = lmio.metric_file_bytes(metric, path)
    assert not path.exists()  # computing the bytes writes nothing
    lmio.write_metric(metric, path)
    assert path.read_bytes() == data
    assert lmio.metric_file_bytes(metric, path) == data  # deterministic
    back = lmio.read_metric(path, classes=list(metric.classes) if suffix == ".npy" else None)
    np.testing.assert_array_equal(back.matrix, c)
