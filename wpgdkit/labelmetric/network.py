"""Label metrics read off a trained network: its decision boundaries and its confusions.

Two sources of ``wpgdkit metric build`` take a checkpoint instead of a dataset:

``boundary`` (paper: "distance from the boundaries of a deep network")
    The first-order (DeepFool) distance of each class's points to the
    network's pairwise decision boundaries, measured in the dual norm of the
    attack's threat model, averaged per class and symmetrised
    (:func:`boundary_distance_matrix`). It generalises the ``linear`` source,
    for which the linearisation is exact.

``confusion``
    Classes the network confuses often are close: a decreasing function of
    the symmetrised, Laplace-smoothed confusion rate on clean points
    (:func:`confusion_distance_matrix`).

:func:`load_trained_model` and :func:`evaluation_points` read the checkpoint
and the points of its classes that both sources evaluate the network on.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from wpgdkit.attacks.pgd import eval_mode
from wpgdkit.checkpoint import Checkpoint
from wpgdkit.errors import UnknownNameError, WpgdkitError

__all__ = [
    "BOUNDARY_NORMS",
    "CONFUSION_MEASURES",
    "GRADIENT_NORM_FLOOR",
    "TrainedModel",
    "boundary_distance_matrix",
    "confusion_distance_matrix",
    "evaluation_points",
    "load_trained_model",
    "predict",
]

BOUNDARY_NORMS = ("linf", "l2")
CONFUSION_MEASURES = ("neglog", "one-minus")
#: Smallest gradient norm divided by; see :func:`boundary_distance_matrix`.
GRADIENT_NORM_FLOOR = 1e-12


# --- boundary ---------------------------------------------------------------------


def boundary_distance_matrix(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    num_classes: int,
    *,
    norm: str = "linf",
    batch_size: int = 256,
    symmetrize: bool = True,
) -> np.ndarray:
    """Mean first-order distance of each class's points to the network's pairwise boundaries.

    For a point ``x`` of class ``k`` and another class ``k'``, the
    linearisation of ``g = f_k - f_k'`` at ``x`` (one DeepFool step) puts the
    ``k``/``k'`` boundary at distance

        d(x, k') = |f_k(x) - f_k'(x)| / ||∇x f_k(x) - ∇x f_k'(x)||_*

    where ``||·||_*`` is the dual of the attack's norm: an ℓ∞ perturbation
    needs that distance in ℓ∞ when the gradient is measured in ℓ1, an ℓ2 one
    in ℓ2. Then ``D[k, k'] = mean over points of class k of d(x, k')``.

    Parameters
    ----------
    model : nn.Module
        Maps ``(N, *input_shape)`` to logits ``(N, K)``, on ``x``'s device.
        Put in eval mode for the computation and restored afterwards; no
        parameter's ``.grad`` is touched.
    x : Tensor of shape (N, *input_shape)
        Inputs in the space the attack perturbs (pixels).
    y : Tensor of shape (N,), int64
        True labels in ``0..num_classes-1``; every class needs a point.
    num_classes : int
        ``K``, the number of logits.
    norm : {"linf", "l2"}, keyword-only, default="linf"
        The attack's norm; distances are in this norm.
    batch_size : int, keyword-only, default=256
        Model inputs per forward/backward pass. Each point is replicated
        ``K`` times (one replica per logit whose gradient is taken), so a pass
        holds ``max(1, batch_size // K)`` points.
    symmetrize : bool, keyword-only, default=True
        Return ``(D + Dᵀ) / 2`` rather than ``D``.

    Returns
    -------
    D : ndarray of shape (K, K), float64
        Zero on the diagonal; symmetric when ``symmetrize``.

    Raises
    ------
    WpgdkitError
        For mismatched shapes, labels out of range, a class without points,
        an unknown norm, a non-positive batch size or a model whose output is
        not ``(N, K)``.

    Notes
    -----
    All ``K`` input gradients of a batch come from one backward pass: each
    point is repeated ``K`` times and the sum of logit ``j`` of replica ``j``
    is differentiated, which is exact because in eval mode a network treats
    the points of a batch independently.

    A pair whose logit difference has a zero input gradient (a flat region,
    e.g. all ReLUs of a path inactive) is infinitely far to first order. The
    dual norm is floored at :data:`GRADIENT_NORM_FLOOR` (1e-12) so that such
    a pair gets a very large but finite distance instead of ``inf`` or
    ``nan``; with a trained network this does not happen in practice.
    """
    _check_points(x, y, num_classes)
    dual = _dual_norm(norm)
    if batch_size < 1:
        raise WpgdkitError(f"batch_size must be at least 1, got {batch_size}")
    points_per_pass = max(1, batch_size // num_classes)
    y = y.to(x.device)
    sums = torch.zeros(num_classes, num_classes, dtype=torch.float64, device=x.device)
    with eval_mode(model):
        for xb, yb in zip(torch.split(x, points_per_pass), torch.split(y, points_per_pass)):
            sums.index_add_(0, yb, _point_distances(model, xb, yb, num_classes, dual))
    counts = torch.bincount(y, minlength=num_classes).to(torch.float64)
    out = (sums / counts[:, None]).cpu().numpy()
    np.fill_diagonal(out, 0.0)
    _check_finite_distances(out)
    return (out + out.T) / 2 if symmetrize else out


def _check_finite_distances(d: np.ndarray, what: str = "distances") -> None:
    # NaN or infinite logits (a diverged model) would otherwise give a NaN
    # matrix, or, through arg-max, a plausible-looking one.
    bad = ~np.isfinite(d)
    if bad.any():
        i, j = map(int, np.argwhere(bad)[0])
        raise WpgdkitError(
            f"the network produced non-finite {what} ({int(bad.sum())} entries, first at [{i}, {j}]); "
            "its weights or outputs hold NaN or infinity"
        )


def _dual_norm(norm: str):
    if norm == "linf":
        return lambda g: g.abs().sum(dim=-1)  # ℓ1 is dual to ℓ∞
    if norm == "l2":
        return lambda g: g.norm(dim=-1)
    raise UnknownNameError(f"unknown norm {norm!r}; choose one of: {', '.join(BOUNDARY_NORMS)}")


def _point_distances(model: nn.Module, xb: torch.Tensor, yb: torch.Tensor, k: int, dual) -> torch.Tensor:
    """``(B, K)`` first-order distances of each point to each of its class's boundaries (0 for its own class)."""
    b = len(xb)
    # Replica j of point i sits at row i*K + j; only its logit j is differentiated.
    replicas = xb.detach().repeat_interleave(k, dim=0).requires_grad_(True)
    with torch.enable_grad():
        logits = model(replicas)
        if logits.shape != (b * k, k):
            raise WpgdkitError(f"the model returned logits of shape {tuple(logits.shape)}, expected ({b * k}, {k})")
        selected = logits.view(b, k, k).diagonal(dim1=1, dim2=2)  # (B, K): f_j(x_i)
        (grads,) = torch.autograd.grad(selected.sum(), replicas)  # inputs only: parameters' .grad untouched
    grads = grads.reshape(b, k, -1).to(torch.float64)  # ∇x f_j(x_i)
    f = selected.detach().to(torch.float64)
    rows = torch.arange(b, device=xb.device)
    margin = (f[rows, yb][:, None] - f).abs()
    slope = dual(grads[rows, yb][:, None, :] - grads).clamp_min(GRADIENT_NORM_FLOOR)
    dist = margin / slope
    dist[rows, yb] = 0.0
    return dist


def _check_points(x: torch.Tensor, y: torch.Tensor, num_classes: int) -> None:
    if y.dim() != 1 or x.shape[0] != y.shape[0]:
        raise WpgdkitError(f"need one label per input, got inputs {tuple(x.shape)} and labels {tuple(y.shape)}")
    if num_classes < 2:
        raise WpgdkitError(f"need at least 2 classes, got {num_classes}")
    if len(y) and (int(y.min()) < 0 or int(y.max()) >= num_classes):
        raise WpgdkitError(f"labels must lie in 0..{num_classes - 1}, found {int(y.min())}..{int(y.max())}")
    _check_every_class(torch.bincount(y.cpu(), minlength=num_classes), None)


def _check_every_class(counts: torch.Tensor | np.ndarray, names: Sequence[str] | None, where: str = "") -> None:
    # A class without points would get a silent row of zeros (or NaN) in the metric.
    empty = [i for i, c in enumerate(np.asarray(counts).tolist()) if c <= 0]
    if empty:
        label = repr(names[empty[0]]) if names is not None else str(empty[0])
        more = f" (and {len(empty) - 1} more)" if len(empty) > 1 else ""
        raise WpgdkitError(f"class {label}{more} has no points{where}")


# --- confusion ----------------------------------------------------------------------


def confusion_distance_matrix(
    confusion_counts: np.ndarray | torch.Tensor,
    *,
    smoothing: float = 1.0,
    measure: str = "neglog",
) -> np.ndarray:
    """Distances between classes from how often a classifier confuses them.

    With ``M[i, j]`` the number of points of class ``i`` predicted as ``j``,
    ``n_i`` the row sums and ``β = smoothing``:

        P[i, j] = (M[i, j] + β) / (n_i + K β)      (Laplace-smoothed rate)
        s[i, j] = (P[i, j] + P[j, i]) / 2          (symmetrised)
        neglog:    d[i, j] = -log s[i, j]
        one-minus: d[i, j] = 1 - s[i, j]

    for ``i != j`` and ``d[i, i] = 0``. ``P`` is the posterior mean of class
    ``i``'s prediction distribution under a symmetric Dirichlet(β) prior, so
    ``s[i, j]`` lies strictly between 0 and 1: every off-diagonal distance is
    finite and positive, and decreases as the pair is confused more often.
    ``neglog`` is the surprisal of a confusion: a pair never confused (with
    ``n`` points in each class) sits at ``log(n / β + K)``, which grows with
    the evidence; ``one-minus`` stays in (0, 1), close to the uniform metric.
    Neither is guaranteed to satisfy the triangle inequality
    (``wpgdkit metric check`` reports it).

    Parameters
    ----------
    confusion_counts : array of shape (K, K)
        Non-negative counts (rows: true class, columns: prediction); every
        row must hold at least one point.
    smoothing : float, keyword-only, default=1.0
        ``β > 0``, the pseudo-count added to every cell (1: add-one).
    measure : {"neglog", "one-minus"}, keyword-only, default="neglog"

    Returns
    -------
    d : ndarray of shape (K, K), float64
        Symmetric, zero diagonal, positive off the diagonal.

    Raises
    ------
    WpgdkitError
        For a non-square, negative or non-finite matrix, fewer than 2
        classes, an empty row, ``smoothing <= 0`` or an unknown measure.
    """
    m = np.asarray(confusion_counts.cpu() if isinstance(confusion_counts, torch.Tensor) else confusion_counts,
                   dtype=np.float64)
    if m.ndim != 2 or m.shape[0] != m.shape[1] or m.shape[0] < 2:
        raise WpgdkitError(f"confusion counts must be a K×K matrix with K >= 2, got shape {m.shape}")
    if not np.isfinite(m).all() or (m < 0).any():
        raise WpgdkitError("confusion counts must be finite and non-negative")
    if not (np.isfinite(smoothing) and smoothing > 0):
        raise WpgdkitError(f"smoothing must be positive, got {smoothing}")
    if measure not in CONFUSION_MEASURES:
        raise UnknownNameError(f"unknown measure {measure!r} for confusion; choose one of: {', '.join(CONFUSION_MEASURES)}")
    _check_every_class(m.sum(axis=1), None)
    k = m.shape[0]
    rates = (m + smoothing) / (m.sum(axis=1, keepdims=True) + k * smoothing)
    s = (rates + rates.T) / 2
    out = -np.log(s) if measure == "neglog" else 1.0 - s
    np.fill_diagonal(out, 0.0)
    return out


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, *, batch_size: int = 256) -> torch.Tensor:
    """Arg-max predictions ``(N,)`` of ``model`` (in eval mode, restored afterwards) on ``x``."""
    predictions = []
    with eval_mode(model):
        for xb in torch.split(x, batch_size):
            logits = model(xb)
            if not bool(torch.isfinite(logits).all()):
                raise WpgdkitError(
                    "the network produced non-finite logits (NaN or infinity); its arg-max predictions "
                    "would be meaningless"
                )
            predictions.append(logits.argmax(dim=1))
    return torch.cat(predictions)


# --- checkpoints ----------------------------------------------------------------------


@dataclass
class TrainedModel:
    """A network and the facts about it that the network sources need.

    Built from a wpgdkit checkpoint (:func:`load_trained_model`), which knows
    its dataset, classes and training norm, or from any other model (a
    TorchScript or ``torch.export`` file, ``--model torchvision:resnet18
    --weights ft.pt``), whose dataset and classes the caller gives
    (:func:`foreign_trained_model`).

    Attributes
    ----------
    model : nn.Module
        In eval mode, on the device it was loaded to; pixel-space input.
    sha256 : str
        The digest of the weights' file: it ties a metric's provenance to these exact weights.
    path : str
        The file (or model spec) as given.
    dataset : str
    classes : tuple of str
        The model's classes in output order.
    class_indices : tuple of int
        Their labels in the dataset.
    norm : str
        The training attack's norm (``linf`` for models that carry none).
    data_seed : int
        The run's data seed (it generates the ``toy`` splits).
    summary : dict
        JSON-typed facts for the metric's provenance.
    checkpoint : Checkpoint or None
    """

    model: nn.Module
    sha256: str
    path: str
    dataset: str
    classes: tuple[str, ...]
    class_indices: tuple[int, ...]
    norm: str = "linf"
    data_seed: int = 0
    summary: dict[str, Any] = field(default_factory=dict)
    checkpoint: Checkpoint | None = None


def load_trained_model(
    path: str | os.PathLike[str], *, dataset: str | None = None, device: str | torch.device = "cpu",
    trusted_source: Any | None = None,
) -> TrainedModel:
    """Read a checkpoint and rebuild its network.

    Parameters
    ----------
    path : path-like
    dataset : str, keyword-only, optional
        The dataset the caller expects; an error if the checkpoint's differs
        (for a run on files: where those files are now).
    device : keyword-only
    trusted_source : ModelSource, keyword-only, optional
        Needed for a run whose network comes from the user's own module.

    Raises
    ------
    DataNotFoundError
        If the file does not exist.
    CheckpointError
        If it is not a readable, well-formed wpgdkit checkpoint.
    WpgdkitError
        If ``dataset`` is not the checkpoint's.
    """
    from wpgdkit.checkpoint import load_checkpoint

    checkpoint = load_checkpoint(path)
    data = checkpoint.data
    name = data.dataset
    if data.source is not None:
        from wpgdkit.audit.subjects import reopen_recorded

        name = reopen_recorded(data, path=dataset).name  # the same data, wherever it is now
    elif dataset is not None and dataset != data.dataset:
        raise WpgdkitError(f"dataset {dataset} disagrees with {path}, which was trained on {data.dataset}")
    sha256 = _sha256(path)
    return TrainedModel(
        model=checkpoint.build_model(device, trusted_source=trusted_source), sha256=sha256, path=checkpoint.name,
        dataset=name, classes=data.classes, class_indices=data.class_indices, norm=checkpoint.threat.norm,
        data_seed=data.seed, checkpoint=checkpoint,
        summary={"model": checkpoint.model.name, "method": checkpoint.method, "epoch": checkpoint.epoch,
                 "checkpoint_sha256": sha256},
    )


def foreign_trained_model(
    *, model_file: str | None = None, source: Any | None = None, dataset: str, options: Any | None = None,
    classes: Sequence[str] | None = None, device: str | torch.device = "cpu",
) -> TrainedModel:
    """A model wpgdkit did not train, for the network sources: a model file or a model source, on ``dataset``.

    Parameters
    ----------
    model_file : str, keyword-only, optional
        A TorchScript archive or ``torch.export`` program (recognised by content).
    source : ModelSource, keyword-only, optional
        ``--model SPEC [--weights FILE]``; exactly one of the two.
    dataset : str, keyword-only
        A registry name or a dataset file; ``options`` read the file.
    classes : sequence of str, keyword-only, optional
        The model's classes in output order (default all the dataset's).

    Raises
    ------
    WpgdkitError
        For a model that does not fit the data, or missing parameters.
    """
    from wpgdkit.audit.subjects import load_subject, resolve_data, subject_from_source

    subject = load_subject(model_file) if model_file is not None else subject_from_source(source)
    if subject.checkpoint is not None:
        return load_trained_model(model_file, dataset=dataset, device=device, trusted_source=source)
    data = resolve_data([subject], dataset=dataset, options=options, classes=tuple(classes) if classes else None)
    module = subject.build(torch.device(device) if isinstance(device, str) else device,
                           num_classes=len(data.classes), input_shape=data.input_shape)
    weights = model_file if model_file is not None else source.weights
    sha256 = _sha256(weights) if weights else ""
    summary: dict[str, Any] = {"model": subject.path, "method": "external"}
    if weights:
        summary["weights_sha256"] = sha256
    return TrainedModel(model=module, sha256=sha256, path=subject.path, dataset=data.dataset, classes=data.classes,
                        class_indices=data.class_indices, summary=summary)


def _sha256(path: str | os.PathLike[str]) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def evaluation_points(
    trained: TrainedModel,
    *,
    split: str = "test",
    limit: int | None = None,
    per_class: bool = False,
    data_dir: str | None = None,
    download: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The split's points of the checkpoint's classes, relabelled ``0..K-1``.

    Parameters
    ----------
    trained : TrainedModel
    split : {"test", "train"}, keyword-only
    limit : int, keyword-only, optional
        Keep the first ``limit`` points in the split's order: in total, or of
        each class when ``per_class`` (deterministic, no seed involved).
    per_class : bool, keyword-only
    data_dir, download : keyword-only
        Where the dataset's files are, and whether torchvision may fetch them.

    Returns
    -------
    x : Tensor of shape (N, *input_shape), float32
    y : Tensor of shape (N,), int64

    Raises
    ------
    WpgdkitError
        For an unknown split, ``limit < 1``, or a class with no points.
    """
    from wpgdkit.training.data import load_eval_split

    from wpgdkit.datasets import SPLITS

    if split not in SPLITS:
        raise UnknownNameError(f"unknown split {split!r}; choose one of: {', '.join(SPLITS)}")
    if limit is not None and limit < 1:
        raise WpgdkitError(f"--limit must be at least 1, got {limit}")
    x, y = load_eval_split(
        trained.dataset, trained.class_indices, split=split, data_dir=data_dir, download=download,
        limit=None if per_class else limit, seed=trained.data_seed,
    )
    if per_class and limit is not None:
        keep = torch.cat([torch.nonzero(y == k).squeeze(1)[:limit] for k in range(len(trained.classes))]).sort().values
        x, y = x[keep], y[keep]
    first = f" among the first {limit}" if limit is not None and not per_class else ""
    _check_every_class(torch.bincount(y, minlength=len(trained.classes)), trained.classes,
                       f"{first} in the {split} split of {trained.dataset}")
    return x, y
