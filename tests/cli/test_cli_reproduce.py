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


def test_missing_data_is_one_line_before_anything_trains(tmp_path, monkeypatch, assert_one_line_error):
    import wpgdkit.training

    monkeypatch.setattr(wpgdkit.training, "train", lambda *a, **k: (_ for _ in ()).throw(AssertionError("trained")))
    empty = tmp_path / "data"
    empty.mkdir()
    out = tmp_path / "o"
    result = runner.invoke(app, ["reproduce", "p-sweep", "--dataset", "cifar10", "--data-dir", str(empty),
                                 "--out", str(out)])
    assert_one_line_error(result, "cifar10 not found", str(empty))
    assert not list(out.rglob("*.pt"))


def test_data_dir_reaches_training_and_the_audit_and_is_recorded(tmp_path, cifar10_dir):
    out = tmp_path / "o"
    args = ["reproduce", "entropy", "--dataset", "cifar10", "--model", "mlp", "--epochs", "1", "--limit", "20",
            "--test-limit", "6", "--steps", "1", "--eval-steps", "1", "--data-dir", str(cifar10_dir),
            "--out", str(out), "--quiet", "--json", "-"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    commands = payload["commands"]
    assert any(c.startswith("wpgdkit train") for c in commands) and any(c.startswith("wpgdkit audit") for c in commands)
    assert all(f"--data-dir {cifar10_dir}" in c for c in commands)
    assert f"--data-dir {cifar10_dir}" in (out / "entropy" / "report.md").read_text()
