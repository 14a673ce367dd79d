"""`wpgdkit models` through typer's CliRunner, on an app of its own."""

from __future__ import annotations

import json

import pytest
import typer
from typer.testing import CliRunner

from wpgdkit.cli.models import models
from wpgdkit.models import list_models

runner = CliRunner()
app = typer.Typer()
app.command("models")(models)
app.command("other")(lambda: None)  # two commands, so "models" is a subcommand as in the real CLI

WIDE = {"COLUMNS": "250"}  # no wrapping of the table's cells


def test_table_mentions_every_model():
    result = runner.invoke(app, ["models", "--parameters"], env=WIDE)
    assert result.exit_code == 0, result.output
    for name in list_models():
        assert name in result.stdout
    assert "36,479,194" in result.stdout and "cifar10" in result.stdout


def test_json_gives_counts():
    result = runner.invoke(app, ["models", "--parameters", "--json", "-"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["dataset"] == "cifar10" and payload["num_classes"] == 10 and payload["input_shape"] == [3, 32, 32]
    counts = {row["name"]: row["parameters"] for row in payload["models"]}
    assert list(counts) == list_models()
    assert counts["wrn-28-10"] == 36_479_194 and counts["wrn-16-10"] == 17_116_634
    assert counts["linear"] == 3 * 32 * 32 * 10 + 10


def test_json_to_a_file_also_prints_the_table(tmp_path):
    out = tmp_path / "models.json"
    result = runner.invoke(app, ["models", "--dataset", "mnist", "--parameters", "--json", str(out)], env=WIDE)
    assert result.exit_code == 0, result.output
    counts = {row["name"]: row["parameters"] for row in json.loads(out.read_text())["models"]}
    assert counts["linear"] == 7850 and counts["wrn-28-10"] is None
    assert "wrn-28-10" in result.stdout


def test_toy_dataset_marks_image_models_not_applicable():
    result = runner.invoke(app, ["models", "--dataset", "toy", "--parameters"], env=WIDE)
    assert result.exit_code == 0, result.output
    lines = {line.split()[1]: line for line in result.stdout.splitlines() if line.strip()[:1] == "│"}
    for name in ("small-cnn", "wrn-16-10", "wrn-28-10", "wrn-40-10"):
        assert "n/a" in lines[name]
    assert "n/a (needs 3×32×32 or 3×64×64)" in lines["wrn-28-10"]
    assert "n/a" not in lines["mlp"] and "n/a" not in lines["linear"]
    payload = json.loads(runner.invoke(app, ["models", "--dataset", "toy", "--parameters", "--json", "-"]).stdout)
    by_name = {row["name"]: row for row in payload["models"]}
    assert by_name["wrn-40-10"]["parameters"] is None and "3×32×32" in by_name["wrn-40-10"]["note"]
    assert by_name["mlp"]["parameters"] == 2 * 256 + 256 + 256 * 256 + 256 + 256 * 3 + 3


@pytest.mark.parametrize("dataset", ["tiny-imagenet", "cifar100"])
def test_other_datasets(dataset):
    payload = json.loads(runner.invoke(app, ["models", "--dataset", dataset, "--parameters", "--json", "-"]).stdout)
    # Every model for images has a size there; conv1d takes series only.
    assert all(row["parameters"] is not None for row in payload["models"] if row["name"] != "conv1d")


def test_without_parameters_no_count_is_made():
    # The default listing needs no torch (tests/cli/test_startup_imports.py checks that): no count, no column.
    result = runner.invoke(app, ["models"], env=WIDE)
    assert result.exit_code == 0, result.output
    assert "wrn-28-10" in result.stdout and "3×32×32 or 3×64×64" in result.stdout
    assert "parameters" not in result.stdout and "36,479,194" not in result.stdout
    payload = json.loads(runner.invoke(app, ["models", "--json", "-"]).stdout)
    assert [row["name"] for row in payload["models"]] == list_models()
    assert all("parameters" not in row and "note" not in row for row in payload["models"])


def test_unknown_dataset_is_a_usage_error():
    from wpgdkit.cli import app as wpgdkit_app  # the real app turns library errors into one line and exit 2

    result = runner.invoke(wpgdkit_app, ["models", "--dataset", "imagenet"])
    assert result.exit_code == 2
    assert "unknown dataset 'imagenet'" in result.stderr and "imagefolder:PATH" in result.stderr
