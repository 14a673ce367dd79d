"""The paper's label metric for MNIST: distances between a linear classifier's boundaries.

Fit a multinomial logistic regression ``z = W x + b`` on the input pixels;
the decision boundary between classes ``k`` and ``k'`` is the hyperplane
``(w_k - w_k')·x + b_k - b_k' = 0``. The distance of ``k`` to ``k'`` is the
mean Euclidean distance of class-``k`` training points to that hyperplane,

    A[k, k'] = mean_{x of class k} |z_k(x) - z_k'(x)| / ||w_k - w_k'||,

and the metric is its symmetrisation ``C = (A + Aᵀ) / 2``: the mean of the
two classes' mean distances (paper, Sec. 3.1).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from wpgdkit.errors import WpgdkitError

__all__ = ["LinearFitConfig", "fit_linear_classifier", "linear_boundary_distances", "linear_metric_matrix"]


@dataclass(frozen=True)
class LinearFitConfig:
    """Settings of the multinomial logistic regression.

    Attributes
    ----------
    l2 : float
        Ridge penalty on the pixel-space weights; keeps the fit finite when
        classes are separable, as on small subsets.
    max_iter : int
        L-BFGS iterations (full batch).
    seed : int
        Seeds torch for reproducibility (the fit itself is deterministic).
    """

    l2: float = 1e-3
    max_iter: int = 200
    seed: int = 0

    def __post_init__(self) -> None:
        # The ranges are BuildConfig's (written once, in sources.BUILD_RANGES); an out-of-range
        # seed would otherwise end in torch's "Overflow when unpacking long long".
        from wpgdkit.inputs import check_number, check_seed
        from wpgdkit.labelmetric.sources import BUILD_RANGES

        for name in ("l2", "max_iter"):
            check_number(name, getattr(self, name), BUILD_RANGES[name])
        check_seed("seed", self.seed)


def fit_linear_classifier(
    x: torch.Tensor, y: torch.Tensor, num_classes: int, *, config: LinearFitConfig = LinearFitConfig()
) -> tuple[torch.Tensor, torch.Tensor]:
    """Fit ``softmax(W x + b)`` by full-batch L-BFGS on cross-entropy + L2.

    Parameters
    ----------
    x : Tensor of shape (N, ...)
        Inputs (flattened internally), e.g. pixels in [0, 1].
    y : Tensor of shape (N,), int64
        Labels in ``0..num_classes-1``.
    num_classes : int
    config : LinearFitConfig, keyword-only

    Returns
    -------
    weight : Tensor of shape (K, D), float64
        In the original input coordinates.
    bias : Tensor of shape (K,), float64
    """
    if x.shape[0] != y.shape[0] or x.shape[0] == 0:
        raise WpgdkitError(f"need as many labels as inputs (got {x.shape[0]} inputs, {y.shape[0]} labels)")
    _check_labels(y, num_classes)
    torch.manual_seed(config.seed)
    flat = x.reshape(len(x), -1).to(torch.float64)
    # Centre for conditioning (the bias absorbs the shift), but do not rescale:
    # the penalty must act on pixel-space weights, since the boundary distances
    # are measured in pixel space. Standardising would let nearly constant
    # pixels carry huge pixel-space weights and shrink every distance.
    mean = flat.mean(0)
    z = flat - mean
    w = torch.zeros(num_classes, flat.shape[1], dtype=torch.float64, requires_grad=True)
    b = torch.zeros(num_classes, dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS(
        [w, b], lr=1.0, max_iter=config.max_iter, tolerance_grad=1e-9, tolerance_change=1e-12,
        history_size=20, line_search_fn="strong_wolfe",
    )

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(z @ w.T + b, y) + 0.5 * config.l2 * (w * w).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    weight = w.detach()
    bias = b.detach() - weight @ mean
    return weight, bias


def _check_labels(y: torch.Tensor, num_classes: int) -> None:
    if len(y) and (int(y.min()) < 0 or int(y.max()) >= num_classes):
        raise WpgdkitError(f"labels must lie in 0..{num_classes - 1}, found {int(y.min())}..{int(y.max())}")
    missing = sorted(set(range(num_classes)) - set(torch.unique(y).tolist()))
    if missing:
        raise WpgdkitError(f"classes {missing[:10]} have no training points; use a larger --limit")


def linear_boundary_distances(
    weight: torch.Tensor, bias: torch.Tensor, x: torch.Tensor, y: torch.Tensor
) -> np.ndarray:
    """Mean distance of each class's points to each pairwise decision hyperplane.

    Parameters
    ----------
    weight : Tensor of shape (K, D)
    bias : Tensor of shape (K,)
    x : Tensor of shape (N, D) or (N, ...)
    y : Tensor of shape (N,)

    Returns
    -------
    A : ndarray of shape (K, K)
        ``A[k, k']``, the mean over points of class ``k`` of
        ``|z_k - z_k'| / ||w_k - w_k'||``; zero on the diagonal. Not symmetric.
    """
    k = weight.shape[0]
    _check_labels(y, k)  # a class without points would get a silent row of zeros
    weight = weight.to(torch.float64)
    diff_norm = torch.cdist(weight, weight)  # ||w_k - w_k'||, (K, K)
    if bool((diff_norm + torch.eye(k, dtype=torch.float64) == 0).any()):
        raise WpgdkitError("two classes have identical weight vectors: their boundary is undefined")
    out = torch.zeros(k, k, dtype=torch.float64)
    counts = torch.zeros(k, dtype=torch.float64)
    for chunk_x, chunk_y in zip(torch.split(x, 8192), torch.split(y, 8192)):  # bounded memory
        logits = chunk_x.reshape(len(chunk_x), -1).to(torch.float64) @ weight.T + bias.to(torch.float64)
        own = logits.gather(1, chunk_y[:, None])
        dist = (own - logits).abs() / diff_norm[chunk_y]
        out.index_add_(0, chunk_y, dist)
        counts += torch.bincount(chunk_y, minlength=k).to(torch.float64)
    out /= counts[:, None]
    out.fill_diagonal_(0.0)
    return out.numpy()


def linear_metric_matrix(
    x: torch.Tensor, y: torch.Tensor, num_classes: int, *, config: LinearFitConfig = LinearFitConfig()
) -> np.ndarray:
    """Fit the classifier and return the symmetrised boundary distances ``(A + Aᵀ)/2``."""
    weight, bias = fit_linear_classifier(x, y, num_classes, config=config)
    a = linear_boundary_distances(weight, bias, x, y)
    return (a + a.T) / 2
