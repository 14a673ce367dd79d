"""wpgdkit.bench.harness: configuration, registry, default set, timing helpers, runner (never real timings)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from wpgdkit import bench
from wpgdkit.bench import (
    BenchConfig,
    BenchRow,
    default_benchmarks,
    get_benchmark,
    interleaved_times,
    list_benchmarks,
    median_time,
    relative_error,
    run_benchmarks,
    sample_times,
    summarize,
    timing_summary,
)
from wpgdkit.bench import harness
from wpgdkit.errors import UnknownNameError, WpgdkitError
from wpgdkit.registry import Registry

ROW_KEYS = {"benchmark", "case", "ours", "reference", "ours_s", "reference_s", "ratio", "agreement", "status", "note",
            "unit", "extra"}
SLOW = ("audit", "train-loop", "startup")  # not in the default set (startup: not slow, but run by name)



# --- registry and default set ----------------------------------------------------------------------


def test_registry_names_and_unknown_name():
    assert list_benchmarks() == ["loss", "attack-step", "torchattacks", "wordnet", "audit", "train-loop", "startup"]
    with pytest.raises(UnknownNameError, match="unknown benchmark 'nope'; choose one of: loss, attack-step"):
        get_benchmark("nope")


def test_the_slow_benchmarks_are_not_in_the_default_set():
    assert default_benchmarks() == ["loss", "attack-step", "torchattacks", "wordnet"]
    for name in SLOW:
        assert get_benchmark(name).default is False and name not in default_benchmarks()
    assert all(get_benchmark(name).description for name in list_benchmarks())


def test_every_benchmark_module_registers_its_function():
    # The former standalone scripts are registry entries like the rest.
    assert get_benchmark("audit").run is bench.bench_audit
    assert get_benchmark("train-loop").run is bench.bench_train_loop
    assert get_benchmark("torchattacks").run is bench.bench_torchattacks


def test_register_benchmark_refuses_a_taken_name(monkeypatch):
    monkeypatch.setattr(harness, "_BENCHMARKS", harness._BENCHMARKS.copy())
    with pytest.raises(ValueError, match="already registered"):
        bench.register_benchmark("loss", "again")(lambda config: [])


@pytest.mark.parametrize(
    "kwargs, fragment",
    [({"repeats": 0}, "--repeats"), ({"warmup": -1}, "--warmup"), ({"batch": 0}, "--batch"),
     ({"threads": 0}, "threads must be a whole number of at least 1"), ({"repeats": 2.5}, "--repeats"),
     ({"device": "tpu"}, "unknown device 'tpu'"),
     ({"seed": -1}, r"--seed must be a whole number in \[0, 4294967295\], got -1"),
     ({"seed": 2**32}, r"--seed must be a whole number in \[0, 4294967295\]"), ({"seed": 1.5}, "--seed")],
)
def test_config_rejects_bad_values(kwargs, fragment):
    with pytest.raises(WpgdkitError, match=fragment):
        BenchConfig(**kwargs)


def test_config_to_dict():
    assert BenchConfig(data_dir="/data").to_dict() == {"repeats": 5, "warmup": 1, "device": "auto", "quick": False,
                                                       "seed": 0, "batch": 128, "threads": None, "data_dir": "/data"}


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

    monkeypatch.setattr(harness.time, "perf_counter", fake_perf_counter)
    count = []
    assert median_time(lambda: count.append(1), repeats=3, warmup=1) == 3.0
    assert len(count) == 4


def test_sample_times_counts_and_rejects_bad_counts():
    count = []
    assert len(sample_times(lambda: count.append(1), repeats=4, warmup=0)) == 4 and len(count) == 4
    with pytest.raises(WpgdkitError):
        sample_times(lambda: None, repeats=0)


def test_summarize_is_a_torch_benchmark_measurement_per_unit():
    from torch.utils.benchmark import Measurement

    m = summarize([0.2, 0.4, 0.3, 0.3], per_call=2, label="attack-step", sub_label="case", description="PGD")
    assert isinstance(m, Measurement) and m.number_per_run == 2
    assert m.median == pytest.approx(0.15) and list(m.times) == pytest.approx([0.1, 0.2, 0.15, 0.15])
    summary = timing_summary(m, "pgd_step")
    assert summary["pgd_step_median_s"] == pytest.approx(0.15) and summary["pgd_step_min_s"] == pytest.approx(0.1)
    assert summary["pgd_step_iqr_s"] > 0 and summary["pgd_step_noisy"] is True  # IQR well above 10 % of the median
    assert timing_summary(summarize([1.0] * 4), "x")["x_noisy"] is False
    assert timing_summary(summarize([1.0, 3.0]), "x")["x_noisy"] is False  # too few calls to judge
    json.dumps(summary)


def test_relative_error_has_a_floor():
    assert relative_error(np.array([1.0, 2.0]), np.array([1.0, 2.0]), scale=1.0) == 0.0
    assert relative_error(np.array([1.1]), np.array([1.0]), scale=1.0) == pytest.approx(0.1)
    # A distance of 1e-12 off by 1e-12 is compared with the floor 1e-6·scale, not with itself.
    assert relative_error(np.array([2e-12]), np.array([1e-12]), scale=1.0) == pytest.approx(1e-6)
    assert relative_error(np.array([]), np.array([]), scale=1.0) == 0.0


# --- run_benchmarks -----------------------------------------------------------------------------


@pytest.fixture
def fake_registry(monkeypatch):
    """Three instant benchmarks in place of the real ones; ``slow`` is not in the default set."""
    registry = Registry("benchmark")
    seen = []

    def make(name):
        def run(config):
            seen.append((name, torch.get_num_threads()))
            return [BenchRow.timed(name, "case", "ours", "ref", 1.0, 4.0, unit="call")]

        return run

    for name, default in (("alpha", True), ("beta", True), ("slow", False)):
        registry.register(name, bench.Benchmark(name, f"{name} benchmark", make(name), default=default))
    monkeypatch.setattr(harness, "_BENCHMARKS", registry)
    return seen


def test_run_benchmarks_order_dedup_threads_and_report(fake_registry):
    before = torch.get_num_threads()
    progress = []
    report = run_benchmarks(BenchConfig(threads=2, device="cpu"), ["beta", "alpha", "beta"],
                            progress=lambda name, i, n: progress.append((name, i, n)))
    assert report.benchmarks == ["beta", "alpha"] and progress == [("beta", 0, 2), ("alpha", 1, 2)]
    assert fake_registry == [("beta", 2), ("alpha", 2)] and torch.get_num_threads() == before
    assert report.header["threads"] == 2 and report.header["device"] == "cpu"
    assert [r.ratio for r in report.rows] == [4.0, 4.0]
    payload = report.to_dict()
    assert set(payload) == {"schema", "header", "config", "benchmarks", "durations_s", "rows"}
    assert payload["schema"] == bench.BENCH_SCHEMA and set(payload["durations_s"]) == {"alpha", "beta"}
    assert set(payload["rows"][0]) == ROW_KEYS
    for key in ("torch", "threads", "cpu_count", "device", "device_name", "pot", "torchattacks", "load_average"):
        assert key in payload["header"]
    json.dumps(payload)


def test_run_benchmarks_without_names_runs_the_default_set_only(fake_registry):
    report = run_benchmarks(BenchConfig(device="cpu"))
    assert report.benchmarks == ["alpha", "beta"] and [name for name, _ in fake_registry] == ["alpha", "beta"]
    assert run_benchmarks(BenchConfig(device="cpu"), ["slow"]).benchmarks == ["slow"]  # by name, it runs


def test_run_benchmarks_unknown_name_runs_nothing(fake_registry):
    with pytest.raises(UnknownNameError, match="choose one of: alpha, beta, slow"):
        run_benchmarks(BenchConfig(device="cpu"), ["alpha", "nope"])
    assert fake_registry == []
