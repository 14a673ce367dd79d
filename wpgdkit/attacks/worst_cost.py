"""Worst-cost attack: for each point, the costliest class an attack can make the model answer.

    atk = WorstCost(model, metric, eps=8/255, steps=20)
    x_adv = atk(x, y)
    atk.last_stats                      # how many (point, target) attacks ran and were skipped

The audit's S is the mean cost ``C[y, ŷ_adv]`` of the adversary's answers, so
the strongest adversary for S is the one that, point by point, reaches the
costliest class it can. Untargeted attacks (PGD on cross-entropy) go to the
nearest wrong class; WPGD and the cost-targeted attack lean towards costly
classes but try one direction. This attack tries them all, costliest first:

1. one **untargeted** attack on every point (PGD with the best iterate by
   default): its answer, if wrong, is the first class reached;
2. for rank r = 0, 1, ..., one **targeted** attack (PGD on −CE towards the
   target, best iterate, by default) on each point towards the class of
   rank r in its row of C, sorted by decreasing cost ``C[y, t]``, ties by
   increasing class index (a stable sort), the class itself left out. All
   K − 1 classes for K ≤ 20; beyond, ``targets`` of them (19 by default,
   the work of K = 20);
3. each point keeps the example whose answer is the **costliest class
   reached** (``C[y, ŷ]``; then a wrong answer of cost 0 over a right one;
   then the earlier example): :func:`~wpgdkit.attacks.base.better_than` with
   the cost as the loss.

Skipping (``skip_reached=True``): once a point has reached a class of cost c,
targets of cost ≤ c cannot raise its cost, so it is left out of later
rounds; only the still-open points are gathered into the round's batch. The
untargeted attack runs first because it is needed anyway (the fallback) and
what it reaches already closes the cheaper targets. The open set only shrinks
from one rank to the next (targets get cheaper, reached costs only grow), so
the rounds stop at the first rank with no open point. A point that reaches
nothing keeps the untargeted attack's example (its best-loss iterate).

Each targeted attack's example is judged by the class the model answers
there, which may not be its target: a miss that lands on another costly
class still counts.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from wpgdkit.attacks.base import _UNSET, PGD, _MetricAttack, _threat, better_than
from wpgdkit.attacks.ensemble import attack_outcome, same_ball
from wpgdkit.attacks.pgd import _check_inputs
from wpgdkit.attacks.threat import ThreatModel
from wpgdkit.errors import WpgdkitError

__all__ = ["WorstCost", "WorstCostStats", "AttackFactory", "ALL_TARGETS_UP_TO", "DEFAULT_TARGETS",
           "pgd_targeted", "pgd_untargeted"]

#: Up to this many classes every other class is a target.
ALL_TARGETS_UP_TO = 20

#: Targets per point beyond :data:`ALL_TARGETS_UP_TO` classes when ``targets`` is None: the work of K = 20.
DEFAULT_TARGETS = ALL_TARGETS_UP_TO - 1

AttackFactory = Callable[[nn.Module, ThreatModel], Any]
"""``(model, threat) -> attack object`` called as ``atk(x, labels_or_targets, generator=..., seeds=...)``."""


def pgd_targeted(model: nn.Module, threat: ThreatModel) -> PGD:
    """The default targeted sub-attack: PGD on −CE towards the target, keeping the best iterate."""
    return PGD(model, threat=threat, targeted=True, best_iterate=True)


def pgd_untargeted(model: nn.Module, threat: ThreatModel) -> PGD:
    """The default untargeted sub-attack: PGD on CE, keeping the best iterate (fooled, then highest loss)."""
    return PGD(model, threat=threat, best_iterate=True)


@dataclass(frozen=True)
class WorstCostStats:
    """The work of the latest :class:`WorstCost` call, in (point, target) attacks.

    Attributes
    ----------
    points : int
        N, the batch size.
    targets : int
        Targets per point, T.
    attacked : int
        (point, target) pairs attacked, summed over the rounds.
    skipped : int
        ``points · targets − attacked``: pairs left out because the point had
        already reached a class at least as costly as the target.
    rounds : int
        Targeted rounds run (each one call of the targeted attack on the
        round's open points).
    """

    points: int
    targets: int
    attacked: int
    skipped: int
    rounds: int


class WorstCost(_MetricAttack):
    """Targeted attacks towards every costlier class, costliest first; each point keeps the costliest class reached.

    Parameters
    ----------
    model : nn.Module
        Maps inputs (N, ...) to logits (N, K).
    metric : LabelMetric, array or Tensor of shape (K, K)
        The label metric C (non-negative, finite).
    targets : int or None, keyword-only, default=None
        Targets per point, the costliest of its row. None: all K − 1 for
        K ≤ :data:`ALL_TARGETS_UP_TO`, else :data:`DEFAULT_TARGETS`. A number
        (≥ 1) is used as given, at most K − 1.
    targeted_attack : callable, keyword-only, optional
        ``(model, threat) -> attack`` building the targeted sub-attack, which
        is called as ``atk(x, target)`` and must have ``targeted=True`` (e.g.
        APGD-T). Default: :func:`pgd_targeted`.
    untargeted_attack : callable, keyword-only, optional
        ``(model, threat) -> attack`` building the untargeted one, called as
        ``atk(x, y)``. Default: :func:`pgd_untargeted`.
    skip_reached : bool, keyword-only, default=True
        Leave out the targets no costlier than the class a point has already
        reached. False attacks every target for every point (for measuring
        what skipping saves).
    eps, step_size, steps, norm, random_start, restarts, bounds, threat : keyword-only
        The :class:`ThreatModel`, as for :class:`~wpgdkit.attacks.PGD`; both
        sub-attacks are built with it and must attack its ball.

    Attributes
    ----------
    num_targets : int
        T, the targets per point in use.
    last_stats : WorstCostStats or None
        The work of the latest call.

    Notes
    -----
    Each sub-attack runs ``threat.restarts`` restarts itself and receives the
    caller's ``seeds`` (or ``generator``). A targeted round runs on the open
    points only, so a point's random start there depends on which other
    points are open with it.
    """

    name = "worst-cost"

    def __init__(self, model: nn.Module, metric: Any, *, targets: int | None = None,
                 targeted_attack: AttackFactory | None = None, untargeted_attack: AttackFactory | None = None,
                 skip_reached: bool = True, eps: float = _UNSET, step_size: float | None = _UNSET,
                 steps: int = _UNSET, norm: str = _UNSET, random_start: bool = _UNSET, restarts: int = _UNSET,
                 bounds: tuple[float, float] | None = _UNSET, threat: ThreatModel | None = None) -> None:
        super().__init__(model, metric, _threat(threat, dict(eps=eps, step_size=step_size, steps=steps, norm=norm,
                                                             random_start=random_start, restarts=restarts,
                                                             bounds=bounds)))
        if targets is not None and (isinstance(targets, bool) or not isinstance(targets, int) or targets < 1):
            raise WpgdkitError(f"targets must be a whole number of at least 1, or None, got {targets!r}")
        k = self.num_classes
        self.targets = targets
        if targets is None:
            self.num_targets = k - 1 if k <= ALL_TARGETS_UP_TO else DEFAULT_TARGETS
        else:
            self.num_targets = min(targets, k - 1)
        self.skip_reached = bool(skip_reached)
        self.targeted_attack = self._build(targeted_attack or pgd_targeted, "targeted_attack", targeted=True)
        self.untargeted_attack = self._build(untargeted_attack or pgd_untargeted, "untargeted_attack", targeted=False)
        # The audit draws threat.restarts seeds per batch: enough for the hungrier sub-attack.
        restarts_needed = max(self.threat.restarts, self.targeted_attack.threat.restarts,
                              self.untargeted_attack.threat.restarts)
        if restarts_needed != self.threat.restarts:
            self.threat = self.threat.replace(restarts=restarts_needed)
        self._order = self._target_order(self.cost, self.num_targets)
        self.last_stats: WorstCostStats | None = None

    def _build(self, factory: AttackFactory, parameter: str, *, targeted: bool) -> Any:
        if not callable(factory):
            raise WpgdkitError(f"{parameter} must be a callable (model, threat) -> attack, got {type(factory).__name__}")
        attack = factory(self.model, self.threat)
        if not callable(attack) or not isinstance(getattr(attack, "threat", None), ThreatModel):
            raise WpgdkitError(f"{parameter} must build an attack object with a ThreatModel as threat, "
                               f"got {type(attack).__name__}")
        if bool(getattr(attack, "targeted", False)) != targeted:
            raise WpgdkitError(f"{parameter} must build an attack with targeted={targeted}")
        if not same_ball(attack.threat, self.threat):
            raise WpgdkitError(f"{parameter} must attack the same ball (eps, norm, bounds) as the worst-cost attack")
        return attack

    @staticmethod
    def _target_order(cost: Tensor, count: int) -> Tensor:
        c = cost.clone()
        c.fill_diagonal_(-math.inf)  # the class itself sorts last and is never among the first K − 1
        # Stable: equal costs keep increasing class order.
        return torch.sort(c, dim=1, descending=True, stable=True).indices[:, :count].contiguous()

    def target_order(self, y: Tensor) -> Tensor:
        """Each point's targets, in the order they are tried.

        Parameters
        ----------
        y : Tensor of shape (N,), int64

        Returns
        -------
        targets : Tensor of shape (N, T), int64
            Row i: the classes t ≠ y_i by decreasing ``C[y_i, t]``, ties by
            increasing class index, the first T = :attr:`num_targets`.
        """
        return self._on("order", lambda: self._order, y)[y]

    def objective(self, logits: Tensor, y: Tensor) -> Tensor:
        """The cost ``C[y, argmax]`` of the answer (0 where right): what this attack maximises, per point (N,)."""
        self._check_width(logits)
        cost = self._on("cost", lambda: self.cost, torch.empty(0, dtype=torch.float64, device=logits.device))
        prediction = logits.argmax(dim=1)
        return torch.where(prediction != y, cost[y, prediction], torch.zeros((), dtype=cost.dtype, device=cost.device))

    def success(self, logits: Tensor, y: Tensor) -> Tensor:
        return logits.argmax(dim=1) != y

    def perturb(self, x: Tensor, y: Tensor, generator: torch.Generator | None) -> Tensor:
        return self(x, y, generator=generator)

    def __call__(self, x: Tensor, y: Tensor, *, generator: torch.Generator | None = None,
                 seeds: Sequence[int] | None = None) -> Tensor:
        """Adversarial examples for ``x`` (N, ...) with true classes ``y`` (N,), detached.

        Parameters
        ----------
        x : Tensor of shape (N, ...), floating point
        y : Tensor of shape (N,), int64
            True classes.
        generator : torch.Generator, keyword-only, optional
            Drives the random starts of the sub-attacks, one after another.
        seeds : sequence of int, keyword-only, optional
            One seed per restart (at least ``threat.restarts``), handed to
            every sub-attack call.

        Returns
        -------
        x_adv : Tensor of the shape, dtype and device of ``x``
            Within the ball around ``x`` and the bounds (each sub-attack's
            output is). :attr:`last_stats` records the work.

        Raises
        ------
        WpgdkitError
            For malformed inputs, labels outside the metric's classes, too
            few seeds, or logits of another width than the metric.
        """
        _check_inputs(x, y)
        if seeds is not None and len(seeds) < self.threat.restarts:
            raise WpgdkitError(f"need {self.threat.restarts} seeds for {self.threat.restarts} restarts, got {len(seeds)}")
        x, y = x.detach(), y.detach()
        n, t_count = len(y), self.num_targets
        if n == 0:
            self.last_stats = WorstCostStats(points=0, targets=t_count, attacked=0, skipped=0, rounds=0)
            return x.clone()
        if int(y.min()) < 0 or int(y.max()) >= self.num_classes:
            raise WpgdkitError(f"labels must lie in 0..{self.num_classes - 1} (the metric's classes)")
        cost = self._on("cost", lambda: self.cost, torch.empty(0, dtype=torch.float64, device=y.device))

        best_x = self.untargeted_attack(x, y, generator=generator, seeds=seeds).detach().clone()
        _, best_fooled, best_cost = attack_outcome(self.model, best_x, y, cost)
        order = self.target_order(y)
        attacked = rounds = 0
        for rank in range(t_count):
            target = order[:, rank]
            if self.skip_reached:
                # A target can raise the point's cost only if it is costlier than what was reached
                # (or, for a point not fooled yet, reach a wrong class at all, even one of cost 0).
                open_ = ~best_fooled | (cost[y, target] > best_cost)
            else:
                open_ = torch.ones(n, dtype=torch.bool, device=y.device)
            rows = open_.nonzero().squeeze(1)
            if len(rows) == 0:
                break  # the open set only shrinks: no later rank has an open point either
            rounds += 1
            attacked += len(rows)
            x_t = self.targeted_attack(x[rows], target[rows], generator=generator, seeds=seeds).detach()
            _, fooled, reached = attack_outcome(self.model, x_t, y[rows], cost)
            better = better_than(fooled, reached, best_fooled[rows], best_cost[rows])
            won = rows[better]
            best_x[won] = x_t[better]
            best_fooled[won] = fooled[better]
            best_cost[won] = reached[better]
        self.last_stats = WorstCostStats(points=n, targets=t_count, attacked=attacked,
                                         skipped=n * t_count - attacked, rounds=rounds)
        return best_x

    forward = __call__

    def __repr__(self) -> str:
        t = self.threat
        return (f"WorstCost(eps={t.eps_label}, norm={t.norm}, steps={t.steps}, step_size={t.step:g}, "
                f"restarts={t.restarts}, targets={self.num_targets}, skip_reached={self.skip_reached})")
