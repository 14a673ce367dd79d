"""``reproduce``: every experiment at a reduced scale on the toy problem, reuse of finished runs, settings."""

from __future__ import annotations

import json
import math

import pytest

from wpgdkit.errors import UnknownNameError, WpgdkitError
from wpgdkit.experiments import reproduce as rp
from wpgdkit.experiments.reproduce import ReproduceConfig, list_experiments, resolve_settings, run_experiment

SMALL = dict(dataset="toy", epochs=1, limit=240, test_limit=120, steps=2, eval_steps=3)


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    out = tmp_path_factory.mktemp("reproduce")
    done = {name: run_experiment(ReproduceConfig(name, out=str(out), device="cpu", **SMALL))
            for name in list_experiments()}
    return out, done


def test_registry_order_and_unknown_names():
    assert list_experiments() == ["gap-correlation", "p-sweep", "imbalance", "entropy"]
    with pytest.raises(UnknownNameError, match="gap-correlation, p-sweep, imbalance, entropy"):
        run_experiment(ReproduceConfig("table-9"))


def test_every_experiment_writes_report_plots_and_results(results):
    out, done = results
    for name, result in done.items():
        assert result.report == out / name / "report.md"
        text = result.report.read_text()
        assert "## Commands" in text and "wpgdkit train" in text and "wpgdkit audit" in text
        assert f"wpgdkit reproduce {name} --scale quick --dataset toy" in text
        assert "**Reading.**" in text
        for plot in result.plots:
            assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and plot.name in text
        doc = json.loads((out / name / "results.json").read_text())
        assert doc["experiment"] == name and doc["settings"]["dataset"] == "toy"


def test_gap_correlation_numbers_are_sane(results):
    _, done = results
    r = done["gap-correlation"].results
    assert [m["method"] for m in r["models"]] == ["ce", "pgd"]
    for m in r["models"]:
        assert 0 <= m["natural_error"] <= 100 and 0 <= m["adversarial_error"] <= 100
    assert "toy-paper.csv" in r["correlation"]
    c = r["correlation"]["toy-paper.csv"]
    assert c["pairs"] == 6 and (c["pearson"] is None or -1 <= c["pearson"] <= 1)
    gap = r["gap"]
    assert len(gap) == 3 and all(0 <= v <= 1 for row in gap for v in row)


def test_p_sweep_rows_and_reference(results):
    _, done = results
    rows = done["p-sweep"].results["rows"]
    assert [r["p"] for r in rows] == [0.0, 1.0, 2.5, 10.0]
    assert rows[0]["score_delta"] == 0.0  # PGD is the zero reference, as in Table 3
    assert all(math.isfinite(r["score"]) for r in rows)


def test_imbalance_curves_have_one_point_per_epoch_and_the_ratio_is_applied(results):
    _, done = results
    rows = done["imbalance"].results["rows"]
    assert len(rows) == 8  # 2 pairs × balanced/imbalanced × CE/PGD
    assert {r["pair"] for r in rows} == {"similar", "dissimilar"}
    assert done["imbalance"].results["pairs"] == {"similar": [0, 2], "dissimilar": [0, 1]}  # the toy metric's 0.01 and 10
    assert all(len(r["val_error_per_epoch"]) == 1 for r in rows)
    from wpgdkit.training import load_checkpoint

    out, _ = results
    (path,) = (out / "runs").glob("toy-mlp-ce-c0-2-imb0.3-e1-n240-s0-*.pt")
    state = load_checkpoint(path)
    assert state.data.imbalance == 0.3 and state.data.classes == ("0", "2")


def test_entropy_results(results):
    _, done = results
    r = done["entropy"].results
    assert len(r) == 2
    for record in r.values():
        assert 0 <= record["natural_mean"] <= math.log(3) + 1e-9
        assert sum(record["histogram"]) == 120


def test_finished_checkpoints_are_reused_not_retrained(results, monkeypatch):
    out, _ = results
    calls = []
    monkeypatch.setattr("wpgdkit.training.train", lambda *a, **k: calls.append(a))
    run_experiment(ReproduceConfig("entropy", out=str(out), device="cpu", **SMALL))
    run_experiment(ReproduceConfig("p-sweep", out=str(out), device="cpu", **SMALL))
    assert calls == []


def test_scales_and_overrides():
    quick = resolve_settings(ReproduceConfig("p-sweep"))
    assert quick["dataset"] == "fashion-mnist" and quick["model"] == "small-cnn" and quick["eval_steps"] == 20
    paper = resolve_settings(ReproduceConfig("p-sweep", scale="paper"))
    assert (paper["dataset"], paper["model"], paper["steps"], paper["eval_steps"]) == ("cifar10", "wrn-16-10", 8, 20)
    assert paper["eps"] == pytest.approx(4 / 255)
    toy = resolve_settings(ReproduceConfig("p-sweep", dataset="toy"))
    assert toy["model"] == "mlp" and toy["norm"] == "l2"
    assert resolve_settings(ReproduceConfig("p-sweep", epochs=7))["epochs"] == 7


@pytest.mark.parametrize("changes, message", [
    ({"epochs": 0}, "--epochs"), ({"eps": -0.1}, "--eps"), ({"steps": 0}, "--steps"), ({"limit": 1}, "--limit"),
    ({"model": "resnet-9000"}, "unknown model"), ({"dataset": "imagenet"}, "imagenet"), ({"scale": "huge"}, "scale"),
])
def test_bad_settings_are_refused(changes, message):
    with pytest.raises(WpgdkitError, match=message):
        resolve_settings(ReproduceConfig("p-sweep", **changes))


def test_closest_and_farthest_pairs_come_from_the_metric(tmp_path):
    from wpgdkit.labelmetric import LabelMetric, write_metric
    import numpy as np

    c = np.array([[0, 3, 1, 5], [3, 0, 2, 4], [1, 2, 0, 6], [5, 4, 6, 0]], dtype=float)
    path = write_metric(LabelMetric(("a", "b", "c", "d"), c), tmp_path / "m.csv")
    ctx = rp._Context(ReproduceConfig("imbalance", metric=str(path), out=str(tmp_path)),
                      {"dataset": "cifar100"}, None)
    assert rp._pairs(ctx) == ((0, 2), (2, 3))
