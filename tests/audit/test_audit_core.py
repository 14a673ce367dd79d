"""End to end: train tiny CE/PGD/WPGD models, audit them, and recompute every number independently."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from scipy import stats
from typer.testing import CliRunner

from wpgdkit.attacks import ThreatModel, pgd_attack
from wpgdkit.audit import AuditConfig, audit
from wpgdkit.audit import core as audit_core
from wpgdkit.cli import app
from wpgdkit.datasets import load_split
from wpgdkit.labelmetric import write_metric
from wpgdkit.labelmetric.shipped import PAPER_TOY_METRIC, load_shipped_metric
from wpgdkit.models import create_model
from wpgdkit.training import DataConfig, TrainConfig, load_checkpoint, train
from wpgdkit.training.data import batch_seed

runner = CliRunner()


def _train(folder, dataset: str, method: str, **changes) -> str:
    settings = dict(model="mlp", norm="l2", eps=0.4, steps=3, epochs=3, lr=0.05, limit=900)
    if dataset == "fashion-mnist":
        settings = dict(model="small-cnn", norm="linf", eps=0.1, steps=2, epochs=1, lr=0.05, limit=256)
    settings.update(changes)
    limit = settings.pop("limit")
    out = folder / f"{dataset}-{method}{'-p' + str(settings.get('p')) if 'p' in settings else ''}.pt"
    train(TrainConfig(data=DataConfig(dataset, limit=limit, val_fraction=0.0), method=method, eval_steps=0,
                      batch_size=64, out=str(out), device="cpu", **settings))
    return str(out)


@pytest.fixture(scope="module")
def toy_runs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("toy-runs")
    metric = str(write_metric(PAPER_TOY_METRIC, folder / "toy.csv"))
    return {"ce": _train(folder, "toy", "ce"), "pgd": _train(folder, "toy", "pgd"),
            "wpgd": _train(folder, "toy", "wpgd", metric=metric, p=2.5), "metric": metric, "folder": folder}


@pytest.fixture(scope="module")
def fashion_runs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fm-runs")
    return {"ce": _train(folder, "fashion-mnist", "ce"), "pgd": _train(folder, "fashion-mnist", "pgd"), "folder": folder}


def _model(path):
    # Rebuilt from the file's bytes by hand, independently of the run-record module.
    m = torch.load(path, weights_only=True)["model"]
    model = create_model(m["name"], num_classes=m["num_classes"], input_shape=tuple(m["input_shape"]),
                         mean=m["mean"], std=m["std"])
    model.load_state_dict(m["state_dict"])
    return model.eval()


def _test_points(dataset: str, limit: int | None):
    split = load_split(dataset, "test")
    n = len(split) if limit is None else limit
    x = torch.stack([split[i][0] for i in range(n)])
    y = torch.tensor([int(split[i][1]) for i in range(n)])
    return x, y


def _recompute(path, x, y, *, eps, norm, bounds, batch, seed=0, steps=20):
    """Clean and adversarial predictions with the plain library PGD and the documented seeds."""
    model = _model(path)
    attack = ThreatModel(eps=eps, step_size=2.5 * eps / steps, steps=steps, norm=norm, bounds=bounds)
    clean, adv = [], []
    for b, start in enumerate(range(0, len(x), batch)):
        xb, yb = x[start:start + batch], y[start:start + batch]
        x_adv = pgd_attack(model, xb, yb, threat=attack, generator=torch.Generator().manual_seed(batch_seed(seed, 0, b, 3)))
        with torch.no_grad():
            clean.append(model(xb).argmax(1))
            adv.append(model(x_adv).argmax(1))
    return torch.cat(clean).numpy(), torch.cat(adv).numpy()


def _confusion(y, pred, k):
    m = np.zeros((k, k))
    for a, b in zip(y, pred):
        m[a, b] += 1
    return m


def _check_against_recomputation(doc, runs, dataset, x, y, cost, *, eps, norm, bounds, batch, steps=20):
    k = cost.shape[0]
    y = y.numpy()
    preds = {name: _recompute(runs[name], torch.from_numpy(x) if isinstance(x, np.ndarray) else x, torch.from_numpy(y),
                              eps=eps, norm=norm, bounds=bounds, batch=batch, steps=steps) for name in ("ce", "pgd")}
    records = {m["name"]: m for m in doc["models"]}
    base_rates = _confusion(y, preds["ce"][0], k) / np.bincount(y, minlength=k)[:, None]
    s_ref = None
    for name in ("pgd", "ce"):
        clean, adv = preds[name]
        record = records[f"{dataset}-{name}"]
        nat, advm = _confusion(y, clean, k), _confusion(y, adv, k)
        assert record["confusion_natural"]["counts"] == nat.astype(int).tolist()
        assert record["confusion_adversarial"]["counts"] == advm.astype(int).tolist()
        assert record["natural_error"] == pytest.approx(100 * np.mean(clean != y))
        assert record["adversarial_error"] == pytest.approx(100 * np.mean(adv != y))
        rates = nat / nat.sum(1, keepdims=True)
        gap = np.abs(rates - base_rates)
        assert np.allclose(record["gap"], gap)
        mask = ~np.eye(k, dtype=bool)
        if np.ptp(gap[mask]) > 0:
            assert record["correlation"]["pearson"] == pytest.approx(stats.pearsonr(gap[mask], cost[mask]).statistic)
            assert record["correlation"]["spearman"] == pytest.approx(stats.spearmanr(gap[mask], cost[mask]).statistic)
        else:
            assert record["correlation"]["pearson"] is None
        # eq. 7, class-balanced: mean over classes of the mean cost of the adversarial predictions
        per_class = [np.mean([cost[c, p] for c_, p in zip(y, adv) if c_ == c]) for c in range(k)]
        score = float(np.mean(per_class))
        assert record["score"] == pytest.approx(score)
        s_ref = score if name == "pgd" else s_ref
        assert record["score_delta"] == pytest.approx(score - s_ref)
        wrong = adv != y
        if wrong.any():
            assert record["mistake_severity"]["adversarial"] == pytest.approx(np.mean(cost[y[wrong], adv[wrong]]))


def test_toy_audit_json_matches_an_independent_recomputation(toy_runs, tmp_path):
    out = tmp_path / "audit.json"
    result = runner.invoke(app, ["audit", toy_runs["ce"], toy_runs["pgd"], "--baseline", toy_runs["ce"],
                                 "--reference", toy_runs["pgd"], "--limit", "600", "--batch-size", "200", "--json", str(out),
                                 "--quiet"])
    assert result.exit_code == 0, result.output
    doc = json.loads(out.read_text())
    assert doc["schema"] == "wpgdkit-audit/1" and doc["dataset"] == "toy" and doc["classes"] == ["0", "1", "2"]
    assert doc["attack"]["eps"] == 0.4 and doc["attack"]["norm"] == "l2" and doc["attack"]["steps"] == 20
    assert doc["metric"]["origin"] == "shipped toy-paper.csv"
    x, y = _test_points("toy", 600)
    _check_against_recomputation(doc, toy_runs, "toy", x, y, PAPER_TOY_METRIC.matrix,
                                 eps=0.4, norm="l2", bounds=None, batch=200)


def test_fashion_mnist_audit_json_matches_an_independent_recomputation(fashion_runs, tmp_path):
    out = tmp_path / "audit.json"
    result = runner.invoke(app, ["audit", fashion_runs["ce"], fashion_runs["pgd"], "--baseline", fashion_runs["ce"],
                                 "--reference", fashion_runs["pgd"], "--limit", "120", "--batch-size", "60", "--steps", "5",
                                 "--json", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    doc = json.loads(out.read_text())
    assert doc["num_points"] == 120 and len(doc["classes"]) == 10
    assert doc["metric"]["origin"] == "shipped fashion-mnist-wordnet.csv"
    cost = load_shipped_metric("fashion-mnist-wordnet.csv").matrix
    x, y = _test_points("fashion-mnist", 120)
    _check_against_recomputation(doc, fashion_runs, "fashion-mnist", x, y, cost,
                                 eps=0.1, norm="linf", bounds=(0.0, 1.0), batch=60, steps=5)


def test_documented_keys_are_present_per_model(toy_runs):
    report = audit(AuditConfig(checkpoints=(toy_runs["ce"], toy_runs["pgd"], toy_runs["wpgd"]), baseline=toy_runs["ce"],
                               reference=toy_runs["pgd"], limit=150))
    doc = report.to_dict()
    for key in ("schema", "dataset", "classes", "num_points", "attack", "metric", "baseline", "reference", "models"):
        assert key in doc
    assert "natural_error" not in doc  # several models: per-model keys only in "models"
    for record in doc["models"]:
        for key in ("natural_error", "adversarial_error", "confusion_natural", "confusion_adversarial", "gap",
                    "correlation", "score", "score_delta", "entropy", "mistake_severity", "directional_robustness"):
            assert key in record
        assert set(record["entropy"]) == {"natural", "adversarial", "max"}
        assert len(record["entropy"]["natural"]["histogram"]["counts"]) == 3
        assert sum(map(sum, record["entropy"]["adversarial"]["histogram"]["counts"])) == 150
        assert len(record["directional_robustness"]) == 6
    wpgd = doc["models"][2]
    assert wpgd["method"] == "wpgd" and wpgd["p"] == 2.5
    # the metric came from the WPGD checkpoint
    assert doc["metric"]["origin"].startswith("checkpoint ")


def test_single_model_keys_are_also_at_the_top_level(toy_runs):
    doc = audit(AuditConfig(checkpoints=(toy_runs["pgd"],), limit=60)).to_dict()
    assert doc["natural_error"] == doc["models"][0]["natural_error"]
    assert doc["gap"] is None and doc["correlation"] is None and doc["score_delta"] is None


def test_each_model_is_attacked_once(toy_runs, monkeypatch):
    calls = []
    from wpgdkit.attacks.base import Attack

    real = Attack.__call__

    def counting(self, x, *args, **kwargs):
        calls.append(id(self.model))
        return real(self, x, *args, **kwargs)

    monkeypatch.setattr(Attack, "__call__", counting)
    config = AuditConfig(checkpoints=(toy_runs["ce"], toy_runs["pgd"], toy_runs["wpgd"]), baseline=toy_runs["ce"],
                         reference=toy_runs["pgd"], limit=300, batch_size=100)
    audit(config)
    assert len(calls) == 3 * 3  # three models, three batches each; baseline and reference not attacked again
    calls.clear()
    audit(AuditConfig(checkpoints=(toy_runs["wpgd"],), baseline=toy_runs["ce"], reference=toy_runs["pgd"], limit=300,
                      batch_size=100))
    assert len(calls) == 2 * 3  # the audited model and the reference; the baseline needs clean predictions only


def test_same_seed_gives_the_same_audit_and_attacks_are_the_same_for_every_model(toy_runs):
    a = audit(AuditConfig(checkpoints=(toy_runs["pgd"],), limit=200, seed=3)).to_dict()
    b = audit(AuditConfig(checkpoints=(toy_runs["pgd"],), limit=200, seed=3)).to_dict()
    assert a["confusion_adversarial"] == b["confusion_adversarial"]


def test_restarts_never_lower_the_adversarial_error(toy_runs):
    one = audit(AuditConfig(checkpoints=(toy_runs["pgd"],), limit=300, steps=5))
    three = audit(AuditConfig(checkpoints=(toy_runs["pgd"],), limit=300, steps=5, restarts=3))
    assert three.models[0].adversarial_error >= one.models[0].adversarial_error


def test_the_metric_attack_reaches_costlier_classes(toy_runs):
    pgd = audit(AuditConfig(checkpoints=(toy_runs["ce"],), limit=600))
    wpgd = audit(AuditConfig(checkpoints=(toy_runs["ce"],), limit=600, attack="wpgd"))
    targeted = audit(AuditConfig(checkpoints=(toy_runs["ce"],), limit=600, attack="cost-targeted"))
    assert wpgd.models[0].score > pgd.models[0].score
    assert targeted.models[0].severity_adversarial > pgd.models[0].severity_adversarial


def test_eps_comes_from_the_adversarially_trained_checkpoints(toy_runs, tmp_path):
    other = _train(tmp_path, "toy", "pgd", eps=0.2, epochs=1)
    report = audit(AuditConfig(checkpoints=(toy_runs["ce"], toy_runs["pgd"]), limit=30))
    assert report.attack.threat.eps == 0.4 and report.attack.threat.norm == "l2"
    with pytest.raises(Exception, match="different budgets"):
        audit(AuditConfig(checkpoints=(toy_runs["pgd"], other), limit=30))
    assert audit(AuditConfig(checkpoints=(toy_runs["pgd"], other), limit=30, eps=0.3, norm="l2")).attack.threat.eps == 0.3


def test_model_without_mistakes_has_no_severity(toy_runs):
    report = audit(AuditConfig(checkpoints=(toy_runs["pgd"],), limit=1, eps=1e-6))
    m = report.models[0]
    if m.natural_error == 0:
        assert m.severity_natural is None
    assert not math.isnan(m.score)
