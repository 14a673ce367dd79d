"""Projected gradient descent (PGD) with the loss as a parameter.

PGD (Madry et al.) approximates the inner maximisation of adversarial
training (paper, eq. 2) by a few ascent steps on the loss, each followed by a
projection onto the ε-ball around the clean input. WPGD (paper, Def. 6, eq. 6)
is the same loop maximising the Wasserstein loss ℓ_W instead of cross-entropy::

    x_adv = pgd_attack(model, x, y, threat=threat)                           # PGD
    x_adv = pgd_attack(model, x, y, threat=threat,
                       loss_fn=WassersteinLoss(cost, p=2.5))                  # WPGD

This module is the bare loop; :mod:`wpgdkit.attacks.base` wraps it in attack
objects (``PGD(model, eps=8/255)(x, y)``) with restarts and best iterates.

The loop follows the usual shape (as torchattacks' ``PGD``): gradient with
respect to the input only, sign (ℓ∞) or normalised (ℓ2) step, projection,
clamp to the data range, detach.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from wpgdkit.attacks.threat import ThreatModel
from wpgdkit.errors import WpgdkitError

__all__ = ["LossFn", "eval_mode", "pgd_attack", "summed_cross_entropy"]

LossFn = Callable[[Tensor, Tensor], Tensor]
"""``(logits (N, K), target (N,)) -> loss`` to maximise, a scalar or per-sample (N,)."""

# Per point: is the iterate a success, and its loss. Used to keep the best iterate.
IterateCallback = Callable[[Tensor, Tensor, Tensor], None]
# (logits (N, K), y (N,)) -> (N,) bool: stop attacking these points (early stop).
StopCallback = Callable[[Tensor, Tensor], Tensor]


def pgd_attack(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    *,
    threat: ThreatModel,
    loss_fn: LossFn | None = None,
    generator: torch.Generator | None = None,
    on_iterate: IterateCallback | None = None,
    stop_when: StopCallback | None = None,
) -> Tensor:
    """Adversarial examples maximising ``loss_fn`` in the ε-ball around ``x`` (eq. 2 / eq. 6).

    Parameters
    ----------
    model : nn.Module
        Maps inputs (N, ...) to logits (N, K). Put in eval mode for the attack;
        every module's previous mode is restored afterwards, also on error.
        Parameter gradients (``p.grad``) are left untouched.
    x : Tensor of shape (N, ...), floating point
        Clean inputs, inside ``threat.bounds``.
    y : Tensor of shape (N,), int64
        True classes.
    threat : ThreatModel, keyword-only
        The ball, the step and the number of steps; ``threat.restarts`` is
        not used here (see :class:`wpgdkit.attacks.PGD`).
    loss_fn : callable, keyword-only, optional
        ``(logits, y) -> loss`` to maximise, scalar or per-sample; per-sample
        losses are summed. Default: cross-entropy summed over the batch, so
        each sample's gradient does not shrink with the batch size (the sign
        and normalised steps ignore the scale, but tiny float32 gradients
        would underflow sooner). Pass :class:`~wpgdkit.losses.WassersteinLoss`
        for WPGD.
    generator : torch.Generator, keyword-only, optional
        Drives the random start (numbers are drawn on its device, then moved
        to ``x``'s); None uses the global RNG.
    on_iterate : callable, keyword-only, optional
        Called as ``on_iterate(x_t, logits_t, loss_t)`` for every iterate
        ``x_t`` (the start, each step's result), with the model's logits there
        and the per-sample loss (N,), all detached. The attack objects keep
        each point's best iterate with it; it costs one extra forward pass,
        for the last iterate.
    stop_when : callable, keyword-only, optional
        Early stop: ``stop_when(logits, y) -> (N,) bool``, asked at every
        iterate the loop evaluates anyway (the start and each step's result
        but the last). A point for which it is true keeps that iterate and
        leaves the batch: no further forward or backward pass is spent on it.
        A point never stopped gets the last iterate, as without it. Per point
        the iterates are those of the run without ``stop_when`` (in eval mode
        a point's gradient does not depend on the others), up to the rounding
        of kernels that sum differently for another batch size. Not together
        with ``on_iterate``.

    Returns
    -------
    x_adv : Tensor of the shape, dtype and device of ``x``
        Detached; ``‖x_adv − x‖ ≤ eps`` in the threat's norm, inside bounds.

    Raises
    ------
    WpgdkitError
        If ``x`` is not floating point or ``y`` does not match its batch.
    """
    _check_inputs(x, y)
    if on_iterate is not None and stop_when is not None:
        raise WpgdkitError("early stop (stop_when) keeps each point's first successful iterate; it does not combine "
                           "with on_iterate (best iterate)")
    x0 = x.detach()
    y = y.detach()
    loss_fn = loss_fn if loss_fn is not None else summed_cross_entropy
    with eval_mode(model), torch.enable_grad():
        x_adv = _random_start(x0, threat, generator) if threat.random_start else x0.clone()
        region = _Region(x0, threat)
        if stop_when is not None:
            return _until_stopped(model, x0, x_adv, y, threat, loss_fn, region, stop_when)
        for _ in range(threat.steps):
            x_adv = _step(model, x0, x_adv, y, threat, loss_fn, on_iterate, region)
        if on_iterate is not None:
            with torch.no_grad():
                logits = model(x_adv)
                on_iterate(x_adv, logits, _per_sample(loss_fn(logits, y), len(y)))
    return x_adv


def summed_cross_entropy(logits: Tensor, target: Tensor) -> Tensor:
    """Cross-entropy summed over the batch: PGD's default objective."""
    return F.cross_entropy(logits, target, reduction="sum")


def _check_inputs(x: Tensor, y: Tensor) -> None:
    if not x.is_floating_point():
        raise WpgdkitError(f"inputs must be floating point, got {x.dtype}")
    if x.dim() < 1 or y.shape != (x.shape[0],):
        raise WpgdkitError(f"labels must have shape ({x.shape[0] if x.dim() else '?'},), got {tuple(y.shape)}")


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[None]:
    """Eval mode inside the block; each submodule's own mode restored after."""
    # Per module, not just model.training: a training model may hold frozen
    # submodules (e.g. BatchNorm kept in eval) that model.train(True) would flip.
    modes = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        yield
    finally:
        # Parents first, and only where the mode differs: a parent's train() also sets its children,
        # which are then put back; a module that cannot change mode (an exported program) is left alone.
        for module, mode in modes:
            if module.training != mode:
                module.train(mode)


def _per_sample(loss: Tensor, n: int) -> Tensor:
    if loss.shape != (n,):
        raise WpgdkitError(f"keeping the best iterate needs a per-sample loss of shape ({n},), got {tuple(loss.shape)}")
    return loss.detach()


def _random_start(x0: Tensor, threat: ThreatModel, generator: torch.Generator | None) -> Tensor:
    """A uniform point of the ε-ball around ``x0``, clamped to the bounds."""
    device = generator.device if generator is not None else x0.device
    if threat.norm == "linf":
        noise = torch.rand(x0.shape, generator=generator, device=device, dtype=x0.dtype)
        delta = (2 * noise - 1) * threat.eps
    else:
        delta = _uniform_l2_ball(x0, threat.eps, generator, device)
    return _clamp(x0 + delta.to(x0.device), threat.bounds, x0)


def _uniform_l2_ball(x0: Tensor, eps: float, generator: torch.Generator | None, device: torch.device) -> Tensor:
    """Uniform samples of the ℓ2 ball: Gaussian direction, radius ``eps·U^(1/d)``."""
    n, d = x0.shape[0], x0[0].numel()
    direction = torch.randn((n, d), generator=generator, device=device, dtype=x0.dtype)
    direction = direction / direction.norm(dim=1, keepdim=True).clamp_min(torch.finfo(x0.dtype).tiny)
    radius = eps * torch.rand((n, 1), generator=generator, device=device, dtype=x0.dtype).pow(1.0 / d)
    return (direction * radius).view_as(x0)


class _Region:
    """What every step projects onto, computed once per attack rather than once per step.

    ``lo``/``hi``: the ℓ∞ ball ``x0 ± ε``; ``low``/``high``: per-feature bounds
    widened to hold ``x0`` (see :func:`_clamp`), or ``scalar``: the (low, high)
    of bounds shared by every feature. The projection applies them in the
    order of the original expressions, so the iterates are the same bit for bit.
    """

    def __init__(self, x0: Tensor, threat: ThreatModel) -> None:
        self.lo = x0 - threat.eps if threat.norm == "linf" else None
        self.hi = x0 + threat.eps if threat.norm == "linf" else None
        self.scalar: tuple[float, float] | None = None
        self.low = self.high = None
        bounds = threat.bounds
        if bounds is not None and isinstance(bounds[0], tuple):
            low, high = _feature_bounds(bounds, x0)
            self.low, self.high = torch.minimum(low, x0), torch.maximum(high, x0)
        elif bounds is not None:
            self.scalar = (bounds[0], bounds[1])

    def subset(self, keep: Tensor) -> _Region:
        """The region of the points ``keep`` (a boolean mask of the batch)."""
        out = object.__new__(_Region)
        out.lo = self.lo[keep] if self.lo is not None else None
        out.hi = self.hi[keep] if self.hi is not None else None
        out.low = self.low[keep] if self.low is not None else None
        out.high = self.high[keep] if self.high is not None else None
        out.scalar = self.scalar
        return out

    def clamp_(self, x: Tensor) -> Tensor:
        """``_clamp(x, bounds, x0)``, in place."""
        if self.scalar is not None:
            return x.clamp_(*self.scalar)
        if self.low is not None:
            torch.maximum(x, self.low, out=x)
            torch.minimum(x, self.high, out=x)
        return x


def _gradient(model: nn.Module, x_adv: Tensor, y: Tensor, loss_fn: LossFn,
              on_iterate: IterateCallback | None) -> tuple[Tensor, Tensor]:
    """The loss's gradient with respect to the iterate, and the model's logits there (detached)."""
    x_adv = x_adv.detach().requires_grad_(True)
    logits = model(x_adv)
    loss = loss_fn(logits, y)
    if on_iterate is not None:
        on_iterate(x_adv.detach(), logits.detach(), _per_sample(loss, len(y)))
    if loss.dim() > 0:
        loss = loss.sum()
    # Gradient with respect to the input only: parameters' .grad stay as they were.
    (grad,) = torch.autograd.grad(loss, x_adv)
    return grad, logits.detach()


def _update(x0: Tensor, x_adv: Tensor, grad: Tensor, threat: ThreatModel, region: _Region) -> Tensor:
    """The step from ``x_adv`` along ``grad``, projected onto the ball and clamped; a new, detached tensor.

    ℓ∞ works in one buffer, the gradient's own when it can be written to
    (autograd hands over a fresh tensor that nothing else holds): the same
    operations as ``min(max(x_adv + step·sign(grad), x0 − ε), x0 + ε)`` then the
    bounds, without a temporary per operation.
    """
    x_adv = x_adv.detach()
    with torch.no_grad():
        if threat.norm == "linf":
            out = grad if _writable_like(grad, x_adv) else torch.empty_like(x_adv)
            torch.sign(grad, out=out)
            out.mul_(threat.step).add_(x_adv)  # step·sign + x_adv: the same sum as x_adv + step·sign
            torch.maximum(out, region.lo, out=out)
            torch.minimum(out, region.hi, out=out)
        else:
            out = x_adv + threat.step * _unit_l2(grad)
            out = x0 + _project_l2(out - x0, threat.eps)
        return region.clamp_(out)


def _writable_like(grad: Tensor, x: Tensor) -> bool:
    """Can ``grad`` be overwritten with the next iterate: a dense tensor of its own laid out as ``x``?"""
    return (grad.shape == x.shape and grad.dtype == x.dtype and grad.device == x.device
            and grad.stride() == x.stride() and grad._base is None and not grad.requires_grad
            and (grad.is_contiguous() or (grad.dim() == 4 and grad.is_contiguous(memory_format=torch.channels_last))))


def _step(model: nn.Module, x0: Tensor, x_adv: Tensor, y: Tensor, threat: ThreatModel, loss_fn: LossFn,
          on_iterate: IterateCallback | None, region: _Region | None = None) -> Tensor:
    """One ascent step, projected onto the ball and clamped; returns a detached tensor."""
    region = region if region is not None else _Region(x0, threat)
    grad, _ = _gradient(model, x_adv, y, loss_fn, on_iterate)
    return _update(x0, x_adv, grad, threat, region)


def _until_stopped(model: nn.Module, x0: Tensor, x_adv: Tensor, y: Tensor, threat: ThreatModel, loss_fn: LossFn,
                   region: _Region, stop_when: StopCallback) -> Tensor:
    """The PGD loop with early stop: a point that ``stop_when`` flags keeps that iterate and leaves the batch."""
    out = torch.empty_like(x0)
    active = torch.arange(len(x0), device=x0.device)
    for _ in range(threat.steps):
        grad, logits = _gradient(model, x_adv, y, loss_fn, None)
        stop = stop_when(logits, y)
        if stop.shape != (len(y),) or stop.dtype != torch.bool:
            raise WpgdkitError(f"stop_when must return a boolean per point, shape ({len(y)},), got "
                               f"{stop.dtype} {tuple(stop.shape)}")
        x_next = _update(x0, x_adv, grad, threat, region)
        if bool(stop.any()):
            out.index_copy_(0, active[stop], x_adv.detach()[stop])
            keep = ~stop
            active, x_next, x0, y, region = active[keep], x_next[keep], x0[keep], y[keep], region.subset(keep)
            if len(active) == 0:
                return out
        x_adv = x_next
    out.index_copy_(0, active, x_adv.detach())
    return out


def _unit_l2(grad: Tensor) -> Tensor:
    """``grad / ‖grad‖`` per sample; zero where the gradient is zero."""
    flat = grad.flatten(1)
    tiny = torch.finfo(grad.dtype).tiny
    # Scale by the largest entry first: squaring a gradient of 1e-25 underflows
    # in float32, and the norm of the squares would come out 0.
    flat = flat / flat.abs().amax(dim=1, keepdim=True).clamp_min(tiny)
    flat = flat / flat.norm(dim=1, keepdim=True).clamp_min(tiny)
    return flat.view_as(grad)


def _project_l2(delta: Tensor, eps: float) -> Tensor:
    """Per-sample projection of ``delta`` onto the ℓ2 ball of radius ``eps``."""
    norms = delta.flatten(1).norm(dim=1).clamp_min(torch.finfo(delta.dtype).tiny)
    factor = (eps / norms).clamp(max=1.0)
    return delta * factor.view(-1, *([1] * (delta.dim() - 1)))


def _clamp(x: Tensor, bounds: tuple | None, x0: Tensor | None = None) -> Tensor:
    """Clamp to the data's bounds; per-feature bounds are widened to hold the clean point ``x0``.

    Per-feature bounds come from the training split, and a test point may lie
    outside them: clamping it back would move it by more than ε. The box is
    therefore ``[min(low, x0), max(high, x0)]`` per feature, which keeps the
    clean point feasible and the perturbation inside the ball.
    """
    if bounds is None:
        return x
    if isinstance(bounds[0], tuple):
        low, high = _feature_bounds(bounds, x)
        if x0 is not None:
            low, high = torch.minimum(low, x0), torch.maximum(high, x0)
        return torch.minimum(torch.maximum(x, low), high)
    return x.clamp(bounds[0], bounds[1])


_BOUNDS_CACHE: dict[tuple, tuple[Tensor, Tensor, tuple]] = {}


def _feature_bounds(bounds: tuple, x: Tensor) -> tuple[Tensor, Tensor]:
    """Per-feature bounds as tensors shaped like one input, cached per (bounds, shape, device, dtype)."""
    key = (id(bounds), tuple(x.shape[1:]), x.device, x.dtype)
    cached = _BOUNDS_CACHE.get(key)
    if cached is None or cached[2] is not bounds:
        if x[0].numel() != len(bounds[0]):
            raise WpgdkitError(f"bounds have {len(bounds[0])} values per side; the inputs have {x[0].numel()} features")
        low, high = (torch.tensor(side, dtype=x.dtype, device=x.device).view(1, *x.shape[1:]) for side in bounds)
        if len(_BOUNDS_CACHE) > 64:  # a few threat models per process; never grows without bound
            _BOUNDS_CACHE.clear()
        # The bounds object is kept in the entry so that its id cannot be reused by another tuple.
        _BOUNDS_CACHE[key] = cached = (low, high, bounds)
    return cached[0], cached[1]
