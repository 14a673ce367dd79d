"""LabelMetric, Provenance and class selection (wpgdkit.labelmetric.core)."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from wpgdkit.errors import MetricFormatError, UnknownNameError, WpgdkitError
from wpgdkit.labelmetric.core import LabelMetric, Provenance, resolve_class_indices

ABC = ("a", "b", "c")
# A small asymmetric matrix: every entry distinct, so a wrong index shows.
M = np.array([[0.0, 1.0, 2.0], [3.0, 0.0, 4.0], [5.0, 6.0, 0.0]])


def metric(matrix=M, classes=ABC, **prov) -> LabelMetric:
    return LabelMetric(classes, matrix, Provenance(source="test", **prov))


# --- construction ----------------------------------------------------------------


def test_construction_converts_types_and_copies():
    source = [[0, 1], [1, 0]]  # ints in a list
    m = LabelMetric(["x", 7], source)
    assert m.classes == ("x", "7")
    assert m.matrix.dtype == np.float64 and m.matrix.tolist() == [[0.0, 1.0], [1.0, 0.0]]
    assert m.num_classes == 2
    assert m.provenance == Provenance(source="unknown")


def test_matrix_is_a_copy_of_the_input():
    arr = M.copy()
    m = metric(arr)
    arr[0, 1] = 99.0
    assert m.matrix[0, 1] == 1.0


@pytest.mark.parametrize("bad", [np.zeros((2, 3)), np.zeros(3), np.zeros((3, 3, 1)), np.zeros((3, 2))])
def test_non_square_rejected(bad):
    with pytest.raises(MetricFormatError, match="square"):
        LabelMetric(ABC[: bad.shape[0]], bad)


def test_size_must_match_class_count():
    with pytest.raises(MetricFormatError, match="3 class names"):
        LabelMetric(ABC, np.zeros((2, 2)))
    with pytest.raises(MetricFormatError, match="2 class names"):
        LabelMetric(("a", "b"), np.zeros((3, 3)))


def test_matrix_is_read_only():
    m = metric()
    with pytest.raises(ValueError):
        m.matrix[0, 1] = 5.0
    with pytest.raises(ValueError):
        m.matrix[:] = 0.0
    with pytest.raises(ValueError):
        np.fill_diagonal(m.matrix, 1.0)
    assert m.matrix[0, 1] == 1.0


def test_dataclass_is_frozen():
    m = metric()
    with pytest.raises(dataclasses.FrozenInstanceError):
        m.matrix = np.zeros((3, 3))  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        m.classes = ("x", "y", "z")  # type: ignore[misc]


def test_equality():
    assert metric() == metric()
    assert metric() != metric(M * 2)
    assert metric() != metric(classes=("a", "b", "d"))
    assert metric() != metric(dataset="cifar10")  # provenance counts
    assert metric().__eq__("not a metric") is NotImplemented


# --- subset ----------------------------------------------------------------------


def test_subset_by_names_in_given_order():
    s = metric().subset(["c", "a"])
    assert s.classes == ("c", "a")
    # Hand-picked from M: rows/cols (c, a) = (2, 0).
    assert s.matrix.tolist() == [[0.0, 5.0], [2.0, 0.0]]
    assert s.provenance == metric().provenance
    assert not s.matrix.flags.writeable


@pytest.mark.parametrize("selection", [[2, 0], ["2", "0"], [" 2 ", "0"], ["c", 0]])
def test_subset_by_indices_and_digit_strings(selection):
    s = metric().subset(selection)
    assert s.classes == ("c", "a") and s.matrix.tolist() == [[0.0, 5.0], [2.0, 0.0]]


def test_subset_all_classes_permuted():
    s = metric().subset(["b", "c", "a"])
    perm = [1, 2, 0]
    np.testing.assert_array_equal(s.matrix, M[np.ix_(perm, perm)])


def test_digit_names_select_by_name_mnist_like():
    digits = tuple(str(d) for d in range(10))
    rng = np.random.default_rng(0)
    mat = rng.random((10, 10))
    m = LabelMetric(digits, mat)
    s = m.subset(["3", "5"])
    assert s.classes == ("3", "5")
    assert s.matrix.tolist() == [[mat[3, 3], mat[3, 5]], [mat[5, 3], mat[5, 5]]]


def test_name_wins_over_index_for_digit_names():
    # Names are digits but not in index order: "0" is at position 2.
    m = LabelMetric(("1", "2", "0"), M)
    assert resolve_class_indices(m.classes, ["0"]) == [2]
    assert resolve_class_indices(m.classes, ["1", "0"]) == [0, 2]
    s = m.subset(["0", "1"])
    assert s.classes == ("0", "1") and s.matrix.tolist() == [[0.0, 5.0], [2.0, 0.0]]
    # A digit that is not a name is an index.
    m2 = LabelMetric(("x", "y", "5"), M)
    assert resolve_class_indices(m2.classes, ["5", "1"]) == [2, 1]


def test_unknown_class_name():
    with pytest.raises(UnknownNameError, match=r"unknown class 'dog'.*a, b, c"):
        metric().subset(["a", "dog"])


def test_unknown_class_message_is_shortened_for_many_classes():
    names = tuple(f"c{i}" for i in range(20))
    with pytest.raises(UnknownNameError) as info:
        resolve_class_indices(names, ["nope"])
    message = str(info.value)
    assert "c11" in message and "c12" not in message and message.endswith(", ...")
    assert not message.startswith('"')  # KeyError's quoting is undone


@pytest.mark.parametrize("index", [3, "3", -1, "-1", 100])
def test_index_out_of_range(index):
    with pytest.raises(UnknownNameError, match="out of range 0..2"):
        metric().subset([index])


@pytest.mark.parametrize("selection", [["a", "a"], ["a", 0], [1, "b"], ["2", 2, "c"]])
def test_class_selected_twice(selection):
    with pytest.raises(MetricFormatError, match="selected twice"):
        metric().subset(selection)


def test_duplicate_message_names_the_class():
    with pytest.raises(MetricFormatError, match=r"selected twice: b$"):
        resolve_class_indices(ABC, ["b", "a", 1])


def test_empty_selection():
    with pytest.raises(MetricFormatError, match="empty"):
        metric().subset([])


def test_errors_are_wpgdkit_errors():
    for selection in (["zzz"], [9], ["a", "a"], []):
        with pytest.raises(WpgdkitError):
            metric().subset(selection)


def test_non_ascii_digit_selection_raises_a_wpgdkit_error():
    # "²".isdigit() is True but int("²") raises ValueError: the selection must
    # fail with the library's own error (errors.py: "anything else escaping is a bug").
    with pytest.raises(UnknownNameError):
        metric().subset(["²"])


# --- normalisation -----------------------------------------------------------------


def test_normalized_max_hand_checked():
    mat = np.array([[0.0, 2.0, 4.0], [2.0, 0.0, 8.0], [4.0, 8.0, 0.0]])
    m = metric(mat, dataset="d")
    n = m.normalized("max")
    assert n.matrix.tolist() == [[0.0, 0.25, 0.5], [0.25, 0.0, 1.0], [0.5, 1.0, 0.0]]
    assert n.classes == m.classes and n.provenance == m.provenance
    assert m.matrix[1, 2] == 8.0  # the original is unchanged
    assert n.matrix.max() == 1.0


def test_normalized_none_and_default():
    m = metric()
    assert m.normalized("none") is m
    assert m.normalized().matrix.tolist() == (M / 6.0).tolist()


def test_normalized_unknown_mode():
    with pytest.raises(UnknownNameError, match="max, none"):
        metric().normalized("sum")


def test_normalized_all_zero():
    with pytest.raises(MetricFormatError, match="all-zero"):
        metric(np.zeros((3, 3))).normalized("max")


def test_with_provenance():
    m = metric().with_provenance(measure="path", command="x")
    assert m.provenance == Provenance(source="test", measure="path", command="x")
    assert m.classes == ABC and np.array_equal(m.matrix, M)


def test_repr_mentions_size_and_source():
    text = repr(metric())
    assert "K=3" in text and "'test'" in text


# --- provenance ----------------------------------------------------------------------


def test_provenance_round_trip():
    prov = Provenance(
        source="wordnet", measure="path", dataset="cifar10", wordnet_version="3.0",
        parameters={"normalize": "max", "classes": ["cat", "dog"], "limit": 5, "nested": {"a": [1.5, None]}},
        tool_version="9.9", command="wpgdkit metric build --dataset cifar10 --source wordnet",
    )
    data = prov.to_dict()
    assert data == {
        "source": "wordnet", "measure": "path", "dataset": "cifar10", "wordnet_version": "3.0",
        "parameters": {"normalize": "max", "classes": ["cat", "dog"], "limit": 5, "nested": {"a": [1.5, None]}},
        "tool_version": "9.9", "command": "wpgdkit metric build --dataset cifar10 --source wordnet",
    }
    assert Provenance.from_dict(data) == prov
    # Through JSON as well (what the .json format stores).
    assert Provenance.from_dict(json.loads(json.dumps(data))) == prov


def test_provenance_minimal_round_trip():
    prov = Provenance.from_dict({"source": "file"})
    assert prov == Provenance(source="file")
    assert prov.parameters == {} and prov.tool_version == "" and prov.command is None


def test_provenance_to_dict_is_a_copy():
    prov = Provenance(source="s", parameters={"a": 1})
    prov.to_dict()["parameters"]["a"] = 2
    assert prov.parameters == {"a": 1}


def test_provenance_unknown_keys_rejected():
    with pytest.raises(MetricFormatError, match="unknown provenance keys: colour, extra"):
        Provenance.from_dict({"source": "x", "extra": 1, "colour": "red"})


@pytest.mark.parametrize("bad", [{}, {"measure": "path"}, ["source"], "source", None])
def test_provenance_needs_source(bad):
    with pytest.raises(MetricFormatError, match="source"):
        Provenance.from_dict(bad)
