"""`wpgdkit metric check` with the reference-check cache: the same output hit or miss, and no POT on a hit."""

from __future__ import annotations

import json

import numpy as np
import pytest
from test_startup_imports import run_fresh
from typer.testing import CliRunner

import wpgdkit.labelmetric.ot_check as ot_check
from wpgdkit.cache import CACHE_ENV
from wpgdkit.cli import app
from wpgdkit.labelmetric import LabelMetric, write_metric

runner = CliRunner()
QUICK = ["--samples", "40", "--sinkhorn-samples", "2"]
REAL_CHECK = ot_check.reference_check


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture
def cache(tmp_path, monkeypatch):
    folder = tmp_path / "cache"
    monkeypatch.setenv(CACHE_ENV, str(folder))
    return folder


@pytest.fixture
def metric_file(tmp_path):
    rng = np.random.default_rng(3)
    c = rng.random((5, 5))
    c = (c + c.T) / 2
    np.fill_diagonal(c, 0.0)
    return write_metric(LabelMetric(("cat", "dog", "car", "truck", "ship"), c), tmp_path / "m.csv")


def entries(cache):
    return sorted((cache / "metric-check").glob("check-*.json"))


def test_a_second_check_prints_the_same_from_the_cache(cache, metric_file, reference_check_calls):
    cold = invoke("metric", "check", metric_file, *QUICK)
    warm = invoke("metric", "check", metric_file, *QUICK)
    assert cold.exit_code == warm.exit_code == 0, cold.stderr + warm.stderr
    assert len(reference_check_calls) == 1 and len(entries(cache)) == 1
    assert warm.stdout == cold.stdout and "all checks passed" in warm.stdout
    assert "cache" not in warm.stdout.lower()
    assert warm.stderr == cold.stderr == ""


def test_the_json_is_the_same_but_for_cached(cache, metric_file, reference_check_calls, tmp_path):
    cold = invoke("metric", "check", metric_file, *QUICK, "--json", "-")
    warm = invoke("metric", "check", metric_file, *QUICK, "--json", "-")
    assert cold.exit_code == warm.exit_code == 0
    first, second = json.loads(cold.stdout), json.loads(warm.stdout)
    assert (first.pop("cached"), second.pop("cached")) == (False, True)
    assert first == second and cold.stdout.replace('"cached": false', '"cached": true') == warm.stdout
    assert len(reference_check_calls) == 1
    # To a file, with the text on stdout: both the same too.
    out_cold, out_warm = tmp_path / "a.json", tmp_path / "b.json"
    text = invoke("metric", "check", metric_file, *QUICK, "--no-cache", "--json", out_cold)
    again = invoke("metric", "check", metric_file, *QUICK, "--json", out_warm)
    assert text.stdout == again.stdout
    a, b = json.loads(out_cold.read_text()), json.loads(out_warm.read_text())
    assert (a.pop("cached"), b.pop("cached")) == (False, True) and a == b == first


def test_no_cache_runs_pot_and_leaves_the_cache_alone(cache, metric_file, reference_check_calls):
    plain = invoke("metric", "check", metric_file, *QUICK, "--no-cache", "--json", "-")
    assert plain.exit_code == 0 and json.loads(plain.stdout)["cached"] is False
    assert not cache.exists()
    invoke("metric", "check", metric_file, *QUICK)
    [entry] = entries(cache)
    before = entry.read_bytes(), entry.stat().st_mtime_ns
    again = invoke("metric", "check", metric_file, *QUICK, "--no-cache", "--json", "-")
    assert json.loads(again.stdout) == json.loads(plain.stdout) and len(reference_check_calls) == 3
    assert (entry.read_bytes(), entry.stat().st_mtime_ns) == before


def test_another_option_misses(cache, metric_file, reference_check_calls):
    invoke("metric", "check", metric_file, *QUICK)
    for extra in (["--seed", "1"], ["--p", "2"], ["--samples", "41"], ["--sinkhorn-samples", "3"]):
        result = invoke("metric", "check", metric_file, *QUICK, *extra, "--json", "-")
        assert result.exit_code == 0 and json.loads(result.stdout)["cached"] is False, extra
    assert len(reference_check_calls) == 5 and len(entries(cache)) == 5


def test_a_failed_check_fails_again_from_the_cache(cache, metric_file, monkeypatch):
    def wrong(metric, **options):  # a closed form off by 1 %: the check fails, and that report is kept
        return REAL_CHECK(metric, closed_form=lambda c, q, t: 1.01 * np.einsum("nk,nk->n", c[t], q), **options)

    monkeypatch.setattr(ot_check, "reference_check", wrong)
    cold = invoke("metric", "check", metric_file, *QUICK)
    monkeypatch.setattr(ot_check, "reference_check", lambda *a, **k: pytest.fail("computed on a hit"))
    warm = invoke("metric", "check", metric_file, *QUICK)
    assert cold.exit_code == warm.exit_code == 1
    assert warm.stdout == cold.stdout and "FAIL" in warm.stdout and "check failed" in warm.stdout


@pytest.mark.parametrize(("args", "fragment"), [
    (["--seed", "-1"], "seed"), (["--seed", str(2**32)], "seed"), (["--p", "0"], "--p"), (["--p", "nan"], "--p"),
    (["--p", "inf"], "--p"), (["--samples", "0"], "--samples"), (["--sinkhorn-samples", "-1"], "--sinkhorn-samples"),
])
def test_bad_options_are_one_line_with_a_warm_cache(cache, metric_file, args, fragment, assert_one_line_error):
    assert invoke("metric", "check", metric_file, *QUICK).exit_code == 0
    for cache_flag in ("--cache", "--no-cache"):
        result = invoke("metric", "check", metric_file, *QUICK, *args, cache_flag)
        assert_one_line_error(result, fragment)
        assert result.stdout == ""
    assert len(entries(cache)) == 1


def test_a_warm_check_in_a_fresh_process_imports_neither_pot_nor_scipy(cache, metric_file, tmp_path):
    args = ("metric", "check", str(metric_file), *QUICK, "--json", str(tmp_path / "cold.json"))
    cold, stderr = run_fresh(*args)
    assert cold["code"] == 0, stderr[-2000:]
    assert "ot" in cold["imported"] and "torch" not in cold["imported"]
    warm, stderr = run_fresh(*args[:-1], str(tmp_path / "warm.json"))
    assert warm["code"] == 0, stderr[-2000:]
    for module in ("ot", "scipy", "torch", "sklearn"):
        assert module not in warm["imported"], warm
    first, second = (json.loads((tmp_path / f"{name}.json").read_text()) for name in ("cold", "warm"))
    assert (first.pop("cached"), second.pop("cached")) == (False, True) and first == second
