"""The attack objects and their registry: threat model, restarts, best iterate, targeted, cost-targeted, WPGD."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from wpgdkit.attacks import (
    PGD,
    WPGD,
    AttackConfig,
    CostTargeted,
    ThreatModel,
    costliest_classes,
    create_attack,
    format_budget,
    get_attack,
    list_attacks,
    pgd_attack,
)
from wpgdkit.errors import UnknownNameError, WpgdkitError
from wpgdkit.labelmetric.core import LabelMetric
from wpgdkit.losses import WassersteinLoss

COST = torch.tensor([[0.0, 10.0, 0.01], [10.0, 0.0, 1.0], [0.01, 1.0, 0.0]])  # the paper's toy metric (Sec. 3.4)


def linear_model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 3))


def points(n: int = 64, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 2, generator=g), torch.randint(0, 3, (n,), generator=g)


def l2(eps: float, steps: int, **kw) -> ThreatModel:
    return ThreatModel(eps=eps, steps=steps, norm="l2", bounds=None, **kw)


def test_registry_lists_the_attacks_and_refuses_unknown_names():
    assert list_attacks() == ["pgd", "wpgd", "cost-targeted", "autoattack", "apgd-ce", "apgd-dlr", "apgd-w", "apgd-t",
                              "worst-cost", "strong"]
    with pytest.raises(UnknownNameError, match="pgd, wpgd, cost-targeted, autoattack, apgd-ce"):
        get_attack("fgsm")
    with pytest.raises(UnknownNameError):
        AttackConfig("fgsm", ThreatModel(eps=0.1))


@pytest.mark.parametrize("changes, message", [
    ({"eps": 0.0}, "eps must be"), ({"eps": -1.0}, "eps must be"), ({"eps": math.nan}, "eps must be"),
    ({"steps": 0}, "steps must be"), ({"steps": 2.0}, "steps must be"), ({"restarts": 0}, "restarts must be"),
    ({"step_size": 0.0}, "step_size must be"), ({"norm": "l1"}, "unknown norm"), ({"bounds": (1.0, 0.0)}, "bounds"),
])
def test_the_threat_model_refuses_bad_settings(changes, message):
    with pytest.raises(WpgdkitError, match=message):
        ThreatModel(**{"eps": 0.1, **changes})


@pytest.mark.parametrize("changes, message", [({"p": 0.0}, "attack_p"), ({"lam": 0.0}, "attack_lam"),
                                              ({"lam": math.nan}, "attack_lam")])
def test_attack_config_refuses_bad_p_and_lambda(changes, message):
    with pytest.raises(WpgdkitError, match=message):
        AttackConfig("wpgd", ThreatModel(eps=0.1), **changes)


def test_default_step_is_madrys_rule_written_once():
    assert ThreatModel(eps=0.1, steps=20).step == pytest.approx(2.5 * 0.1 / 20)
    assert ThreatModel(eps=0.1, steps=20, step_size=0.01).step == 0.01
    assert AttackConfig("pgd", ThreatModel(eps=0.1, steps=20, step_size=0.01)).to_dict()["step_size"] == 0.01
    assert ThreatModel(eps=0.1, steps=20, step_size=0.01).with_steps(4).step == pytest.approx(2.5 * 0.1 / 4)
    # An explicit step equal to the default is the same threat model.
    assert ThreatModel(eps=0.1, steps=20) == ThreatModel(eps=0.1, steps=20, step_size=2.5 * 0.1 / 20)


@pytest.mark.parametrize("eps, bounds, text", [(8 / 255, (0.0, 1.0), "8/255"), (0.1, (0.0, 1.0), "0.1"),
                                                (0.5, None, "0.5"), (4 / 255, None, "0.0156863")])
def test_budgets_print_as_people_write_them(eps, bounds, text):
    # 0.1 is 25.5 grey levels: printed as 0.1, never "25.5/255".
    assert format_budget(eps, bounds) == text
    assert ThreatModel(eps=eps, bounds=bounds).eps_label == text
    assert ThreatModel(eps=0.1, eps_text="1e-1").eps_label == "1e-1"


def test_costliest_classes_by_hand():
    assert costliest_classes(COST).tolist() == [1, 0, 1]
    # a degenerate all-zero row never targets the class itself
    assert costliest_classes(torch.zeros(3, 3)).tolist() == [1, 0, 0]


def test_pgd_object_with_one_restart_is_the_bare_loop():
    model, (x, y) = linear_model(), points()
    threat = l2(0.5, 5)
    ours = PGD(model, threat=threat)(x, y, seeds=[7])
    ref = pgd_attack(model, x, y, threat=threat, generator=torch.Generator().manual_seed(7))
    assert torch.equal(ours, ref)
    # The keyword form builds the same threat model.
    assert torch.equal(PGD(model, eps=0.5, steps=5, norm="l2", bounds=None)(x, y, seeds=[7]), ref)
    with pytest.raises(WpgdkitError, match="not both"):
        PGD(model, threat=threat, eps=0.1)


def test_wpgd_object_is_pgd_on_the_wasserstein_loss_and_accepts_a_label_metric():
    model, (x, y) = linear_model(3), points()
    threat = l2(0.7, 4)
    metric = LabelMetric(("a", "b", "c"), COST.double().numpy())
    ours = WPGD(model, metric, p=2.5, lam=3.0, threat=threat)(x, y, seeds=[5])
    ref = pgd_attack(model, x, y, threat=threat, loss_fn=WassersteinLoss(metric, p=2.5, lam=3.0, reduction="sum"),
                     generator=torch.Generator().manual_seed(5))
    assert torch.equal(ours, ref)


def test_wpgd_computes_the_powered_metric_once_per_device():
    model, (x, y) = linear_model(), points(16)
    atk = WPGD(model, COST, p=2.0, threat=l2(0.3, 6))
    atk(x, y)
    assert len(atk._cache) == 1 and torch.equal(atk._cache[("cost_p", x.device, x.dtype)], COST.pow(2))


def test_restarts_keep_each_points_worst_restart():
    model, (x, y) = linear_model(), points(256)
    seeds = [11, 12, 13]
    wrong = []
    for s in seeds:
        with torch.no_grad():
            wrong.append(model(PGD(model, threat=l2(0.3, 3))(x, y, seeds=[s])).argmax(1) != y)
    x_adv = PGD(model, threat=l2(0.3, 3, restarts=3))(x, y, seeds=seeds)
    with torch.no_grad():
        wrong_multi = model(x_adv).argmax(1) != y
    # a point is fooled after restarts exactly when some restart fooled it
    assert torch.equal(wrong_multi, torch.stack(wrong).any(0))
    assert wrong_multi.sum() > max(int(w.sum()) for w in wrong) or all(torch.equal(wrong[0], w) for w in wrong)
    assert ((x_adv - x).norm(dim=1) <= 0.3 + 1e-6).all()
    with pytest.raises(WpgdkitError, match="need 3 seeds"):
        PGD(model, threat=l2(0.3, 3, restarts=3))(x, y, seeds=[1])


def test_best_iterate_keeps_each_points_best_iterate():
    # Recompute every iterate of one run by hand and pick, per point, the one that fools the
    # model with the highest loss (else the highest loss): the attack must return exactly it.
    model, (x, y) = linear_model(4), points(128, seed=3)
    threat = l2(0.6, 5, step_size=0.4)  # large steps: the loss is not monotone along the path
    iterates = []

    def record(x_t, logits, loss):
        iterates.append((x_t.clone(), logits.argmax(1) != y, loss.clone()))

    last = pgd_attack(model, x, y, threat=threat, loss_fn=lambda lo, t: F.cross_entropy(lo, t, reduction="none"),
                      generator=torch.Generator().manual_seed(2), on_iterate=record)
    assert len(iterates) == threat.steps + 1 and torch.equal(iterates[-1][0], last)
    best = PGD(model, threat=threat, best_iterate=True)(x, y, seeds=[2])
    for i in range(len(x)):
        ranked = max(range(len(iterates)), key=lambda t: (bool(iterates[t][1][i]), float(iterates[t][2][i]), -t))
        assert torch.equal(best[i], iterates[ranked][0][i])
    with torch.no_grad():
        fooled_best = (model(best).argmax(1) != y).sum()
        fooled_last = (model(last).argmax(1) != y).sum()
    assert fooled_best >= fooled_last


def test_targeted_pgd_reaches_the_target():
    torch.manual_seed(0)
    model, (x, y) = nn.Linear(2, 3), points(128)
    target = (y + 1) % 3
    x_adv = PGD(model, threat=l2(50.0, 30), targeted=True)(x, target, seeds=[0])
    untargeted = PGD(model, threat=l2(50.0, 30))(x, y, seeds=[0])
    with torch.no_grad():
        reached = (model(x_adv).argmax(1) == target).float().mean()
        by_chance = (model(untargeted).argmax(1) == target).float().mean()
    assert reached > 0.95 and reached > by_chance + 0.2


def test_cost_targeted_attack_lands_on_the_costliest_class():
    # A linear model: every class owns an unbounded region, so every target is reachable.
    torch.manual_seed(0)
    model, (x, y) = nn.Linear(2, 3), points(128)
    x_adv = create_attack(AttackConfig("cost-targeted", l2(50.0, 30)), model, metric=COST)(x, y, seeds=[0])
    with torch.no_grad():
        pred = model(x_adv).argmax(1)
        pgd_pred = model(PGD(model, threat=l2(50.0, 30))(x, y, seeds=[0])).argmax(1)
    target = costliest_classes(COST)[y]
    assert (pred == target).float().mean() > 0.97
    # untargeted PGD lands on the costliest class far less often
    assert (pred == target).sum() > (pgd_pred == target).sum()
    assert isinstance(create_attack(AttackConfig("cost-targeted", l2(1.0, 2)), model, metric=COST), CostTargeted)


def test_wpgd_reaches_costlier_classes_than_pgd_on_average():
    model, (x, y) = linear_model(2), points(256, seed=5)
    threat = l2(1.0, 10)
    with torch.no_grad():
        p1 = model(create_attack(AttackConfig("pgd", threat), model)(x, y, seeds=[0])).argmax(1)
        p2 = model(create_attack(AttackConfig("wpgd", threat), model, metric=COST)(x, y, seeds=[0])).argmax(1)
    assert COST[y, p2].mean() > COST[y, p1].mean()


@pytest.mark.parametrize("name", ["wpgd", "cost-targeted"])
def test_metric_attacks_need_a_metric(name):
    with pytest.raises(WpgdkitError, match="needs a label metric"):
        create_attack(AttackConfig(name, l2(0.1, 2)), linear_model())


def test_a_metric_of_the_wrong_width_is_one_error():
    model, (x, y) = linear_model(), points(8)
    with pytest.raises(WpgdkitError, match="3 logits but the metric has 4 classes"):
        WPGD(model, np.ones((4, 4)) - np.eye(4), threat=l2(0.1, 2))(x, y)


def test_attack_restores_the_models_mode_and_leaves_parameter_gradients_alone():
    model, (x, y) = linear_model(), points(8)
    model.train()
    PGD(model, threat=l2(0.1, 2, restarts=2), best_iterate=True)(x, y)
    assert model.training and all(p.grad is None for p in model.parameters())
