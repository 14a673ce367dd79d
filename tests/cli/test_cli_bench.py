"""`wpgdkit bench` through typer's CliRunner: JSON keys, the table, --only over the registry, one-line errors (never timings)."""

from __future__ import annotations

import json
import sys

import pytest
import torch
import typer
from typer.testing import CliRunner

from wpgdkit.bench import Benchmark, BenchRow, default_benchmarks, get_benchmark, harness, list_benchmarks
from wpgdkit.cli._common import OneLineErrorGroup
from wpgdkit.cli.bench import bench, format_seconds
from wpgdkit.registry import Registry

runner = CliRunner()
app = typer.Typer(cls=OneLineErrorGroup)
app.command("bench")(bench)
app.command("other")(lambda: None)  # two commands, so "bench" is a subcommand as in the real CLI

WIDE = {"COLUMNS": "250"}
# One thread (two wait on each other on a shared two-core machine), one timed call, no warm-up.
QUICK = ["--quick", "--repeats", "1", "--warmup", "0", "--threads", "1", "--device", "cpu"]
HEADER_KEYS = {"wpgdkit", "torch", "numpy", "pot", "torchattacks", "python", "platform", "cpu", "cpu_count",
               "cpus_usable", "threads", "device", "device_name", "load_average"}
ROW_KEYS = {"benchmark", "case", "ours", "reference", "ours_s", "reference_s", "ratio", "agreement", "status", "note",
            "unit", "extra"}


def invoke(*args: str, **kwargs):
    return runner.invoke(app, ["bench", *args], **kwargs)


def test_quick_loss_json_to_stdout_has_the_documented_keys():
    result = invoke(*QUICK, "--only", "loss", "--json", "-")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)  # stdout holds the JSON alone; the table went to stderr
    assert set(payload) == {"schema", "header", "config", "benchmarks", "durations_s", "rows"}
    assert payload["schema"] == "wpgdkit-bench/1" and payload["benchmarks"] == ["loss"]
    assert set(payload["header"]) == HEADER_KEYS and payload["header"]["threads"] == 1
    assert payload["config"] == {"repeats": 1, "warmup": 0, "device": "cpu", "quick": True, "seed": 0, "batch": 128,
                                 "threads": 1, "data_dir": None}
    rows = payload["rows"]
    assert len(rows) == 4 and all(set(row) == ROW_KEYS for row in rows)
    assert {row["benchmark"] for row in rows} == {"loss"} and all(row["status"] == "ok" for row in rows)
    for row in rows:
        assert row["ratio"] == pytest.approx(row["reference_s"] / row["ours_s"])
        assert row["agreement"] <= (1e-9 if row["reference"].startswith("ot.emd2") else 1e-6)
    assert "ot.emd2 loop" in result.stderr


def test_table_with_header(tmp_path):
    out = tmp_path / "bench.json"
    result = invoke(*QUICK, "--only", "loss", "--json", str(out), env=WIDE)
    assert result.exit_code == 0, result.output
    assert "torch " + torch.__version__ in result.stdout and "1 torch thread(s)" in result.stdout
    assert "median of 1 after 0 warm-ups" in result.stdout and "--quick sizes" in result.stdout
    assert "K=100, batch 16, p=1" in result.stdout and "reg 0.01·max C" in result.stdout
    assert result.stderr == ""  # no progress display when stderr is not a terminal
    assert json.loads(out.read_text())["benchmarks"] == ["loss"]


def test_quiet_prints_nothing(tmp_path):
    out = tmp_path / "bench.json"
    result = invoke(*QUICK, "--only", "attack-step", "--quiet", "--json", str(out))
    assert result.exit_code == 0, result.output
    assert result.stdout == "" and result.stderr == ""
    rows = json.loads(out.read_text())["rows"]
    assert [(r["status"], r["ours"], r["reference"]) for r in rows] == [("ok", "WPGD", "PGD"), ("skipped", "WPGD", "PGD")]


def test_torchattacks_missing_is_reported_as_skipped(monkeypatch):
    monkeypatch.setitem(sys.modules, "torchattacks", None)
    result = invoke(*QUICK, "--only", "torchattacks", "--json", "-")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    (row,) = payload["rows"]
    assert row["status"] == "skipped" and "pip install" in row["note"] and row["ours_s"] is None
    assert payload["header"]["torchattacks"] is None
    assert "skipped:" in result.stderr


@pytest.fixture
def fake_registry(monkeypatch):
    """Instant benchmarks alpha, beta (default set) and gamma (slow: not in it) in place of the real ones."""
    registry = Registry("benchmark")
    for name in ("alpha", "beta", "gamma"):
        registry.register(name, Benchmark(
            name, name, lambda config, name=name: [BenchRow.timed(name, "c", "o", "r", 1.0, 2.0)],
            default=name != "gamma"))
    monkeypatch.setattr(harness, "_BENCHMARKS", registry)


def test_only_accepts_commas_and_repeats(fake_registry):
    result = invoke("--only", "gamma,alpha", "--only", "gamma", "--json", "-", "--quiet")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["benchmarks"] == ["gamma", "alpha"]


def test_without_only_the_default_set_runs(fake_registry):
    result = invoke("--json", "-", "--quiet", "--device", "cpu")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["benchmarks"] == ["alpha", "beta"]  # not gamma, the slow one


@pytest.mark.parametrize(
    "name", [pytest.param(name, marks=() if get_benchmark(name).default else pytest.mark.slow)
             for name in list_benchmarks()])
def test_every_registered_benchmark_runs_through_only(name):
    """Each benchmark, the former standalone scripts included, by name in --quick mode; skipped without its data."""
    result = invoke(*QUICK, "--only", name, "--json", "-", "--quiet")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["benchmarks"] == [name] and set(payload["durations_s"]) == {name}
    rows = payload["rows"]
    assert rows and all(set(row) == ROW_KEYS and row["benchmark"] == name for row in rows)
    if all(row["status"] == "skipped" for row in rows):  # WordNet, Fashion-MNIST or torchattacks missing
        pytest.skip(f"{name} skipped itself here: {rows[0]['note']}")
    for row in rows:
        if row["status"] == "ok":
            assert row["ours_s"] > 0 and row["unit"]
            if row["reference_s"] is not None:
                assert row["ratio"] == pytest.approx(row["reference_s"] / row["ours_s"])
    if name == "audit":  # the multi-checkpoint audit attacks each model exactly once
        assert rows[-1]["extra"]["each_model_attacked_once"] is True, rows[-1]["note"]


def test_help_lists_every_benchmark_from_the_registry():
    result = runner.invoke(app, ["bench", "--help"], env={"COLUMNS": "400"})
    assert result.exit_code == 0, result.output
    text = " ".join(result.stdout.split())
    for name in list_benchmarks():
        entry = get_benchmark(name)
        assert f"{name}: {' '.join(entry.description.split())}" in text
        assert (f"Slow, not in the default set: --only {name}" in text) is (not entry.default)
    assert f"the default set runs: {', '.join(default_benchmarks())}" in text


@pytest.mark.parametrize(
    "args, fragments",
    [
        (["--only", "loss,nope"], ["unknown benchmark 'nope'", "loss, attack-step, torchattacks, wordnet, audit, train-loop"]),
        (["--only", ","], ["--only: the list is empty"]),
        (["--repeats", "0"], ["--repeats must be a whole number in [1, 10000], got 0"]),
        (["--warmup", "-1"], ["--warmup must be a whole number in [0, 10000], got -1"]),
        (["--batch", "0"], ["--batch must be a whole number in [1, 1000000], got 0"]),
        (["--threads", "0"], ["--threads must be a whole number of at least 1"]),
        (["--seed", "-1"], ["--seed must be a whole number in [0, 4294967295], got -1"]),
        (["--seed", str(2**32)], ["--seed must be a whole number in [0, 4294967295]"]),
        (["--device", "tpu"], ["--device"]),
    ],
)
def test_bad_inputs_are_one_line(args, fragments, assert_one_line_error, tmp_path):
    out = tmp_path / "bench.json"
    assert_one_line_error(invoke(*args, "--json", str(out)), *fragments)
    assert not out.exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_a_gpu_is_one_line(assert_one_line_error):
    assert_one_line_error(invoke("--device", "cuda", "--only", "loss"), "no CUDA device")


def test_registered_in_the_main_cli():
    from wpgdkit.cli import app as main_app

    result = runner.invoke(main_app, ["bench", "--help"], env=WIDE)
    assert result.exit_code == 0, result.output
    assert "--only" in result.stdout and "torchattacks" in result.stdout and "train-loop" in result.stdout


@pytest.mark.parametrize("seconds, text", [(None, "-"), (2.5e-6, "2.5 µs"), (0.0123, "12.3 ms"), (3.456, "3.46 s")])
def test_format_seconds(seconds, text):
    assert format_seconds(seconds) == text
