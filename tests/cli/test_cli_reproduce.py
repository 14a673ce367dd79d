"""``wpgdkit reproduce`` on the command line."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from wpgdkit.cli import app

runner = CliRunner()
SMALL = ["--dataset", "toy", "--epochs", "1", "--limit", "200", "--test-limit", "60", "--steps", "2", "--eval-steps", "2"]


def test_reproduce_prints_the_report_and_writes_json(tmp_path):
    out = tmp_path / "results"
    result = runner.invoke(app, ["reproduce", "entropy", *SMALL, "--out", str(out), "--json", str(tmp_path / "r.json")])
    assert result.exit_code == 0, result.output
    assert "Confidence of CE and PGD models" in result.stdout
    assert "report:" in result.stderr and (out / "entropy" / "report.md").is_file()
    assert json.loads((tmp_path / "r.json").read_text())["experiment"] == "entropy"


def test_help_lists_the_experiments():
    result = runner.invoke(app, ["reproduce", "--help"])
    assert result.exit_code == 0
    for name in ("gap-correlation", "p-sweep", "imbalance", "entropy", "quick", "paper"):
        assert name in result.stdout


def test_bad_input_is_one_line(tmp_path, assert_one_line_error):
    assert_one_line_error(runner.invoke(app, ["reproduce", "table-9"]), "table-9")
    assert_one_line_error(runner.invoke(app, ["reproduce", "entropy", "--scale", "huge"]), "--scale")
    assert_one_line_error(runner.invoke(app, ["reproduce", "entropy", *SMALL, "--epochs", "0"]), "--epochs")
    assert_one_line_error(runner.invoke(app, ["reproduce", "entropy", "--eps", "x"]), "--eps")
    target = tmp_path / "file"
    target.write_text("")
    assert_one_line_error(runner.invoke(app, ["reproduce", "entropy", *SMALL, "--out", str(target)]), "not a folder")
    assert_one_line_error(runner.invoke(app, ["reproduce", "p-sweep", *SMALL, "--metric", str(tmp_path / "no.csv"),
                                              "--out", str(tmp_path / "o")]), "not found")
    assert not (tmp_path / "o").exists()
