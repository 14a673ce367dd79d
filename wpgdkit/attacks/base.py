"""Attack objects in the shape torchattacks users know: build once, call as ``atk(x, y)``.

    atk = PGD(model, eps=8/255, steps=10)
    x_adv = atk(x, y)
    atk = WPGD(model, metric, p=2.5, eps=8/255, steps=10)      # paper, Def. 6
    x_adv = atk(x, y)

Every attack is the PGD loop of :func:`wpgdkit.attacks.pgd.pgd_attack` on
its own objective (:meth:`Attack.objective`, per point), within one
:class:`~wpgdkit.attacks.threat.ThreatModel`. The base class adds what all of
them share:

- **restarts** (``threat.restarts``): each point keeps its worst restart;
- **best iterate** (``best_iterate=True``): each point keeps, among the
  iterates of a run, the one that fools the model with the highest loss (else
  the one with the highest loss);
- **targeted** mode (``targeted=True``): ``atk(x, target)`` drives each point
  towards ``target`` (the objective is ``−CE(f(x), target)``) and success means
  reaching it.

"Worst" is one rule everywhere: an iterate that succeeds beats one that does
not; between two that agree on that, the higher objective wins. The model is
put in eval mode while attacked (each submodule's mode is restored after);
random numbers are drawn on the inputs' device.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from wpgdkit.attacks.pgd import LossFn, pgd_attack
from wpgdkit.attacks.threat import ThreatModel
from wpgdkit.errors import WpgdkitError

__all__ = ["Attack", "PGD", "WPGD", "CostTargeted", "costliest_classes", "cost_tensor", "better_than"]


def better_than(success: Tensor, loss: Tensor, best_success: Tensor, best_loss: Tensor) -> Tensor:
    """Per point: does (success, loss) beat (best_success, best_loss)? Success first, then the loss."""
    return (success & ~best_success) | ((success == best_success) & (loss > best_loss))


class _Best:
    """Each point's worst-for-the-model candidate so far."""

    def __init__(self) -> None:
        self.x: Tensor | None = None
        self.success: Tensor | None = None
        self.loss: Tensor | None = None

    def offer(self, x: Tensor, success: Tensor, loss: Tensor) -> None:
        if self.x is None:
            self.x, self.success, self.loss = x.detach().clone(), success.clone(), loss.detach().clone()
            return
        better = better_than(success, loss, self.success, self.loss)
        self.x = torch.where(better.view(-1, *([1] * (x.dim() - 1))), x.detach(), self.x)
        self.success = torch.where(better, success, self.success)
        self.loss = torch.where(better, loss.detach(), self.loss)


class Attack:
    """Base of every attack: a model, a threat model, and an objective to maximise.

    Parameters
    ----------
    model : nn.Module
        Maps inputs (N, ...) to logits (N, K).
    threat : ThreatModel
    targeted : bool, keyword-only, default=False
        Call as ``atk(x, target)``: move each point towards its target class.
    best_iterate : bool, keyword-only, default=False
        Keep each point's best iterate rather than the last one.

    Subclasses define :meth:`objective` (per-point loss to maximise, given
    the labels the attack was called with).
    """

    #: Registry name (``wpgdkit audit --attack NAME``).
    name = "attack"

    #: Early stop (:class:`PGD` sets it): each point keeps its first successful iterate.
    early_stop = False

    def __init__(self, model: nn.Module, threat: ThreatModel, *, targeted: bool = False,
                 best_iterate: bool = False) -> None:
        if not isinstance(threat, ThreatModel):
            raise WpgdkitError(f"threat must be a ThreatModel, got {type(threat).__name__}")
        self.model = model
        self.threat = threat
        self.targeted = bool(targeted)
        self.best_iterate = bool(best_iterate)

    # --- what subclasses define -------------------------------------------------------

    def objective(self, logits: Tensor, y: Tensor) -> Tensor:
        """Per-point loss (N,) the attack maximises; ``y`` as given to :meth:`__call__`."""
        if self.targeted:
            return -F.cross_entropy(logits, y, reduction="none")
        return F.cross_entropy(logits, y, reduction="none")

    def success(self, logits: Tensor, y: Tensor) -> Tensor:
        """Per point: did the attack reach its goal (the target, or any wrong class)?"""
        predicted = logits.argmax(dim=1)
        return predicted == y if self.targeted else predicted != y

    def perturb(self, x: Tensor, y: Tensor, generator: torch.Generator | None) -> Tensor:
        """One run of the attack (one random start)."""
        if self.early_stop:
            return pgd_attack(self.model, x, y, threat=self.threat, loss_fn=self._summed, generator=generator,
                              stop_when=self.success)
        if not self.best_iterate:
            return pgd_attack(self.model, x, y, threat=self.threat, loss_fn=self._summed, generator=generator)
        best = _Best()

        def keep(x_t: Tensor, logits: Tensor, loss: Tensor) -> None:
            best.offer(x_t, self.success(logits, y), loss)

        pgd_attack(self.model, x, y, threat=self.threat, loss_fn=self._per_point, generator=generator, on_iterate=keep)
        assert best.x is not None
        return best.x

    # --- shared machinery -----------------------------------------------------------------

    def _per_point(self, logits: Tensor, y: Tensor) -> Tensor:
        return self.objective(logits, y)

    def _summed(self, logits: Tensor, y: Tensor) -> Tensor:
        return self.objective(logits, y).sum()

    def __call__(self, x: Tensor, y: Tensor, *, generator: torch.Generator | None = None,
                 seeds: Sequence[int] | None = None) -> Tensor:
        """Adversarial examples for ``x`` (N, ...) with labels (or targets) ``y`` (N,), detached.

        Parameters
        ----------
        x : Tensor of shape (N, ...), floating point
        y : Tensor of shape (N,), int64
            True classes; target classes when ``targeted``.
        generator : torch.Generator, keyword-only, optional
            Drives the random starts (restarts draw from it in turn).
        seeds : sequence of int, keyword-only, optional
            One seed per restart instead of ``generator`` (at least
            ``threat.restarts`` of them), so that several models face the same
            starts.
        """
        restarts = self.threat.restarts
        if seeds is not None and len(seeds) < restarts:
            raise WpgdkitError(f"need {restarts} seeds for {restarts} restarts, got {len(seeds)}")
        if restarts == 1:
            return self.perturb(x, y, self._generator(x, generator, seeds, 0))
        best = _Best()
        for restart in range(restarts):
            x_adv = self.perturb(x, y, self._generator(x, generator, seeds, restart))
            with torch.no_grad():
                logits = _eval_logits(self.model, x_adv)
                best.offer(x_adv, self.success(logits, y), self.objective(logits, y))
        assert best.x is not None
        return best.x

    forward = __call__

    @staticmethod
    def _generator(x: Tensor, generator: torch.Generator | None, seeds: Sequence[int] | None,
                   restart: int) -> torch.Generator | None:
        if seeds is None:
            return generator
        return torch.Generator(device=x.device).manual_seed(int(seeds[restart]))

    def __repr__(self) -> str:
        t = self.threat
        return (f"{type(self).__name__}(eps={t.eps_label}, norm={t.norm}, steps={t.steps}, step_size={t.step:g}, "
                f"restarts={t.restarts}, targeted={self.targeted}, best_iterate={self.best_iterate}"
                + (", early_stop=True)" if self.early_stop else ")"))


def _eval_logits(model: nn.Module, x: Tensor) -> Tensor:
    from wpgdkit.attacks.pgd import eval_mode

    with eval_mode(model):
        return model(x)


def _threat(threat: ThreatModel | None, options: dict[str, Any]) -> ThreatModel:
    """The threat model from ``threat=`` or from the keywords (eps, steps, ...), not both."""
    given = {k: v for k, v in options.items() if v is not _UNSET}
    if threat is not None:
        if given:
            raise WpgdkitError(f"pass either threat= or {', '.join(given)}, not both")
        return threat
    return ThreatModel(**{"eps": 8 / 255, **given})


_UNSET: Any = object()


class PGD(Attack):
    """PGD (Madry et al.) on cross-entropy, or on any ``loss`` (as robustness's ``custom_adv_loss``).

    Parameters
    ----------
    model : nn.Module
    eps, step_size, steps, norm, random_start, restarts, bounds : keyword-only
        The :class:`ThreatModel` (defaults: ε = 8/255, 10 steps of
        2.5·ε/steps, ℓ∞, random start, one restart, bounds [0, 1]).
    threat : ThreatModel, keyword-only, optional
        Instead of the keywords above.
    loss : callable, keyword-only, optional
        ``(logits, y) -> (N,)`` per-point loss to maximise instead of
        cross-entropy (summed for the gradient).
    targeted, best_iterate : bool, keyword-only
        See :class:`Attack`.
    early_stop : bool, keyword-only, default=False
        Stop attacking a point at its first successful iterate (misclassified;
        with ``targeted``, at the target) and keep that iterate: the point
        leaves the batch, and no further forward or backward pass is spent on
        it. A point that is fooled at any iterate counts as fooled, so the
        adversarial error is at least that of the last iterate of the same run;
        but which wrong class a point ends in may differ (the first mistake,
        not the last), so a cost-weighted score measured with it is a weaker
        estimate. Not together with ``best_iterate``. With restarts, each
        restart stops early and each point keeps its worst restart.

    Examples
    --------
    >>> atk = PGD(model, eps=8/255, steps=10)           # doctest: +SKIP
    >>> x_adv = atk(images, labels)                     # doctest: +SKIP
    >>> atk = PGD(model, eps=8/255, steps=20, early_stop=True)  # doctest: +SKIP
    """

    name = "pgd"

    def __init__(self, model: nn.Module, *, eps: float = _UNSET, step_size: float | None = _UNSET,
                 steps: int = _UNSET, norm: str = _UNSET, random_start: bool = _UNSET, restarts: int = _UNSET,
                 bounds: tuple[float, float] | None = _UNSET, threat: ThreatModel | None = None,
                 loss: LossFn | None = None, targeted: bool = False, best_iterate: bool = False,
                 early_stop: bool = False) -> None:
        super().__init__(model, _threat(threat, dict(eps=eps, step_size=step_size, steps=steps, norm=norm,
                                                     random_start=random_start, restarts=restarts, bounds=bounds)),
                         targeted=targeted, best_iterate=best_iterate)
        if early_stop and best_iterate:
            raise WpgdkitError("early_stop keeps each point's first successful iterate; it does not combine with "
                               "best_iterate")
        self.loss = loss
        self.early_stop = bool(early_stop)

    def objective(self, logits: Tensor, y: Tensor) -> Tensor:
        if self.loss is None:
            return super().objective(logits, y)
        value = self.loss(logits, y)
        if value.shape != (len(y),):
            raise WpgdkitError(f"loss must return one value per point, shape ({len(y)},), got {tuple(value.shape)}")
        return value


def cost_tensor(metric: Any) -> Tensor:
    """A label metric as a float64 (K, K) tensor: a :class:`~wpgdkit.labelmetric.LabelMetric`, an array or a tensor."""
    matrix = getattr(metric, "matrix", metric)
    cost = torch.as_tensor(matrix.copy() if hasattr(matrix, "copy") and not isinstance(matrix, Tensor) else matrix)
    cost = cost.detach().to(torch.float64)
    if cost.dim() != 2 or cost.shape[0] != cost.shape[1] or cost.shape[0] < 2:
        raise WpgdkitError(f"the metric must be a square (K, K) matrix with K >= 2, got shape {tuple(cost.shape)}")
    if not bool(torch.isfinite(cost).all()) or bool((cost < 0).any()):
        raise WpgdkitError("the metric must be finite and non-negative")
    return cost


class _MetricAttack(Attack):
    """An attack that knows the label metric; its (K, K) tensors are kept per device and dtype."""

    def __init__(self, model: nn.Module, metric: Any, threat: ThreatModel, **options: Any) -> None:
        super().__init__(model, threat, **options)
        self.cost = cost_tensor(metric)
        self._cache: dict[tuple[Any, ...], Tensor] = {}

    @property
    def num_classes(self) -> int:
        return self.cost.shape[0]

    def _on(self, key: str, make, like: Tensor) -> Tensor:
        # Built once per device and dtype, not once per PGD step.
        slot = (key, like.device, like.dtype)
        if slot not in self._cache:
            self._cache[slot] = make().to(device=like.device, dtype=like.dtype)
        return self._cache[slot]

    def _check_width(self, logits: Tensor) -> None:
        if logits.shape[1] != self.num_classes:
            raise WpgdkitError(f"the model returns {logits.shape[1]} logits but the metric has {self.num_classes} classes")


class WPGD(_MetricAttack):
    """PGD on the Wasserstein loss ℓ_W = (C^p)[y]·ŷ − H(ŷ)/(λ log K) (paper, eq. 5, Def. 6).

    Parameters
    ----------
    model : nn.Module
    metric : LabelMetric, array or Tensor of shape (K, K)
        The label metric C (non-negative, finite). ``C^p`` is computed once.
    p : float, keyword-only, default=1.0
        Power of the metric (> 0).
    lam : float, keyword-only, default=inf
        λ of the entropy term (> 0); ``inf`` drops it.
    eps, step_size, steps, norm, random_start, restarts, bounds, threat : keyword-only
        As for :class:`PGD`.
    targeted, best_iterate : keyword-only
        See :class:`Attack`.
    """

    name = "wpgd"

    def __init__(self, model: nn.Module, metric: Any, *, p: float = 1.0, lam: float = math.inf,
                 eps: float = _UNSET, step_size: float | None = _UNSET, steps: int = _UNSET, norm: str = _UNSET,
                 random_start: bool = _UNSET, restarts: int = _UNSET, bounds: tuple[float, float] | None = _UNSET,
                 threat: ThreatModel | None = None, targeted: bool = False, best_iterate: bool = False) -> None:
        from wpgdkit.losses import check_powered_cost, entropy_weight

        super().__init__(model, metric, _threat(threat, dict(eps=eps, step_size=step_size, steps=steps, norm=norm,
                                                             random_start=random_start, restarts=restarts,
                                                             bounds=bounds)),
                         targeted=targeted, best_iterate=best_iterate)
        if not (isinstance(p, (int, float)) and math.isfinite(p) and p > 0):
            raise WpgdkitError(f"p must be a positive finite number, got {p!r}")
        check_powered_cost(float(self.cost.max()), float(p))
        self.p, self.lam = float(p), float(lam)
        self.entropy_weight = entropy_weight(self.lam, self.num_classes)
        self.cost_p = self.cost.pow(self.p)

    def objective(self, logits: Tensor, y: Tensor) -> Tensor:
        return self._wasserstein(logits, y, "none")

    def _summed(self, logits: Tensor, y: Tensor) -> Tensor:
        # The PGD step's objective: reduced inside the loss (one reduction, not two; the same gradient bit for bit).
        if type(self).objective is not WPGD.objective:  # a subclass's own objective is summed as given
            return super()._summed(logits, y)
        return self._wasserstein(logits, y, "sum")

    def _wasserstein(self, logits: Tensor, y: Tensor, reduction: str) -> Tensor:
        from wpgdkit.losses import wasserstein_loss

        self._check_width(logits)
        cost_p = self._on("cost_p", lambda: self.cost_p, logits)
        loss = wasserstein_loss(logits, y, cost_p, entropy_weight=self.entropy_weight, reduction=reduction)
        # Targeted: pull the prediction's transport cost to the target down.
        return -loss if self.targeted else loss


def costliest_classes(cost: Any) -> Tensor:
    """For each class, the class of highest cost in its row (the first one on ties).

    Parameters
    ----------
    cost : LabelMetric, array or Tensor of shape (K, K)

    Returns
    -------
    target : Tensor of shape (K,), int64
    """
    c = cost_tensor(cost).clone()
    c.fill_diagonal_(-math.inf)  # never the class itself, even in a degenerate row
    return c.argmax(dim=1)


class CostTargeted(_MetricAttack):
    """Targeted PGD towards the costliest class of each point's row of C; success is any mistake.

    Parameters as :class:`WPGD` without ``p``, ``lam`` and ``targeted``.
    """

    name = "cost-targeted"

    def __init__(self, model: nn.Module, metric: Any, *, eps: float = _UNSET, step_size: float | None = _UNSET,
                 steps: int = _UNSET, norm: str = _UNSET, random_start: bool = _UNSET, restarts: int = _UNSET,
                 bounds: tuple[float, float] | None = _UNSET, threat: ThreatModel | None = None,
                 best_iterate: bool = False) -> None:
        super().__init__(model, metric, _threat(threat, dict(eps=eps, step_size=step_size, steps=steps, norm=norm,
                                                             random_start=random_start, restarts=restarts,
                                                             bounds=bounds)),
                         best_iterate=best_iterate)
        self.targets = costliest_classes(self.cost)

    def objective(self, logits: Tensor, y: Tensor) -> Tensor:
        self._check_width(logits)
        targets = self._on("targets", lambda: self.targets, y)
        return -F.cross_entropy(logits, targets[y], reduction="none")
