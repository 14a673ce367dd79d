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

Measures from neighbouring work, and the uncertainty of them all:

==============================================  ==========================================
:func:`default_cost_threshold`                  τ: which mistakes count as costly
:func:`seed_classes`                            classes with a class at cost ≥ τ from them
:func:`cost_sensitive_robust_error`             share of points the adversary sends to a
                                                class at cost ≥ τ (Zhang & Evans, ICLR
                                                2019), in %
:func:`cost_sensitive_robust_error_per_class`   the same, class by class
:func:`hierarchical_distance_at_1`              mean C[y, ŷ] over all points, correct ones
                                                counting 0 (Bertinetto et al., CVPR 2020)
:func:`binomial_standard_error`                 standard error of a rate in %
:func:`score_standard_error`                    standard error of S, each normalisation
==============================================  ==========================================
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from wpgdkit.audit.names import SCORE_NORMALIZATIONS
from wpgdkit.errors import WpgdkitError
from wpgdkit.labelmetric.compare import Correlation, matrix_correlation

__all__ = [
    "SCORE_NORMALIZATIONS",
    "CSRE_DENOMINATORS",
    "confusion_matrix",
    "error_rate",
    "accuracy_gap",
    "gap_correlation",
    "weighted_score",
    "mistake_severity",
    "prediction_entropy",
    "entropy_histogram",
    "default_cost_threshold",
    "seed_classes",
    "cost_sensitive_robust_error",
    "cost_sensitive_robust_error_per_class",
    "hierarchical_distance_at_1",
    "binomial_standard_error",
    "score_standard_error",
]


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


# --- measures from neighbouring work ------------------------------------------------------

#: What :func:`cost_sensitive_robust_error` divides by: the points of the seed classes, or all points.
CSRE_DENOMINATORS = ("seed", "all")


def _as_cost(cost: Tensor | np.ndarray) -> Tensor:
    c = torch.as_tensor(cost).double().cpu()
    _check_square(c, "the metric")
    if not bool(torch.isfinite(c).all()):
        raise WpgdkitError("the metric holds NaN or infinite costs")
    return c


def _offdiagonal(c: Tensor) -> Tensor:
    return c[~torch.eye(c.shape[0], dtype=torch.bool)]


def _check_threshold(threshold: float) -> float:
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or math.isnan(threshold):
        raise WpgdkitError(f"the cost threshold must be a number, got {threshold!r}")
    if threshold <= 0:
        # A zero threshold would count mistakes of cost 0, which the metric says are no mistakes at all.
        raise WpgdkitError(f"the cost threshold must be positive, got {threshold:g}")
    return float(threshold)


def default_cost_threshold(cost: Tensor | np.ndarray) -> float:
    """The threshold τ above which a mistake counts as costly, from the metric alone.

    Zhang & Evans (ICLR 2019) define their cost-sensitive robust error for a
    *binary* cost matrix: a transformation either matters (cost 1) or not
    (cost 0). A real-valued label metric needs a threshold to say which
    mistakes matter:

    * a metric whose positive off-diagonal costs all take one value ``v``
      (binary, up to scale): τ = v, i.e. *any positive cost* counts — the
      paper's definition exactly;
    * otherwise: τ = the median of the K(K−1) off-diagonal costs (both
      triangles; the mean of the two middle values for an even count), so that
      about the most distant half of the class pairs count as costly; never
      below the smallest positive cost, so that a mistake of cost 0 never counts.

    Parameters
    ----------
    cost : Tensor or array of shape (K, K)
        The label metric C.

    Returns
    -------
    tau : float
        ``inf`` when no off-diagonal cost is positive (K = 1, or a zero
        metric): no mistake is costly then.

    Raises
    ------
    WpgdkitError
        A matrix that is not square or holds NaN or infinite costs.
    """
    c = _as_cost(cost)
    off = _offdiagonal(c)
    positive = off[off > 0]
    if positive.numel() == 0:
        return math.inf
    smallest = float(positive.min())
    # Equality up to rounding: a binary metric read from a text file may carry 1.0000000000000002.
    if np.allclose(positive.numpy(), smallest, rtol=1e-9, atol=0.0):
        return smallest
    return max(float(np.median(off.numpy())), smallest)


def seed_classes(cost: Tensor | np.ndarray, *, threshold: float) -> Tensor:
    """Which classes have at least one other class at cost ≥ ``threshold``.

    Zhang & Evans call them the *seed* classes: only their points can be
    sent somewhere costly, so only they enter the cost-sensitive robust error.

    Returns
    -------
    seeds : Tensor of shape (K,), bool
    """
    c = _as_cost(cost)
    tau = _check_threshold(threshold)
    costly = c >= tau
    costly.fill_diagonal_(False)
    return costly.any(dim=1)


def _costly_hits(y: Tensor, pred: Tensor, c: Tensor, tau: float) -> Tensor:
    """Per point: the prediction is wrong and lands on a class of cost ≥ τ."""
    y, pred = y.long().cpu(), pred.long().cpu()
    return (y != pred) & (c[y, pred] >= tau)


def cost_sensitive_robust_error_per_class(
    y_true: Tensor, adversarial_pred: Tensor, cost: Tensor | np.ndarray, *, threshold: float | None = None,
    over: str = "seed",
) -> Tensor:
    """The cost-sensitive robust error of each true class, in %.

    The share of the class's points that the adversary sends to a class at
    cost ≥ τ from it (see :func:`cost_sensitive_robust_error`).

    Parameters
    ----------
    y_true, adversarial_pred : Tensor of shape (N,), int64
        Labels and the predictions on the adversarial inputs.
    cost : Tensor or array of shape (K, K)
        The label metric C; C[i, j] is the cost of answering j for class i.
    threshold : float or None, keyword-only
        τ > 0; default :func:`default_cost_threshold` of ``cost``.
    over : {"seed", "all"}, keyword-only, default="seed"
        ``"seed"``: classes with no class at cost ≥ τ (not seed classes) get
        NaN, as the paper leaves them out; ``"all"``: they get 0.

    Returns
    -------
    errors : Tensor of shape (K,), float64
        In %; NaN for a class without points.
    """
    c = _as_cost(cost)
    _check_labels(y_true, adversarial_pred, c.shape[0])
    if over not in CSRE_DENOMINATORS:
        raise WpgdkitError(f"unknown denominator {over!r}; choose one of: {', '.join(CSRE_DENOMINATORS)}")
    tau = default_cost_threshold(c) if threshold is None else _check_threshold(threshold)
    k = c.shape[0]
    y = y_true.long().cpu()
    hits = torch.bincount(y[_costly_hits(y, adversarial_pred, c, tau)], minlength=k).double()
    points = torch.bincount(y, minlength=k).double()
    errors = torch.full((k,), math.nan, dtype=torch.float64)
    present = points > 0
    if over == "seed":
        present &= seed_classes(c, threshold=tau) if math.isfinite(tau) else torch.zeros(k, dtype=torch.bool)
    errors[present] = hits[present] / points[present] * 100.0
    return errors


def cost_sensitive_robust_error(
    y_true: Tensor, adversarial_pred: Tensor, cost: Tensor | np.ndarray, *, threshold: float | None = None,
    over: str = "seed",
) -> float:
    """Cost-sensitive robust error (Zhang & Evans, ICLR 2019) in %; lower is better.

    The share of points for which the adversary reaches a class whose cost
    from the true class is at least τ: ``ŷ ≠ y`` and ``C[y, ŷ] ≥ τ``, with
    ``ŷ`` the prediction on the adversarial input. Zhang & Evans define it for
    a binary cost matrix (C[j, k] = 1: turning class j into k matters) and
    divide by the points of the *seed* classes, those with at least one
    costly target (their training code, ``robust_loss_task_spec``, counts the
    points of classes whose cost row is not all 0); ``over="seed"`` does the
    same, ``over="all"`` divides by all N points. With a real-valued metric,
    τ makes it binary (:func:`default_cost_threshold`).

    The paper certifies that *no* point of the ε-ball reaches a costly class;
    an audit has one adversarial input per point, found by an attack that
    need not aim at the costly classes. The value here is therefore a lower
    bound on the certified quantity, as tight as the attack is (the
    ``cost-targeted`` attack aims at the costly classes).

    Parameters
    ----------
    y_true, adversarial_pred : Tensor of shape (N,), int64
    cost : Tensor or array of shape (K, K)
        The label metric C; C[i, j] is the cost of answering j for class i.
    threshold : float or None, keyword-only
        τ > 0 (``inf``: nothing is costly); default
        :func:`default_cost_threshold` of ``cost``.
    over : {"seed", "all"}, keyword-only, default="seed"

    Returns
    -------
    error : float
        In %; NaN without points to count (no points, or no seed class).
        Its standard error is :func:`binomial_standard_error` of it with the
        number of points counted (``seed_classes(cost, threshold=τ)[y].sum()``
        for ``over="seed"``).
    """
    c = _as_cost(cost)
    _check_labels(y_true, adversarial_pred, c.shape[0])
    if over not in CSRE_DENOMINATORS:
        raise WpgdkitError(f"unknown denominator {over!r}; choose one of: {', '.join(CSRE_DENOMINATORS)}")
    tau = default_cost_threshold(c) if threshold is None else _check_threshold(threshold)
    y = y_true.long().cpu()
    counted = torch.ones(len(y), dtype=torch.bool)
    if over == "seed":
        seeds = seed_classes(c, threshold=tau) if math.isfinite(tau) else torch.zeros(c.shape[0], dtype=torch.bool)
        counted = seeds[y]
    if not bool(counted.any()):
        return math.nan
    hits = _costly_hits(y, adversarial_pred, c, tau)
    return float(hits[counted].double().mean()) * 100.0


def hierarchical_distance_at_1(y_true: Tensor, y_pred: Tensor, cost: Tensor | np.ndarray) -> float:
    """Average hierarchical distance@1 (Bertinetto et al., CVPR 2020); lower is better.

    The mean over *all* points of the distance between the true class and the
    top-1 prediction, ``C[y, ŷ]``, a correct prediction counting 0. Bertinetto
    et al. report it beside the *mistake severity*, the same mean over the
    mistakes alone (:func:`mistake_severity`); their code takes both from one
    table of top-k distances, the mistakes being the points of non-zero
    top-1 distance. With a WordNet metric C plays the role of their
    hierarchy distance (height of the lowest common ancestor).

    It equals :func:`weighted_score` with ``normalize="all"`` of the
    confusion counts of ``(y_true, y_pred)`` — both are Σ_ij c_ij m_ij / N
    when c_ii = 0, which every validated metric has — and
    error rate × mistake severity when there are mistakes. Computed on the
    clean and on the adversarial predictions, it is the natural and the
    adversarial version.

    Parameters
    ----------
    y_true, y_pred : Tensor of shape (N,), int64
    cost : Tensor or array of shape (K, K)
        The label metric C; C[i, j] is the cost of answering j for class i.

    Returns
    -------
    distance : float
        In the metric's units; NaN without points. Its standard error is
        :func:`score_standard_error` with ``normalize="all"``.
    """
    c = _as_cost(cost)
    _check_labels(y_true, y_pred, c.shape[0])
    if len(y_true) == 0:
        return math.nan
    y, p = y_true.long().cpu(), y_pred.long().cpu()
    # A correct answer costs 0 by definition, even if a metric's diagonal carries rounding noise.
    distances = torch.where(y == p, torch.zeros((), dtype=torch.float64), c[y, p])
    return float(distances.mean())


# --- uncertainty ---------------------------------------------------------------------------


def binomial_standard_error(rate_percent: float, n: int) -> float:
    """Standard error of a rate measured on ``n`` independent points, in % points.

    ``100 · sqrt(p (1 − p) / n)`` with p = rate / 100: the spread of NE, AE or
    the cost-sensitive robust error from one test set to another of the same
    size. It is the plug-in (Wald) estimate, 0 at p = 0 or 1; a rate measured
    on a few points has a larger uncertainty than this says.

    Parameters
    ----------
    rate_percent : float
        In [0, 100]; NaN gives NaN.
    n : int
        Points the rate was measured on; 0 gives NaN.

    Returns
    -------
    se : float
    """
    if isinstance(n, bool) or int(n) != n or n < 0:
        raise WpgdkitError(f"the number of points must be a non-negative integer, got {n!r}")
    if math.isnan(rate_percent) or n == 0:
        return math.nan
    if not 0.0 <= rate_percent <= 100.0:
        raise WpgdkitError(f"a rate in % must lie in [0, 100], got {rate_percent:g}")
    p = rate_percent / 100.0
    return 100.0 * math.sqrt(p * (1.0 - p) / int(n))


def score_standard_error(confusion_counts: Tensor, cost: Tensor | np.ndarray, *, normalize: str = "true") -> float:
    """Standard error of the weighted score S (:func:`weighted_score`) from the confusion counts.

    The adversary's answer for a point of class i costs ``c_ij`` with the
    row's empirical probability ``m_ij / n_i``; write E_i[c] = Σ_j c_ij m_ij / n_i
    and E_i[c²] = Σ_j c_ij² m_ij / n_i.

    ``"true"``: S = (1/K') Σ_i E_i[c] over the K' classes present. Given the
    class counts n_i (fixed by the test set), each row is an independent
    multinomial and E_i[c] is the mean of n_i independent costs, so

        Var(S) = (1/K'²) Σ_i (E_i[c²] − E_i[c]²) / n_i.

    ``"all"``: S = Σ_ij c_ij m_ij / N, the mean cost of N points drawn
    independently (class included) from the data distribution:
    Var(S) = (E[c²] − E[c]²) / N over all points. ``"none"``: S is N times
    that mean, so its standard error is N times as large.

    The variances are the plug-in ones (the empirical distribution in place
    of the true one): a row whose answers all cost the same contributes 0,
    so with few points per class the uncertainty is understated.

    Parameters
    ----------
    confusion_counts : Tensor of shape (K, K)
        Counts, rows true classes (:func:`confusion_matrix`, ``normalize=None``).
    cost : Tensor or array of shape (K, K)
        The label metric C.
    normalize : {"true", "all", "none"}, keyword-only, default="true"
        The normalisation S was computed with.

    Returns
    -------
    se : float
        In the units of S; NaN without points.
    """
    m = torch.as_tensor(confusion_counts).double().cpu()
    _check_square(m, "the confusion matrix")
    c = _as_cost(cost)
    _check_square(c, "the metric", m.shape[0])
    if not bool(torch.isfinite(m).all()) or bool((m < 0).any()):
        raise WpgdkitError("confusion counts must be finite and non-negative")
    if normalize not in SCORE_NORMALIZATIONS:
        raise WpgdkitError(f"unknown normalisation {normalize!r}; choose one of: {', '.join(SCORE_NORMALIZATIONS)}")
    if normalize == "true":
        n = m.sum(dim=1)
        present = n > 0
        if not bool(present.any()):
            return math.nan
        first = (c * m).sum(dim=1)[present] / n[present]
        second = (c * c * m).sum(dim=1)[present] / n[present]
        # clamp: E[c²] − E[c]² can come out a rounding error below 0 for a row of one cost.
        variance = ((second - first**2).clamp_min(0.0) / n[present]).sum() / int(present.sum()) ** 2
        return math.sqrt(float(variance))
    total = float(m.sum())
    if total == 0:
        return math.nan
    first = float((c * m).sum()) / total
    second = float((c * c * m).sum()) / total
    se = math.sqrt(max(second - first**2, 0.0) / total)
    return se * total if normalize == "none" else se
