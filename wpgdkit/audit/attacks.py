"""The adversaries of an audit, by name (a registry like the models').

=================  ==========================================================
``pgd``            ℓ∞/ℓ2 PGD on cross-entropy, random start (the paper's
                   evaluation: 20 steps, Sec. 5.2)
``wpgd``           PGD on the Wasserstein loss ℓ_W with the metric: the
                   attacker knows the metric (paper, Table 3)
``cost-targeted``  targeted PGD towards the costliest class of each point's
                   row of C (the most damaging mistake, which no anchor has)
``autoattack``     torchattacks' AutoAttack (optional extra,
                   ``pip install 'wpgdkit[autoattack]'``)
=================  ==========================================================

With ``restarts > 1`` every point keeps its worst restart: a restart that
fools the model beats one that does not, and between two that agree on that,
the one with the higher attack loss wins.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from wpgdkit.attacks import NORMS, PGDConfig, pgd_attack
from wpgdkit.errors import WpgdkitError
from wpgdkit.registry import Registry

__all__ = [
    "AttackConfig",
    "AuditAttack",
    "register_attack",
    "get_attack",
    "list_attacks",
    "costliest_classes",
    "attack_batch",
]


@dataclass(frozen=True)
class AttackConfig:
    """The adversary of an audit.

    Attributes
    ----------
    name : str
        Attack registry name (:func:`list_attacks`).
    eps : float
        Budget (> 0) in the ``norm``.
    norm : {"linf", "l2"}
    steps : int
        Iterations (≥ 1); the paper evaluates with 20.
    step_size : float or None
        None: ``2.5 · eps / steps`` (Madry et al.'s rule).
    restarts : int
        Independent random starts (≥ 1); each point keeps its worst.
    random_start : bool
    p, lam : float
        Power of the metric and λ of ℓ_W for ``wpgd``.
    bounds : (float, float) or None
        Data range (None for data that is not an image).
    """

    name: str = "pgd"
    eps: float = 8 / 255
    norm: str = "linf"
    steps: int = 20
    step_size: float | None = None
    restarts: int = 1
    random_start: bool = True
    p: float = 1.0
    lam: float = math.inf
    bounds: tuple[float, float] | None = (0.0, 1.0)

    def __post_init__(self) -> None:
        get_attack(self.name)  # unknown names fail here, listing the valid ones
        if not (isinstance(self.eps, (int, float)) and math.isfinite(self.eps) and self.eps > 0):
            raise WpgdkitError(f"--eps must be a positive number, got {self.eps}")
        if self.norm not in NORMS:
            raise WpgdkitError(f"unknown norm {self.norm!r}; choose one of: {', '.join(NORMS)}")
        if isinstance(self.steps, bool) or not isinstance(self.steps, int) or self.steps < 1:
            raise WpgdkitError(f"--steps must be at least 1, got {self.steps}")
        if self.step_size is not None and not (math.isfinite(self.step_size) and self.step_size > 0):
            raise WpgdkitError(f"--step-size must be positive, got {self.step_size}")
        if isinstance(self.restarts, bool) or not isinstance(self.restarts, int) or self.restarts < 1:
            raise WpgdkitError(f"--restarts must be at least 1, got {self.restarts}")
        if not (self.p > 0 and math.isfinite(self.p)):
            raise WpgdkitError(f"--attack-p must be a positive number, got {self.p}")
        if not self.lam > 0:
            raise WpgdkitError(f"--attack-lam must be positive (inf drops the entropy term), got {self.lam}")

    @property
    def resolved_step_size(self) -> float:
        return self.step_size if self.step_size is not None else 2.5 * self.eps / self.steps

    def pgd_config(self) -> PGDConfig:
        return PGDConfig(eps=self.eps, step_size=self.resolved_step_size, steps=self.steps, norm=self.norm,
                         random_start=self.random_start, bounds=self.bounds)

    def to_dict(self) -> dict:
        """The parameters as plain JSON values (λ = ∞ as the string ``"inf"``)."""
        out = dataclasses.asdict(self)
        out["step_size"] = self.resolved_step_size
        out["bounds"] = list(self.bounds) if self.bounds is not None else None
        out["lam"] = "inf" if math.isinf(self.lam) else self.lam
        if self.name == "autoattack":
            # AutoAttack brings its own schedules: say so rather than report settings it ignored.
            out.update(steps=None, step_size=None, random_start=None, schedule="torchattacks AutoAttack, standard")
        return out


# (model, x, y, config, cost (K, K) or None, generator) -> x_adv
AttackFn = Callable[[nn.Module, Tensor, Tensor, AttackConfig, "Tensor | None", torch.Generator], Tensor]
# (logits, y, cost or None, config) -> per-point loss (N,), the attack's own objective
ObjectiveFn = Callable[[Tensor, Tensor, "Tensor | None", AttackConfig], Tensor]


@dataclass(frozen=True)
class AuditAttack:
    """A registered adversary: how it perturbs a batch and which loss it maximises."""

    name: str
    description: str
    run: AttackFn
    objective: ObjectiveFn
    needs_metric: bool = False
    # Called before any work with the resolved config: refuse what cannot run.
    check: Callable[[AttackConfig], None] | None = None


_ATTACKS: Registry[AuditAttack] = Registry("attack")


def register_attack(attack: AuditAttack) -> AuditAttack:
    """Add an attack; raises ValueError if the name is taken."""
    return _ATTACKS.register(attack.name, attack)


def get_attack(name: str) -> AuditAttack:
    """The attack called ``name``; UnknownNameError listing the valid names otherwise."""
    return _ATTACKS.get(name)


def list_attacks() -> list[str]:
    """Registered attack names, in registration order."""
    return _ATTACKS.names()


def costliest_classes(cost: Tensor) -> Tensor:
    """For each class, the class of highest cost in its row (the first one on ties).

    Returns
    -------
    target : Tensor of shape (K,), int64
    """
    c = cost.clone().double()
    c.fill_diagonal_(-math.inf)  # never the class itself, even in a degenerate row
    return c.argmax(dim=1)


# --- objectives (per point; also used to pick the worst restart) ---------------------


def _cross_entropy(logits: Tensor, y: Tensor, cost: Tensor | None, config: AttackConfig) -> Tensor:
    return F.cross_entropy(logits, y, reduction="none")


def _wasserstein(logits: Tensor, y: Tensor, cost: Tensor | None, config: AttackConfig) -> Tensor:
    from wpgdkit.losses import entropy_weight, wasserstein_loss

    cost_p = cost.to(device=logits.device, dtype=logits.dtype).pow(config.p)
    weight = entropy_weight(config.lam, cost.shape[0])
    return wasserstein_loss(logits, y, cost_p, entropy_weight=weight, reduction="none")


def _towards_costliest(logits: Tensor, y: Tensor, cost: Tensor | None, config: AttackConfig) -> Tensor:
    target = costliest_classes(cost).to(y.device)[y]
    return -F.cross_entropy(logits, target, reduction="none")


def _pgd_runner(objective: ObjectiveFn) -> AttackFn:
    def run(model, x, y, config, cost, generator):
        def loss_fn(logits: Tensor, target: Tensor) -> Tensor:
            return objective(logits, target, cost, config)

        return pgd_attack(model, x, y, config=config.pgd_config(), loss_fn=loss_fn, generator=generator)

    return run


def _autoattack(model, x, y, config, cost, generator):
    from wpgdkit.audit.autoattack import autoattack_batch

    return autoattack_batch(model, x, y, config=config, seed=int(torch.randint(0, 2**31 - 1, (1,), generator=generator)))


def _check_autoattack(config: AttackConfig) -> None:
    from wpgdkit.audit.autoattack import check_autoattack

    check_autoattack(config)


register_attack(AuditAttack("pgd", "PGD on cross-entropy (the paper's 20-step evaluation)",
                            _pgd_runner(_cross_entropy), _cross_entropy))
register_attack(AuditAttack("wpgd", "PGD on the Wasserstein loss with the metric (attacker knows C, Table 3)",
                            _pgd_runner(_wasserstein), _wasserstein, needs_metric=True))
register_attack(AuditAttack("cost-targeted", "targeted PGD towards the costliest class of each point's row of C",
                            _pgd_runner(_towards_costliest), _towards_costliest, needs_metric=True))
register_attack(AuditAttack("autoattack", "torchattacks' AutoAttack (pip install 'wpgdkit[autoattack]')",
                            _autoattack, _cross_entropy, check=_check_autoattack))


def attack_batch(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    *,
    config: AttackConfig,
    cost: Tensor | None = None,
    seeds: list[int] | None = None,
) -> Tensor:
    """Adversarial examples for one batch, the worst of ``config.restarts`` restarts per point.

    Parameters
    ----------
    model : nn.Module
        Returns logits; put in eval mode while attacked (mode restored after).
    x : Tensor of shape (N, ...)
    y : Tensor of shape (N,), int64
    config : AttackConfig, keyword-only
    cost : Tensor of shape (K, K), keyword-only, optional
        The label metric; required by ``wpgd`` and ``cost-targeted``.
    seeds : list of int, keyword-only, optional
        One seed per restart for the random starts (default 0, 1, ...).

    Returns
    -------
    x_adv : Tensor like ``x``, detached
    """
    attack = get_attack(config.name)
    if attack.needs_metric and cost is None:
        raise WpgdkitError(f"--attack {config.name} needs a label metric (--metric)")
    seeds = list(range(config.restarts)) if seeds is None else seeds
    best = best_wrong = best_loss = None
    for seed in seeds[: config.restarts]:
        generator = torch.Generator(device=x.device).manual_seed(int(seed))
        x_adv = attack.run(model, x, y, config, cost, generator)
        if config.restarts == 1:
            return x_adv
        with torch.no_grad():
            logits = model(x_adv)
            wrong = logits.argmax(dim=1) != y
            loss = attack.objective(logits, y, cost, config)
        if best is None:
            best, best_wrong, best_loss = x_adv, wrong, loss
            continue
        better = (wrong & ~best_wrong) | ((wrong == best_wrong) & (loss > best_loss))
        best = torch.where(better.view(-1, *([1] * (x.dim() - 1))), x_adv, best)
        best_wrong = torch.where(better, wrong, best_wrong)
        best_loss = torch.where(better, loss, best_loss)
    return best
