"""The reference-check cache: a cached report is the computed one bit for bit, and a stale or corrupt entry is never used."""

from __future__ import annotations

import dataclasses
import inspect
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import wpgdkit
import wpgdkit.labelmetric.check_cache as cc
import wpgdkit.labelmetric.ot_check as ot_check
from wpgdkit.cache import CACHE_ENV, canonical_json, sha256_hex
from wpgdkit.errors import WpgdkitError
from wpgdkit.labelmetric import LabelMetric
from wpgdkit.labelmetric.check_cache import cached_reference_check
from wpgdkit.labelmetric.ot_check import OTCheckReport, SinkhornRow, reference_check

# Small and quick (a few ms a check once POT is imported), with two Sinkhorn rows.
QUICK = {"samples": 30, "sinkhorn_samples": 3, "regs": (1.0, 0.1)}
REAL_CHECK = ot_check.reference_check


def random_metric(seed: int = 0, k: int = 6, names: tuple[str, ...] | None = None) -> LabelMetric:
    rng = np.random.default_rng(seed)
    c = rng.random((k, k))
    c = (c + c.T) / 2
    np.fill_diagonal(c, 0.0)
    return LabelMetric(names or tuple(f"c{i}" for i in range(k)), c)


def exact(report: OTCheckReport) -> str:
    """The report's fields as JSON: equal strings mean equal bit for bit, NaN and types (2 vs 2.0) included."""
    return json.dumps(report.to_dict(), sort_keys=True)


def assert_same(a: OTCheckReport, b: OTCheckReport) -> None:
    assert exact(a) == exact(b)
    for x, y in zip(_numbers(a.to_dict()), _numbers(b.to_dict())):
        assert type(x) is type(y) and (x == y or (math.isnan(x) and math.isnan(y)))
        assert math.copysign(1, x) == math.copysign(1, y)


def _numbers(value):
    if isinstance(value, dict):
        for key in sorted(value):
            yield from _numbers(value[key])
    elif isinstance(value, list):
        for item in value:
            yield from _numbers(item)
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        yield value


class Computed(Exception):
    """Raised by the stand-in for reference_check: the call missed the cache."""


def _no_check(*args, **kwargs):
    raise Computed("reference_check ran")


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    """A fresh, not yet created cache folder for this test."""
    folder = tmp_path / "cache"
    monkeypatch.setenv(CACHE_ENV, str(folder))
    return folder


def entries(cache: Path) -> list[Path]:
    return sorted((cache / "metric-check").glob("check-*.json"))


# --- a cached report is the computed one -----------------------------------------------------------------


@pytest.mark.parametrize("options", [QUICK, {**QUICK, "p": 2}, {**QUICK, "p": 2.5, "regs": [1, 0.5]},
                                     {"samples": 40, "sinkhorn_samples": 0, "seed": 7, "emd_tolerance": 0}])
def test_miss_then_hit_equals_a_fresh_check(cache, monkeypatch, options):
    metric = random_metric()
    fresh = reference_check(metric, **options)
    first, cached_first = cached_reference_check(metric, **options)
    assert cached_first is False and len(entries(cache)) == 1
    monkeypatch.setattr(ot_check, "reference_check", _no_check)
    second, cached_second = cached_reference_check(metric, **options)
    assert cached_second is True
    assert_same(first, fresh)
    assert_same(second, fresh)
    assert second == fresh  # no NaN here: the dataclasses are equal too
    assert type(second.p) is type(fresh.p) and all(type(r.reg_relative) is type(f.reg_relative)
                                                   for r, f in zip(second.sinkhorn, fresh.sinkhorn))


def test_the_defaults_are_reference_checks(cache, reference_check_calls):
    metric = random_metric(k=3)
    cached_reference_check(metric, samples=20, sinkhorn_samples=1)
    assert reference_check_calls == [{"p": 1.0, "samples": 20, "sinkhorn_samples": 1, "regs": (1.0, 1e-1, 1e-2, 1e-3),
                                      "seed": 0, "emd_tolerance": 1e-9, "sinkhorn_tolerance": 1e-6}]


def test_nan_and_infinities_round_trip(cache, monkeypatch):
    # Plain Sinkhorn's error is NaN when it broke on every sample; the cache must give NaN back, not fail or 0.
    def with_nan(metric, **options):
        report = REAL_CHECK(metric, **options)
        rows = [dataclasses.replace(report.sinkhorn[0], plain_error=float("nan"), objective_gap=-0.0),
                dataclasses.replace(report.sinkhorn[1], plain_error=float("inf"))]
        return dataclasses.replace(report, sinkhorn=rows, emd_max_relative_error=float("-inf"),
                                   failures=["closed form differs: ε=0.1·max, naïve"])

    monkeypatch.setattr(ot_check, "reference_check", with_nan)
    metric = random_metric()
    stored, cached = cached_reference_check(metric, **QUICK)
    assert cached is False and math.isnan(stored.sinkhorn[0].plain_error)
    monkeypatch.setattr(ot_check, "reference_check", _no_check)
    warm, cached = cached_reference_check(metric, **QUICK)
    assert cached is True and not warm.passed
    assert_same(warm, stored)
    assert math.isnan(warm.sinkhorn[0].plain_error) and warm.sinkhorn[1].plain_error == math.inf
    assert math.copysign(1, warm.sinkhorn[0].objective_gap) == -1 and warm.emd_max_relative_error == -math.inf
    assert warm.failures == ["closed form differs: ε=0.1·max, naïve"]


def test_prepare_runs_just_before_a_computed_check_only(cache, monkeypatch):
    order = []

    def check(metric, **options):
        order.append("check")
        return REAL_CHECK(metric, **options)

    monkeypatch.setattr(ot_check, "reference_check", check)
    metric = random_metric()
    cached_reference_check(metric, prepare=lambda: order.append("prepare"), **QUICK)
    cached_reference_check(metric, prepare=lambda: order.append("prepare"), **QUICK)
    cached_reference_check(metric, prepare=lambda: order.append("prepare"), use_cache=False, **QUICK)
    assert order == ["prepare", "check", "prepare", "check"]


def test_the_options_are_reference_checks_but_closed_form(cache):
    params = inspect.signature(REAL_CHECK).parameters
    assert set(cc._DEFAULTS) == {n for n, p in params.items() if p.kind is p.KEYWORD_ONLY} - {"closed_form"}
    with pytest.raises(TypeError, match="closed_form"):
        cached_reference_check(random_metric(), closed_form=lambda c, q, t: np.zeros(len(q)))
    with pytest.raises(TypeError, match="sample"):
        cached_reference_check(random_metric(), sample=3)
    assert not cache.exists()


@pytest.mark.parametrize("bad", [
    {"p": 0.0}, {"p": float("nan")}, {"p": float("inf")}, {"p": True}, {"samples": 0}, {"samples": 2.0},
    {"sinkhorn_samples": -1}, {"seed": -1}, {"seed": 2**32}, {"regs": (1.0, 0.0)}, {"regs": [float("nan")]},
    {"emd_tolerance": -1e-9}, {"sinkhorn_tolerance": float("nan")},
])
def test_bad_options_raise_the_same_error_before_the_cache(cache, monkeypatch, bad):
    metric = random_metric(k=3)
    with pytest.raises(WpgdkitError) as direct:
        REAL_CHECK(metric, **{**QUICK, **bad})
    monkeypatch.setattr(ot_check, "reference_check", _no_check)
    for use_cache in (True, False):
        with pytest.raises(WpgdkitError) as cached:
            cached_reference_check(metric, use_cache=use_cache, **{**QUICK, **bad})
        assert type(cached.value) is type(direct.value) and str(cached.value) == str(direct.value)
    assert not cache.exists()  # refused before the cache was looked at


def test_regs_may_be_any_iterable(cache):
    metric = random_metric()
    from_generator, _ = cached_reference_check(metric, **{**QUICK, "regs": (r for r in (1.0, 0.1))})
    assert [row.reg_relative for row in from_generator.sinkhorn] == [1.0, 0.1]
    assert_same(from_generator, reference_check(metric, **{**QUICK, "regs": iter([1.0, 0.1])}))
    assert cached_reference_check(metric, **QUICK)[1] is True  # the same key as the tuple


# --- every input of the answer is in the key -------------------------------------------------------------


@pytest.mark.parametrize("change", [
    {"p": 2.0}, {"p": 1}, {"p": float(np.nextafter(1.0, 2.0))}, {"samples": 31}, {"sinkhorn_samples": 2},
    {"seed": 1}, {"regs": (1.0,)}, {"regs": (1.0, 0.1, 0.01)}, {"regs": (1.0, 0.1000001)}, {"regs": (1, 0.1)},
    {"regs": (0.1, 1.0)}, {"emd_tolerance": 1e-8}, {"emd_tolerance": float(np.nextafter(1e-9, 1.0))},
    {"sinkhorn_tolerance": 1e-5},
], ids=repr)
def test_each_option_is_in_the_key(cache, reference_check_calls, change):
    metric = random_metric()
    cached_reference_check(metric, **QUICK)
    report, cached = cached_reference_check(metric, **{**QUICK, **change})
    assert cached is False and len(reference_check_calls) == 2 and len(entries(cache)) == 2
    assert_same(report, REAL_CHECK(metric, **{**QUICK, **change}))
    assert cached_reference_check(metric, **{**QUICK, **change})[1] is True
    assert cached_reference_check(metric, **QUICK)[1] is True  # both kept


@pytest.mark.parametrize("where", [(0, 1), (4, 2), (3, 3)])
def test_one_ulp_in_one_entry_is_another_key(cache, reference_check_calls, where):
    metric = random_metric()
    cached_reference_check(metric, **QUICK)
    matrix = metric.matrix.copy()
    matrix[where] = np.nextafter(matrix[where], np.inf)
    report, cached = cached_reference_check(LabelMetric(metric.classes, matrix), **QUICK)
    assert cached is False and len(reference_check_calls) == 2
    assert_same(report, REAL_CHECK(LabelMetric(metric.classes, matrix), **QUICK))


def test_a_renamed_class_is_another_key(cache, reference_check_calls):
    metric = random_metric()
    cached_reference_check(metric, **QUICK)
    renamed = LabelMetric(("x", *metric.classes[1:]), metric.matrix)
    assert cached_reference_check(renamed, **QUICK)[1] is False and len(reference_check_calls) == 2


def test_a_contiguous_or_not_matrix_is_the_same_key(cache, reference_check_calls):
    metric = random_metric()
    cached_reference_check(metric, **QUICK)
    fortran = np.asfortranarray(metric.matrix)
    same = LabelMetric(metric.classes, fortran)
    assert cached_reference_check(same, **QUICK)[1] is True and len(reference_check_calls) == 1


@pytest.mark.parametrize("package", ["numpy", "POT", "scipy"])
def test_another_package_version_is_another_key(cache, reference_check_calls, monkeypatch, package):
    metric = random_metric()
    cached_reference_check(metric, **QUICK)
    real = cc._installed_version
    assert real(package) is not None
    monkeypatch.setattr(cc, "_installed_version", lambda name: "0.0.0-other" if name == package else real(name))
    assert cached_reference_check(metric, **QUICK)[1] is False and len(reference_check_calls) == 2


def test_the_versions_are_read_without_importing(cache):
    code = ("import sys\nfrom wpgdkit.labelmetric.check_cache import _installed_version, _numeric_platform\n"
            "print([_installed_version(n) for n in ('numpy', 'POT', 'scipy')], _numeric_platform()['machine'])\n"
            "print('ot' in sys.modules, 'scipy' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    versions, imported = proc.stdout.strip().splitlines()
    assert "None" not in versions and imported == "False False"


def test_another_wpgdkit_version_is_another_key(cache, reference_check_calls, monkeypatch):
    metric = random_metric()
    cached_reference_check(metric, **QUICK)
    monkeypatch.setattr(wpgdkit, "__version__", "99.0.0")
    assert cached_reference_check(metric, **QUICK)[1] is False and len(reference_check_calls) == 2


def test_another_machine_is_another_key(cache, reference_check_calls, monkeypatch):
    metric = random_metric()
    cached_reference_check(metric, **QUICK)
    real = cc._numeric_platform()
    assert real["machine"] and real["python"]
    monkeypatch.setattr(cc, "_numeric_platform", lambda: {**real, "cpu": [*real["cpu"], "AVX512F"]})
    assert cached_reference_check(metric, **QUICK)[1] is False and len(reference_check_calls) == 2


@pytest.mark.parametrize("which", [0, 1])
def test_an_edited_source_file_is_another_key(cache, reference_check_calls, monkeypatch, tmp_path, which):
    copies = []
    for source in cc._SOURCES:
        copies.append(tmp_path / "src" / source.name)
        copies[-1].parent.mkdir(exist_ok=True)
        shutil.copyfile(source, copies[-1])
    monkeypatch.setattr(cc, "_SOURCES", tuple(copies))
    metric = random_metric()
    cached_reference_check(metric, **QUICK)
    assert cached_reference_check(metric, **QUICK)[1] is True
    with open(copies[which], "a") as fh:
        fh.write("\n# an edit\n")
    assert cached_reference_check(metric, **QUICK)[1] is False and len(reference_check_calls) == 2
    assert cached_reference_check(metric, **QUICK)[1] is True


def test_the_source_hashes_are_remembered(cache, monkeypatch):
    metric = random_metric()
    cached_reference_check(metric, **QUICK)
    memo = json.loads((cache / "metric-check" / "file-digests.json").read_text())
    assert sorted(memo["files"]) == sorted(os.path.abspath(p) for p in cc._SOURCES)


def test_unreadable_sources_mean_no_cache(cache, reference_check_calls, monkeypatch, tmp_path):
    monkeypatch.setattr(cc, "_SOURCES", (tmp_path / "missing.py",))
    metric = random_metric()
    assert cached_reference_check(metric, **QUICK)[1] is False
    assert cached_reference_check(metric, **QUICK)[1] is False and len(reference_check_calls) == 2
    assert entries(cache) == []


# --- a bad entry is never used, and is replaced ----------------------------------------------------------


def _retype(doc, path, value):
    """The entry with one payload field set to ``value`` and the payload's hash fixed: only the types are wrong."""
    target = doc["payload"]
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    doc["payload_sha256"] = sha256_hex(canonical_json(doc["payload"]))
    return json.dumps(doc).encode()


def _edited(doc, update):
    doc.update(update)
    return json.dumps(doc).encode()


CORRUPTIONS = {
    "truncated": lambda good, doc: good[: len(good) // 2],
    "empty": lambda good, doc: b"",
    "invalid JSON": lambda good, doc: b"{not json",
    "not UTF-8": lambda good, doc: b"\xff\xfe" + good,
    "deeply nested": lambda good, doc: b"[" * 100_000 + b"]" * 100_000,
    "a list": lambda good, doc: b"[]",
    "payload edited, hash not": lambda good, doc: good.replace(b'"samples": 30', b'"samples": 31'),
    "error edited, hash not": lambda good, doc: _edited(doc, {"payload": {**doc["payload"], "emd_max_relative_error": 0.5}}),
    "hash removed": lambda good, doc: _edited(doc, {"payload_sha256": None}),
    "wrong key": lambda good, doc: _edited(doc, {"key": "0" * 64}),
    "wrong fields": lambda good, doc: _edited(doc, {"fields": {**doc["fields"], "classes": ["x"]}}),
    "no fields": lambda good, doc: json.dumps({k: v for k, v in doc.items() if k != "fields"}).encode(),
    "other format": lambda good, doc: _edited(doc, {"format": "wpgdkit-wordnet-closure"}),
    "newer version": lambda good, doc: _edited(doc, {"version": cc.CACHE_VERSION + 1}),
    "count as str": lambda good, doc: _retype(doc, ["samples"], "30"),
    "count as float": lambda good, doc: _retype(doc, ["num_classes"], 6.0),
    "error as bool": lambda good, doc: _retype(doc, ["sinkhorn", 0, "plain_error"], True),
    "error as str": lambda good, doc: _retype(doc, ["emd_max_relative_error"], "0"),
    "computed float as int": lambda good, doc: _retype(doc, ["sinkhorn", 1, "cost_error"], 0),
    "row missing a field": lambda good, doc: _retype(doc, ["sinkhorn", 0], {"reg": 1.0}),
    "rows not a list": lambda good, doc: _retype(doc, ["sinkhorn"], {}),
    "failure not a str": lambda good, doc: _retype(doc, ["failures"], [1]),
    "passed disagrees": lambda good, doc: _retype(doc, ["passed"], False),
    "extra field": lambda good, doc: _retype(doc, ["extra"], 1),
    "payload not a dict": lambda good, doc: _edited(doc, {"payload": [], "payload_sha256": sha256_hex(canonical_json([]))}),
}


@pytest.mark.parametrize("name", list(CORRUPTIONS))
def test_a_corrupt_entry_is_ignored_and_rewritten(cache, reference_check_calls, name):
    metric = random_metric()
    fresh, _ = cached_reference_check(metric, **QUICK)
    [entry] = entries(cache)
    good = entry.read_bytes()
    corrupt = CORRUPTIONS[name](good, json.loads(good))
    assert corrupt != good
    entry.write_bytes(corrupt)
    report, cached = cached_reference_check(metric, **QUICK)
    assert cached is False and len(reference_check_calls) == 2
    assert_same(report, fresh)
    assert entry.read_bytes() == good  # replaced by the good entry
    assert cached_reference_check(metric, **QUICK)[1] is True and len(reference_check_calls) == 2


def test_a_folder_in_place_of_the_entry(cache, reference_check_calls):
    metric = random_metric()
    fresh, _ = cached_reference_check(metric, **QUICK)
    [entry] = entries(cache)
    entry.unlink()
    entry.mkdir()
    for _ in range(2):
        report, cached = cached_reference_check(metric, **QUICK)
        assert cached is False and entry.is_dir()
        assert_same(report, fresh)


@pytest.mark.parametrize("how", ["a file above it", "read-only"])
def test_an_unwritable_cache_folder_still_checks(tmp_path, monkeypatch, reference_check_calls, how):
    if how == "a file above it":
        blocker = tmp_path / "file"
        blocker.write_text("not a folder\n")
        folder = blocker / "cache"
    else:
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            pytest.skip("root writes read-only folders")
        folder = tmp_path / "ro"
        folder.mkdir(mode=0o500)
    monkeypatch.setenv(CACHE_ENV, str(folder))
    metric = random_metric()
    for _ in range(2):
        report, cached = cached_reference_check(metric, **QUICK)
        assert cached is False
        assert_same(report, REAL_CHECK(metric, **QUICK))
    assert len(reference_check_calls) == 2
    if how == "read-only":
        assert list(folder.iterdir()) == []


def test_no_cache_neither_reads_nor_writes(cache, reference_check_calls):
    metric = random_metric()
    report, cached = cached_reference_check(metric, use_cache=False, **QUICK)
    assert cached is False and not cache.exists()
    cached_reference_check(metric, **QUICK)  # now there is an entry
    before = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in (cache / "metric-check").iterdir()}
    again, cached = cached_reference_check(metric, use_cache=False, **QUICK)
    assert cached is False and len(reference_check_calls) == 3  # computed, although the entry was there
    assert {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in (cache / "metric-check").iterdir()} == before
    assert_same(again, report)


# --- OTCheckReport.from_dict ------------------------------------------------------------------------------


def test_from_dict_is_the_inverse_of_to_dict():
    row = SinkhornRow(reg=0.5, reg_relative=1, cost_error=1e-300, objective_gap=-0.0, expected_gap=5e-324,
                      plain_error=float("nan"))
    report = OTCheckReport(num_classes=3, p=2, samples=10, emd_max_relative_error=float("inf"), emd_tolerance=0,
                           sinkhorn_samples=1, sinkhorn=[row], sinkhorn_tolerance=1e-6, failures=["x"])
    back = OTCheckReport.from_dict(json.loads(json.dumps(report.to_dict())))
    assert_same(back, report)
    assert isinstance(back.sinkhorn[0], SinkhornRow) and back.passed is False
    without_passed = {k: v for k, v in report.to_dict().items() if k != "passed"}
    assert_same(OTCheckReport.from_dict(without_passed), report)


@pytest.mark.parametrize("change", [
    {"samples": None}, {"p": "2"}, {"p": False}, {"num_classes": 3.0}, {"emd_max_relative_error": 0},
    {"failures": "x"}, {"failures": [None]}, {"sinkhorn": [{}]}, {"sinkhorn": None}, {"passed": 1},
    {"passed": True}, {"unknown": 1},
])
def test_from_dict_refuses_what_to_dict_cannot_write(change):
    good = OTCheckReport(num_classes=3, p=1.0, samples=10, emd_max_relative_error=0.0, emd_tolerance=1e-9,
                         sinkhorn_samples=0, failures=["x"]).to_dict()
    assert OTCheckReport.from_dict(good).failures == ["x"]
    with pytest.raises(ValueError):
        OTCheckReport.from_dict({**good, **change})
    for partial in ([], None, "x", {k: v for k, v in good.items() if k != "samples"}):
        with pytest.raises(ValueError):
            OTCheckReport.from_dict(partial)
