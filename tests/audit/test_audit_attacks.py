"""The audit's adversaries: registry, settings, restarts, the cost-targeted attack."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from wpgdkit.attacks import PGDConfig, pgd_attack
from wpgdkit.audit.attacks import AttackConfig, attack_batch, costliest_classes, get_attack, list_attacks
from wpgdkit.errors import UnknownNameError, WpgdkitError

COST = torch.tensor([[0.0, 10.0, 0.01], [10.0, 0.0, 1.0], [0.01, 1.0, 0.0]])  # the paper's toy metric (Sec. 3.4)


def linear_model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 3))


def points(n: int = 64, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 2, generator=g), torch.randint(0, 3, (n,), generator=g)


def test_registry_lists_the_attacks_and_refuses_unknown_names():
    assert list_attacks() == ["pgd", "wpgd", "cost-targeted", "autoattack"]
    with pytest.raises(UnknownNameError, match="pgd, wpgd, cost-targeted, autoattack"):
        get_attack("fgsm")
    with pytest.raises(UnknownNameError):
        AttackConfig(name="fgsm")


@pytest.mark.parametrize("changes, message", [
    ({"eps": 0.0}, "--eps"), ({"eps": -1.0}, "--eps"), ({"steps": 0}, "--steps"), ({"restarts": 0}, "--restarts"),
    ({"step_size": 0.0}, "--step-size"), ({"norm": "l1"}, "norm"), ({"p": 0.0}, "--attack-p"), ({"lam": 0.0}, "--attack-lam"),
])
def test_bad_settings_are_refused(changes, message):
    with pytest.raises(WpgdkitError, match=message):
        AttackConfig(**{"eps": 0.1, **changes})


def test_default_step_is_madrys_rule():
    assert AttackConfig(eps=0.1, steps=20).resolved_step_size == pytest.approx(2.5 * 0.1 / 20)
    assert AttackConfig(eps=0.1, steps=20, step_size=0.01).to_dict()["step_size"] == 0.01


def test_costliest_classes_by_hand():
    assert costliest_classes(COST).tolist() == [1, 0, 1]
    # a degenerate all-zero row never targets the class itself
    assert costliest_classes(torch.zeros(3, 3)).tolist() == [1, 0, 0]


def test_pgd_with_one_restart_is_the_library_pgd():
    model, (x, y) = linear_model(), points()
    config = AttackConfig(eps=0.5, norm="l2", steps=5, bounds=None)
    ours = attack_batch(model, x, y, config=config, seeds=[7])
    ref = pgd_attack(model, x, y, config=PGDConfig(eps=0.5, step_size=2.5 * 0.5 / 5, steps=5, norm="l2", bounds=None),
                     loss_fn=lambda logits, t: torch.nn.functional.cross_entropy(logits, t, reduction="none"),
                     generator=torch.Generator().manual_seed(7))
    assert torch.equal(ours, ref)


def test_restarts_keep_each_points_worst_restart():
    model, (x, y) = linear_model(), points(256)
    config = AttackConfig(eps=0.3, norm="l2", steps=3, bounds=None)
    seeds = [11, 12, 13]
    wrong = []
    for s in seeds:
        with torch.no_grad():
            wrong.append(model(attack_batch(model, x, y, config=config, seeds=[s])).argmax(1) != y)
    multi = AttackConfig(eps=0.3, norm="l2", steps=3, restarts=3, bounds=None)
    x_adv = attack_batch(model, x, y, config=multi, seeds=seeds)
    with torch.no_grad():
        wrong_multi = model(x_adv).argmax(1) != y
    # a point is fooled after restarts exactly when some restart fooled it
    assert torch.equal(wrong_multi, torch.stack(wrong).any(0))
    assert wrong_multi.sum() > max(int(w.sum()) for w in wrong) or all(torch.equal(wrong[0], w) for w in wrong)
    assert ((x_adv - x).norm(dim=1) <= 0.3 + 1e-6).all()


def test_cost_targeted_attack_lands_on_the_costliest_class():
    # A linear model: every class owns an unbounded region, so every target is reachable.
    torch.manual_seed(0)
    model, (x, y) = nn.Linear(2, 3), points(128)
    config = AttackConfig(name="cost-targeted", eps=50.0, norm="l2", steps=30, bounds=None)
    x_adv = attack_batch(model, x, y, config=config, cost=COST, seeds=[0])
    with torch.no_grad():
        pred = model(x_adv).argmax(1)
    target = costliest_classes(COST)[y]
    pgd_pred = model(attack_batch(model, x, y, config=AttackConfig(eps=50.0, norm="l2", steps=30, bounds=None))).argmax(1)
    assert (pred == target).float().mean() > 0.97
    # untargeted PGD lands on the costliest class far less often
    assert (pred == target).sum() > (pgd_pred == target).sum()


def test_wpgd_reaches_costlier_classes_than_pgd_on_average():
    model, (x, y) = linear_model(2), points(256, seed=5)
    pgd = AttackConfig(eps=1.0, norm="l2", steps=10, bounds=None)
    wpgd = AttackConfig(name="wpgd", eps=1.0, norm="l2", steps=10, bounds=None)
    with torch.no_grad():
        p1 = model(attack_batch(model, x, y, config=pgd, seeds=[0])).argmax(1)
        p2 = model(attack_batch(model, x, y, config=wpgd, cost=COST, seeds=[0])).argmax(1)
    assert COST[y, p2].mean() > COST[y, p1].mean()


@pytest.mark.parametrize("name", ["wpgd", "cost-targeted"])
def test_metric_attacks_need_a_metric(name):
    model, (x, y) = linear_model(), points(8)
    with pytest.raises(WpgdkitError, match="needs a label metric"):
        attack_batch(model, x, y, config=AttackConfig(name=name, eps=0.1, bounds=None))


def test_attack_restores_the_models_mode():
    model, (x, y) = linear_model(), points(8)
    model.train()
    attack_batch(model, x, y, config=AttackConfig(eps=0.1, norm="l2", steps=2, restarts=2, bounds=None))
    assert model.training
