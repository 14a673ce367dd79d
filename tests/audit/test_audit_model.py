"""``wpgdkit.audit_model``: the audit of models that exist only in Python, as the CLI's JSON record."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from wpgdkit import AttackConfig, LabelMetric, ThreatModel, audit_model
from wpgdkit.errors import WpgdkitError
from wpgdkit.labelmetric.core import Provenance


def _problem(seed: int = 0, n: int = 60, k: int = 3, features: int = 4):
    g = torch.Generator().manual_seed(seed)
    centers = torch.randn(k, features, generator=g) * 2
    y = torch.arange(n) % k
    x = centers[y] + 0.7 * torch.randn(n, features, generator=g)
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(features, 16), nn.ReLU(), nn.Linear(16, k))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    for _ in range(200):
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
    return model.eval(), x, y


def _metric(k: int = 3) -> LabelMetric:
    matrix = np.array([[0, 1, 4], [1, 0, 2], [4, 2, 0]], dtype=np.float64)[:k, :k]
    return LabelMetric(tuple(f"c{i}" for i in range(k)), matrix, Provenance(source="file"))


def test_the_record_matches_an_independent_computation():
    model, x, y = _problem()
    metric = _metric()
    report = audit_model({"mine": model}, (x, y), metric=metric, attack=ThreatModel(eps=0.5, steps=10, bounds=None))
    doc = report.to_dict()
    assert doc["schema"] == "wpgdkit-audit/1" and doc["dataset"] == "tensors"
    assert doc["classes"] == ["c0", "c1", "c2"] and doc["models"][0]["method"] == "external"
    with torch.no_grad():
        clean = model(x).argmax(1)
    assert doc["natural_error"] == pytest.approx(100.0 * float((clean != y).double().mean()), abs=1e-12)
    for i, row in enumerate(doc["per_class"]):
        members = y == i
        assert row["points"] == int(members.sum())
        assert row["natural_error"] == pytest.approx(100.0 * float((clean[members] != i).double().mean()), abs=1e-12)
    # S ("true" normalisation): the mean over classes of the expected cost of the adversarial answers.
    counts = np.array(doc["confusion_adversarial"]["counts"], dtype=np.float64)
    rates = counts / counts.sum(axis=1, keepdims=True)
    assert doc["score"] == pytest.approx(float((rates * metric.matrix).sum(axis=1).mean()), rel=1e-12)
    assert doc["adversarial_error"] >= doc["natural_error"]


def test_the_attack_is_the_one_given_and_a_stronger_budget_finds_more():
    model, x, y = _problem(seed=1)
    weak = audit_model(model, (x, y), attack=ThreatModel(eps=0.05, steps=10, bounds=None)).to_dict()
    strong = audit_model(model, (x, y), attack=ThreatModel(eps=2.0, steps=20, bounds=None)).to_dict()
    assert weak["attack"]["eps"] == 0.05 and strong["attack"]["steps"] == 20
    assert strong["adversarial_error"] > weak["adversarial_error"]
    # The wpgd attack uses the metric the audit is given.
    wpgd = audit_model(model, (x, y), metric=_metric(),
                       attack=AttackConfig("wpgd", ThreatModel(eps=0.5, steps=5, bounds=None))).to_dict()
    assert wpgd["attack"]["name"] == "wpgd" and wpgd["score"] is not None


def test_baseline_and_reference_by_name_give_the_gap_and_the_score_difference():
    model_a, x, y = _problem(seed=2)
    model_b, _, _ = _problem(seed=3)
    report = audit_model({"a": model_a, "b": model_b}, (x, y), metric=_metric(),
                         attack=ThreatModel(eps=0.3, steps=5, bounds=None), baseline="a", reference="a")
    doc = report.to_dict()
    a, b = doc["models"]
    assert a["score_delta"] == pytest.approx(0.0, abs=1e-15)
    assert b["score_delta"] == pytest.approx(b["score"] - a["score"], abs=1e-12)
    assert np.allclose(np.array(a["gap"]), 0.0)
    with pytest.raises(WpgdkitError, match="not one of the audited models"):
        audit_model({"a": model_a}, (x, y), attack=ThreatModel(eps=0.3, bounds=None), baseline="zzz")


def test_images_in_unit_range_keep_pixel_bounds():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 2))
    x = torch.rand(10, 1, 4, 4)
    y = torch.arange(10) % 2
    report = audit_model(model, (x, y), attack=ThreatModel(eps=8 / 255, steps=3))
    doc = report.to_dict()
    assert doc["attack"]["bounds"] == [0.0, 1.0]
    assert doc["eps_units"] == "pixel intensity in [0, 1]"


def test_a_registered_dataset_is_audited_on_its_test_split():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 3))
    report = audit_model(model, "toy", attack=ThreatModel(eps=0.1, steps=2, bounds=None), limit=30)
    doc = report.to_dict()
    assert doc["dataset"] == "toy" and doc["num_points"] == 30 and doc["metric"] is not None  # toy ships a metric


@pytest.mark.parametrize("kwargs, message", [
    ({"attack": None}, "give attack"),
    ({"attack": "pgd"}, "AttackConfig or a ThreatModel"),
    ({"data": (torch.zeros(3, 2), torch.tensor([0, 1]))}, "same positive number of points"),
    ({"data": (torch.zeros(2, 2, dtype=torch.int64), torch.tensor([0, 1]))}, "floating-point"),
    ({"data": (torch.full((2, 2), math.nan), torch.tensor([0, 1]))}, "NaN"),
    ({"data": (torch.zeros(2, 2), torch.tensor([0, 5])), "classes": ["a", "b"]}, "labels must be in 0..1"),
    ({"model": "not a module"}, "torch.nn.Module"),
    ({"data": 42}, "data must be"),
    ({"attack": AttackConfig("wpgd", ThreatModel(eps=0.1, bounds=None))}, "needs a label metric"),
])
def test_bad_input_is_one_clear_error(kwargs, message):
    torch.manual_seed(0)
    args = {"model": nn.Linear(2, 2), "data": (torch.zeros(4, 2), torch.tensor([0, 1, 0, 1])),
            "attack": ThreatModel(eps=0.1, bounds=None)}
    args.update(kwargs)
    with pytest.raises(WpgdkitError, match=message):
        audit_model(args.pop("model"), args.pop("data"), **args)


def test_a_model_with_the_wrong_output_width_is_refused():
    model = nn.Linear(2, 5)
    with pytest.raises(WpgdkitError, match="5"):
        audit_model(model, (torch.zeros(4, 2), torch.tensor([0, 1, 0, 1])), attack=ThreatModel(eps=0.1, bounds=None))


def test_the_strong_ensemble_reports_each_member_and_never_less_than_any():
    model, x, y = _problem(seed=4)
    metric = _metric()
    threat = ThreatModel(eps=0.8, steps=10, bounds=None)
    doc = audit_model(model, (x, y), metric=metric, attack=AttackConfig("strong", threat)).to_dict()
    members = doc["attack_members"]
    assert [m["name"] for m in members] == ["apgd-ce", "apgd-dlr", "worst-cost"]
    # The ensemble keeps each point's worst: its AE and S are at least every member's.
    assert all(doc["adversarial_error"] >= m["adversarial_error"] for m in members)
    assert all(doc["score"] >= m["score"] - 1e-12 for m in members)
    # A member alone, with the same seeds, reports what the ensemble recorded for it (worst-cost inside
    # `strong` uses APGD-T sub-attacks, so only APGD-CE is the same attack on its own).
    alone = audit_model(model, (x, y), metric=metric, attack=AttackConfig("apgd-ce", threat)).to_dict()
    recorded = next(m for m in members if m["name"] == "apgd-ce")
    assert alone["adversarial_error"] == pytest.approx(recorded["adversarial_error"], abs=1e-12)
    assert all(isinstance(n, int) and n >= 0 for m in members for n in m["weaker_than"].values())
    assert audit_model(model, (x, y), metric=metric, attack=threat).to_dict()["attack_members"] is None
