"""What an audit measures, as plain functions on tensors (paper, Secs. 3 and 5).

Every function takes labels, predictions, logits or K×K matrices and returns
a tensor or a number; nothing here knows about checkpoints or files.

==========================  ================================================
:func:`confusion_matrix`    counts, or rates per true class (``normalize``)
:func:`error_rate`          natural / adversarial error NE, AE in %
:func:`accuracy_gap`        G = |C_model − C_baseline| (Definition 1)
:func:`gap_correlation`     ρ(G, C) over off-diagonal pairs (Table 1)
:func:`weighted_score`      S = Σ c_ij m_ij (eq. 7), normalised
:func:`mistake_severity`    mean cost of the mistakes alone
:func:`prediction_entropy`  H(softmax(logits)) per point, in nats (Fig. 7)
:func:`entropy_histogram`   per-class histograms of those entropies
==========================  ================================================
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from wpgdkit.errors import WpgdkitError
from wpgdkit.labelmetric.compare import Correlation, matrix_correlation

__all__ = [
    "SCORE_NORMALIZATIONS",
    "confusion_matrix",
    "error_rate",
    "accuracy_gap",
    "gap_correlation",
    "weighted_score",
    "mistake_severity",
    "prediction_entropy",
    "entropy_histogram",
]

SCORE_NORMALIZATIONS = ("true", "all", "none")


def _check_labels(y_true: Tensor, y_pred: Tensor, num_classes: int | None = None) -> None:
    if y_true.dim() != 1 or y_true.shape != y_pred.shape:
        raise WpgdkitError(f"labels and predictions must be two 1-D tensors of one length, got "
                           f"{tuple(y_true.shape)} and {tuple(y_pred.shape)}")
    for labels in (y_true, y_pred):
        if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
            raise WpgdkitError(f"labels and predictions must be integer tensors, got {labels.dtype}")
    if num_classes is not None and num_classes < 1:
        raise WpgdkitError(f"num_classes must be at least 1, got {num_classes}")
    if num_classes is not None and len(y_true):
        low = min(int(y_true.min()), int(y_pred.min()))
        high = max(int(y_true.max()), int(y_pred.max()))
        if low < 0 or high >= num_classes:
            raise WpgdkitError(f"labels must lie in 0..{num_classes - 1}, found {low if low < 0 else high}")


def _check_square(matrix: Tensor, name: str, k: int | None = None) -> None:
    if matrix.dim() != 2 or matrix.shape[0] != matrix.shape[1] or (k is not None and matrix.shape[0] != k):
        want = f"({k}, {k})" if k is not None else "square"
        raise WpgdkitError(f"{name} must be {want}, got shape {tuple(matrix.shape)}")


def confusion_matrix(y_true: Tensor, y_pred: Tensor, num_classes: int, *, normalize: str | None = None) -> Tensor:
    """Confusion matrix ``M[i, j]``: points of true class ``i`` predicted as ``j``.

    Parameters
    ----------
    y_true, y_pred : Tensor of shape (N,), int64
    num_classes : int
    normalize : {None, "true", "all"}, keyword-only, default=None
        None: counts (int64). ``"true"``: each row divided by its class's
        number of points (rows of absent classes stay 0), the per-class rates
        of Definition 1 and Fig. 11. ``"all"``: divided by N.

    Returns
    -------
    M : Tensor of shape (num_classes, num_classes)
        int64 counts, or float64 rates.
    """
    _check_labels(y_true, y_pred, num_classes)
    k = int(num_classes)
    counts = torch.bincount(y_true.long().cpu() * k + y_pred.long().cpu(), minlength=k * k).reshape(k, k)
    if normalize is None:
        return counts
    counts = counts.double()
    if normalize == "true":
        return counts / counts.sum(dim=1, keepdim=True).clamp_min(1)
    if normalize == "all":
        return counts / max(int(counts.sum()), 1)
    raise WpgdkitError(f"unknown normalisation {normalize!r}; choose one of: true, all, None")


def error_rate(y_true: Tensor, y_pred: Tensor) -> float:
    """Share of wrong predictions, in % (NE on clean inputs, AE on adversarial ones)."""
    _check_labels(y_true, y_pred)
    if len(y_true) == 0:
        return math.nan
    return float((y_true != y_pred).double().mean()) * 100.0


def accuracy_gap(confusion_model: Tensor, confusion_baseline: Tensor) -> Tensor:
    """Accuracy gap G = |C_model − C_baseline| (paper, Definition 1).

    Parameters
    ----------
    confusion_model, confusion_baseline : Tensor of shape (K, K)
        Row-normalised natural confusion matrices (``normalize="true"``) of the
        audited model and of the baseline (usually the cross-entropy model).

    Returns
    -------
    G : Tensor of shape (K, K), float64
        Its off-diagonal entries say where the two models' mistakes differ;
        its diagonal, how much each class's accuracy moved.
    """
    a, b = confusion_model.double(), confusion_baseline.double()
    _check_square(a, "the model's confusion matrix")
    _check_square(b, "the baseline's confusion matrix", a.shape[0])
    return (a - b).abs()


def gap_correlation(gap: Tensor, cost: Tensor) -> Correlation:
    """Pearson and Spearman correlation between G and the metric over the off-diagonal pairs.

    As in the paper's Table 1: a negative ρ says the accuracy lost (or
    moved) sits on pairs of *close* classes. Both triangles are used (G is not
    symmetric); NaN when G or C is constant, e.g. a model against itself.

    Parameters
    ----------
    gap : Tensor of shape (K, K)
    cost : Tensor of shape (K, K)
        The label metric C.

    Returns
    -------
    correlation : Correlation
    """
    _check_square(gap, "the gap")
    _check_square(cost, "the metric", gap.shape[0])
    return matrix_correlation(np.asarray(gap.double().cpu()), np.asarray(cost.double().cpu()))


def weighted_score(confusion: Tensor, cost: Tensor, *, normalize: str = "true") -> float:
    """Weighted robustness score S = Σ_ij c_ij m_ij (paper, eq. 7); lower is better.

    ``M`` is the adversarial confusion matrix in counts. The sum weighs each
    adversarial prediction by the cost of the class it lands on; correct
    predictions cost c_ii = 0. Lower S: the adversary reaches closer classes.

    Parameters
    ----------
    confusion : Tensor of shape (K, K)
        Counts (as returned by :func:`confusion_matrix` with ``normalize=None``).
    cost : Tensor of shape (K, K)
        The label metric C, in its own units.
    normalize : {"true", "all", "none"}, keyword-only, default="true"
        ``"true"``: S = (1/K') Σ_i Σ_j c_ij m_ij / n_i over the K' classes
        present, the expected cost of the adversary's answer for a class drawn
        uniformly, independent of the test-set size and of its class balance.
        ``"all"``: S = Σ c_ij m_ij / N, the mean cost per test point.
        ``"none"``: the raw sum of eq. 7, which grows with N.

    Returns
    -------
    S : float
    """
    m = confusion.double()
    _check_square(m, "the confusion matrix")
    c = cost.double().to(m.device)
    _check_square(c, "the metric", m.shape[0])
    weighted = (c * m).sum(dim=1)
    if normalize == "none":
        return float(weighted.sum())
    if normalize == "all":
        return float(weighted.sum() / m.sum()) if m.sum() > 0 else math.nan
    if normalize == "true":
        n = m.sum(dim=1)
        present = n > 0
        return float((weighted[present] / n[present]).mean()) if present.any() else math.nan
    raise WpgdkitError(f"unknown normalisation {normalize!r}; choose one of: {', '.join(SCORE_NORMALIZATIONS)}")


def mistake_severity(y_true: Tensor, y_pred: Tensor, cost: Tensor) -> float:
    """Mean metric cost ``C[y, ŷ]`` of the wrong predictions alone (NaN without mistakes).

    Beside the error rate it says *how far* the wrong answers are, as in
    hierarchy-aware classification: two models with the same error can make
    mistakes of very different severity.
    """
    _check_labels(y_true, y_pred, cost.shape[0])
    _check_square(cost, "the metric")
    wrong = y_true != y_pred
    if not bool(wrong.any()):
        return math.nan
    c = cost.double().cpu()
    return float(c[y_true[wrong].cpu(), y_pred[wrong].cpu()].mean())


def prediction_entropy(logits: Tensor) -> Tensor:
    """Entropy H(softmax(logits)) of each prediction, in nats.

    Parameters
    ----------
    logits : Tensor of shape (N, K)

    Returns
    -------
    H : Tensor of shape (N,), in [0, log K]
    """
    if logits.dim() != 2:
        raise WpgdkitError(f"logits must have shape (N, K), got {tuple(logits.shape)}")
    log_p = torch.log_softmax(logits.double(), dim=1)
    # p·log p with p = 0 is 0: exp(-inf)·(-inf) would be NaN, so mask it.
    plogp = torch.where(log_p.isneginf(), torch.zeros_like(log_p), log_p.exp() * log_p)
    return (-plogp.sum(dim=1)).clamp_min(0.0)


def entropy_histogram(
    entropy: Tensor, y_true: Tensor, num_classes: int, *, bins: int = 20
) -> tuple[Tensor, Tensor]:
    """Histograms of prediction entropies per true class, on the fixed range [0, log K].

    A fixed range makes the histograms of two models (CE and PGD in the
    paper's Fig. 7) directly comparable.

    Returns
    -------
    edges : Tensor of shape (bins + 1,), float64
    counts : Tensor of shape (num_classes, bins), int64
    """
    if bins < 1:
        raise WpgdkitError(f"bins must be at least 1, got {bins}")
    _check_labels(y_true, y_true, num_classes)
    edges = torch.linspace(0.0, math.log(num_classes), bins + 1, dtype=torch.float64)
    # Bin i holds [edge_i, edge_{i+1}); the last bin also holds log K itself.
    index = torch.bucketize(entropy.double().cpu(), edges[1:-1], right=True).clamp(0, bins - 1)
    counts = torch.bincount(y_true.long().cpu() * bins + index, minlength=num_classes * bins).reshape(num_classes, bins)
    return edges, counts
