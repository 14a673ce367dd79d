"""The registered models described for a dataset (wpgdkit.models.describe)."""

from __future__ import annotations

import pytest

from wpgdkit.errors import UnknownNameError
from wpgdkit.models import describe_models, list_models, model_parameter_count


def test_one_row_per_model_in_registration_order_for_mnist():
    rows = describe_models("mnist")
    assert [row["name"] for row in rows] == list_models()
    by_name = {row["name"]: row for row in rows}
    # 28·28 inputs → 10 classes, plus 10 biases.
    assert by_name["linear"] == {
        "name": "linear", "description": by_name["linear"]["description"], "supported_inputs": "any",
        "input_shapes": None, "parameters": 28 * 28 * 10 + 10, "note": None,
    }
    wrn = by_name["wrn-28-10"]
    assert wrn["parameters"] is None and wrn["note"] == "needs 3×32×32 or 3×64×64"
    assert wrn["input_shapes"] == [[3, 32, 32], [3, 64, 64]]


def test_counts_for_cifar10():
    by_name = {row["name"]: row for row in describe_models("cifar10")}
    assert by_name["linear"]["parameters"] == 3 * 32 * 32 * 10 + 10
    assert by_name["wrn-28-10"]["parameters"] == 36_479_194
    assert by_name["wrn-28-10"]["note"] is None


def test_model_parameter_count_on_a_toy_shape():
    # mlp: 2 → 256 → 256 → 3, weights and biases.
    assert model_parameter_count("mlp", num_classes=3, input_shape=(2,)) == (2 * 256 + 256 + 256 * 256 + 256 + 256 * 3 + 3, None)
    assert model_parameter_count("wrn-16-10", num_classes=3, input_shape=(2,)) == (None, "needs 3×32×32 or 3×64×64")


def test_unknown_dataset():
    with pytest.raises(UnknownNameError, match="imagenet"):
        describe_models("imagenet")
