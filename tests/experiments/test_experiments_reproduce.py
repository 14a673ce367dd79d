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


def test_p_sweep_audits_every_model_with_every_attack(results):
    _, done = results
    r = done["p-sweep"].results
    assert r["attacks"] == list(rp.AUDIT_ATTACKS) == ["pgd", "wpgd", "apgd-ce", "worst-cost"]
    for row in r["rows"]:
        assert list(row["attacks"]) == r["attacks"]
        # The legacy columns are the PGD and WPGD audits' numbers.
        assert row["attacks"]["pgd"]["adversarial_error"] == row["adversarial_error"]
        assert row["attacks"]["wpgd"]["score"] == row["score"]
        for measures in row["attacks"].values():
            assert 0 <= measures["adversarial_error"] <= 100 and measures["adversarial_error_se"] >= 0
            assert measures["score_se"] >= 0 and measures["hierarchical_distance_at_1"] >= 0
        # Per class: 3 toy classes, 120 test points, a binomial SE per class.
        assert len(row["per_class_natural_error"]) == 3 and sum(row["per_class_points"]) == 120
        for e, se, n in zip(row["per_class_natural_error"], row["per_class_natural_error_se"], row["per_class_points"]):
            assert se == pytest.approx(100 * math.sqrt(e / 100 * (1 - e / 100) / n))
    for measures in r["rows"][0]["attacks"].values():  # the PGD model is each attack's zero reference
        assert measures["score_delta"] == 0.0 and measures["score_delta_se"] == 0.0
    text = done["p-sweep"].report.read_text()
    assert "| model | attack | AE % | S (eq. 7) |" in text and "worst-cost" in text and "APGD-CE" in text


def test_gap_correlation_reports_every_attack_and_the_mantel_test(results):
    _, done = results
    r = done["gap-correlation"].results
    assert [list(m["attacks"]) for m in r["models"]] == [list(rp.AUDIT_ATTACKS)] * 2
    c = r["correlation"]["toy-paper.csv"]
    assert 1 / 6 <= c["mantel_pvalue"] <= 1  # K = 3: all 3! relabellings are enumerated
    assert "Mantel p" in done["gap-correlation"].report.read_text()


def test_attack_measures_add_the_two_score_variances():
    from types import SimpleNamespace

    def model(score, se, delta):
        return SimpleNamespace(adversarial_error=40.0, score=score, score_delta=delta, severity_adversarial=2.0,
                               cost_sensitive_robust_error=10.0, hdist_adversarial=0.8,
                               standard_errors={"adversarial_error": 1.0, "score": se,
                                                "cost_sensitive_robust_error": 0.5,
                                                "hierarchical_distance_at_1": {"adversarial": 0.02}})

    reference, other = model(1.0, 0.03, 0.0), model(1.2, 0.04, 0.2)
    measured = rp.attack_measures(other, reference)
    assert measured["score_delta_se"] == pytest.approx(0.05)  # sqrt(0.03² + 0.04²)
    assert rp.attack_measures(reference, reference)["score_delta_se"] == 0.0
    assert measured["hierarchical_distance_at_1_se"] == 0.02 and measured["cost_sensitive_robust_error_se"] == 0.5


def test_trend_and_plus_minus():
    assert rp.prose.trend([3.0, 2.0, 1.0]) == "falls" and rp.prose.trend([1.0, 2.0]) == "rises"
    assert rp.prose.trend([1.0, 2.0, 2.0]) == "is not monotone" and rp.prose.trend([1.0, None]) == "is undefined"
    assert rp.prose._pm(-0.05, 0.01, "+.4f") == "-0.0500 ± 0.0100"
    assert rp.prose._pm(12.345, None) == "12.35" and rp.prose._pm(None, 1.0) == "–"


def test_sweep_reading_says_per_attack_what_moves_with_p():
    def attacks(delta, severity, ae):
        return {"pgd": {"score_delta": delta, "score_delta_se": 0.01, "severity": severity, "adversarial_error": 30.0},
                "apgd-ce": {"score_delta": delta, "score_delta_se": 0.01, "severity": severity,
                            "adversarial_error": ae}}

    rows = [{"p": 0.0, "name": "pgd", "natural_error": 20.0, "adversarial_error": 30.0, "score_delta": 0.0,
             "attacks": attacks(0.0, 4.0, 31.0)},
            {"p": 1.0, "name": "w1", "natural_error": 20.0, "adversarial_error": 30.0, "score_delta": 0.1,
             "attacks": attacks(0.1, 3.5, 29.0)},
            {"p": 10.0, "name": "w10", "natural_error": 20.0, "adversarial_error": 30.0, "score_delta": 0.3,
             "attacks": attacks(0.3, 3.0, 32.0)}]
    text = rp.prose.sweep_reading(rows, 1000)
    assert ("- APGD-CE: S − S_PGD for p = 1, 10: +0.1000 ± 0.0100, +0.3000 ± 0.0100 — it rises as p rises; the "
            "severity of the mistakes (PGD, then p = 1, 10): 4.000, 3.500, 3.000 — it falls.") in text
    assert "- Attacks that found fewer errors than PGD-20: w1 (APGD-CE 29.00 % < PGD 30.00 %)." in text


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

    from wpgdkit.datasets import get_dataset

    classes = get_dataset("cifar100").classes  # no shipped pairs for CIFAR-100: taken from the metric
    c = np.full((100, 100), 3.0)
    np.fill_diagonal(c, 0.0)
    c[0, 2] = c[2, 0] = 1.0  # the closest pair
    c[2, 3] = c[3, 2] = 6.0  # the farthest
    path = write_metric(LabelMetric(classes, c), tmp_path / "m.csv")
    ctx = rp._Context(ReproduceConfig("imbalance", metric=str(path), out=str(tmp_path)),
                      {"dataset": "cifar100"}, None)
    assert rp._pairs(ctx) == ((0, 2), (2, 3))


# --- one run per settings; reports that tell the truth about themselves ------------------------

TINY = dict(dataset="toy", epochs=1, limit=60, test_limit=30, eval_steps=2)


def _train_commands(report_text: str) -> list[str]:
    return [line for line in report_text.splitlines() if line.startswith("wpgdkit train")]


def test_other_settings_train_new_runs_and_the_report_matches_them(tmp_path):
    """Regression: a second run with --seed 1 --steps 2 reused the seed-0, 5-step checkpoints and reported them."""
    from wpgdkit.training import load_checkpoint

    first = run_experiment(ReproduceConfig("entropy", out=str(tmp_path), device="cpu", seed=0, **TINY))
    second = run_experiment(ReproduceConfig("entropy", out=str(tmp_path), device="cpu", seed=1, steps=2, **TINY))
    assert set(first.document["runs"].values()) == {"trained"}
    assert set(second.document["runs"].values()) == {"trained"}  # nothing of the first run is reused
    assert not set(first.document["runs"]) & set(second.document["runs"])
    text = second.report.read_text()
    commands = _train_commands(text)
    assert len(commands) == 2
    for name in second.document["runs"]:
        state = load_checkpoint(tmp_path / "runs" / name)
        assert state.settings.seed == 1 and state.complete
        if state.method == "pgd":
            assert state.threat.steps == 2
        (command,) = [c for c in commands if c.endswith(f"--out {tmp_path / 'runs' / name}")]
        assert "--seed 1" in command and f"--method {state.method}" in command
        assert ("--steps 2" in command) == (state.method == "pgd")
    assert "--seed 1 --steps 2" not in first.report.read_text()
    # The first run's files are untouched and still its own.
    for name in first.document["runs"]:
        assert load_checkpoint(tmp_path / "runs" / name).settings.seed == 0
    # The same command again reuses everything.
    third = run_experiment(ReproduceConfig("entropy", out=str(tmp_path), device="cpu", seed=1, steps=2, **TINY))
    assert set(third.document["runs"].values()) == {"reused"}


def test_commands_carry_every_flag_and_the_scale_line_says_custom(tmp_path):
    result = run_experiment(ReproduceConfig("entropy", out=str(tmp_path), device="cpu", seed=0, **TINY))
    text = result.report.read_text()
    commands = result.document["commands"]
    assert commands and all("--device cpu" in c for c in commands)
    assert (f"wpgdkit reproduce entropy --scale quick --dataset toy --epochs 1 --limit 60 --test-limit 30 "
            f"--eval-steps 2 --out {tmp_path} --device cpu --seed 0") in text
    assert "Scale `quick` (custom: dataset=toy, epochs=1, limit=60, test_limit=30, eval_steps=2)" in text
    assert result.summary_markdown and "## Commands" not in result.summary_markdown
    assert text.startswith(result.summary_markdown)
    assert result.document["experiment"] == "entropy" and result.document["custom"]["epochs"] == 1
    plain = rp.custom_settings(ReproduceConfig("entropy"))
    assert plain == {} and rp.prose.scale_line("quick", plain) == "Scale `quick`"


def test_progress_hears_the_plan_and_every_reused_run(tmp_path):
    from contextlib import contextmanager

    class Recorder:
        def __init__(self):
            self.events = []

        def plan(self, *, trainings, audits):
            self.events.append(("plan", trainings, audits))

        def reused(self, name):
            self.events.append(("reused", name))

        @contextmanager
        def training(self, name, epochs):
            self.events.append(("training", name, epochs))
            yield None

        @contextmanager
        def auditing(self, names, attack):
            self.events.append(("auditing", attack))
            yield None

    config = ReproduceConfig("entropy", out=str(tmp_path), device="cpu", **TINY)
    first = Recorder()
    run_experiment(config, progress=first)
    assert first.events[0] == ("plan", 2, 1)
    assert [e[0] for e in first.events[1:]] == ["training", "training", "auditing"]
    again = Recorder()
    run_experiment(config, progress=again)
    assert again.events[0] == ("plan", 0, 1) and [e[0] for e in again.events[1:]] == ["reused", "reused", "auditing"]


def test_sweep_reading_compares_each_p_with_pgd_by_standard_errors():
    rows = [{"p": 0.0, "natural_error": 33.0, "adversarial_error": 60.0, "score_delta": 0.0, "severity_wpgd_attack": None},
            {"p": 1.0, "natural_error": 30.0, "adversarial_error": 50.0, "score_delta": -0.02, "severity_wpgd_attack": None},
            {"p": 2.5, "natural_error": 31.0, "adversarial_error": 60.5, "score_delta": -0.03, "severity_wpgd_attack": None},
            {"p": 10.0, "natural_error": 36.0, "adversarial_error": 66.0, "score_delta": -0.01, "severity_wpgd_attack": None}]
    text = rp.prose.sweep_reading(rows, 1000)
    assert text == (
        "\n**Reading.**\n\n"
        "- S − S_PGD under the WPGD attack (the paper's Table 3) for p = 1, 2.5, 10: -0.0200, -0.0300, -0.0100; "
        "it does not fall monotonically as p rises, "
        "unlike the paper's Table 3.\n"
        "- NE against PGD's 33.00 % (n = 1000 test points, SE of each difference from the two binomial errors): "
        "p = 1: 30.00 %, within 2 SE of PGD (-3.00 ± 2.08 points); "
        "p = 2.5: 31.00 %, within 2 SE of PGD (-2.00 ± 2.09 points); "
        "p = 10: 36.00 %, within 2 SE of PGD (+3.00 ± 2.12 points).\n"
        "- AE under PGD against PGD's 60.00 % (n = 1000 test points, SE of each difference from the two binomial "
        "errors): p = 1: 50.00 %, lower than PGD by 10.00 ± 2.21 points (beyond 2 SE); "
        "p = 2.5: 60.50 %, within 2 SE of PGD (+0.50 ± 2.19 points); "
        "p = 10: 66.00 %, higher than PGD by 6.00 ± 2.15 points (beyond 2 SE).\n")
    # The SE itself: sqrt(p1(1 − p1)/n + p2(1 − p2)/n), in points.
    d, se = rp.prose.error_difference(30.0, 33.0, 1000)
    assert d == pytest.approx(-3.0) and se == pytest.approx(100 * math.sqrt(0.33 * 0.67 / 1000 + 0.3 * 0.7 / 1000))


def test_run_files_are_named_by_settings_and_fingerprint(tmp_path):
    from wpgdkit.experiments import runner
    from wpgdkit.training import DataConfig, TrainConfig, run_settings

    base = TrainConfig(data=DataConfig("toy", limit=240, val_fraction=0.0), model="mlp", method="pgd", norm="l2",
                       eps=0.4, steps=5, epochs=2)
    name = runner.run_file_name(base)
    assert name.startswith("toy-mlp-pgd-l2-eps0.4-k5-e2-n240-s0-") and name.endswith(".pt")
    assert name[-11:-3] == run_settings(base).fingerprint()[:8]
    import dataclasses

    names = {runner.run_file_name(dataclasses.replace(base, **change))
             for change in ({}, {"seed": 1}, {"lr": 0.05}, {"steps": 2}, {"batch_size": 64})}
    assert len(names) == 5  # any setting that changes the weights changes the file
    assert runner.run_file_name(dataclasses.replace(base, device="cpu", out="elsewhere.pt")) == name
    placed = runner.place_run(base, tmp_path)
    assert placed.out == str(tmp_path / name) and runner.run_status(placed) == "trained"
    (tmp_path / name).write_bytes(b"not a checkpoint")
    assert runner.run_status(placed) == "trained"  # unreadable: trained over, never reused


def test_numbers_in_commands_read_back_exactly():
    from wpgdkit.experiments import runner

    assert runner.num(0.4) == "0.4" and runner.num(2) == "2" and runner.num(1.0) == "1"
    assert float(runner.num(4 / 255)) == 4 / 255 and float(runner.num(0.1 + 0.2)) == 0.1 + 0.2
    assert runner.command_line(["x"], [("--a", None), ("--b", True), ("--c", False), ("--d", 0.5)]) == "x --b --d 0.5"


def test_claims_verdicts():
    from wpgdkit.experiments import claims

    assert claims.verdict(-0.5, 0.2, expected=-1) == claims.SHOWS
    assert claims.verdict(0.5, 0.2, expected=-1) == claims.DOES_NOT_SHOW
    assert claims.verdict(-0.3, 0.2, expected=-1) == claims.WITHIN_NOISE  # 1.5 SE: noise
    assert claims.verdict(None, 0.2, expected=1) == "not measured"
    assert claims.pvalue_verdict(-0.4, 0.01, expected=-1) == claims.SHOWS
    assert claims.pvalue_verdict(0.4, 0.01, expected=-1) == claims.DOES_NOT_SHOW
    assert claims.pvalue_verdict(-0.4, 0.2, expected=-1) == claims.WITHIN_NOISE
    with pytest.raises(WpgdkitError):
        claims.verdict(1.0, 1.0, expected=0)


def test_claims_table_from_the_toy_reports(results):
    from wpgdkit.experiments import claims

    out, done = results
    folders = [out / name for name in done]
    found = claims.findings(claims.read_results(folders))
    by_claim = {}
    for f in found:
        by_claim.setdefault(f.claim, []).append(f)
    sweep = json.loads((out / "p-sweep" / "results.json").read_text())["results"]
    pgd, w1 = sweep["rows"][0], sweep["rows"][1]
    # Recomputed by hand: WPGD p = 1's clean error against PGD's, with the SE of two binomial errors.
    d = w1["natural_error"] - pgd["natural_error"]
    n = sweep["test_points"]
    se = 100 * math.sqrt(sum(e / 100 * (1 - e / 100) for e in (w1["natural_error"], pgd["natural_error"])) / n)
    first = by_claim["WPGD has lower clean error than PGD"][0]
    assert first.measured.endswith(f"Δ = {d:+.2f} ± {se:.2f}")
    assert first.verdict == claims.verdict(d, se, expected=-1)
    assert len(by_claim["S − S_PGD < 0 under worst-cost"]) == 3
    assert {f.source for f in found} >= {"Table 1", "Table 3", "Sec. 3.2, Fig. 5", "Sec. 3.3, Fig. 7"}
    table = claims.claims_table(folders, link_base="results")
    assert table.startswith("| claim | paper | run | measured (± 1 SE) | verdict |")
    assert "[p-sweep](results/p-sweep/report.md) (toy-paper.csv, seed 0)" in table
    spread = claims.seed_table([out / "p-sweep"])
    assert spread.count("\n") == 2 + 4  # header, rule, one row per p
    with pytest.raises(WpgdkitError, match="cannot read"):
        claims.read_results([out / "missing"])
