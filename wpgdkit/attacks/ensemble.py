"""The per-point worst case over several attacks, ranked by the cost of the class each one reaches.

    ens = Ensemble([PGD(model, threat=t), WPGD(model, C, threat=t), WorstCost(model, C, threat=t)], metric=C)
    x_adv = ens(x, y)                       # an attack object like any other
    result = ens.run(x, y)                  # the same, with each member's outcome per point
    result.members[2].prediction            # (N,) what worst-cost made the model answer

Every member attacks every point (or, with ``skip_settled=True``, only the
points no earlier member has settled), and each point keeps the example of
the member that did the most damage there:

1. the **costlier class reached**, ``C[y, ŷ]`` (with a metric; 0 where the
   model still answers ``y``);
2. then **fooling at all** (a wrong answer of cost 0 beats a right one);
3. then the **first member** in the list (ties keep the earlier one).

Without a metric the first rule drops out and the ensemble is AutoAttack's
worst case over its components (as torchattacks' ``MultiAttack``, which keeps
the first member that fools a point). The rule is :func:`~wpgdkit.attacks.base.better_than`
with the cost as the loss: a cost above 0 implies a wrong answer, so
"success, then cost" and "cost, then success" order the candidates alike.

By construction the ensemble never reports less than any member on any
point: its cost reached is at least each member's, and where the costs are
equal it is fooled if any member is.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from wpgdkit.attacks.base import Attack, _eval_logits, better_than, cost_tensor
from wpgdkit.attacks.pgd import _check_inputs
from wpgdkit.attacks.threat import ThreatModel
from wpgdkit.errors import WpgdkitError

__all__ = ["Ensemble", "EnsembleResult", "MemberOutcome", "attack_outcome", "same_ball"]


def same_ball(a: ThreatModel, b: ThreatModel) -> bool:
    """Whether two threat models allow the same perturbations (ε, norm, bounds); steps and restarts may differ."""
    return (a.eps, a.norm, a.bounds) == (b.eps, b.norm, b.bounds)


def attack_outcome(model: nn.Module, x_adv: Tensor, y: Tensor, cost: Tensor | None = None,
                   ) -> tuple[Tensor, Tensor, Tensor]:
    """What the model answers at ``x_adv``, whether that is a mistake, and what it costs.

    Parameters
    ----------
    model : nn.Module
        Evaluated in eval mode (each submodule's mode restored after), without gradients.
    x_adv : Tensor of shape (N, ...)
    y : Tensor of shape (N,), int64
        True classes.
    cost : Tensor of shape (K, K), float64, optional
        The label metric C on ``y``'s device; None gives every answer cost 0.

    Returns
    -------
    prediction : Tensor of shape (N,), int64
    fooled : Tensor of shape (N,), bool
        ``prediction != y``.
    cost_reached : Tensor of shape (N,), float64
        ``C[y, prediction]`` where fooled, else 0 (a right answer costs nothing
        even if the metric's diagonal is not 0).

    Raises
    ------
    WpgdkitError
        If the model's logits do not have one column per class of the metric.
    """
    with torch.no_grad():
        logits = _eval_logits(model, x_adv)
    if cost is not None and logits.shape[1] != cost.shape[0]:
        raise WpgdkitError(f"the model returns {logits.shape[1]} logits but the metric has {cost.shape[0]} classes")
    prediction = logits.argmax(dim=1)
    fooled = prediction != y
    if cost is None:
        return prediction, fooled, torch.zeros(len(y), dtype=torch.float64, device=y.device)
    return prediction, fooled, torch.where(fooled, cost[y, prediction], torch.zeros((), dtype=cost.dtype,
                                                                                    device=cost.device))


@dataclass(frozen=True)
class MemberOutcome:
    """What one member of an :class:`Ensemble` did to each point of a batch.

    Attributes
    ----------
    name : str
    ran : Tensor of shape (N,), bool
        Points the member attacked (all of them unless ``skip_settled``).
    prediction : Tensor of shape (N,), int64
        The model's answer at the member's example; −1 where it did not run
        (so that a confusion matrix refuses it rather than miscount it).
    fooled : Tensor of shape (N,), bool
        False where it did not run.
    cost : Tensor of shape (N,), float64
        ``C[y, prediction]`` where fooled, else 0 (0 everywhere without a metric).
    """

    name: str
    ran: Tensor
    prediction: Tensor
    fooled: Tensor
    cost: Tensor


@dataclass(frozen=True)
class EnsembleResult:
    """The ensemble's examples and every member's outcome, for one batch.

    Attributes
    ----------
    x_adv : Tensor of shape (N, ...)
        Each point's worst example over the members (detached).
    prediction : Tensor of shape (N,), int64
        The model's answer at ``x_adv``.
    fooled : Tensor of shape (N,), bool
    cost : Tensor of shape (N,), float64
        ``C[y, prediction]`` where fooled, else 0.
    winner : Tensor of shape (N,), int64
        Index of the member whose example each point keeps.
    members : tuple of MemberOutcome
        In the ensemble's order. AE and S per member follow from each one's
        ``prediction`` (where ``ran`` holds everywhere, i.e. without
        ``skip_settled``) with :func:`~wpgdkit.audit.scores.error_rate` and
        :func:`~wpgdkit.audit.scores.weighted_score`.
    """

    x_adv: Tensor
    prediction: Tensor
    fooled: Tensor
    cost: Tensor
    winner: Tensor
    members: tuple[MemberOutcome, ...]

    def member(self, key: int | str) -> MemberOutcome:
        """A member's outcome by index or name."""
        if isinstance(key, str):
            for outcome in self.members:
                if outcome.name == key:
                    return outcome
            raise WpgdkitError(f"no ensemble member named {key!r}; members: "
                               f"{', '.join(m.name for m in self.members)}")
        if not -len(self.members) <= key < len(self.members):
            raise WpgdkitError(f"member index must lie in 0..{len(self.members) - 1}, got {key}")
        return self.members[key]

    def outranks(self, first: int | str, second: int | str) -> Tensor:
        """Points where member ``first`` did strictly more damage than member ``second``.

        "More" is the ensemble's rule (costlier class, then fooling at all),
        over the points both members ran on. ``result.outranks(weak, strong)``
        flags where a supposedly stronger member found less than a weaker one.

        Returns
        -------
        mask : Tensor of shape (N,), bool
        """
        a, b = self.member(first), self.member(second)
        return a.ran & b.ran & better_than(a.fooled, a.cost, b.fooled, b.cost)


class Ensemble(Attack):
    """Per point, the worst case over a list of attacks (see the module's docstring for the ranking).

    Parameters
    ----------
    attacks : sequence of attack objects
        Untargeted attacks on one model, each called as
        ``atk(x, y, generator=..., seeds=...)`` and each with a ``threat``
        (:class:`ThreatModel`) of the same ball (ε, norm, bounds; steps and
        restarts may differ) and a ``model`` attribute (the same object for
        all). Any :class:`Attack` qualifies, an ensemble too. Their order
        breaks ties: put the one you trust most first.
    metric : LabelMetric, array or Tensor of shape (K, K), keyword-only, optional
        Ranks the candidates by the cost of the class reached; None ranks by
        fooling alone.
    names : sequence of str, keyword-only, optional
        One distinct name per member (default: each one's ``name``, with
        ``#2``, ``#3`` appended to repeats).
    skip_settled : bool, keyword-only, default=False
        Run each member after the first only on the points not yet
        *settled*: fooled at the costliest class of the point's row of C
        (without a metric: fooled at all), where no member could do more
        damage. The ensemble's guarantee is kept and work is saved, but the
        later members' random starts then differ from a run on the whole
        batch, and their per-member outcomes cover only the points they ran
        on (``ran``): leave it off when the audit compares members.

    Attributes
    ----------
    attacks : tuple
    names : tuple of str
    last_result : EnsembleResult or None
        The outcome of the latest call (``atk(x, y)`` returns only its ``x_adv``).

    Notes
    -----
    With ``seeds`` and without ``skip_settled`` every member faces exactly
    the batch and the seeds it would face alone, so each member's outcome is
    the one it reports on its own. ``threat.restarts`` is the largest
    number of restarts among the members (the audit draws that many seeds);
    each member uses as many as it needs.
    """

    name = "ensemble"

    def __init__(self, attacks: Sequence[Any], *, metric: Any = None, names: Sequence[str] | None = None,
                 skip_settled: bool = False) -> None:
        if isinstance(attacks, (str, bytes)) or not isinstance(attacks, Sequence) or not attacks:
            raise WpgdkitError("attacks must be a non-empty list of attack objects")
        attacks = tuple(attacks)
        for index, member in enumerate(attacks):
            if not callable(member) or not isinstance(getattr(member, "threat", None), ThreatModel):
                raise WpgdkitError(f"attacks[{index}] must be an attack object with a ThreatModel as threat, "
                                   f"got {type(member).__name__}")
        names = self._names(attacks, names)
        first = attacks[0]
        model = getattr(first, "model", None)
        if not isinstance(model, nn.Module):
            raise WpgdkitError(f"attacks[0] ({names[0]}) must have the attacked nn.Module as its model")
        for index, member in enumerate(attacks):
            if getattr(member, "model", None) is not model:
                raise WpgdkitError(f"attacks[{index}] ({names[index]}) attacks another model than attacks[0]; "
                                   f"an ensemble attacks one model")
            if getattr(member, "targeted", False):
                raise WpgdkitError(f"attacks[{index}] ({names[index]}) is targeted; an ensemble's members are "
                                   f"called with the true labels")
            if not same_ball(member.threat, first.threat):
                raise WpgdkitError(f"attacks[{index}] ({names[index]}) attacks another ball (eps, norm, bounds) "
                                   f"than attacks[0] ({names[0]})")
        restarts = max(member.threat.restarts for member in attacks)
        super().__init__(model, first.threat.replace(restarts=restarts))
        self.attacks = attacks
        self.names = names
        self.skip_settled = bool(skip_settled)
        self.cost = cost_tensor(metric) if metric is not None else None
        self.last_result: EnsembleResult | None = None

    @staticmethod
    def _names(attacks: tuple, names: Sequence[str] | None) -> tuple[str, ...]:
        if names is None:
            seen: dict[str, int] = {}
            out = []
            for member in attacks:
                base = str(getattr(member, "name", type(member).__name__))
                seen[base] = seen.get(base, 0) + 1
                out.append(base if seen[base] == 1 else f"{base}#{seen[base]}")
            # "pgd#2" could collide with a member actually called so: fall through to the check below.
            names = out
        if isinstance(names, str) or len(names) != len(attacks):
            raise WpgdkitError(f"names must give one name per member ({len(attacks)}), got "
                               f"{1 if isinstance(names, str) else len(names)}")
        names = tuple(str(n) for n in names)
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise WpgdkitError(f"names must be distinct, got {repeated[0]!r} more than once")
        return names

    # --- running ------------------------------------------------------------------------------

    def __call__(self, x: Tensor, y: Tensor, *, generator: torch.Generator | None = None,
                 seeds: Sequence[int] | None = None) -> Tensor:
        """Each point's worst example over the members: (N, ...), detached. See :meth:`run`."""
        return self.run(x, y, generator=generator, seeds=seeds).x_adv

    forward = __call__

    def perturb(self, x: Tensor, y: Tensor, generator: torch.Generator | None) -> Tensor:
        return self(x, y, generator=generator)

    def run(self, x: Tensor, y: Tensor, *, generator: torch.Generator | None = None,
            seeds: Sequence[int] | None = None) -> EnsembleResult:
        """Run every member and keep each point's worst example, with every member's outcome.

        Parameters
        ----------
        x : Tensor of shape (N, ...), floating point
        y : Tensor of shape (N,), int64
            True classes.
        generator : torch.Generator, keyword-only, optional
            Handed to each member in turn (they draw from it one after another).
        seeds : sequence of int, keyword-only, optional
            Handed to every member: each one faces the starts it would face
            alone with these seeds. At least ``threat.restarts`` of them.

        Returns
        -------
        result : EnsembleResult
            Also kept as :attr:`last_result`.

        Raises
        ------
        WpgdkitError
            For malformed inputs, too few seeds, a model whose logits do not
            match the metric, or a member returning another shape.
        """
        _check_inputs(x, y)
        if seeds is not None and len(seeds) < self.threat.restarts:
            raise WpgdkitError(f"need {self.threat.restarts} seeds for {self.threat.restarts} restarts, got {len(seeds)}")
        x, y = x.detach(), y.detach()
        n = len(y)
        cost = self.cost.to(y.device) if self.cost is not None else None
        if cost is not None and n and (int(y.min()) < 0 or int(y.max()) >= cost.shape[0]):
            raise WpgdkitError(f"labels must lie in 0..{cost.shape[0] - 1} (the metric's classes)")
        settle_at = self._settle_costs(cost, y)
        best_x = x.clone()
        best_prediction = y.clone()
        best_fooled = torch.zeros(n, dtype=torch.bool, device=y.device)
        best_cost = torch.zeros(n, dtype=torch.float64, device=y.device)
        winner = torch.zeros(n, dtype=torch.int64, device=y.device)
        outcomes: list[MemberOutcome] = []
        for index, (member, name) in enumerate(zip(self.attacks, self.names)):
            if index > 0 and self.skip_settled:
                open_ = ~(best_fooled & (best_cost >= settle_at))
            else:
                open_ = torch.ones(n, dtype=torch.bool, device=y.device)
            rows = open_.nonzero().squeeze(1)
            outcome = _empty_outcome(name, n, y.device)
            if len(rows):
                # The whole batch as such, not a copy of it: a member then runs exactly as it would alone.
                whole = len(rows) == n
                x_in, y_in = (x, y) if whole else (x[rows], y[rows])
                x_m = member(x_in, y_in, generator=generator, seeds=seeds).detach()
                if x_m.shape != x_in.shape:
                    raise WpgdkitError(f"attacks[{index}] ({name}) returned shape {tuple(x_m.shape)} for inputs of "
                                       f"shape {tuple(x_in.shape)}")
                prediction, fooled, reached = attack_outcome(self.model, x_m, y_in, cost)
                outcome.ran[rows] = True
                outcome.prediction[rows] = prediction
                outcome.fooled[rows] = fooled
                outcome.cost[rows] = reached
                if index == 0:
                    better = torch.ones(len(rows), dtype=torch.bool, device=y.device)
                else:
                    # Strictly better only: an equal candidate leaves the earlier member's example.
                    better = better_than(fooled, reached, best_fooled[rows], best_cost[rows])
                won = rows[better]
                best_x[won] = x_m[better].to(best_x.dtype)
                best_prediction[won] = prediction[better]
                best_fooled[won] = fooled[better]
                best_cost[won] = reached[better]
                winner[won] = index
            outcomes.append(outcome)
        result = EnsembleResult(x_adv=best_x, prediction=best_prediction, fooled=best_fooled, cost=best_cost,
                                winner=winner, members=tuple(outcomes))
        self.last_result = result
        return result

    def _settle_costs(self, cost: Tensor | None, y: Tensor) -> Tensor:
        """Per point, the cost at which no member can do more damage: its row's largest off-diagonal entry."""
        if cost is None:
            return torch.zeros(len(y), dtype=torch.float64, device=y.device)
        off = cost.clone()
        off.fill_diagonal_(-math.inf)
        return off.max(dim=1).values[y]

    def __repr__(self) -> str:
        members = ", ".join(self.names)
        return (f"Ensemble([{members}], eps={self.threat.eps_label}, norm={self.threat.norm}, "
                f"metric={'yes' if self.cost is not None else 'no'}, skip_settled={self.skip_settled})")


def _empty_outcome(name: str, n: int, device: torch.device) -> MemberOutcome:
    return MemberOutcome(name=name, ran=torch.zeros(n, dtype=torch.bool, device=device),
                         prediction=torch.full((n,), -1, dtype=torch.int64, device=device),
                         fooled=torch.zeros(n, dtype=torch.bool, device=device),
                         cost=torch.zeros(n, dtype=torch.float64, device=device))
