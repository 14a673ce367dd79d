"""wpgdkit.bench: the registry, the timing helpers and each benchmark's rows (never their timings)."""

from __future__ import annotations

import json
import math
import sys

import numpy as np
import pytest
import torch

from wpgdkit import bench
from wpgdkit.bench import (
    BenchConfig,
    BenchRow,
    interleaved_times,
    list_benchmarks,
    median_time,
    relative_error,
    run_benchmarks,
    sample_times,
)
from wpgdkit.errors import DataNotFoundError, UnknownNameError, WordNetError, WpgdkitError

# One timed call and no warm-up: these tests check structure and values, not speed.
FAST = BenchConfig(quick=True, repeats=1, warmup=0, device="cpu")
ROW_KEYS = {"benchmark", "case", "ours", "reference", "ours_s", "reference_s", "ratio", "agreement", "status", "note",
            "unit", "extra"}


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny ops on a shared two-core machine: two threads wait on each other at every op."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _check_timed(row: BenchRow) -> None:
    assert row.status == "ok", row.note
    assert row.ours_s > 0 and row.reference_s > 0
    assert row.ratio == pytest.approx(row.reference_s / row.ours_s)
    json.dumps(row.to_dict(), allow_nan=False)  # plain JSON values only


# --- configuration and registry ---------------------------------------------------------------


def test_registry_names_and_unknown_name():
    assert list_benchmarks() == ["loss", "attack-step", "torchattacks", "wordnet"]
    with pytest.raises(UnknownNameError, match="unknown benchmark 'nope'; choose one of: loss, attack-step"):
        bench.get_benchmark("nope")


@pytest.mark.parametrize(
    "kwargs, fragment",
    [({"repeats": 0}, "--repeats"), ({"warmup": -1}, "--warmup"), ({"batch": 0}, "--batch"),
     ({"threads": 0}, "--threads"), ({"repeats": 2.5}, "--repeats"), ({"device": "tpu"}, "unknown device 'tpu'")],
)
def test_config_rejects_bad_values(kwargs, fragment):
    with pytest.raises(WpgdkitError, match=fragment):
        BenchConfig(**kwargs)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_a_gpu_is_an_error_before_anything_runs():
    assert BenchConfig(device="auto").torch_device() == torch.device("cpu")
    with pytest.raises(WpgdkitError, match="no CUDA device"):
        run_benchmarks(BenchConfig(device="cuda"), ["loss"])


# --- timing helpers ----------------------------------------------------------------------------


def test_interleaved_times_alternates_and_passes_results():
    calls, results = [], []
    times = interleaved_times({"a": lambda: calls.append("a") or 1, "b": lambda: calls.append("b") or 2},
                              repeats=3, warmup=2, on_result=lambda name, value: results.append((name, value)))
    assert calls == ["a", "b"] * 5  # 2 warm-up rounds, then 3 timed ones, alternating
    assert results == [("a", 1), ("b", 2)] * 3  # timed calls only
    assert {k: len(v) for k, v in times.items()} == {"a": 3, "b": 3}
    assert all(t >= 0 for ts in times.values() for t in ts)


def test_median_time_is_the_median_of_the_timed_calls(monkeypatch):
    durations = iter([5.0, 1.0, 3.0])  # seconds each timed call takes on a fake clock
    clock = {"now": 0.0, "started": False}

    def fake_perf_counter():
        if clock["started"]:
            clock["now"] += next(durations)
        clock["started"] = not clock["started"]
        return clock["now"]

    monkeypatch.setattr(bench.time, "perf_counter", fake_perf_counter)
    count = []
    assert median_time(lambda: count.append(1), repeats=3, warmup=1) == 3.0
    assert len(count) == 4


def test_sample_times_counts_and_rejects_bad_counts():
    count = []
    assert len(sample_times(lambda: count.append(1), repeats=4, warmup=0)) == 4 and len(count) == 4
    with pytest.raises(WpgdkitError):
        sample_times(lambda: None, repeats=0)


def test_relative_error_has_a_floor():
    assert relative_error(np.array([1.0, 2.0]), np.array([1.0, 2.0]), scale=1.0) == 0.0
    assert relative_error(np.array([1.1]), np.array([1.0]), scale=1.0) == pytest.approx(0.1)
    # A distance of 1e-12 off by 1e-12 is compared with the floor 1e-6·scale, not with itself.
    assert relative_error(np.array([2e-12]), np.array([1e-12]), scale=1.0) == pytest.approx(1e-6)
    assert relative_error(np.array([]), np.array([]), scale=1.0) == 0.0


# --- run_benchmarks -----------------------------------------------------------------------------


@pytest.fixture
def fake_registry(monkeypatch):
    """Two instant benchmarks in place of the real ones."""
    registry = bench.Registry("benchmark")
    seen = []

    def make(name):
        def run(config):
            seen.append((name, torch.get_num_threads()))
            return [BenchRow.timed(name, "case", "ours", "ref", 1.0, 4.0, unit="call")]

        return run

    for name in ("alpha", "beta"):
        registry.register(name, bench.Benchmark(name, f"{name} benchmark", make(name)))
    monkeypatch.setattr(bench, "_BENCHMARKS", registry)
    return seen


def test_run_benchmarks_order_dedup_threads_and_report(fake_registry):
    before = torch.get_num_threads()
    progress = []
    report = run_benchmarks(BenchConfig(threads=1, device="cpu"), ["beta", "alpha", "beta"],
                            progress=lambda name, i, n: progress.append((name, i, n)))
    assert report.benchmarks == ["beta", "alpha"] and progress == [("beta", 0, 2), ("alpha", 1, 2)]
    assert fake_registry == [("beta", 1), ("alpha", 1)] and torch.get_num_threads() == before
    assert report.header["threads"] == 1 and report.header["device"] == "cpu"
    assert [r.ratio for r in report.rows] == [4.0, 4.0]
    payload = report.to_dict()
    assert set(payload) == {"schema", "header", "config", "benchmarks", "durations_s", "rows"}
    assert payload["schema"] == bench.BENCH_SCHEMA and set(payload["durations_s"]) == {"alpha", "beta"}
    assert set(payload["rows"][0]) == ROW_KEYS
    for key in ("torch", "threads", "cpu_count", "device", "device_name", "pot", "torchattacks", "load_average"):
        assert key in payload["header"]
    json.dumps(payload)


def test_run_benchmarks_unknown_name_runs_nothing(fake_registry):
    with pytest.raises(UnknownNameError, match="choose one of: alpha, beta"):
        run_benchmarks(FAST, ["alpha", "nope"])
    assert fake_registry == []


# --- the benchmarks -----------------------------------------------------------------------------


def test_loss_closed_form_agrees_with_pot():
    rows = bench.bench_loss(FAST)
    assert [(r.case, r.reference.split()[0]) for r in rows] == [
        ("K=10, batch 16, p=1", "ot.emd2"), ("K=10, batch 16, p=1", "ot.sinkhorn2"),
        ("K=100, batch 16, p=1", "ot.emd2"), ("K=100, batch 16, p=1", "ot.sinkhorn2"),
    ]
    for row in rows:
        _check_timed(row)
        assert row.unit == "batch" and row.extra["within_tolerance"] is True
    emd = [r for r in rows if r.reference.startswith("ot.emd2")]
    sinkhorn = [r for r in rows if r.reference.startswith("ot.sinkhorn2")]
    assert all(r.agreement <= 1e-9 for r in emd)  # exact LP: agrees to rounding (ot_check's tolerance)
    assert all(r.agreement <= 1e-6 for r in sinkhorn)  # the forced plan: only convergence error
    for r in sinkhorn:  # the entropic objective would differ by reg·H(q)
        assert r.extra["entropic_gap_mean"] > 0 and r.extra["reg_relative"] == 0.01 and "reg 0.01·max C" in r.note


def test_attack_step_quick_measures_the_small_cnn_and_leaves_out_the_wrn():
    small, wrn = bench.bench_attack_step(FAST)
    _check_timed(small)
    assert small.case == "small-cnn, 1×28×28, batch 8" and (small.ours, small.reference) == ("WPGD", "PGD")
    assert small.extra["wpgd_over_pgd"] == pytest.approx(1 / small.ratio) and small.unit == "step"
    assert wrn.status == "skipped" and "--quick" in wrn.note and wrn.ours_s is None and wrn.ratio is None


def test_torchattacks_missing_is_a_skipped_row(monkeypatch):
    monkeypatch.setitem(sys.modules, "torchattacks", None)  # import torchattacks now raises ImportError
    (row,) = bench.bench_torchattacks(FAST)
    assert row.status == "skipped" and "pip install" in row.note and row.ours_s is None
    assert bench.bench_header(torch.device("cpu"))["torchattacks"] is None


def test_torchattacks_on_random_images_without_fashion_mnist(monkeypatch):
    pytest.importorskip("torchattacks")

    def no_data(*args, **kwargs):
        raise DataNotFoundError("no Fashion-MNIST here")

    monkeypatch.setattr("wpgdkit.datasets.load_tensors", no_data)
    (row,) = bench.bench_torchattacks(BenchConfig(quick=True, repeats=2, warmup=0, device="cpu", batch=32))
    _check_timed(row)
    extra = row.extra
    assert extra["data"] == "random images" and "no Fashion-MNIST" in extra["why_not_fashion_mnist"]
    assert extra["clean_accuracy"] == 1.0  # labels are the untrained model's own predictions
    assert extra["points"] == 64 and extra["steps"] == 10 and extra["step_size"] == pytest.approx(2.5 * (8 / 255) / 10)
    for side in ("ours", "reference"):
        assert 0.0 <= extra[f"{side}_adversarial_accuracy"] <= 1.0
        assert len(extra[f"{side}_adversarial_accuracy_per_repeat"]) == 2
        assert extra[f"{side}_max_linf_perturbation"] <= 8 / 255 + 1e-6
    assert math.isfinite(extra["difference_binomial_se"])


def test_wordnet_unavailable_is_reported_as_skipped(monkeypatch):
    def missing(*args, **kwargs):
        raise WordNetError("WordNet data not found (looked in /nowhere)")

    monkeypatch.setattr("wpgdkit.wordnet.load_wordnet", missing)
    rows = bench.bench_wordnet(FAST)
    assert [r.case for r in rows] == ["tiny-imagenet, K=200", "random nouns, K=100"]
    assert all(r.status == "skipped" and "WordNet not available" in r.note and "/nowhere" in r.note for r in rows)


def test_wordnet_build_agrees_with_nltk(wordnet):
    rows = bench.bench_wordnet(FAST)
    assert [r.extra["num_classes"] for r in rows] == [200, 100]
    for row in rows:
        _check_timed(row)
        assert row.agreement == 0.0 and row.extra["max_abs_difference"] == 0.0  # path lengths are integers
        assert row.extra["nltk_pairs_timed"] == 200 and row.extra["nltk_extrapolated"] is True
    assert rows[0].extra["pairs"] == 200 * 199 // 2
    first = bench.sample_noun_synsets(wordnet, 5, seed=3)
    assert first == bench.sample_noun_synsets(wordnet, 5, seed=3) and all(s.pos() == "n" for s in first)
