"""``wpgdkit demo`` on the command line: a reduced run, its table and files, JSON on stdout, one-line errors."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from wpgdkit.cli import app

runner = CliRunner()
# One ε, a few points and one epoch: seconds, not a minute.
SMALL = ["--eps", "0.8", "--epochs", "1", "--limit", "120", "--test-limit", "60"]


@pytest.fixture(scope="module")
def ran(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli-demo") / "demo"
    result = runner.invoke(app, ["demo", *SMALL, "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out, result


def test_demo_prints_the_table_and_where_the_report_is(ran):
    out, result = ran
    for text in ("NE %", "AE %", "S − S_PGD", "0→1 (10)", "WPGD p=1", "CE", "PGD"):
        assert text in result.stdout, text
    assert result.stdout.strip().splitlines()[-1] == f"report: {out / 'report.md'}"
    assert f"pictures: {out / 'boundaries.png'}" in result.stdout
    # One line per finished step on stderr: three trainings, two audits, the picture, the report.
    assert result.stderr.count("trained ") == 3 and result.stderr.count("audited ") == 2
    for name in ("report.md", "summary.json", "boundaries.png", "toy-metric.csv"):
        assert (out / name).is_file(), name
    assert (out / "boundaries.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = (out / "report.md").read_text()
    assert "](boundaries.png)" in report and "## What changed" in report


def test_json_to_stdout_is_only_json_and_runs_are_reused(ran):
    out, _ = ran
    result = runner.invoke(app, ["demo", *SMALL, "--out", str(out), "--json", "-"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["schema"] == "wpgdkit-demo/1" and set(doc["status"].values()) == {"reused"}
    for row in doc["table"]:
        assert 0 <= row["natural_error"] <= 100 and 0 <= row["adversarial_error"] <= 100
        assert row["score"] is not None and row["score"] >= 0
    assert f"report: {out / 'report.md'}" in result.stderr


def test_quiet_prints_only_the_report_path(ran, tmp_path):
    out, _ = ran
    result = runner.invoke(app, ["demo", *SMALL, "--out", str(out), "--quiet", "--no-wpgd-attack",
                                 "--json", str(tmp_path / "s.json")])
    assert result.exit_code == 0, result.output
    assert result.stdout == f"report: {out / 'report.md'}\n" and result.stderr == ""
    doc = json.loads((tmp_path / "s.json").read_text())
    assert set(doc["audits"]) == {"pgd"} and doc["settings"]["wpgd_attack"] is False


def test_help_names_the_paper_problem():
    result = runner.invoke(app, ["demo", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    for text in ("--out", "--eps", "--quick", "--epochs", "--seed", "--device", "--json", "--quiet", "Sec. 3.4"):
        assert text in result.stdout, text


def test_bad_flags_are_one_line_errors_before_any_work(tmp_path, assert_one_line_error):
    out = tmp_path / "never"
    for flags, fragment in [
        (["--epochs", "0"], "--epochs"),
        (["--eps", "0.4,x"], "--eps"),
        (["--eps", ","], "--eps"),
        (["--eps", "0.4,0.4"], "repeat"),
        (["--p", "0"], "--p"),
        (["--limit", "1"], "--limit"),
        (["--test-limit", "0"], "--test-limit"),
        (["--threads", "0"], "--threads"),
        (["--seed", "-2"], "--seed"),
        (["--device", "tpu"], "--device"),
    ]:
        assert_one_line_error(runner.invoke(app, ["demo", *SMALL, *flags, "--out", str(out)]), fragment)
    assert not out.exists()
    target = tmp_path / "file"
    target.write_text("")
    assert_one_line_error(runner.invoke(app, ["demo", *SMALL, "--out", str(target)]), "not a folder")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_a_gpu_is_one_line(tmp_path, assert_one_line_error):
    out = tmp_path / "never"
    assert_one_line_error(runner.invoke(app, ["demo", *SMALL, "--device", "cuda", "--out", str(out)]), "CUDA")
    assert not out.exists()
