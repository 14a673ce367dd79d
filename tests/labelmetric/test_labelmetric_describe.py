"""Describing a metric: neighbours, origin and the one-line summary (wpgdkit.labelmetric.describe)."""

from __future__ import annotations

import pytest

from wpgdkit.errors import WpgdkitError
from wpgdkit.labelmetric import LabelMetric, Provenance, metric_origin, metric_summary, nearest_and_farthest

# Row i is read: from a, b costs 1, c costs 3, d costs 3 (a tie: label order decides).
MATRIX = [
    [0, 1, 3, 3],
    [1, 0, 2, 5],
    [3, 2, 0, 4],
    [3, 5, 4, 0],
]


def _metric(provenance: Provenance | None = None) -> LabelMetric:
    return LabelMetric(("a", "b", "c", "d"), MATRIX, provenance or Provenance(source="file"))


def test_nearest_and_farthest_by_hand():
    out = nearest_and_farthest(_metric(), top=2)
    assert [entry["class"] for entry in out] == ["a", "b", "c", "d"]
    assert out[0] == {"class": "a", "nearest": [("b", 1.0), ("c", 3.0)], "farthest": [("d", 3.0), ("c", 3.0)]}
    assert out[1] == {"class": "b", "nearest": [("a", 1.0), ("c", 2.0)], "farthest": [("d", 5.0), ("c", 2.0)]}
    assert out[2] == {"class": "c", "nearest": [("b", 2.0), ("a", 3.0)], "farthest": [("d", 4.0), ("a", 3.0)]}
    assert out[3] == {"class": "d", "nearest": [("a", 3.0), ("c", 4.0)], "farthest": [("b", 5.0), ("c", 4.0)]}
    assert all(type(cost) is float for entry in out for _, cost in entry["nearest"] + entry["farthest"])


def test_top_larger_than_the_other_classes_lists_them_all():
    out = nearest_and_farthest(_metric(), top=10)
    assert [name for name, _ in out[0]["nearest"]] == ["b", "c", "d"]
    assert [name for name, _ in out[0]["farthest"]] == ["d", "c", "b"]


def test_rows_are_read_for_an_asymmetric_metric():
    metric = LabelMetric(("x", "y", "z"), [[0, 1, 2], [9, 0, 1], [2, 8, 0]])
    out = nearest_and_farthest(metric, top=1)
    assert [(e["nearest"], e["farthest"]) for e in out] == [
        ([("y", 1.0)], [("z", 2.0)]),
        ([("z", 1.0)], [("x", 9.0)]),
        ([("x", 2.0)], [("y", 8.0)]),
    ]


@pytest.mark.parametrize("top", [0, -1, 1.5, True, "2"])
def test_top_must_be_a_positive_whole_number(top):
    with pytest.raises(WpgdkitError, match="top must be a whole number of at least 1"):
        nearest_and_farthest(_metric(), top=top)


@pytest.mark.parametrize(
    "provenance, expected",
    [
        (Provenance(source="file"), ""),  # a CSV read from disk records nothing
        (Provenance(source="file", parameters={"path": "m.csv"}), ""),
        (Provenance(source="file", dataset="toy"), "file, dataset toy"),
        (Provenance(source="file", command="wpgdkit metric build --source file --input m.csv"), "file"),
        (Provenance(source="wordnet", measure="path", dataset="cifar10"), "wordnet/path, dataset cifar10"),
        (Provenance(source="uniform"), "uniform"),
        (Provenance(source="confusion", measure="neglog"), "confusion/neglog"),
    ],
)
def test_metric_origin(provenance, expected):
    assert metric_origin(_metric(provenance)) == expected


def test_metric_summary_ranges_over_the_off_diagonal():
    metric = _metric(Provenance(source="wordnet", measure="path"))
    assert metric_summary(metric) == "4 classes, wordnet/path, entries 1..5"
    scaled = LabelMetric(("a", "b"), [[0, 0.123456], [0.123456, 0]], Provenance(source="uniform"))
    assert metric_summary(scaled) == "2 classes, uniform, entries 0.1235..0.1235"
