"""The worst-cost attack and the per-point worst case over attacks (wpgdkit.attacks.worst_cost, .ensemble)."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from wpgdkit.attacks.base import PGD, WPGD, Attack, CostTargeted
from wpgdkit.attacks.ensemble import Ensemble, attack_outcome
from wpgdkit.attacks.threat import ThreatModel
from wpgdkit.attacks.worst_cost import DEFAULT_TARGETS, WorstCost, pgd_targeted
from wpgdkit.audit.scores import confusion_matrix, weighted_score
from wpgdkit.errors import WpgdkitError

K, D = 6, 4
SQUARED = (torch.arange(K).double()[:, None] - torch.arange(K).double()[None]).abs() ** 2  # 1, 4, 9, 16, 25
L2 = ThreatModel(eps=1.0, norm="l2", bounds=None, steps=10)


# --- small seeded problems -------------------------------------------------------------------


@pytest.fixture(scope="module")
def problem():
    """An MLP trained on 6 seeded Gaussian blobs in 4-D, and 120 test points (clean error ~8%)."""
    g = torch.Generator().manual_seed(0)
    centers = torch.randn(K, D, generator=g) * 2.0

    def sample(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        y = torch.randint(0, K, (n,), generator=g)
        return centers[y] + torch.randn(n, D, generator=g), y

    x_train, y_train = sample(600)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(D, 32), nn.ReLU(), nn.Linear(32, K))
    # Heavy-ball gradient descent by hand: torch.optim's first step imports torch._dynamo (seconds).
    params = list(model.parameters())
    velocity = [torch.zeros_like(p) for p in params]
    for _ in range(300):
        grads = torch.autograd.grad(F.cross_entropy(model(x_train), y_train), params)
        with torch.no_grad():
            for p, v, grad in zip(params, velocity, grads):
                p.sub_(0.1 * v.mul_(0.9).add_(grad))
    model.eval()
    x, y = sample(120)
    return model, x, y


def score(model: nn.Module, x_adv: torch.Tensor, y: torch.Tensor, cost: torch.Tensor = SQUARED) -> float:
    """S: the mean cost of the model's answers at ``x_adv``, per true class."""
    with torch.no_grad():
        prediction = model(x_adv).argmax(1)
    return weighted_score(confusion_matrix(y, prediction, cost.shape[0]), cost)


class Counter(nn.Module):
    """Counts the forward passes through a model (each PGD step is one forward and one backward) and their points."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.calls = 0
        self.samples = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        self.samples += len(x)
        return self.inner(x)


def hand_built() -> tuple[nn.Module, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Four classes of a linear model in 2-D, class-0 points near the origin, ε = 1 in ℓ2.

    Logits ``f0 = 0``, ``f1 = 4·x1 − 2``, ``f2 = −4·x1 − 3.2``, ``f3 = 4·x2 − 6``. From a point ``x0`` with
    ``|x0_i| ≤ 0.1`` the ball ``‖δ‖ ≤ 1`` reaches class 1 (``x1 > 0.5``) and class 2 (``x1 < −0.8``), never
    class 3 (``f3 − f0 ≤ 4·1.1 − 6 < 0``). With costs 1, 5, 10 the costliest reachable class is 2. Cross-entropy's
    gradient at x0 is ``p1·w1 + p2·w2 + p3·w3`` with ``p1 > p2`` (``f1 − f2 = 8·x1 + 1.2 > 0``), so it points
    to +x1: untargeted PGD walks into class 1 and, its loss growing there, stays.
    """
    model = nn.Linear(2, 4)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[0.0, 0.0], [4.0, 0.0], [-4.0, 0.0], [0.0, 4.0]]))
        model.bias.copy_(torch.tensor([0.0, -2.0, -3.2, -6.0]))
    grid = torch.tensor([-0.1, 0.0, 0.1])
    x = torch.cartesian_prod(grid, grid)
    y = torch.zeros(len(x), dtype=torch.int64)
    cost = torch.tensor([[0.0, 1.0, 5.0, 10.0], [1.0, 0.0, 5.0, 10.0], [5.0, 5.0, 0.0, 10.0],
                         [10.0, 10.0, 10.0, 0.0]])
    return model, x, y, cost


# --- worst-cost ------------------------------------------------------------------------------------


def test_worst_cost_reaches_the_costliest_reachable_class_where_pgd_does_not():
    model, x, y, cost = hand_built()
    threat = ThreatModel(eps=1.0, norm="l2", bounds=None, steps=20, random_start=False)
    with torch.no_grad():
        assert (model(x).argmax(1) == 0).all()
        # The analysis, checked by brute force: a dense sample of each ball reaches classes 0, 1, 2, not 3.
        angle = torch.linspace(0, 2 * math.pi, 721)
        radius = torch.linspace(0, 1, 101)
        disc = torch.stack([radius[:, None] * angle.cos(), radius[:, None] * angle.sin()], -1).reshape(-1, 2)
        for point in x:
            assert set(model(point + disc).argmax(1).tolist()) == {0, 1, 2}

    pgd = PGD(model, threat=threat, best_iterate=True)(x, y)
    worst = WorstCost(model, cost, threat=threat)(x, y)
    with torch.no_grad():
        assert model(pgd).argmax(1).tolist() == [1] * len(x)
        assert model(worst).argmax(1).tolist() == [2] * len(x)
    assert (worst - x).norm(dim=1).max() <= 1.0 + 1e-5


def test_worst_cost_scores_at_least_pgd_wpgd_and_cost_targeted(problem):
    model, x, y = problem
    seeds = [5]
    scores = {name: score(model, attack(x, y, seeds=seeds), y) for name, attack in {
        "pgd": PGD(model, threat=L2),
        "wpgd": WPGD(model, SQUARED, threat=L2),
        "cost-targeted": CostTargeted(model, SQUARED, threat=L2),
        "worst-cost": WorstCost(model, SQUARED, threat=L2),
    }.items()}
    for name in ("pgd", "wpgd", "cost-targeted"):
        assert scores["worst-cost"] >= scores[name], scores
    assert scores["worst-cost"] > scores["pgd"], scores  # a real gain on a non-uniform metric


def test_targets_are_tried_by_decreasing_cost_ties_by_class_index():
    cost = torch.tensor([[0.0, 3.0, 1.0, 3.0, 2.0],
                         [0.0, 0.0, 0.0, 0.0, 0.0],
                         [4.0, 4.0, 0.0, 4.0, 4.0],
                         [1.0, 2.0, 3.0, 0.0, 4.0],
                         [1.0, 1.0, 2.0, 2.0, 0.0]])
    atk = WorstCost(nn.Linear(2, 5), cost, eps=0.1)
    assert atk.num_targets == 4
    assert atk.target_order(torch.arange(5)).tolist() == [[1, 3, 4, 2], [0, 2, 3, 4], [0, 1, 3, 4], [4, 2, 1, 0],
                                                         [2, 3, 0, 1]]
    assert WorstCost(nn.Linear(2, 5), cost, eps=0.1, targets=2).target_order(torch.tensor([3])).tolist() == [[4, 2]]


def test_number_of_targets():
    assert WorstCost(nn.Linear(2, 5), SQUARED[:5, :5], eps=0.1, targets=99).num_targets == 4
    for k, expected in ((20, 19), (21, DEFAULT_TARGETS), (30, DEFAULT_TARGETS)):
        cost = torch.ones(k, k) - torch.eye(k)
        assert WorstCost(nn.Linear(2, k), cost, eps=0.1).num_targets == expected
    assert WorstCost(nn.Linear(2, 30), torch.ones(30, 30) - torch.eye(30), eps=0.1, targets=25).num_targets == 25


def test_skipping_reached_targets_saves_model_calls(problem):
    model, x, y = problem
    steps, n, t = L2.steps, len(x), K - 1
    counted = Counter(model)
    runs = {}
    for skip in (False, True):
        counted.calls = counted.samples = 0
        atk = WorstCost(counted, SQUARED, threat=L2, skip_reached=skip)
        x_adv = atk(x, y, seeds=[5])
        runs[skip] = (counted.calls, counted.samples, atk.last_stats, score(model, x_adv, y))
    # Each sub-attack call: `steps` forward+backward passes, one forward for the best iterate's last
    # iterate, one to read the answer; the untargeted call and one call per targeted round.
    naive_calls, naive_samples, naive, _ = runs[False]
    assert (naive.attacked, naive.skipped, naive.rounds) == (n * t, 0, t)
    assert naive_calls == (t + 1) * (steps + 2) and naive_samples == n * (t + 1) * (steps + 2)
    calls, samples, stats, s_skip = runs[True]
    assert stats.skipped > 0 and stats.attacked + stats.skipped == n * t
    assert calls == (stats.rounds + 1) * (steps + 2) and samples == (n + stats.attacked) * (steps + 2)
    assert samples < naive_samples and calls <= naive_calls
    assert s_skip >= score(model, PGD(model, threat=L2)(x, y, seeds=[5]), y)


def test_skipping_leaves_out_whole_rounds_once_every_point_is_closed():
    model, x, y, cost = hand_built()
    counted = Counter(model)
    threat = ThreatModel(eps=1.0, norm="l2", bounds=None, steps=20, random_start=False)
    calls = {}
    for skip in (False, True):
        counted.calls = 0
        atk = WorstCost(counted, cost, threat=threat, skip_reached=skip)
        with torch.no_grad():
            assert model(atk(x, y)).argmax(1).eq(2).all()
        calls[skip] = (counted.calls, atk.last_stats)
    # Targets 3 (unreachable), 2 (reached by every point), then 1: no cheaper than 2, skipped for all.
    assert calls[False][0] == 4 * 22 and calls[True][0] == 3 * 22
    assert (calls[True][1].rounds, calls[True][1].skipped) == (2, len(x))


def test_a_point_that_reaches_nothing_keeps_the_untargeted_best_iterate(problem):
    model, x, y = problem
    tiny = L2.replace(eps=1e-4)
    x_adv = WorstCost(model, SQUARED, threat=tiny)(x, y, seeds=[3])
    untargeted = PGD(model, threat=tiny, best_iterate=True)(x, y, seeds=[3])
    _, fooled, _ = attack_outcome(model, x_adv, y)
    assert torch.equal(x_adv[~fooled], untargeted[~fooled])


class Still(Attack):
    """Leaves every point where it is: an untargeted attack that reaches nothing."""

    name = "still"

    def perturb(self, x, y, generator):
        return x.clone()


def test_a_wrong_answer_of_cost_zero_is_still_sought_and_beats_a_right_one():
    model, x, y, cost = hand_built()
    cost[0, 1] = 0.0  # class 1 is a free mistake; at ε = 0.65 it is the only class in reach (class 2 needs 0.7)
    threat = ThreatModel(eps=0.65, norm="l2", bounds=None, steps=20, random_start=False)
    atk = WorstCost(model, cost, threat=threat, untargeted_attack=lambda m, t: Still(m, t))
    with torch.no_grad():
        assert model(atk(x, y)).argmax(1).eq(1).all()
    assert (atk.last_stats.rounds, atk.last_stats.skipped) == (3, 0)


def test_another_targeted_attack_can_be_plugged_in(problem):
    model, x, y = problem
    built = []

    def factory(model_, threat):
        built.append(threat)
        return pgd_targeted(model_, threat)

    atk = WorstCost(model, SQUARED, threat=L2, targeted_attack=factory)
    assert built == [L2] and atk.targeted_attack.targeted
    assert torch.equal(atk(x, y, seeds=[1]), WorstCost(model, SQUARED, threat=L2)(x, y, seeds=[1]))


@pytest.mark.parametrize("norm, eps", [("linf", 0.3), ("l2", 0.8)])
def test_outputs_stay_in_the_ball_and_per_feature_bounds(problem, norm, eps):
    model, x, y = problem
    lows = tuple((x.min(0).values + 0.5).tolist())   # tight box: many clean points sit outside on some feature
    highs = tuple((x.max(0).values - 0.5).tolist())
    threat = ThreatModel(eps=eps, norm=norm, bounds=(lows, highs), steps=10)
    low, high = torch.minimum(torch.tensor(lows), x), torch.maximum(torch.tensor(highs), x)
    worst = WorstCost(model, SQUARED, threat=threat)
    ensemble = Ensemble([PGD(model, threat=threat), worst], metric=SQUARED)
    for attack in (worst, ensemble):
        x_adv = attack(x, y, generator=torch.Generator().manual_seed(0))
        delta = x_adv - x
        size = delta.abs().amax(1) if norm == "linf" else delta.norm(dim=1)
        assert size.max() <= eps + 1e-5
        assert (x_adv >= low - 1e-6).all() and (x_adv <= high + 1e-6).all()
        assert x_adv.shape == x.shape and x_adv.dtype == x.dtype and not x_adv.requires_grad


def test_outputs_stay_in_scalar_bounds(problem):
    model, x, y = problem
    x01 = torch.sigmoid(x)  # the model sees other inputs; only the box matters here
    threat = ThreatModel(eps=0.2, steps=5)
    x_adv = WorstCost(model, SQUARED, threat=threat)(x01, y, seeds=[0])
    assert (x_adv - x01).abs().max() <= 0.2 + 1e-6 and x_adv.min() >= 0 and x_adv.max() <= 1


def test_eval_mode_restored_and_parameter_grads_untouched():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(D, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Dropout(0.2), nn.Linear(16, K))
    model.train()
    model[1].eval()  # a frozen submodule: stays in eval after
    for p in model.parameters():
        p.grad = torch.full_like(p, 0.5)
    modes = [m.training for m in model.modules()]
    x, y = torch.randn(16, D), torch.randint(0, K, (16,))
    stats = model[1].running_mean.clone()
    WorstCost(model, SQUARED, threat=L2)(x, y)
    Ensemble([PGD(model, threat=L2), WorstCost(model, SQUARED, threat=L2)], metric=SQUARED).run(x, y)
    assert [m.training for m in model.modules()] == modes
    assert all(torch.equal(p.grad, torch.full_like(p, 0.5)) for p in model.parameters())
    assert torch.equal(model[1].running_mean, stats)


def test_empty_batch(problem):
    model, x, y = problem
    atk = WorstCost(model, SQUARED, threat=L2)
    assert atk(x[:0], y[:0]).shape == (0, D) and atk.last_stats.attacked == 0
    result = Ensemble([atk], metric=SQUARED).run(x[:0], y[:0])
    assert result.x_adv.shape == (0, D) and result.members[0].prediction.shape == (0,)


# --- the ensemble: the ranking, exhaustively ----------------------------------------------------------


class Lookup(nn.Module):
    """Answers the class written in the first feature (the second one numbers the point)."""

    def __init__(self, k: int) -> None:
        super().__init__()
        self.k = k

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 10.0 * F.one_hot(x[:, 0].round().long(), self.k).to(x.dtype)


class Fixed(Attack):
    """Makes the model answer a given class at each point (whatever the ball: only the ranking is tested)."""

    name = "fixed"

    def __init__(self, model: nn.Module, answers: torch.Tensor) -> None:
        super().__init__(model, ThreatModel(eps=1.0, bounds=None))
        self.answers = answers

    def perturb(self, x, y, generator):
        out = x.clone()
        out[:, 0] = self.answers[x[:, 1].long()].to(x.dtype)
        return out


TIES = torch.tensor([[0.0, 2.0, 2.0], [1.0, 0.0, 0.0], [3.0, 1.0, 0.0]])  # equal costs, and a wrong answer of cost 0


@pytest.mark.parametrize("metric", [TIES, None], ids=["metric", "no-metric"])
@pytest.mark.parametrize("skip_settled", [False, True])
def test_the_ensemble_ranks_every_combination_of_member_answers(metric, skip_settled):
    k, members = 3, 3
    combos = torch.tensor(list(itertools.product(range(k), repeat=members + 1)))  # (81, 4): y, then each answer
    y, answers = combos[:, 0], combos[:, 1:]
    model = Lookup(k)
    x = torch.stack([y.double(), torch.arange(len(y)).double()], 1)
    attacks = [Fixed(model, answers[:, i]) for i in range(members)]
    result = Ensemble(attacks, metric=metric, skip_settled=skip_settled).run(x, y)
    cost = metric.double() if metric is not None else torch.zeros(k, k, dtype=torch.float64)
    row_max = (cost - torch.diag(torch.full((k,), math.inf, dtype=torch.float64))).max(1).values
    for i in range(len(y)):
        keys = [(float(cost[y[i], a]) if a != y[i] else 0.0, bool(a != y[i])) for a in answers[i].tolist()]
        best = max(keys)
        assert (float(result.cost[i]), bool(result.fooled[i])) == best
        assert int(result.winner[i]) == keys.index(best)  # the first member among equals
        assert int(result.prediction[i]) == int(answers[i, keys.index(best)])
        assert int(result.x_adv[i, 0]) == int(result.prediction[i])
        for m, outcome in enumerate(result.members):
            if not skip_settled:
                assert bool(outcome.ran[i])
            if outcome.ran[i]:
                assert (float(outcome.cost[i]), bool(outcome.fooled[i])) == keys[m]
                assert best >= keys[m]
            else:  # skipped only where an earlier member had settled the point: fooled at the row's maximum
                earlier = max(keys[:m])
                assert earlier[1] and earlier[0] >= float(row_max[y[i]])
                assert int(outcome.prediction[i]) == -1
        assert result.members[0].ran[i]
    # outranks: member 1 strictly above member 0, where both ran (costs here are whole numbers below 10)
    def rank(m: int) -> torch.Tensor:
        fooled = answers[:, m] != y
        return torch.where(fooled, cost[y, answers[:, m]], 0.0) * 10 + fooled.double()

    both = result.members[0].ran & result.members[1].ran
    assert torch.equal(result.outranks(1, 0), both & (rank(1) > rank(0)))
    assert torch.equal(result.outranks("fixed#2", "fixed"), result.outranks(1, 0))


# --- the ensemble on real attacks -------------------------------------------------------------------------


def real_members(model: nn.Module, threat: ThreatModel) -> list:
    return [PGD(model, threat=threat), WPGD(model, SQUARED, threat=threat), CostTargeted(model, SQUARED, threat=threat),
            WorstCost(model, SQUARED, threat=threat), PGD(model, threat=threat.replace(restarts=2), best_iterate=True)]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_ensemble_never_reports_less_than_a_member_on_any_point(problem, seed):
    model, x, y = problem
    threat = L2.replace(eps=(0.5, 1.0, 1.5)[seed])
    seeds = [10 * seed, 10 * seed + 1]
    members = real_members(model, threat)
    ensemble = Ensemble(members, metric=SQUARED)
    assert ensemble.threat.restarts == 2
    result = ensemble.run(x, y, seeds=seeds)
    _, ens_fooled, ens_cost = attack_outcome(model, result.x_adv, y, SQUARED)  # as the audit reads it
    assert torch.equal(ens_fooled, result.fooled) and torch.equal(ens_cost, result.cost)
    for member, outcome in zip(members, result.members):
        alone = member(x, y, seeds=seeds)  # the member on its own, same batch and seeds
        prediction, fooled, cost = attack_outcome(model, alone, y, SQUARED)
        assert torch.equal(prediction, outcome.prediction) and outcome.ran.all()
        assert (ens_cost >= cost).all()
        assert (ens_fooled | ~fooled | (ens_cost > cost)).all()
    s = {name: weighted_score(confusion_matrix(y, o.prediction, K), SQUARED)
         for name, o in zip(ensemble.names, result.members)}
    assert set(s) == {"pgd", "wpgd", "cost-targeted", "worst-cost", "pgd#2"}
    assert weighted_score(confusion_matrix(y, result.prediction, K), SQUARED) >= max(s.values())


def test_skip_settled_keeps_the_guarantee_and_saves_work(problem):
    model, x, y = problem
    counted = Counter(model)
    threat = L2.replace(eps=1.5)
    work = {}
    for skip in (False, True):
        counted.samples = 0
        ensemble = Ensemble([WorstCost(counted, SQUARED, threat=threat), PGD(counted, threat=threat),
                             WPGD(counted, SQUARED, threat=threat)], metric=SQUARED, skip_settled=skip)
        result = ensemble.run(x, y, seeds=[4])
        work[skip] = counted.samples
        for outcome in result.members:
            ran = outcome.ran
            assert (result.cost[ran] >= outcome.cost[ran]).all()
            assert (result.fooled[ran] | ~outcome.fooled[ran] | (result.cost[ran] > outcome.cost[ran])).all()
        if skip:
            settled = ~result.members[1].ran
            assert settled.any()
            row_max = (SQUARED - torch.diag(torch.full((K,), math.inf, dtype=torch.float64))).max(1).values
            assert (result.fooled[settled] & (result.cost[settled] == row_max[y[settled]])).all()
            assert (result.members[1].prediction[settled] == -1).all()
    assert work[True] < work[False]


def test_one_member_ensemble_is_the_member(problem):
    model, x, y = problem
    for member in (PGD(model, threat=L2), WorstCost(model, SQUARED, threat=L2)):
        for metric in (SQUARED, None):
            ensemble = Ensemble([member], metric=metric)
            assert torch.equal(ensemble(x, y, seeds=[7]), member(x, y, seeds=[7]))
            assert torch.equal(ensemble(x, y, generator=torch.Generator().manual_seed(7)),
                               member(x, y, generator=torch.Generator().manual_seed(7)))
            assert ensemble.last_result.winner.eq(0).all()


# --- refusals --------------------------------------------------------------------------------------------


def test_bad_settings_are_refused_in_one_line(problem):
    model, x, y = problem
    other = nn.Linear(D, K)
    cases = [
        (lambda: WorstCost(model, SQUARED, threat=L2, targets=0), "targets must be"),
        (lambda: WorstCost(model, SQUARED, threat=L2, targets=True), "targets must be"),
        (lambda: WorstCost(model, SQUARED, threat=L2, targeted_attack=lambda m, t: PGD(m, threat=t)),
         "targeted_attack must build an attack with targeted=True"),
        (lambda: WorstCost(model, SQUARED, threat=L2, untargeted_attack=pgd_targeted),
         "untargeted_attack must build an attack with targeted=False"),
        (lambda: WorstCost(model, SQUARED, threat=L2, targeted_attack=lambda m, t: pgd_targeted(m, t.replace(eps=2.0))),
         "targeted_attack must attack the same ball"),
        (lambda: WorstCost(model, SQUARED, threat=L2, targeted_attack="pgd"), "targeted_attack must be a callable"),
        (lambda: WorstCost(model, SQUARED, threat=L2)(x, y, seeds=[]), "need 1 seeds"),
        (lambda: WorstCost(model, SQUARED, threat=L2)(x, y + K), "labels must lie in 0..5"),
        (lambda: WorstCost(model, SQUARED[:4, :4], threat=L2)(x, y % 4), "the metric has 4 classes"),
        (lambda: Ensemble([]), "attacks must be a non-empty list"),
        (lambda: Ensemble([model]), "attacks[0] must be an attack object"),
        (lambda: Ensemble([PGD(model, threat=L2), PGD(other, threat=L2)]), "attacks[1] (pgd#2) attacks another model"),
        (lambda: Ensemble([PGD(model, threat=L2), PGD(model, threat=L2, targeted=True)]), "is targeted"),
        (lambda: Ensemble([PGD(model, threat=L2), PGD(model, threat=L2.replace(eps=0.5))]), "another ball"),
        (lambda: Ensemble([PGD(model, threat=L2)], names=["a", "b"]), "names must give one name per member (1)"),
        (lambda: Ensemble([PGD(model, threat=L2)] * 2, names=["a", "a"]), "names must be distinct"),
        (lambda: Ensemble([PGD(model, threat=L2.replace(restarts=2))]).run(x, y, seeds=[1]), "need 2 seeds"),
        (lambda: Ensemble([PGD(model, threat=L2)], metric=SQUARED[:4, :4]).run(x, y % 4), "the metric has 4 classes"),
        (lambda: Ensemble([PGD(model, threat=L2)]).run(x, y).member("apgd"), "no ensemble member named 'apgd'"),
    ]
    for make, message in cases:
        with pytest.raises(WpgdkitError) as error:
            make()
        assert message in str(error.value) and "\n" not in str(error.value), (message, str(error.value))
