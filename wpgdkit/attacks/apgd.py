"""APGD and APGD-T: Auto-PGD with an adaptive step size (Croce & Hein, ICML 2020).

Croce & Hein, "Reliable evaluation of adversarial robustness with an
ensemble of diverse parameter-free attacks" (ICML 2020), Sec. 3, Algorithm 1.
APGD is PGD whose step size needs no tuning: it starts at ``η = 2ε``, moves
with momentum, and is halved at checkpoints when the attack stops making
progress, restarting from the best point found so far::

    atk = APGD(model, eps=8/255, steps=100)                    # APGD-CE
    atk = APGD(model, eps=8/255, loss="dlr")                   # APGD-DLR (eq. 4)
    atk = APGD(model, eps=8/255, loss="wasserstein",
               metric=C, p=2.5)                                # APGD on ℓ_W (wpgdkit's paper, eq. 5)
    atk = APGDT(model, eps=8/255)                              # APGD-T: targeted DLR, 9 targets (Sec. 4)
    x_adv = atk(x, y)

The algorithm, per point (Sec. 3.1 and 3.2)
-------------------------------------------
- ``x^(0)``: the clean point, or a uniform point of the ε-ball when the
  threat model says ``random_start``;
- ``x^(1) = P_S(x^(0) + η·s(∇f(x^(0))))`` with ``s`` the sign (ℓ∞) or the
  normalised gradient (ℓ2), and ``P_S`` the projection onto the ball and the
  data bounds;
- for ``k ≥ 1``: ``z^(k+1) = P_S(x^(k) + η·s(∇f(x^(k))))`` and
  ``x^(k+1) = P_S(x^(k) + α(z^(k+1) − x^(k)) + (1 − α)(x^(k) − x^(k−1)))``,
  ``α = 0.75`` (Sec. 3.1, "momentum");
- checkpoints ``w_j = ⌈p_j·N_iter⌉``, ``p_0 = 0``, ``p_1 = 0.22``,
  ``p_{j+1} = p_j + max(p_j − p_{j−1} − 0.03, 0.06)`` (Sec. 3.2,
  :func:`checkpoints`). When ``x^(w_j)`` has been computed, η is halved
  and the walk goes on from ``x_max`` (the highest-loss iterate) if

  1. (Condition 1) fewer than ``ρ·(w_j − w_{j−1})`` of the steps since the
     last checkpoint increased the loss: ``#{i ∈ [w_{j−1}, w_j): f(x^(i+1)) >
     f(x^(i))} < ρ·(w_j − w_{j−1})``, ``ρ = 0.75``; or
  2. (Condition 2) η was not halved at the last checkpoint and the best loss
     ``f_max`` has not improved since.

  At ``w_1`` the "last checkpoint" is ``w_0 = 0``, where η is ``2ε`` and
  ``f_max = f(x^(0))``: Condition 2 applies from the first checkpoint on, as
  the paper writes it (the reference code skips it at ``w_1``).

What is returned is each point's best iterate by the rule of
:func:`wpgdkit.attacks.base.better_than`: an iterate that reaches the goal
(fools the model, or reaches the target) beats one that does not, then the
higher loss wins. ``x_max`` (highest loss alone) is what the algorithm
restarts from, as in the paper.

Differences from the reference (torchattacks, the authors' code)
-----------------------------------------------------------------
- The random start is the threat model's (uniform in the ball, or none),
  not a point on the ℓ∞ sphere; the bounds may be per feature.
- Condition 1 is the paper's strict ``<``; the reference uses ``≤``.
- A point that is never fooled comes back as its highest-loss iterate, not
  as the clean input.
- ``threat.step_size`` does not apply: η starts at ``2ε`` and adapts.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from wpgdkit.attacks.base import _UNSET, Attack, _Best, _eval_logits, _threat, cost_tensor
from wpgdkit.attacks.pgd import _check_inputs, _clamp, _project_l2, _random_start, _unit_l2, eval_mode
from wpgdkit.attacks.threat import ThreatModel
from wpgdkit.errors import WpgdkitError

__all__ = ["APGD", "APGDT", "APGD_LOSSES", "APGDRecord", "MOMENTUM", "apgd_attack", "checkpoints", "dlr_loss",
           "targeted_dlr_loss"]

#: The losses :class:`APGD` maximises.
APGD_LOSSES = ("ce", "dlr", "wasserstein")

#: α of the momentum step (Sec. 3.1).
MOMENTUM = 0.75

#: The paper's default number of iterations, used when no ``steps`` and no ``threat`` are given.
DEFAULT_STEPS = 100

# The checkpoint recurrence in hundredths, so that ⌈p_j·N⌉ is computed exactly
# (0.41 * 100 is 41.00000000000001 in floating point, whose ceiling is 42).
_P1, _SHRINK, _MIN_LENGTH = 22, 3, 6

# (logits (N, K), labels (N,)) -> per-point loss (N,) or goal reached (N,) bool.
PerPoint = Callable[[Tensor, Tensor], Tensor]


def checkpoints(n_iter: int) -> list[int]:
    """The iterations ``w_j`` where APGD may halve its step size (Sec. 3.2).

    ``w_j = ⌈p_j·N_iter⌉`` with ``p_0 = 0``, ``p_1 = 0.22`` and
    ``p_{j+1} = p_j + max(p_j − p_{j−1} − 0.03, 0.06)``, for ``p_j ≤ 1``:
    the intervals start at 22 % of the budget and shrink by 3 % each time,
    down to 6 %. Repeated values (few iterations) are kept once.

    Parameters
    ----------
    n_iter : int
        ``N_iter`` (≥ 1).

    Returns
    -------
    w : list of int
        Increasing, starting at 0 and at most ``n_iter``; for 100 iterations
        ``[0, 22, 41, 57, 70, 80, 87, 93, 99]``.
    """
    if isinstance(n_iter, bool) or not isinstance(n_iter, int) or n_iter < 1:
        raise WpgdkitError(f"n_iter must be a whole number of at least 1, got {n_iter!r}")
    w = [0]
    before, p = 0, _P1
    while p <= 100:
        mark = -(-p * n_iter // 100)  # ⌈p·N/100⌉ in integers
        if mark > w[-1]:
            w.append(mark)
        before, p = p, p + max(p - before - _SHRINK, _MIN_LENGTH)
    return w


@dataclass
class APGDRecord:
    """What one APGD run did, for inspection and tests (pass one to :func:`apgd_attack`).

    Attributes
    ----------
    checkpoints : list of int
        The ``w_j`` of the run.
    losses : list of Tensor of shape (N,)
        ``f(x^(k))`` for ``k = 0 .. N_iter``, as computed (before a restart
        from ``x_max`` replaces ``x^(w_j)``).
    step_sizes : list of Tensor of shape (N,)
        The η of each step ``x^(k) → x^(k+1)``, ``k = 0 .. N_iter − 1``.
    condition1, condition2, halved : list of Tensor of shape (N,), bool
        Per checkpoint ``w_j``, ``j ≥ 1``: the two conditions and their "or".
    """

    checkpoints: list[int] = field(default_factory=list)
    losses: list[Tensor] = field(default_factory=list)
    step_sizes: list[Tensor] = field(default_factory=list)
    condition1: list[Tensor] = field(default_factory=list)
    condition2: list[Tensor] = field(default_factory=list)
    halved: list[Tensor] = field(default_factory=list)


def apgd_attack(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    *,
    threat: ThreatModel,
    loss_fn: PerPoint,
    success_fn: PerPoint | None = None,
    rho: float = 0.75,
    generator: torch.Generator | None = None,
    record: APGDRecord | None = None,
) -> Tensor:
    """One run of APGD (Algorithm 1) maximising ``loss_fn`` in the threat model's ball.

    Parameters
    ----------
    model : nn.Module
        Maps inputs (N, ...) to logits (N, K). In eval mode during the run,
        each submodule's mode restored after; parameters' ``.grad`` untouched
        (the gradient is taken with respect to the input only).
    x : Tensor of shape (N, ...), floating point
        Clean inputs, inside ``threat.bounds``.
    y : Tensor of shape (N,), int64
        Labels handed to ``loss_fn`` and ``success_fn``.
    threat : ThreatModel, keyword-only
        ``eps``, ``norm``, ``bounds``, ``random_start`` and ``steps``
        (``N_iter``, one gradient per step) apply; ``step_size`` and
        ``restarts`` do not.
    loss_fn : callable, keyword-only
        ``(logits, y) -> (N,)`` per-point loss ``f`` to maximise.
    success_fn : callable, keyword-only, optional
        ``(logits, y) -> (N,) bool``: has the point reached the goal? The
        returned iterate is the best by success, then loss. Default:
        misclassified (``argmax ≠ y``).
    rho : float, keyword-only, default=0.75
        ρ of Condition 1, in (0, 1].
    generator : torch.Generator, keyword-only, optional
        Drives the random start; None uses the global RNG.
    record : APGDRecord, keyword-only, optional
        Filled with the run's losses, step sizes and checkpoint decisions.

    Returns
    -------
    x_adv : Tensor of the shape, dtype and device of ``x``
        Detached; within ``eps`` of ``x`` in the norm and inside the bounds.
    """
    _check_inputs(x, y)
    _check_rho(rho)
    success_fn = success_fn if success_fn is not None else _misclassified
    x0, y = x.detach(), y.detach()
    n_iter = threat.steps
    marks = checkpoints(n_iter)
    if record is not None:
        record.checkpoints = list(marks)
    if x0.shape[0] == 0:
        return x0.clone()
    shape = (-1,) + (1,) * (x0.dim() - 1)
    direction = torch.sign if threat.norm == "linf" else _unit_l2

    def project(z: Tensor) -> Tensor:
        if threat.norm == "linf":
            z = torch.minimum(torch.maximum(z, x0 - threat.eps), x0 + threat.eps)
        else:
            z = x0 + _project_l2(z - x0, threat.eps)
        return _clamp(z, threat.bounds, x0)  # widened per-feature box: never leaves the ball

    with eval_mode(model), torch.enable_grad():
        x_k = _random_start(x0, threat, generator) if threat.random_start else x0.clone()
        loss_k, logits, grad_k = _evaluate(model, x_k, y, loss_fn, gradient=True)
        best = _Best()  # what is returned: success first, then loss
        best.offer(x_k, success_fn(logits, y), loss_k)
        x_max, f_max, grad_max = x_k, loss_k, grad_k  # what the algorithm restarts from: loss alone
        x_prev = x_k
        eta = torch.full((x0.shape[0],), 2.0 * threat.eps, dtype=x0.dtype, device=x0.device)
        increases = torch.zeros(x0.shape[0], dtype=torch.long, device=x0.device)
        f_max_at_mark = f_max.clone()
        halved_at_mark = torch.zeros(x0.shape[0], dtype=torch.bool, device=x0.device)
        if record is not None:
            record.losses.append(loss_k.clone())
        j = 1
        for k in range(n_iter):
            with torch.no_grad():
                z = project(x_k + eta.view(shape) * direction(grad_k))
                # The first step has no previous iterate, hence no momentum (Algorithm 1, line 1).
                x_new = z if k == 0 else project(x_k + MOMENTUM * (z - x_k) + (1 - MOMENTUM) * (x_k - x_prev))
            if record is not None:
                record.step_sizes.append(eta.clone())
            # The last iterate's gradient would never be used.
            loss_new, logits, grad_new = _evaluate(model, x_new, y, loss_fn, gradient=k + 1 < n_iter)
            if record is not None:
                record.losses.append(loss_new.clone())
            best.offer(x_new, success_fn(logits, y), loss_new)
            increases += (loss_new > loss_k).long()
            improved = loss_new > f_max
            x_max = torch.where(improved.view(shape), x_new, x_max)
            f_max = torch.where(improved, loss_new, f_max)
            if grad_new is not None:
                grad_max = torch.where(improved.view(shape), grad_new, grad_max)
            x_prev, x_k, loss_k, grad_k = x_k, x_new, loss_new, grad_new
            if j < len(marks) and k + 1 == marks[j]:
                condition1 = increases.to(x0.dtype) < rho * (marks[j] - marks[j - 1])
                condition2 = ~halved_at_mark & (f_max <= f_max_at_mark)
                halve = condition1 | condition2
                eta = torch.where(halve, eta / 2, eta)
                # Restart from x_max; x^(k) stays the previous iterate of the momentum term (Algorithm 1).
                x_k = torch.where(halve.view(shape), x_max, x_k)
                loss_k = torch.where(halve, f_max, loss_k)
                if grad_k is not None:
                    grad_k = torch.where(halve.view(shape), grad_max, grad_k)
                if record is not None:
                    record.condition1.append(condition1.clone())
                    record.condition2.append(condition2.clone())
                    record.halved.append(halve.clone())
                halved_at_mark, f_max_at_mark = halve, f_max.clone()
                increases.zero_()
                j += 1
    assert best.x is not None
    return best.x


def _evaluate(model: nn.Module, x: Tensor, y: Tensor, loss_fn: PerPoint, *,
              gradient: bool) -> tuple[Tensor, Tensor, Tensor | None]:
    """Per-point loss (N,), logits (N, K) and, if asked, the loss's gradient with respect to ``x``; all detached."""
    if not gradient:
        with torch.no_grad():
            logits = model(x)
            return _per_point(loss_fn(logits, y), len(y)), logits, None
    x = x.detach().requires_grad_(True)
    logits = model(x)
    loss = _per_point(loss_fn(logits, y), len(y))
    # Gradient with respect to the input only: the parameters' .grad stay as they were.
    (grad,) = torch.autograd.grad(loss.sum(), x)
    return loss.detach(), logits.detach(), grad.detach()


def _per_point(loss: Tensor, n: int) -> Tensor:
    if loss.shape != (n,):
        raise WpgdkitError(f"loss_fn must return one value per point, shape ({n},), got {tuple(loss.shape)}")
    return loss


def _misclassified(logits: Tensor, y: Tensor) -> Tensor:
    return logits.argmax(dim=1) != y


def _check_rho(rho: Any) -> None:
    if isinstance(rho, bool) or not isinstance(rho, (int, float)) or not 0 < rho <= 1:
        raise WpgdkitError(f"rho must be a number in (0, 1], got {rho!r}")


# --- losses -------------------------------------------------------------------------------


def dlr_loss(logits: Tensor, y: Tensor) -> Tensor:
    """Difference of Logits Ratio, eq. 4: ``−(z_y − max_{i≠y} z_i) / (z_π1 − z_π3 + 1e−12)``.

    ``π`` orders the logits decreasingly. Invariant to shifting and (positive)
    scaling the logits, so that APGD's progress does not hinge on the
    model's logit scale. Positive exactly when the point is misclassified.

    Parameters
    ----------
    logits : Tensor of shape (N, K), K ≥ 3
    y : Tensor of shape (N,), int64

    Returns
    -------
    loss : Tensor of shape (N,)

    Raises
    ------
    WpgdkitError
        If K < 3: the denominator needs a third logit. For two classes it
        would be ``|z_1 − z_2|``, which makes the loss ±1 everywhere (no
        gradient): use ``loss="ce"``.
    """
    _need_classes(logits, 3, "the dlr loss (eq. 4 divides by z_π1 − z_π3)")
    top = logits.topk(3, dim=1).values
    z_y = logits.gather(1, y.view(-1, 1)).squeeze(1)
    return -(z_y - _max_except(logits, y)) / (top[:, 0] - top[:, 2] + 1e-12)


def targeted_dlr_loss(logits: Tensor, target: Tensor, *, label: Tensor | None = None) -> Tensor:
    """Targeted DLR of APGD-T (Sec. 4): ``−(z_y − z_t) / (z_π1 − (z_π3 + z_π4)/2 + 1e−12)``.

    Parameters
    ----------
    logits : Tensor of shape (N, K), K ≥ 4
    target : Tensor of shape (N,), int64
        The class ``t`` each point is driven to.
    label : Tensor of shape (N,), int64, keyword-only, optional
        The true class ``y``. Without it (a targeted attack told only the
        targets), ``z_y`` is replaced by ``max_{i≠t} z_i``, the class to beat;
        the two agree while ``y`` is the top class other than ``t``.

    Returns
    -------
    loss : Tensor of shape (N,)
        Maximised when ``z_t`` rises above the other logits.

    Raises
    ------
    WpgdkitError
        If K < 4 (the denominator needs a fourth logit).
    """
    _need_classes(logits, 4, "the targeted dlr loss (divides by z_π1 − (z_π3 + z_π4)/2)")
    top = logits.topk(4, dim=1).values
    z_t = logits.gather(1, target.view(-1, 1)).squeeze(1)
    z_y = _max_except(logits, target) if label is None else logits.gather(1, label.view(-1, 1)).squeeze(1)
    return -(z_y - z_t) / (top[:, 0] - (top[:, 2] + top[:, 3]) / 2 + 1e-12)


def _margin(logits: Tensor, y: Tensor) -> Tensor:
    """``max_{i≠y} z_i − z_y``: positive exactly when misclassified; the same yardstick for every target."""
    return _max_except(logits, y) - logits.gather(1, y.view(-1, 1)).squeeze(1)


def _max_except(logits: Tensor, y: Tensor) -> Tensor:
    return logits.scatter(1, y.view(-1, 1), -math.inf).amax(dim=1)


def _need_classes(logits: Tensor, k: int, what: str) -> None:
    if logits.dim() != 2 or logits.shape[1] < k:
        found = logits.shape[1] if logits.dim() == 2 else f"shape {tuple(logits.shape)}"
        raise WpgdkitError(f"{what} needs at least {k} classes, the model returns {found} logits; use loss='ce'")


# --- attack objects --------------------------------------------------------------------------


def _apgd_threat(threat: ThreatModel | None, options: dict[str, Any]) -> ThreatModel:
    """:func:`~wpgdkit.attacks.base._threat`, with the paper's 100 iterations when neither steps nor threat is given."""
    if threat is None and options["steps"] is _UNSET:
        options = {**options, "steps": DEFAULT_STEPS}  # the paper's budget, not PGD's 10
    return _threat(threat, options)


class APGD(Attack):
    """APGD (Croce & Hein 2020, Algorithm 1) on cross-entropy, DLR (eq. 4) or the Wasserstein loss ℓ_W.

    Parameters
    ----------
    model : nn.Module
        Maps inputs (N, ...) to logits (N, K).
    loss : {"ce", "dlr", "wasserstein"}, keyword-only, default="ce"
        ``"ce"``: cross-entropy (APGD-CE). ``"dlr"``: the DLR loss of eq. 4
        (APGD-DLR; K ≥ 3, see :func:`dlr_loss`). ``"wasserstein"``: ℓ_W =
        ``(C^p)[y]·ŷ − H(ŷ)/(λ log K)`` (wpgdkit's paper, eq. 5), which needs
        ``metric``.
    metric : LabelMetric, array or Tensor of shape (K, K), keyword-only, optional
        The label metric C, for ``loss="wasserstein"`` only.
    p : float, keyword-only, default=1.0
        Power of the metric (> 0), for ``loss="wasserstein"``.
    lam : float, keyword-only, default=inf
        λ of ℓ_W's entropy term (> 0; ``inf`` drops it), for ``loss="wasserstein"``.
    rho : float, keyword-only, default=0.75
        ρ of Condition 1, in (0, 1].
    eps, steps, norm, random_start, restarts, bounds : keyword-only
        The :class:`ThreatModel` (defaults: ε = 8/255, **100** iterations as
        in the paper, ℓ∞, random start, one restart, bounds [0, 1]).
        ``steps`` is ``N_iter``; a step size does not apply (η starts at 2ε).
    threat : ThreatModel, keyword-only, optional
        Instead of the keywords above (its ``step_size`` is ignored).
    targeted : bool, keyword-only, default=False
        Call as ``atk(x, target)``: maximise ``−CE(f(x), t)``,
        ``−ℓ_W(f(x), t)`` or the targeted DLR without the label
        (:func:`targeted_dlr_loss`, K ≥ 4); success is reaching ``t``.

    Notes
    -----
    Each point keeps its best iterate (success first, then the loss), over
    the iterates of a run and over the ``threat.restarts`` runs.

    Examples
    --------
    >>> atk = APGD(model, eps=8/255, loss="dlr")         # doctest: +SKIP
    >>> x_adv = atk(images, labels, generator=g)         # doctest: +SKIP
    """

    name = "apgd"

    def __init__(self, model: nn.Module, *, loss: str = "ce", metric: Any = None, p: float = 1.0,
                 lam: float = math.inf, rho: float = 0.75, eps: float = _UNSET, steps: int = _UNSET,
                 norm: str = _UNSET, random_start: bool = _UNSET, restarts: int = _UNSET,
                 bounds: tuple[float, float] | None = _UNSET, threat: ThreatModel | None = None,
                 targeted: bool = False) -> None:
        from wpgdkit.losses import check_powered_cost, entropy_weight

        super().__init__(model, _apgd_threat(threat, dict(eps=eps, steps=steps, norm=norm, random_start=random_start,
                                                          restarts=restarts, bounds=bounds)),
                         targeted=targeted, best_iterate=True)
        if loss not in APGD_LOSSES:
            raise WpgdkitError(f"unknown loss {loss!r}; choose one of: {', '.join(APGD_LOSSES)}")
        _check_rho(rho)
        self.loss, self.rho = loss, float(rho)
        self.cost_p: Tensor | None = None
        self._cache: dict[tuple[Any, ...], Tensor] = {}
        if loss == "wasserstein":
            if metric is None:
                raise WpgdkitError("loss='wasserstein' needs metric= (the label metric C, shape (K, K))")
            if isinstance(p, bool) or not (isinstance(p, (int, float)) and math.isfinite(p) and p > 0):
                raise WpgdkitError(f"p must be a positive finite number, got {p!r}")
            cost = cost_tensor(metric)
            check_powered_cost(float(cost.max()), float(p))
            self.p, self.lam = float(p), float(lam)
            self.entropy_weight = entropy_weight(self.lam, cost.shape[0])  # also refuses λ ≤ 0
            self.cost_p = cost.pow(self.p)
        elif metric is not None:
            raise WpgdkitError(f"metric= is only used by loss='wasserstein', not loss={loss!r}")

    def objective(self, logits: Tensor, y: Tensor) -> Tensor:
        if self.loss == "ce":
            value = F.cross_entropy(logits, y, reduction="none")
            return -value if self.targeted else value
        if self.loss == "dlr":
            return targeted_dlr_loss(logits, y) if self.targeted else dlr_loss(logits, y)
        from wpgdkit.losses import wasserstein_loss

        assert self.cost_p is not None
        if logits.shape[1] != self.cost_p.shape[0]:
            raise WpgdkitError(f"the model returns {logits.shape[1]} logits but the metric has "
                               f"{self.cost_p.shape[0]} classes")
        slot = (logits.device, logits.dtype)
        if slot not in self._cache:  # once per device and dtype, not once per step
            self._cache[slot] = self.cost_p.to(device=logits.device, dtype=logits.dtype)
        value = wasserstein_loss(logits, y, self._cache[slot], entropy_weight=self.entropy_weight, reduction="none")
        return -value if self.targeted else value

    def perturb(self, x: Tensor, y: Tensor, generator: torch.Generator | None) -> Tensor:
        return apgd_attack(self.model, x, y, threat=self.threat, loss_fn=self.objective, success_fn=self.success,
                           rho=self.rho, generator=generator)

    def __repr__(self) -> str:
        t = self.threat
        return (f"{type(self).__name__}(eps={t.eps_label}, norm={t.norm}, steps={t.steps}, loss={self.loss}, "
                f"rho={self.rho:g}, restarts={t.restarts}, targeted={self.targeted})")


class APGDT(Attack):
    """APGD-T (Sec. 4): APGD on the targeted DLR loss, once per target class; each point keeps its worst.

    The targets of a point are the classes other than its label with the
    highest clean logits: the 1st, 2nd, ... ``n_targets``-th runner-up. Each
    target gets its own APGD run (``threat.steps`` iterations, drawing its
    random start from the generator in turn); the goal is untargeted (any
    wrong class). Across targets and restarts each point keeps the result that
    fools the model, and among those (or if none does) the one with the
    largest margin ``max_{i≠y} z_i − z_y`` (the same yardstick for every
    target, unlike the targeted losses). Cost: ``n_targets`` APGD runs.

    Parameters
    ----------
    model : nn.Module
    n_targets : int, keyword-only, default=9
        Target classes per point (AutoAttack's standard value); at most K − 1
        are used.
    loss : {"dlr", "ce"}, keyword-only, default="dlr"
        ``"dlr"``: :func:`targeted_dlr_loss` (needs K ≥ 4); ``"ce"``:
        ``−CE(f(x), t)``, for models with 2 or 3 classes.
    rho : float, keyword-only, default=0.75
    eps, steps, norm, random_start, restarts, bounds, threat : keyword-only
        As for :class:`APGD` (100 iterations by default).

    Differences from the reference: the k-th target is the k-th highest
    clean logit *other than the label* (the reference takes the (k+1)-th
    highest, which is the label itself for a misclassified point), and every
    point runs every target (the reference skips points already fooled).
    """

    name = "apgd-t"

    def __init__(self, model: nn.Module, *, n_targets: int = 9, loss: str = "dlr", rho: float = 0.75,
                 eps: float = _UNSET, steps: int = _UNSET, norm: str = _UNSET, random_start: bool = _UNSET,
                 restarts: int = _UNSET, bounds: tuple[float, float] | None = _UNSET,
                 threat: ThreatModel | None = None) -> None:
        super().__init__(model, _apgd_threat(threat, dict(eps=eps, steps=steps, norm=norm, random_start=random_start,
                                                          restarts=restarts, bounds=bounds)),
                         best_iterate=True)
        if isinstance(n_targets, bool) or not isinstance(n_targets, int) or n_targets < 1:
            raise WpgdkitError(f"n_targets must be a whole number of at least 1, got {n_targets!r}")
        if loss not in ("dlr", "ce"):
            raise WpgdkitError(f"unknown loss {loss!r} for APGD-T; choose one of: dlr, ce")
        _check_rho(rho)
        self.n_targets, self.loss, self.rho = n_targets, loss, float(rho)

    def objective(self, logits: Tensor, y: Tensor) -> Tensor:
        """The margin ``max_{i≠y} z_i − z_y``: compares the targets' results (and the restarts')."""
        return _margin(logits, y)

    def targets(self, logits: Tensor, y: Tensor) -> Tensor:
        """The target classes (N, min(n_targets, K − 1)): other classes by decreasing clean logit."""
        others = logits.detach().scatter(1, y.view(-1, 1), -math.inf)
        order = torch.sort(others, dim=1, descending=True, stable=True).indices
        return order[:, : min(self.n_targets, logits.shape[1] - 1)]

    def perturb(self, x: Tensor, y: Tensor, generator: torch.Generator | None) -> Tensor:
        _check_inputs(x, y)
        if x.shape[0] == 0:
            return x.detach().clone()
        with torch.no_grad():
            clean = _eval_logits(self.model, x.detach())
        if self.loss == "dlr":
            _need_classes(clean, 4, "APGD-T's targeted dlr loss")
        best = _Best()
        for target in self.targets(clean, y).unbind(dim=1):
            x_adv = apgd_attack(self.model, x, y, threat=self.threat, loss_fn=self._loss_towards(target),
                                success_fn=self.success, rho=self.rho, generator=generator)
            with torch.no_grad():
                logits = _eval_logits(self.model, x_adv)
                best.offer(x_adv, self.success(logits, y), self.objective(logits, y))
        assert best.x is not None
        return best.x

    def _loss_towards(self, target: Tensor) -> PerPoint:
        if self.loss == "dlr":
            return lambda logits, y: targeted_dlr_loss(logits, target, label=y)
        return lambda logits, y: -F.cross_entropy(logits, target, reduction="none")

    def __repr__(self) -> str:
        t = self.threat
        return (f"{type(self).__name__}(eps={t.eps_label}, norm={t.norm}, steps={t.steps}, loss={self.loss}, "
                f"n_targets={self.n_targets}, rho={self.rho:g}, restarts={t.restarts})")
