"""The Wasserstein loss of WPGD (paper, Sec. 4.1, eq. 5).

For a one-hot target ``y`` the optimal transport plan to the prediction
``ŷ = softmax(logits)`` is forced (Lemma 4), so the Wasserstein distance has
the closed form ``W_p^p(y, ŷ) = (C^p)[y] · ŷ``: one row of the element-wise
power of the label metric ``C`` dotted with the prediction. The regularised
loss subtracts an entropy term,

    ℓ_W = (C^p)[y] · ŷ − H(ŷ) / (λ log K),                          (eq. 5)

and costs as much as cross-entropy to evaluate and back-propagate. The
NumPy reference of the distance is
:func:`wpgdkit.labelmetric.ot_check.wasserstein_to_onehot`.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from wpgdkit.errors import WpgdkitError

__all__ = ["wasserstein_loss", "entropy_weight", "WassersteinLoss", "MAX_POWERED_COST", "check_powered_cost"]

#: The largest entry of C^p the loss accepts: the loss and its gradient are computed in the
#: logits' dtype, and float32 ends at 3.4e38; this leaves room for the sum over K classes.
MAX_POWERED_COST = 1e30

_REDUCTIONS = ("none", "mean", "sum")


def check_powered_cost(max_entry: float, p: float, *, name: str = "p") -> None:
    """Refuse a power ``p`` that lifts the metric's largest entry beyond :data:`MAX_POWERED_COST`.

    Raises
    ------
    WpgdkitError
        Naming the parameter, the largest entry and the power.
    """
    if max_entry > 1 and p * math.log(max_entry) > math.log(MAX_POWERED_COST):
        raise WpgdkitError(f"{name} must keep C^p finite in float32: the metric's largest entry {max_entry:g} to the "
                           f"power {p:g} exceeds {MAX_POWERED_COST:g}; lower {name} or rescale the metric")


def entropy_weight(lam: float, num_classes: int) -> float:
    """Weight ``1/(λ log K)`` of the entropy term of eq. 5.

    Parameters
    ----------
    lam : float
        The entropic regularisation ``λ`` (> 0); ``inf`` switches the term off.
    num_classes : int
        ``K`` (at least 2, so that ``log K > 0``).

    Returns
    -------
    weight : float
        ``0.0`` for ``λ = inf``.

    Raises
    ------
    WpgdkitError
        If ``λ`` is not positive (or NaN) or ``K < 2``.
    """
    if not lam > 0:  # also rejects NaN
        raise WpgdkitError(f"lambda must be positive (or inf), got {lam}")
    if num_classes < 2:
        raise WpgdkitError(f"the entropy weight needs at least 2 classes, got {num_classes}")
    if math.isinf(lam):
        return 0.0
    return 1.0 / (lam * math.log(num_classes))


def wasserstein_loss(
    logits: Tensor,
    target: Tensor,
    cost_p: Tensor,
    *,
    entropy_weight: float = 0.0,
    reduction: str = "mean",
) -> Tensor:
    """Wasserstein loss ``(C^p)[y] · ŷ − w H(ŷ)`` of eq. 5, batched.

    Parameters
    ----------
    logits : Tensor of shape (N, K)
        Unnormalised scores; ``ŷ = softmax(logits)``.
    target : Tensor of shape (N,), int64
        True classes ``y`` in ``[0, K)``.
    cost_p : Tensor of shape (K, K)
        The powered label metric ``C^p``; row ``y`` holds the costs of
        mistaking ``y`` for each class. Cast to the logits' device and dtype.
    entropy_weight : float, keyword-only, default=0.0
        ``w = 1/(λ log K)`` (see :func:`entropy_weight`); 0 for ``λ = inf``.
    reduction : {"mean", "sum", "none"}, keyword-only, default="mean"

    Returns
    -------
    loss : Tensor of shape () or (N,)
        Per-sample losses for ``reduction="none"``.

    Raises
    ------
    WpgdkitError
        On an unknown reduction or mismatched shapes.
    """
    if reduction not in _REDUCTIONS:
        raise WpgdkitError(f"unknown reduction {reduction!r}; choose one of: {', '.join(_REDUCTIONS)}")
    _check_shapes(logits, target, cost_p)
    cost_p = cost_p.to(device=logits.device, dtype=logits.dtype)
    probs = F.softmax(logits, dim=1)
    # Lemma 4: the transport plan to a one-hot target is forced, so W_p^p is one
    # row of C^p dotted with ŷ.
    weighted = cost_p.index_select(0, target) * probs
    if entropy_weight == 0.0 and reduction != "none":
        # λ = ∞, reduced (the attacks' summed objective): one reduction over the whole batch instead of a per-sample
        # one and then another. The gradient is bit for bit the per-sample form's (both hand the softmax's
        # backward the rows of C^p times the reduction's factor; tests/test_losses.py pins it), and the value
        # keeps torch.sum's pairwise accuracy (a float32 dot product loses digits over N·K terms).
        total = weighted.sum()
        return total / target.shape[0] if reduction == "mean" else total
    loss = weighted.sum(dim=1)
    if entropy_weight != 0.0:
        # H = −Σ ŷ log ŷ with log_softmax rather than log(ŷ): for a one-hot ŷ in
        # float32 the zero entries give 0·(finite) instead of 0·(−inf) = NaN, in
        # the value and in the gradient.
        entropy = -(probs * F.log_softmax(logits, dim=1)).sum(dim=1)
        loss = loss - entropy_weight * entropy
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    return loss


def _check_shapes(logits: Tensor, target: Tensor, cost_p: Tensor) -> None:
    if logits.dim() != 2:
        raise WpgdkitError(f"logits must have shape (N, K), got {tuple(logits.shape)}")
    n, k = logits.shape
    if target.shape != (n,):
        raise WpgdkitError(f"target must have shape ({n},) to match the logits, got {tuple(target.shape)}")
    if cost_p.shape != (k, k):
        raise WpgdkitError(f"the cost must have shape ({k}, {k}) to match {k} logits, got {tuple(cost_p.shape)}")


class WassersteinLoss(nn.Module):
    """Module form of :func:`wasserstein_loss`, the WPGD attack objective (eq. 6).

    Parameters
    ----------
    cost : LabelMetric, Tensor or array of shape (K, K)
        The label metric ``C`` (non-negative, finite); a
        :class:`~wpgdkit.labelmetric.LabelMetric` gives its matrix. ``C^p`` is
        computed once and kept as the buffer ``cost_p`` so ``.to(device)``
        moves it.
    p : float, keyword-only, default=1.0
        Power applied element-wise to ``C`` (> 0).
    lam : float, keyword-only, default=inf
        Entropic regularisation ``λ`` (> 0); ``inf`` drops the entropy term.
    reduction : {"mean", "sum", "none"}, keyword-only, default="mean"

    Raises
    ------
    WpgdkitError
        If the cost is not a square, finite, non-negative matrix with at least
        two classes, ``p ≤ 0``, ``λ ≤ 0`` or the reduction is unknown.
    """

    cost_p: Tensor

    def __init__(self, cost: Tensor, *, p: float = 1.0, lam: float = math.inf, reduction: str = "mean") -> None:
        super().__init__()
        matrix = getattr(cost, "matrix", cost)  # a LabelMetric, or the matrix itself
        cost = torch.as_tensor(matrix.copy() if hasattr(matrix, "flags") else matrix)
        if cost.dim() != 2 or cost.shape[0] != cost.shape[1]:
            raise WpgdkitError(f"the cost must be a square (K, K) matrix, got shape {tuple(cost.shape)}")
        if not cost.is_floating_point():
            cost = cost.to(torch.get_default_dtype())
        if not bool(torch.isfinite(cost).all()) or bool((cost < 0).any()):
            raise WpgdkitError("the cost must be finite and non-negative")
        if not (isinstance(p, (int, float)) and math.isfinite(p) and p > 0):
            raise WpgdkitError(f"p must be a positive finite number, got {p}")
        check_powered_cost(float(cost.max()), float(p))
        if reduction not in _REDUCTIONS:
            raise WpgdkitError(f"unknown reduction {reduction!r}; choose one of: {', '.join(_REDUCTIONS)}")
        self.p = float(p)
        self.lam = float(lam)
        self.reduction = reduction
        self.entropy_weight = entropy_weight(self.lam, cost.shape[0])
        self.register_buffer("cost_p", cost.pow(self.p))

    @property
    def num_classes(self) -> int:
        return self.cost_p.shape[0]

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        """Loss of ``logits`` (N, K) against ``target`` (N,); the mean by default."""
        return wasserstein_loss(logits, target, self.cost_p, entropy_weight=self.entropy_weight,
                                reduction=self.reduction)

    def extra_repr(self) -> str:
        return f"num_classes={self.num_classes}, p={self.p:g}, lam={self.lam:g}, reduction={self.reduction!r}"
