"""The adversaries by name: training's inner attack and the audit's adversary come from here.

=================  ==========================================================
``pgd``            PGD on cross-entropy, random start (the paper's
                   evaluation: 20 steps, Sec. 5.2; the inner loop of PGD
                   training)
``wpgd``           PGD on the Wasserstein loss ℓ_W with the metric: the
                   attacker knows the metric (paper, Table 3); the inner
                   loop of WPGD training (Def. 6)
``cost-targeted``  targeted PGD towards the costliest class of each point's
                   row of C (the most damaging mistake, which no anchor has)
``autoattack``     torchattacks' AutoAttack (optional extra,
                   ``pip install 'wpgdkit[autoattack]'``)
``apgd-ce``        APGD (Croce & Hein 2020, Alg. 1) on cross-entropy
``apgd-dlr``       APGD on the DLR loss (their eq. 4; K ≥ 3)
``apgd-w``         APGD on ℓ_W with the metric (p, λ as ``wpgd``)
``apgd-t``         APGD-T: targeted DLR towards the runner-up classes (K ≥ 4)
``worst-cost``     targeted attacks towards every costlier class, costliest
                   first, plus an untargeted one; each point keeps the
                   costliest class reached (the worst-case S)
``strong``         per point, the worst case by cost of APGD-CE, APGD-DLR
                   (K ≥ 3) and worst-cost with APGD-T sub-attacks
=================  ==========================================================

:class:`AttackConfig` names an adversary, its threat model and the
metric-aware settings (p, λ); :func:`create_attack` builds the attack object.
Importing this module does not import torch, so ``--help`` can list the names.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from wpgdkit.attacks.threat import ThreatModel
from wpgdkit.errors import WpgdkitError
from wpgdkit.registry import Registry

if TYPE_CHECKING:  # pragma: no cover
    from torch import nn

    from wpgdkit.attacks.base import Attack

__all__ = ["AttackConfig", "AttackEntry", "register_attack", "get_attack", "list_attacks", "create_attack",
           "check_early_stop"]


@dataclass(frozen=True)
class AttackConfig:
    """An adversary: which attack, in which threat model, and (for metric-aware attacks) p and λ.

    Attributes
    ----------
    name : str
        Attack registry name (:func:`list_attacks`).
    threat : ThreatModel
    p : float, default=1.0
        Power of the metric in ℓ_W (``wpgd``), > 0.
    lam : float, default=inf
        λ of ℓ_W's entropy term (``wpgd``), > 0; ``inf`` drops it.
    targets : int or None, default=None
        ``worst-cost``/``strong``: how many of each row's costliest classes
        to aim at (None: all of them for K ≤ 20, the 19 costliest beyond).
    early_stop : bool, default=False
        Stop attacking each point at its first mistake (``pgd`` only; see
        :class:`~wpgdkit.attacks.PGD`).

    Raises
    ------
    WpgdkitError
        For an unknown name or a value out of range, or early stop with an
        attack that does not allow it.
    """

    name: str
    threat: ThreatModel
    p: float = 1.0
    lam: float = math.inf
    targets: int | None = None
    early_stop: bool = False

    def __post_init__(self) -> None:
        get_attack(self.name)  # unknown names fail here, listing the valid ones
        if not isinstance(self.early_stop, bool):
            raise WpgdkitError(f"early_stop must be True or False, got {self.early_stop!r}")
        if self.early_stop:
            check_early_stop(self.name)
        if not isinstance(self.threat, ThreatModel):
            raise WpgdkitError(f"threat must be a ThreatModel, got {type(self.threat).__name__}")
        if not (isinstance(self.p, (int, float)) and math.isfinite(self.p) and self.p > 0):
            raise WpgdkitError(f"attack_p must be a positive finite number, got {self.p!r}")
        if not (isinstance(self.lam, (int, float)) and self.lam > 0):  # also rejects NaN
            raise WpgdkitError(f"attack_lam must be positive (inf drops the entropy term), got {self.lam!r}")
        if self.targets is not None and (isinstance(self.targets, bool) or not isinstance(self.targets, int)
                                         or self.targets < 1):
            raise WpgdkitError(f"targets must be a whole number of at least 1, got {self.targets!r}")

    @property
    def entry(self) -> AttackEntry:
        return get_attack(self.name)

    def check(self) -> None:
        """Refuse, before any work, what this attack cannot run (e.g. AutoAttack on unbounded data)."""
        if self.entry.check is not None:
            self.entry.check(self.threat)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON values (λ = ∞ as the string ``"inf"``), the threat model's keys flattened in."""
        out: dict[str, Any] = {"name": self.name, **self.threat.to_dict(), "p": self.p,
                               "lam": "inf" if math.isinf(self.lam) else self.lam}
        if self.targets is not None:
            out["targets"] = self.targets
        out["early_stop"] = self.early_stop
        if self.name.startswith("apgd"):
            out["step_size"] = None  # APGD adapts its step from 2ε (its own schedule)
        if self.name == "autoattack":
            # AutoAttack brings its own schedules: say so rather than report settings it ignored.
            out.update(steps=None, step_size=None, random_start=None, schedule="torchattacks AutoAttack, standard")
        return out


# (model, config, metric or None) -> attack object
AttackFactory = Callable[["nn.Module", AttackConfig, Any], "Attack"]


@dataclass(frozen=True)
class AttackEntry:
    """A registered adversary.

    Attributes
    ----------
    name, description : str
    build : callable
        ``(model, config, metric) -> Attack``.
    needs_metric : bool
    check : callable or None
        Called with the threat model before any work: refuse what cannot run.
    early_stop : bool, default=False
        Whether the attack may stop at each point's first mistake
        (``AttackConfig(early_stop=True)``, ``--early-stop``). Only for an
        attack whose result does not depend on which wrong class a point
        reaches: not a metric-aware attack, not one that keeps a best iterate
        or the worst of several members.
    """

    name: str
    description: str
    build: AttackFactory
    needs_metric: bool = False
    check: Callable[[ThreatModel], None] | None = None
    early_stop: bool = False


_ATTACKS: Registry[AttackEntry] = Registry("attack")


def register_attack(entry: AttackEntry) -> AttackEntry:
    """Add an attack; raises ValueError if the name is taken."""
    return _ATTACKS.register(entry.name, entry)


def get_attack(name: str) -> AttackEntry:
    """The attack called ``name``; UnknownNameError listing the valid names otherwise."""
    return _ATTACKS.get(name)


def list_attacks() -> list[str]:
    """Registered attack names, in registration order."""
    return _ATTACKS.names()


def check_early_stop(name: str) -> None:
    """Refuse early stop for an attack that does not allow it (:attr:`AttackEntry.early_stop`)."""
    if not get_attack(name).early_stop:
        allowed = ", ".join(n for n in list_attacks() if get_attack(n).early_stop)
        raise WpgdkitError(f"early stop is for plain PGD ({allowed}), not {name}: stopping each point at its first "
                           f"mistake would change which class {name} sends it to, and the score it reports")


def create_attack(config: AttackConfig, model: nn.Module, *, metric: Any = None) -> Attack:
    """The attack object of ``config`` on ``model``.

    Parameters
    ----------
    config : AttackConfig
    model : nn.Module
    metric : LabelMetric, array or Tensor of shape (K, K), keyword-only, optional
        Required by the metric-aware attacks (``wpgd``, ``cost-targeted``).

    Raises
    ------
    WpgdkitError
        If the attack needs a metric and none is given, or cannot run on this
        threat model.
    """
    entry = config.entry
    if entry.needs_metric and metric is None:
        raise WpgdkitError(f"the {config.name} attack needs a label metric")
    config.check()
    return entry.build(model, config, metric)


def _pgd(model, config, metric):
    from wpgdkit.attacks.base import PGD

    return PGD(model, threat=config.threat, early_stop=config.early_stop)


def _wpgd(model, config, metric):
    from wpgdkit.attacks.base import WPGD

    return WPGD(model, metric, p=config.p, lam=config.lam, threat=config.threat)


def _cost_targeted(model, config, metric):
    from wpgdkit.attacks.base import CostTargeted

    return CostTargeted(model, metric, threat=config.threat)


def _autoattack(model, config, metric):
    from wpgdkit.attacks.autoattack import AutoAttack

    return AutoAttack(model, threat=config.threat)


def _check_autoattack(threat: ThreatModel) -> None:
    from wpgdkit.attacks.autoattack import check_autoattack

    check_autoattack(threat)


register_attack(AttackEntry("pgd", "PGD on cross-entropy (the paper's 20-step evaluation)", _pgd, early_stop=True))
register_attack(AttackEntry("wpgd", "PGD on the Wasserstein loss with the metric (attacker knows C, Table 3)", _wpgd,
                            needs_metric=True))
register_attack(AttackEntry("cost-targeted", "targeted PGD towards the costliest class of each point's row of C",
                            _cost_targeted, needs_metric=True))
register_attack(AttackEntry("autoattack", "torchattacks' AutoAttack (pip install 'wpgdkit[autoattack]')", _autoattack,
                            check=_check_autoattack))


def _apgd(loss: str) -> AttackFactory:
    def build(model, config, metric):
        from wpgdkit.attacks.apgd import APGD

        if loss == "wasserstein":
            return APGD(model, loss=loss, metric=metric, p=config.p, lam=config.lam, threat=config.threat)
        return APGD(model, loss=loss, threat=config.threat)

    return build


def _apgd_t(model, config, metric):
    from wpgdkit.attacks.apgd import APGDT

    return APGDT(model, threat=config.threat)


def _worst_cost(model, config, metric):
    from wpgdkit.attacks.worst_cost import WorstCost

    return WorstCost(model, metric, threat=config.threat, targets=config.targets)


def _strong(model, config, metric):
    """AutoAttack's idea for costs: per point, the worst case over diverse attacks, ranked by the cost reached."""
    from wpgdkit.attacks.apgd import APGD
    from wpgdkit.attacks.base import cost_tensor
    from wpgdkit.attacks.ensemble import Ensemble
    from wpgdkit.attacks.worst_cost import WorstCost

    members, names = [APGD(model, loss="ce", threat=config.threat)], ["apgd-ce"]
    if cost_tensor(metric).shape[0] >= 3:  # DLR needs three classes
        members.append(APGD(model, loss="dlr", threat=config.threat))
        names.append("apgd-dlr")
    members.append(WorstCost(model, metric, threat=config.threat, targets=config.targets,
                             targeted_attack=lambda m, t: APGD(m, threat=t, targeted=True)))
    names.append("worst-cost")
    ensemble = Ensemble(members, metric=metric, names=names)
    ensemble.name = "strong"
    return ensemble


register_attack(AttackEntry("apgd-ce", "APGD on cross-entropy (Croce & Hein 2020, Alg. 1)", _apgd("ce")))
register_attack(AttackEntry("apgd-dlr", "APGD on the DLR loss (Croce & Hein 2020, eq. 4; K >= 3)", _apgd("dlr")))
register_attack(AttackEntry("apgd-w", "APGD on the Wasserstein loss with the metric (--attack-p, --attack-lam)",
                            _apgd("wasserstein"), needs_metric=True))
register_attack(AttackEntry("apgd-t", "APGD-T: targeted DLR towards the 9 runner-up classes, worst kept (K >= 4)",
                            _apgd_t))
register_attack(AttackEntry("worst-cost", "targeted attacks towards every costlier class, costliest first; each "
                            "point keeps the costliest class reached", _worst_cost, needs_metric=True))
register_attack(AttackEntry("strong", "per point, the worst case by cost of APGD-CE, APGD-DLR and worst-cost",
                            _strong, needs_metric=True))
