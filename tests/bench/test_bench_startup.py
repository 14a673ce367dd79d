"""The ``startup`` benchmark: its rows, commands and skips (never its timings)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from wpgdkit.bench import BenchConfig, get_benchmark, startup
from wpgdkit.bench.startup import QUICK_COMMANDS, REFERENCES, bench_startup, startup_commands

# One timed round and no warm-up: structure, not speed.
FAST = BenchConfig(quick=True, repeats=1, warmup=0, device="cpu")


def test_registered_by_name_not_in_the_default_set():
    entry = get_benchmark("startup")
    assert entry.run is bench_startup and entry.default is False
    assert "python -c pass" in entry.description and "import torch" in entry.description


def test_quick_rows_time_each_command_against_both_baselines():
    rows = bench_startup(FAST)
    expected = [(f"wpgdkit {' '.join(args)}", reference) for args in QUICK_COMMANDS for reference in REFERENCES]
    assert [(row.case, row.reference) for row in rows] == expected
    for row in rows:
        assert row.status == "ok", row.note
        assert row.benchmark == "startup" and row.ours == "fresh process" and row.unit == "process"
        assert row.ours_s > 0 and row.reference_s > 0 and row.agreement is None
        assert row.ratio == pytest.approx(row.reference_s / row.ours_s)
        extra = row.extra
        assert extra["repeats"] == 1 and len(extra["ours_wall_s"]) == 1 and len(extra["reference_wall_s"]) == 1
        assert extra["ours_wall_s"][0] == pytest.approx(row.ours_s)
        assert extra["ours_cpu_s"] > 0 and extra["reference_cpu_s"] > 0
        assert extra["cpu_ratio"] == pytest.approx(extra["reference_cpu_s"] / extra["ours_cpu_s"])
        json.dumps(row.to_dict(), allow_nan=False)  # plain JSON values only
    # Both baselines are timed once per round, whichever command a row is about.
    by_reference = {row.reference: row.reference_s for row in rows}
    assert all(row.reference_s == by_reference[row.reference] for row in rows)


def test_a_failing_command_gives_skipped_rows_with_its_error(monkeypatch):
    monkeypatch.setattr(startup, "REFERENCES", {"python -c pass": "pass"})
    monkeypatch.setattr(startup, "QUICK_COMMANDS", (("frobnicate",),))
    (row,) = bench_startup(FAST)
    assert row.status == "skipped" and row.ours_s is None and row.ratio is None
    assert row.case == "wpgdkit frobnicate" and "exited 2" in row.note and "No such command" in row.note


def test_the_full_run_covers_every_help_and_the_metric_commands(tmp_path):
    commands = startup_commands(tmp_path, quick=False)
    assert ("--version",) in commands and ("--help",) in commands
    helps = {args[:-1] for args in commands if args[-1:] == ("--help",) and len(args) > 1}
    assert {("metric",), ("metric", "build"), ("metric", "show"), ("datasets",), ("models",), ("train",)} <= helps
    assert ("datasets",) in commands and ("models",) in commands
    metric = [args[1:6] for args in commands if args[:1] == ("metric",) and "--help" not in args]
    assert [m[0] for m in metric] == ["build", "build", "build", "check", "show", "show", "compare"]
    sources = [args[args.index("--source") + 1] for args in commands if "--source" in args]
    assert sources == ["wordnet", "uniform", "file"]
    assert any("--plot" in args for args in commands)
    # Every path lies in the given folder: the run leaves nothing behind.
    paths = [a for args in commands for a in args if "/" in a]
    assert paths and all(a.startswith(str(tmp_path)) for a in paths)


def test_the_timed_loop_is_the_readmes(tmp_path):
    from wpgdkit.bench.startup import README_LOOP

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    assert README_LOOP.format(wpgdkit="wpgdkit") in readme
