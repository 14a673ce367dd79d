"""Class weights for the cross-entropy outer loss (wpgdkit.training.class_weights)."""

from __future__ import annotations

import hashlib
import json
import math
import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.utils.class_weight import compute_class_weight

from wpgdkit.errors import DataNotFoundError, WpgdkitError
from wpgdkit.training.class_weights import CLASS_WEIGHT_MODES, class_weights_record, resolve_class_weights

CLASSES = ("normal", "fraud", "chargeback")


def _write(tmp_path, text: str, name: str = "weights.csv", encoding: str = "utf-8"):
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return str(path)


def _one_line_error(info, *fragments: str) -> str:
    """The message is one line that the CLI can turn into ``--class-weights must ...``."""
    message = str(info.value)
    assert "\n" not in message, message
    assert re.match(r"class_weights(?= must\b)", message), message
    for fragment in fragments:
        assert fragment in message, (fragment, message)
    return message


def test_none_is_unweighted():
    assert resolve_class_weights(None, torch.tensor([0, 1]), 2) is None
    assert CLASS_WEIGHT_MODES == ("balanced",)


# --- balanced ---------------------------------------------------------------------------


@pytest.mark.parametrize(("seed", "k", "n"), [(0, 2, 50), (1, 3, 200), (2, 5, 1000), (3, 10, 337), (4, 2, 7)])
def test_balanced_is_scikit_learns(seed, k, n):
    rng = np.random.default_rng(seed)
    # Strongly imbalanced: class probabilities 1, 1/2, 1/4, ... normalised, every class present.
    p = 0.5 ** np.arange(k)
    y = np.concatenate([np.arange(k), rng.choice(k, size=n - k, p=p / p.sum())])
    expected = compute_class_weight("balanced", classes=np.arange(k), y=y)
    weights = resolve_class_weights("balanced", torch.from_numpy(y), k)
    assert weights.dtype == torch.float32 and weights.shape == (k,)
    # Compared in float64: equal up to the one rounding to float32 ...
    torch.testing.assert_close(weights.double(), torch.from_numpy(expected), rtol=2**-24, atol=0.0)
    # ... which is exactly the rounding of scikit-learn's float64 values.
    assert torch.equal(weights, torch.from_numpy(expected).float())


def test_balanced_by_hand_and_its_mean_is_one():
    y = torch.tensor([0] * 6 + [1] * 3 + [2] * 1)  # n = 10, K = 3
    weights = resolve_class_weights("balanced", y, 3, classes=CLASSES)
    torch.testing.assert_close(weights, torch.tensor([10 / 18, 10 / 9, 10 / 3]))
    # Every class carries n / K of the total weight; the weights average 1 over the points.
    torch.testing.assert_close(weights[y].double().mean(), torch.tensor(1.0, dtype=torch.float64))


def test_balanced_on_a_balanced_set_is_all_ones():
    assert torch.equal(resolve_class_weights("balanced", torch.arange(4).repeat(5), 4), torch.ones(4))


@pytest.mark.parametrize(
    ("labels", "classes", "fragments"),
    [
        ([0, 0, 2], CLASSES, ["class 'fraud' has none", "'balanced'"]),
        ([0, 0, 0], CLASSES, ["classes 'fraud', 'chargeback' have none"]),
        ([1, 1, 0], None, ["class 2 has none"]),
    ],
)
def test_balanced_refuses_a_class_without_training_points(labels, classes, fragments):
    with pytest.raises(WpgdkitError) as info:
        resolve_class_weights("balanced", torch.tensor(labels), 3, classes=classes)
    _one_line_error(info, "no training points", *fragments)


def test_balanced_lists_at_most_a_dozen_missing_classes():
    with pytest.raises(WpgdkitError) as info:
        resolve_class_weights("balanced", torch.zeros(5, dtype=torch.int64), 200)
    _one_line_error(info, "classes 1, 2, 3", "... (199 in all)")


@pytest.mark.parametrize(
    ("labels", "match"),
    [
        (torch.tensor([0.0, 1.0]), "integer"),
        (torch.tensor([[0, 1]]), "1-D"),
        (torch.tensor([], dtype=torch.int64), "empty"),
        (torch.tensor([0, 3]), r"0\.\.2, found 3"),
        (torch.tensor([-1, 0]), "found -1"),
        (None, "needs the training labels"),
    ],
)
def test_malformed_labels_are_programming_errors(labels, match):
    with pytest.raises(ValueError, match=match):
        resolve_class_weights("balanced", labels, 3)


def test_malformed_arguments_are_programming_errors(tmp_path):
    with pytest.raises(ValueError, match="num_classes"):
        resolve_class_weights("balanced", torch.tensor([0]), 0)
    with pytest.raises(ValueError, match="2 names for num_classes=3"):
        resolve_class_weights("balanced", torch.tensor([0, 1, 2]), 3, classes=("a", "b"))


# --- what the weights mean in the loss --------------------------------------------------


def test_weighted_cross_entropy_is_a_weighted_mean_by_hand():
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    y = torch.tensor([0, 1, 1])
    weights = resolve_class_weights("balanced", torch.tensor([0, 0, 0, 1]), 2)  # 4/(2·3), 4/(2·1)
    w0, w1 = (float(w) for w in weights)  # the float32 values the loss sees
    assert (w0, w1) == (pytest.approx(2 / 3, rel=1e-7), 2.0)
    # ℓ_i = log(Σ_j e^{z_ij}) - z_{i,y_i}
    l0 = math.log(math.exp(2) + 1) - 2
    l1 = math.log(1 + math.e) - 1
    l2 = math.log(2 * math.e) - 1
    by_hand = (w0 * l0 + w1 * l1 + w1 * l2) / (w0 + w1 + w1)  # divided by the batch's weights, not by 3
    loss = F.cross_entropy(logits.double(), y, weight=weights.double())
    assert loss.item() == pytest.approx(by_hand, rel=1e-12)
    assert by_hand != pytest.approx((w0 * l0 + w1 * l1 + w1 * l2) / 3)
    # Only the ratios matter: scaling every weight leaves the loss unchanged.
    scaled = F.cross_entropy(logits.double(), y, weight=10 * weights.double())
    assert scaled.item() == pytest.approx(by_hand, rel=1e-12)
    # reduction="sum" is the numerator alone.
    summed = F.cross_entropy(logits.double(), y, weight=weights.double(), reduction="sum")
    assert summed.item() == pytest.approx(w0 * l0 + w1 * l1 + w1 * l2, rel=1e-12)


# --- files ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "class,weight\nnormal,1\nfraud,25.5\nchargeback,4\n",
        "class,weight\nchargeback,4\nnormal,1\nfraud,25.5\n",  # any order
        "Class , Weight\r\n0,1\r\n1,25.5\r\n2,4\r\n",  # labels, header case and spaces, CRLF
        "# fraud costs 25 times a false alarm\n\nclass,weight\nnormal, 1\n# labels or names\n1,2.55e1\n2,4\n",
        "1\n25.5\n4\n",  # a list in label order, one per line
        "1,25.5,4",  # comma separated
        "1, 25.5\n\n4\n",  # both
        "\ufeff1\n25.5\n4\n",  # a byte-order mark is dropped
    ],
)
def test_file_forms(tmp_path, text):
    weights = resolve_class_weights(_write(tmp_path, text), None, 3, classes=CLASSES)
    assert weights.dtype == torch.float32
    assert torch.equal(weights, torch.tensor([1.0, 25.5, 4.0]))


def test_table_by_index_without_class_names(tmp_path):
    path = _write(tmp_path, "class,weight\n1,3\n0,0.5\n")
    assert torch.equal(resolve_class_weights(path, torch.tensor([0, 1]), 2), torch.tensor([0.5, 3.0]))


def test_table_names_may_hold_commas_when_quoted(tmp_path):
    classes = ("ok", "fault, minor", "fault, major")
    path = _write(tmp_path, 'class,weight\nok,1\n"fault, minor",2\n"fault, major",8\n')
    assert torch.equal(resolve_class_weights(path, None, 3, classes=classes), torch.tensor([1.0, 2.0, 8.0]))


def test_names_win_over_labels_for_digit_names(tmp_path):
    # MNIST-like names that are digits, but not in label order (after --classes 7,3).
    path = _write(tmp_path, "class,weight\n3,2\n7,5\n")
    assert torch.equal(resolve_class_weights(path, None, 2, classes=("7", "3")), torch.tensor([5.0, 2.0]))


def test_a_file_named_like_a_mode(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _write(tmp_path, "2\n1\n", name="balanced")
    labels = torch.tensor([0, 1, 1, 1])
    assert torch.equal(resolve_class_weights("./balanced", labels, 2), torch.tensor([2.0, 1.0]))
    assert torch.equal(resolve_class_weights(tmp_path / "balanced", labels, 2), torch.tensor([2.0, 1.0]))
    assert torch.equal(resolve_class_weights("balanced", labels, 2), torch.tensor([2.0, 2 / 3]))


@pytest.mark.parametrize(
    ("text", "fragments"),
    [
        ("", ["one weight per class", "has none"]),
        ("# only a comment\n\n", ["has none"]),
        ("1\n2\n", ["must list 3 weights", "normal, fraud, chargeback", "has 2"]),
        ("1,2,3,4", ["must list 3 weights", "has 4"]),
        ("1\nabc\n3\n", ["must be numbers", "line 2: 'abc' is not a number"]),
        ("1,,3", ["line 1: an empty value is not a number"]),
        ("label,weight\n0,1\n", ["'label' is not a number", "header line 'class,weight'"]),
        ("1\nnan\n3\n", ["finite and > 0", "line 2 gives class 'fraud' nan"]),
        ("1\n2\ninf\n", ["line 3 gives class 'chargeback' inf"]),
        ("0,1,1", ["finite and > 0", "class 'normal' 0.0"]),
        ("1,-2,1", ["class 'fraud' -2.0"]),
        ("class,weight\nnormal,1\nfraud,2,3\nchargeback,1\n", ["rows 'class,weight'", "line 3 has 3 fields"]),
        ("class,weight\nnormal,1\nfraud,x\nchargeback,1\n", ["line 3: 'x' is not a number"]),
        ("class,weight\nnormal,1\nfraud,0\nchargeback,1\n", ["line 3 gives class 'fraud' 0.0"]),
        ("class,weight\nnormal,1\ndog,2\nchargeback,1\n",
         ["the run's classes", "line 3: unknown class 'dog'", "classes are: normal, fraud, chargeback"]),
        ("class,weight\nnormal,1\n3,2\n", ["unknown class '3'"]),
        ("class,weight\nnormal,1\nfraud,2\nnormal,3\nchargeback,1\n",
         ["each class once", "lines 2 and 4 both give class 'normal'"]),
        ("class,weight\nfraud,2\n0,1\nnormal,3\n", ["lines 3 and 4 both give class 'normal'"]),  # index and name
        ("class,weight\nfraud,2\n", ["every class a weight", "lacks classes 'normal', 'chargeback'"]),
        ("class,weight\n", ["lacks classes 'normal', 'fraud', 'chargeback'"]),
    ],
)
def test_malformed_files(tmp_path, text, fragments):
    path = _write(tmp_path, text)
    with pytest.raises(WpgdkitError) as info:
        resolve_class_weights(path, None, 3, classes=CLASSES)
    _one_line_error(info, path, *fragments)


def test_unknown_index_without_names(tmp_path):
    with pytest.raises(WpgdkitError) as info:
        resolve_class_weights(_write(tmp_path, "class,weight\n0,1\n2,1\n"), None, 2)
    _one_line_error(info, "unknown class '2'; labels are 0..1")


@pytest.mark.parametrize("spec", ["", "  "])
def test_empty_spec(spec):
    with pytest.raises(WpgdkitError) as info:
        resolve_class_weights(spec, torch.tensor([0, 1]), 2)
    _one_line_error(info, "'balanced' or the path of a weights file")


def test_missing_file_is_data_not_found(tmp_path):
    for spec in (str(tmp_path / "nope.csv"), "Balanced"):  # a mode misspelt is looked for as a file
        with pytest.raises(DataNotFoundError) as info:
            resolve_class_weights(spec, torch.tensor([0, 1]), 2)
        _one_line_error(info, "'balanced' or a readable weights file", "not found")


def test_folder_and_non_utf8_files(tmp_path):
    with pytest.raises(WpgdkitError) as info:
        resolve_class_weights(str(tmp_path), None, 2)
    _one_line_error(info, "is a folder")
    path = _write(tmp_path, "1\n2\n\xe9\n", encoding="latin-1")
    with pytest.raises(WpgdkitError) as info:
        resolve_class_weights(path, None, 2)
    _one_line_error(info, "not UTF-8")


# --- the record ---------------------------------------------------------------------------


def test_record_of_none_and_balanced():
    assert class_weights_record(None, None) == {"mode": "none", "weights": None, "sha256": None}
    weights = resolve_class_weights("balanced", torch.tensor([0, 0, 0, 1, 1, 2]), 3)
    record = class_weights_record("balanced", weights)
    assert record["mode"] == "balanced" and record["sha256"] is None
    # The float32 values exactly, as Python floats: the record round-trips through JSON.
    assert record["weights"] == [float(w) for w in weights] and all(type(w) is float for w in record["weights"])
    assert json.loads(json.dumps(record)) == record
    assert torch.equal(torch.tensor(record["weights"], dtype=torch.float32), weights)
    # Before the data is loaded: the mode alone (the data settings fix the labels).
    assert class_weights_record("balanced", None) == {"mode": "balanced", "weights": None, "sha256": None}


def test_record_of_a_file_hashes_its_bytes(tmp_path):
    path = _write(tmp_path, "class,weight\nnormal,1\nfraud,25\nchargeback,4\n")
    weights = resolve_class_weights(path, None, 3, classes=CLASSES)
    record = class_weights_record(path, weights)
    assert record == {"mode": "file", "weights": [1.0, 25.0, 4.0],
                      "sha256": hashlib.sha256((tmp_path / "weights.csv").read_bytes()).hexdigest()}
    assert str(tmp_path) not in json.dumps(record)  # the same file elsewhere is the same run
    # Another file with the same weights is told apart by its hash.
    other = _write(tmp_path, "1\n25\n4\n", name="list.txt")
    other_record = class_weights_record(other, resolve_class_weights(other, None, 3))
    assert other_record["weights"] == record["weights"] and other_record["sha256"] != record["sha256"]


def test_record_of_a_file_gone_since(tmp_path):
    path = _write(tmp_path, "1\n2\n")
    weights = resolve_class_weights(path, None, 2)
    (tmp_path / "weights.csv").unlink()
    with pytest.raises(DataNotFoundError) as info:
        class_weights_record(path, weights)
    _one_line_error(info, "not found")


@pytest.mark.parametrize(
    ("spec", "weights", "match"),
    [
        (None, torch.ones(2), "must be None"),
        ("weights.csv", None, "missing"),
        ("balanced", torch.tensor([1.0, 0.0]), "positive"),
        ("balanced", torch.tensor([1.0, float("nan")]), "finite"),
        ("balanced", torch.ones(2, 2), "1-D"),
        ("balanced", [], "non-empty"),
    ],
)
def test_record_refuses_weights_that_do_not_fit(spec, weights, match):
    with pytest.raises(ValueError, match=match):
        class_weights_record(spec, weights)
