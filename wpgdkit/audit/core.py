"""Auditing trained checkpoints: attack each model once, then measure.

:func:`audit` loads the checkpoints, the test split of their classes and the
label metric, runs the adversary over every model (each exactly once, the
reference included), and computes, per model, the quantities of
:mod:`wpgdkit.audit.scores`. :meth:`AuditReport.to_dict` is the documented
JSON of ``wpgdkit audit --json``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import Tensor

from wpgdkit import __version__
from wpgdkit.attacks import AttackConfig, ThreatModel
from wpgdkit.audit.scores import (
    SCORE_NORMALIZATIONS,
    binomial_standard_error,
    cost_sensitive_robust_error,
    cost_sensitive_robust_error_per_class,
    default_cost_threshold,
    hierarchical_distance_at_1,
    score_standard_error,
    seed_classes,
    accuracy_gap,
    confusion_matrix,
    entropy_histogram,
    error_rate,
    gap_correlation,
    mistake_severity,
    prediction_entropy,
    weighted_score,
)
from wpgdkit.audit.subjects import (
    AuditData,
    AuditSubject,
    check_compatible,
    load_subject,
    resolve_data,
    same_file,
    subject_from_module,
    subject_from_source,
    unique_names,
)
from wpgdkit.checkpoint import METRIC_METHODS
from wpgdkit.errors import WpgdkitError
from wpgdkit.inputs import Range, check_number, check_seed, input_file
from wpgdkit.labelmetric.compare import Correlation
from wpgdkit.labelmetric.core import LabelMetric

__all__ = ["AuditConfig", "ModelPredictions", "ModelAudit", "AuditReport", "audit", "audit_model", "AUDIT_SCHEMA"]

AUDIT_SCHEMA = "wpgdkit-audit/1"


@dataclass(frozen=True)
class AuditConfig:
    """Everything ``wpgdkit audit`` needs.

    Attributes
    ----------
    checkpoints : tuple of str
        Model files to audit, recognised by content: wpgdkit checkpoints (all
        trained on the same dataset and classes), TorchScript archives and
        ``torch.export`` programs.
    model : ModelSource or None
        One more model, from anywhere (``--model torchvision:resnet18
        --weights ft.pt``); also the permission to import the user's module
        for checkpoints trained with it.
    dataset : str or None
        The data of models that carry none (a registry name, a ``.npz`` or
        ``.csv`` file, ``imagefolder:PATH``); for checkpoints trained on files,
        where those files are now.
    data_options : DataOptions or None
        How to read a dataset file (:class:`~wpgdkit.datasets.files.DataOptions`).
    classes : tuple of str or None
        The classes of models that carry none (names or indices, in the
        model's output order); default all of the dataset's.
    model_dir, download, threat_model
        For ``robustbench:NAME`` models: where RobustBench keeps its
        checkpoints (default ``$WPGDKIT_MODEL_DIR``, else ``./models``),
        whether it may download a missing one, and its threat model (default:
        from ``norm``: Linf or L2).
    baseline : str or None
        Checkpoint whose natural confusion the accuracy gap is taken against
        (typically the cross-entropy model); need not be among ``checkpoints``.
    reference : str or None
        Checkpoint whose score is subtracted: ``score_delta = S − S_ref``
        (the paper sets the PGD model to 0).
    metric : str or None
        Label-metric file; default the first audited checkpoint that carries
        one, else the metric shipped for the dataset (WordNet, else linear).
    attack : str
        Attack registry name.
    eps, norm, step_size : optional
        The budget; default the ε and norm the (adversarially trained)
        checkpoints were trained with.
    eps_text : str or None
        ε as the user wrote it (``"8/255"``), for display.
    steps, restarts
        See :class:`~wpgdkit.attacks.ThreatModel`.
    attack_p, attack_lam
        p and λ of the ``wpgd`` attack (:class:`~wpgdkit.attacks.AttackConfig`).
    targets : int or None
        ``worst-cost``/``strong``: how many of each row's costliest classes to aim at.
    cost_threshold : float or None
        τ of the cost-sensitive robust error (Zhang & Evans 2019): the share of
        points the adversary sends to a class of cost ≥ τ. None: any positive
        cost of a binary metric, else the median off-diagonal cost
        (:func:`~wpgdkit.audit.scores.default_cost_threshold`).
    score_normalize : {"true", "all", "none"}
        Normalisation of S (:func:`~wpgdkit.audit.scores.weighted_score`).
    split : {"test", "train"}
    limit : int or None
        Audit the first N points of the split (of the checkpoints' classes).
    data_dir : str or None
    batch_size : int
    device : {"auto", "cpu", "cuda"}
    seed : int
        Seed of the random starts (restart r of batch b uses a seed mixed from
        (seed, r, b), identical for every model).
    bins : int
        Entropy histogram bins.
    memory_format : {"auto", "contiguous", "channels_last"}
        Layout of the attacked models and their inputs: ``auto`` measures,
        per architecture, whether channels-last is faster
        (:func:`~wpgdkit.models.layout.preferred_memory_format`); the others
        force one. The results agree to rounding either way; the layout used
        is recorded per model.
    early_stop : bool
        Stop attacking each point at its first mistake (``pgd`` only): fewer
        forward/backward passes, an AE at least that of the last iterate, and
        a weaker estimate of S (the first wrong class, not the last). Recorded
        in the JSON's ``attack.early_stop``.
    """

    checkpoints: tuple[str, ...] = ()
    model: Any = None
    dataset: str | None = None
    data_options: Any = None
    classes: tuple[str, ...] | None = None
    model_dir: str | None = None
    download: bool = False
    threat_model: str | None = None
    baseline: str | None = None
    reference: str | None = None
    metric: str | None = None
    attack: str = "pgd"
    eps: float | None = None
    norm: str | None = None
    step_size: float | None = None
    eps_text: str | None = None
    steps: int = 20
    restarts: int = 1
    targets: int | None = None
    cost_threshold: float | None = None
    attack_p: float = 1.0
    attack_lam: float = math.inf
    score_normalize: str = "true"
    split: str = "test"
    limit: int | None = None
    data_dir: str | None = None
    batch_size: int = 256
    device: str = "auto"
    seed: int = 0
    bins: int = 20
    memory_format: str = "auto"
    early_stop: bool = False


@dataclass
class ModelPredictions:
    """Raw outputs of one model on the audit points (all on the CPU)."""

    natural: Tensor          # (N,) predicted classes on clean inputs
    adversarial: Tensor      # (N,) predicted classes on adversarial inputs (None-free)
    natural_entropy: Tensor  # (N,) nats
    adversarial_entropy: Tensor
    # An ensemble adversary: each member's (N,) adversarial predictions, in the ensemble's order.
    members: dict[str, Tensor] = field(default_factory=dict)
    # The layout the model was attacked in ("contiguous", "channels_last"); None when it was not attacked.
    memory_format: str | None = None


@dataclass
class ModelAudit:
    """Everything measured for one model.

    Attributes
    ----------
    name, checkpoint : str
        A short name (the file's stem, made unique) and the path (or the
        model source's spec).
    method : str
        How it was trained (ce, pgd, wpgd), with ``p`` and ``train_eps``;
        ``external`` for a model wpgdkit did not train.
    natural_error, adversarial_error : float
        NE, AE in %.
    confusion_natural, confusion_adversarial : Tensor of shape (K, K), int64
        Counts; rows are true classes.
    gap : Tensor of shape (K, K) or None
        G = |C_model − C_baseline| of the row-normalised natural confusions.
    correlation : Correlation or None
        ρ(G, metric) over off-diagonal pairs.
    score, score_delta : float or None
        S (eq. 7, normalised) and S − S_reference.
    severity_natural, severity_adversarial : float or None
        Mean metric cost of the wrong predictions.
    predictions : ModelPredictions
    """

    name: str
    checkpoint: str
    method: str
    p: float | None
    train_eps: float | None
    natural_error: float
    adversarial_error: float
    confusion_natural: Tensor
    confusion_adversarial: Tensor
    predictions: ModelPredictions
    gap: Tensor | None = None
    correlation: Correlation | None = None
    score: float | None = None
    score_delta: float | None = None
    severity_natural: float | None = None
    severity_adversarial: float | None = None
    cost_sensitive_robust_error: float | None = None
    hdist_natural: float | None = None
    hdist_adversarial: float | None = None
    standard_errors: dict[str, Any] = field(default_factory=dict)
    memory_format: str | None = None


@dataclass
class AuditReport:
    """The result of :func:`audit`."""

    config: AuditConfig
    attack: AttackConfig
    dataset: str
    classes: tuple[str, ...]
    labels: Tensor
    metric: LabelMetric | None
    metric_origin: str | None
    models: list[ModelAudit] = field(default_factory=list)
    eps_units: str | None = None
    cost_threshold: float | None = None
    baseline: str | None = None
    reference: str | None = None
    baseline_natural_error: float | None = None
    reference_score: float | None = None

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def top_flips(self, model: ModelAudit, top: int = 5) -> list[dict[str, Any]]:
        """The adversary's most frequent directions for ``model`` (paper, Fig. 11), most frequent first.

        Returns
        -------
        flips : list of dict
            Up to ``top`` ordered pairs with a positive rate: ``from``, ``to``
            (class names), ``rate`` (share of the true class's points sent
            there) and ``cost`` (C[from, to], or None without a metric). Ties
            keep label order.
        """
        counts = model.confusion_adversarial.double()
        rates = counts / counts.sum(dim=1, keepdim=True).clamp_min(1)
        rates.fill_diagonal_(0.0)
        k = self.num_classes
        order = sorted(((float(rates[i, j]), i, j) for i in range(k) for j in range(k) if rates[i, j] > 0),
                       key=lambda t: -t[0])[:top]
        cost = self.metric.matrix if self.metric is not None else None
        return [{"from": self.classes[i], "to": self.classes[j], "rate": rate,
                 "cost": float(cost[i, j]) if cost is not None else None} for rate, i, j in order]

    def to_dict(self) -> dict[str, Any]:
        """The ``--json`` document (schema ``wpgdkit-audit/1``, documented in the README)."""
        models = [_model_dict(self, m) for m in self.models]
        doc: dict[str, Any] = {
            "schema": AUDIT_SCHEMA,
            "tool_version": __version__,
            "dataset": self.dataset,
            "split": self.config.split,
            "num_points": int(len(self.labels)),
            "class_counts": torch.bincount(self.labels, minlength=self.num_classes).tolist(),
            "classes": list(self.classes),
            "attack": self.attack.to_dict(),
            "eps_units": self.eps_units,
            "cost_threshold": self.cost_threshold if self.cost_threshold is not None
            and math.isfinite(self.cost_threshold) else None,
            "metric": None if self.metric is None else {
                "origin": self.metric_origin, "matrix": self.metric.matrix.tolist(),
                "provenance": self.metric.provenance.to_dict(),
            },
            "baseline": self.baseline,
            "reference": self.reference,
            "score_normalization": self.config.score_normalize,
            "seed": self.config.seed,
            "models": models,
        }
        if len(models) == 1:
            # One model: its record's keys also at the top level, so `jq .natural_error` works.
            doc.update({k: v for k, v in models[0].items() if k not in doc})
        return doc


class AuditProgress(Protocol):
    def start_model(self, name: str, batches: int) -> None: ...
    def advance(self) -> None: ...


def _tensor_list(t: Tensor | None) -> list | None:
    return None if t is None else t.tolist()


def _model_dict(report: AuditReport, m: ModelAudit) -> dict[str, Any]:
    k = report.num_classes
    p = m.predictions
    y = report.labels
    bins = report.config.bins
    entropy = {}
    for kind, values in (("natural", p.natural_entropy), ("adversarial", p.adversarial_entropy)):
        edges, counts = entropy_histogram(values, y, k, bins=bins)
        per_class = [float(values[y == i].mean()) if bool((y == i).any()) else None for i in range(k)]
        entropy[kind] = {"mean": float(values.mean()), "per_class_mean": per_class,
                         "histogram": {"bin_edges": edges.tolist(), "counts": counts.tolist()}}
    entropy["max"] = math.log(k)
    rates_adv = confusion_matrix(y, p.adversarial, k, normalize="true")
    return {
        "name": m.name,
        "checkpoint": m.checkpoint,
        "method": m.method,
        "p": m.p,
        "train_eps": m.train_eps,
        "natural_error": m.natural_error,
        "adversarial_error": m.adversarial_error,
        "confusion_natural": {"counts": m.confusion_natural.tolist(),
                              "rates": confusion_matrix(y, p.natural, k, normalize="true").tolist()},
        "confusion_adversarial": {"counts": m.confusion_adversarial.tolist(), "rates": rates_adv.tolist()},
        "per_class": _with_csre(per_class_errors(y, p.natural, p.adversarial, report.classes), report, p),
        "attack_members": member_comparison(y, p, report.metric, report.config.score_normalize),
        "directional_robustness": _directional(rates_adv, report.classes),
        "gap": _tensor_list(m.gap),
        "correlation": None if m.correlation is None else m.correlation.to_dict(),
        "score": m.score,
        "score_delta": m.score_delta,
        "mistake_severity": {"natural": m.severity_natural, "adversarial": m.severity_adversarial},
        "cost_sensitive_robust_error": m.cost_sensitive_robust_error,
        "hierarchical_distance_at_1": {"natural": m.hdist_natural, "adversarial": m.hdist_adversarial},
        "standard_errors": m.standard_errors,
        "memory_format": m.memory_format,
        "entropy": entropy,
    }


def _with_csre(rows: list[dict[str, Any]], report: AuditReport, p: ModelPredictions) -> list[dict[str, Any]]:
    """Per class, the cost-sensitive robust error too (null without a metric, or for a class with no costly mistake)."""
    if report.metric is None or report.cost_threshold is None:
        return rows
    cost = torch.tensor(report.metric.matrix, dtype=torch.float64)
    values = cost_sensitive_robust_error_per_class(report.labels, p.adversarial, cost, threshold=report.cost_threshold)
    for row, value in zip(rows, values.tolist()):
        row["cost_sensitive_robust_error"] = None if math.isnan(value) else value
    return rows


def member_comparison(y: Tensor, predictions: ModelPredictions, metric: LabelMetric | None,
                      normalize: str) -> list[dict[str, Any]] | None:
    """AE and S of each member of an ensemble adversary, and where a later (stronger) member found less.

    Returns
    -------
    members : list of dict or None
        In the ensemble's order: ``name``, ``adversarial_error`` (%), ``score``
        (S, or None without a metric) and ``weaker_than`` — for each earlier
        member, the number of points on which it reached a costlier class (or
        fooled the model where this one did not). The ensemble keeps each
        point's worst, so it never reports less than any member. None when the
        adversary is not an ensemble.
    """
    if not predictions.members:
        return None
    k = int(max(int(y.max()), *(int(p.max()) for p in predictions.members.values()))) + 1
    cost = torch.tensor(metric.matrix, dtype=torch.float64) if metric is not None else None
    if cost is not None:
        k = cost.shape[0]
    names = list(predictions.members)
    damage = {}
    for name, pred in predictions.members.items():
        fooled = pred != y
        reached = cost[y, pred.clamp_min(0)] * fooled if cost is not None else torch.zeros(len(y), dtype=torch.float64)
        damage[name] = (fooled, reached)
    out = []
    for j, name in enumerate(names):
        pred = predictions.members[name]
        record: dict[str, Any] = {
            "name": name, "adversarial_error": error_rate(y, pred),
            "score": weighted_score(confusion_matrix(y, pred, k), cost, normalize=normalize) if cost is not None else None,
            "weaker_than": {},
        }
        fooled_j, cost_j = damage[name]
        for earlier in names[:j]:
            fooled_i, cost_i = damage[earlier]
            more = (cost_i > cost_j) | ((cost_i == cost_j) & fooled_i & ~fooled_j)
            record["weaker_than"][earlier] = int(more.sum())
        out.append(record)
    return out


def per_class_errors(y: Tensor, natural: Tensor, adversarial: Tensor, classes: tuple[str, ...]) -> list[dict[str, Any]]:
    """NE and AE (%) of each true class, with its point count; None for a class with no points."""
    out = []
    for i, name in enumerate(classes):
        members = y == i
        n = int(members.sum())
        out.append({"class": name, "points": n,
                    "natural_error": error_rate(y[members], natural[members]) if n else None,
                    "adversarial_error": error_rate(y[members], adversarial[members]) if n else None})
    return out


def _directional(rates: Tensor, classes: tuple[str, ...]) -> list[dict[str, Any]]:
    """Per ordered pair (k, k'), k ≠ k': the share of class-k points the adversary sends to k' (Fig. 11)."""
    k = len(classes)
    return [{"from": classes[i], "to": classes[j], "rate": float(rates[i, j])}
            for i in range(k) for j in range(k) if i != j]


# --- loading --------------------------------------------------------------------------


def _resolve_metric(metric_file: str | None, subjects: list[AuditSubject],
                    data: AuditData) -> tuple[LabelMetric | None, str | None]:
    """The metric: ``metric_file``, else the first checkpoint's, else the dataset's shipped one; over the audit's classes."""
    from wpgdkit.labelmetric import read_metric, validate_metric
    from wpgdkit.labelmetric.align import align_metric, shipped_metric_file
    from wpgdkit.resources import metrics_dir

    if metric_file is not None:
        metric, origin = read_metric(metric_file), str(metric_file)
    else:
        carried = next((s for s in subjects if s.checkpoint is not None and s.checkpoint.metric is not None), None)
        if carried is not None:
            metric, origin = carried.checkpoint.metric, f"checkpoint {carried.path}"
        else:
            file = shipped_metric_file(data.dataset)
            if file is None:
                return None, None
            metric, origin = read_metric(file), f"shipped {file.relative_to(metrics_dir())}"
    return _align(metric, data, origin), origin


def _align(metric: LabelMetric, data: AuditData, origin: str) -> LabelMetric:
    from wpgdkit.labelmetric import validate_metric
    from wpgdkit.labelmetric.align import align_metric

    validate_metric(metric, allow_asymmetric=True)
    return align_metric(metric, data.classes, data.dataset_classes, origin=f"the metric from {origin}")


def _attack_config(config: AuditConfig, subjects: list[AuditSubject], data: AuditData) -> AttackConfig:
    """The budget from the parameters, else from the adversarially trained checkpoints."""
    checkpoints = [s for s in subjects if s.checkpoint is not None]
    trained = [s for s in checkpoints if s.checkpoint.method != "ce"] or checkpoints
    eps, norm = config.eps, config.norm
    if eps is None and not trained:
        raise WpgdkitError("a model from outside wpgdkit carries no training budget: give one (eps), e.g. 8/255, "
                           "and its norm if not linf (norm)")
    if eps is None or norm is None:
        budgets = {(s.checkpoint.threat.eps, s.checkpoint.threat.norm) for s in trained}
        if not budgets:
            budgets = {(eps, "linf")}
        if len(budgets) > 1:
            listed = ", ".join(f"{n} ε={e:g}" for e, n in sorted(budgets))
            raise WpgdkitError(f"the checkpoints were trained with different budgets ({listed}); give eps and norm")
        (train_eps, train_norm), = budgets
        eps = train_eps if eps is None else eps
        norm = train_norm if norm is None else norm
    threat = ThreatModel(eps=eps, step_size=config.step_size, steps=config.steps, norm=norm, restarts=config.restarts,
                         bounds=data.input_range, eps_text=config.eps_text if config.eps is not None else None)
    threat.check_inputs(data.input_shape)
    return AttackConfig(config.attack, threat, p=config.attack_p, lam=config.attack_lam, targets=config.targets,
                        early_stop=config.early_stop)


#: The valid range of every number of :class:`AuditConfig`, written once (the messages name the flags).
#: Counts stop at 2**31 - 1: far above any real audit, and within what torch indexes with.
_COUNT = Range(1, 2**31 - 1, integer=True)
AUDIT_RANGES: dict[str, Range] = {
    "steps": _COUNT,
    "restarts": Range(1, 10_000, integer=True),
    "batch_size": _COUNT,
    "limit": _COUNT,
    "targets": _COUNT,
    "cost_threshold": Range(0, None, low_open=True),
    "bins": Range(1, 100_000, integer=True),
    "attack_p": Range(0, None, low_open=True),
    "attack_lam": Range(0, None, low_open=True, allow_inf=True),
    "eps": Range(0, None, low_open=True),
    "step_size": Range(0, None, low_open=True),
}


def _validate(config: AuditConfig) -> None:
    """Every number in its range and every input file a readable file, before any model is loaded."""
    if not config.checkpoints and config.model is None:
        raise WpgdkitError("give at least one model to audit: a checkpoint or model file, or --model")
    _validate_settings(config)
    # A folder, a missing or unreadable file: one line saying which, not "not found" for a folder.
    for path in config.checkpoints:
        input_file(path, what="model file")
    for role in ("baseline", "reference"):
        if getattr(config, role) is not None:
            input_file(getattr(config, role), what=f"--{role} model file")
    if config.metric is not None:
        input_file(config.metric, what="--metric file")


def _validate_settings(config: AuditConfig) -> None:
    if config.score_normalize not in SCORE_NORMALIZATIONS:
        raise WpgdkitError(f"unknown score normalisation {config.score_normalize!r}; "
                           f"choose one of: {', '.join(SCORE_NORMALIZATIONS)}")
    for name, valid in AUDIT_RANGES.items():
        value = getattr(config, name)
        if value is not None or name in ("steps", "restarts", "batch_size", "bins", "attack_p", "attack_lam"):
            check_number(name, value, valid)
    check_seed("seed", config.seed)
    if config.split not in ("train", "test"):
        raise WpgdkitError(f"unknown split {config.split!r}; choose one of: train, test")
    from wpgdkit.attacks import get_attack
    from wpgdkit.attacks.catalog import check_early_stop
    from wpgdkit.models.layout import MEMORY_FORMATS

    get_attack(config.attack)
    if config.memory_format not in MEMORY_FORMATS:
        raise WpgdkitError(f"unknown memory format {config.memory_format!r}; choose one of: {', '.join(MEMORY_FORMATS)}")
    if not isinstance(config.early_stop, bool):
        raise WpgdkitError(f"early_stop must be True or False, got {config.early_stop!r}")
    if config.early_stop:
        check_early_stop(config.attack)


def _check_layout(config: AuditConfig, data: AuditData) -> None:
    """Forced channels-last needs images; refused before any model is built."""
    if config.memory_format == "channels_last" and len(data.input_shape) != 3:
        raise WpgdkitError(f"memory format channels_last needs images (C, H, W); these inputs are "
                           f"{len(data.input_shape) + 1}-D batches: use contiguous or auto")


# --- running --------------------------------------------------------------------------


def _predict(model, x: Tensor, y: Tensor, attack, *, batch_size: int, seed: int, device: torch.device,
             progress: AuditProgress | None,
             memory_format: torch.memory_format | None = None) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Clean and adversarial predictions and entropies over all points, batch by batch."""
    from wpgdkit.models.layout import to_memory_format
    from wpgdkit.training.data import batch_seed

    outputs: list[list[Tensor]] = [[], [], [], []]
    members: dict[str, list[Tensor]] = {}
    for index, start in enumerate(range(0, len(x), batch_size)):
        xb = x[start:start + batch_size].to(device)
        if memory_format is not None:
            xb = to_memory_format(xb, memory_format)
        yb = y[start:start + batch_size].to(device)
        with torch.no_grad():
            clean = model(xb)
        if attack is not None:
            # Restart r of batch b starts from a seed of (seed, r, b): every model faces the same starts.
            seeds = [batch_seed(seed, restart, index, 3) for restart in range(attack.threat.restarts)]
            x_adv = attack(xb, yb, seeds=seeds)
            with torch.no_grad():
                adv = model(x_adv)
            result = getattr(attack, "last_result", None)
            for outcome in (result.members if result is not None else ()):
                members.setdefault(outcome.name, []).append(outcome.prediction.detach().cpu())
        else:
            adv = clean
        for out, value in zip(outputs, (clean.argmax(1), adv.argmax(1), prediction_entropy(clean),
                                        prediction_entropy(adv))):
            out.append(value.detach().cpu())
        if progress is not None:
            progress.advance()
    return (*(torch.cat(parts) for parts in outputs), {name: torch.cat(parts) for name, parts in members.items()})


def audit(config: AuditConfig, *, progress: AuditProgress | None = None) -> AuditReport:
    """Audit one or more models against one adversary and one label metric.

    Parameters
    ----------
    config : AuditConfig
    progress : keyword-only, optional
        Reporter with ``start_model(name, batches)`` and ``advance()``.

    Returns
    -------
    report : AuditReport
        Per model: NE, AE (overall and per class), confusion matrices, the gap
        to the baseline and its correlation with the metric, S and
        S − S_ref, mistake severity and prediction entropies.

    Raises
    ------
    WpgdkitError
        For unreadable model files, checkpoints of different datasets or
        classes, a model that does not fit the data, a metric over other
        classes, missing dataset or ε for a foreign model, or bad settings.
    """
    from wpgdkit.training.data import load_eval_split

    _validate(config)
    subjects = [load_subject(path) for path in config.checkpoints]
    if config.model is not None and not _only_grants_import(config.model, subjects):
        subjects.append(subject_from_source(config.model))
    unique_names(subjects)
    first = subjects[0]
    for item in subjects[1:]:
        check_compatible(first, item, "model")
    extra: dict[str, AuditSubject] = {}
    for role, path in (("baseline", config.baseline), ("reference", config.reference)):
        if path is None:
            continue
        match = next((item for item in subjects if item.kind != "source" and same_file(item.path, path)), None)
        if match is None:
            match = load_subject(path)
            match.name = f"{role}:{match.name}"
            check_compatible(first, match, f"--{role}")
        extra[role] = match
    data = resolve_data(subjects + list(extra.values()), dataset=config.dataset, options=config.data_options,
                        classes=config.classes)
    attack = _attack_config(config, subjects + list(extra.values()), data)
    _check_layout(config, data)
    metric, origin = _resolve_metric(config.metric, subjects, data)
    if attack.entry.needs_metric and metric is None:
        raise WpgdkitError(f"the {attack.name} attack needs a label metric and none was found; give one (metric)")
    attack.check()
    x, y = load_eval_split(data.dataset, data.class_indices, split=config.split, data_dir=config.data_dir,
                           limit=config.limit, seed=data.seed)
    return _run(config, subjects, extra, data, attack, metric, origin, x, y, progress=progress)


def _only_grants_import(source: Any, subjects: list[AuditSubject]) -> bool:
    """``--model SPEC`` without weights that names the code of an audited checkpoint: permission, not a model.

    A checkpoint trained with the user's own module imports it only when the
    user names it again; that ``--model`` must not add an untrained copy of the
    network to the audit.
    """
    if source.weights:
        return False
    from wpgdkit.models.foreign import same_model_code

    return any(s.checkpoint is not None and s.checkpoint.model.runs_user_code
               and same_model_code(s.checkpoint.model.source.get("spec", ""), source.spec) for s in subjects)


#: On a CPU the layout is measured on this many points at most (a Wide ResNet takes seconds per pass there).
LAYOUT_TRIAL_POINTS = 32


def _attack_layout(config: AuditConfig, model, x: Tensor, device: torch.device) -> torch.memory_format:
    """The layout ``config.memory_format`` means for this model: measured on the first points (``auto``), or forced."""
    from wpgdkit.models.layout import resolve_memory_format

    n = min(config.batch_size, len(x))
    if device.type != "cuda":
        n = min(n, LAYOUT_TRIAL_POINTS)
    return resolve_memory_format(config.memory_format, model, x[:n].to(device))


def _run(config: AuditConfig, subjects: list[AuditSubject], extra: dict[str, AuditSubject], data: AuditData,
         attack: AttackConfig, metric: LabelMetric | None, origin: str | None, x: Tensor, y: Tensor, *,
         progress: AuditProgress | None) -> AuditReport:
    """Attack every model once (the reference too; the baseline needs no attack) and measure."""
    from wpgdkit.allocator import retain_freed_memory
    from wpgdkit.attacks import create_attack
    from wpgdkit.device import resolve_device
    from wpgdkit.models.layout import memory_format_applied, memory_format_name

    device = resolve_device(config.device)
    k = len(data.classes)
    cost64 = torch.tensor(metric.matrix, dtype=torch.float64) if metric is not None else None
    jobs: list[tuple[AuditSubject, bool]] = [(item, True) for item in subjects]
    if "reference" in extra and all(extra["reference"] is not item for item in subjects):
        jobs.append((extra["reference"], True))
    if "baseline" in extra and all(extra["baseline"] is not job for job, _ in jobs):
        jobs.append((extra["baseline"], False))
    predictions: dict[int, ModelPredictions] = {}
    n_batches = math.ceil(len(x) / config.batch_size)
    robustbench = _robustbench_options(config, data, attack)
    # The attack's activations are reused from step to step rather than handed back to the OS (page faults).
    with retain_freed_memory():
        for item, attacked in jobs:
            model = item.build(device, num_classes=k, input_shape=tuple(x.shape[1:]), trusted_source=config.model,
                               robustbench_options=robustbench)
            fmt = _attack_layout(config, model, x, device) if attacked else torch.contiguous_format
            # A model the caller owns (audit_model) gets its own layout back afterwards.
            with memory_format_applied(model, fmt):
                adversary = create_attack(attack, model, metric=metric) if attacked else None
                if progress is not None:
                    progress.start_model(item.name, n_batches)
                *outs, members = _predict(model, x, y, adversary, batch_size=config.batch_size, seed=config.seed,
                                          device=device, progress=progress, memory_format=fmt)
            predictions[id(item)] = ModelPredictions(*outs, members=members,
                                                     memory_format=memory_format_name(fmt) if attacked else None)
            del model, adversary

    report = AuditReport(config=config, attack=attack, dataset=data.dataset, classes=data.classes, labels=y,
                         metric=metric, metric_origin=origin, eps_units=data.eps_units,
                         baseline=extra["baseline"].path if "baseline" in extra else None,
                         reference=extra["reference"].path if "reference" in extra else None)
    baseline_rates = None
    if "baseline" in extra:
        base = predictions[id(extra["baseline"])]
        baseline_rates = confusion_matrix(y, base.natural, k, normalize="true")
        report.baseline_natural_error = error_rate(y, base.natural)
    if cost64 is not None:
        report.cost_threshold = (float(config.cost_threshold) if config.cost_threshold is not None
                                 else default_cost_threshold(cost64))
    if "reference" in extra and cost64 is not None:
        ref = predictions[id(extra["reference"])]
        report.reference_score = weighted_score(confusion_matrix(y, ref.adversarial, k), cost64,
                                                normalize=config.score_normalize)
    for item in subjects:
        report.models.append(_measure(item, predictions[id(item)], y, k, cost64, baseline_rates, report, config))
    return report


def _robustbench_options(config: AuditConfig, data: AuditData, attack: AttackConfig) -> dict[str, Any] | None:
    """RobustBench's dataset and threat model from the audit's, for a ``robustbench:NAME`` model."""
    if config.model is None or config.model.kind() != "robustbench":
        return None
    from wpgdkit.models.robustbench import robustbench_threat_for

    threat_model = config.threat_model or robustbench_threat_for(attack.threat.norm)
    return {"dataset": data.dataset, "threat_model": threat_model, "model_dir": config.model_dir,
            "download": config.download}


def audit_model(
    model: Any,
    data: Any,
    *,
    metric: LabelMetric | str | None = None,
    attack: AttackConfig | ThreatModel | None = None,
    baseline: Any = None,
    reference: Any = None,
    classes: Sequence[str] | None = None,
    split: str = "test",
    limit: int | None = None,
    batch_size: int = 256,
    device: str = "auto",
    seed: int = 0,
    score_normalize: str = "true",
    bins: int = 20,
    data_options: Any = None,
    memory_format: str = "auto",
    progress: AuditProgress | None = None,
) -> AuditReport:
    """Audit models that exist only in Python (a notebook's ``nn.Module``): the record ``wpgdkit audit`` writes.

    Parameters
    ----------
    model : torch.nn.Module, or dict of str to torch.nn.Module
        The model(s) to audit. Each maps pixel-space inputs ``(N, *input_shape)``
        (inside the data's bounds, e.g. [0, 1] images) to logits ``(N, K)``;
        a model that expects normalised inputs must normalise itself (wrap it
        with :class:`~wpgdkit.models.Normalize`). A dict names them.
    data : (Tensor, Tensor), str or DatasetSpec
        ``(x, y)``: inputs ``(N, *input_shape)`` and labels ``(N,)`` in 0..K−1;
        or a dataset (a registry name, a ``.npz``/``.csv`` file,
        ``imagefolder:PATH``, or a spec) whose ``split`` is audited.
    metric : LabelMetric or str, keyword-only, optional
        The label metric C (K, K) (or a metric file); needed for S, ρ and the
        ``wpgd``/``cost-targeted`` attacks. Default: the dataset's shipped one, if any.
    attack : AttackConfig or ThreatModel, keyword-only
        The adversary; a :class:`~wpgdkit.attacks.ThreatModel` means PGD on
        cross-entropy with that budget. Its ``bounds`` are replaced by the data's.
    baseline, reference : str or torch.nn.Module, keyword-only, optional
        The model the accuracy gap is taken against, and the one whose S is
        subtracted (paper: the CE and PGD models): a name from ``model``'s dict
        or another module.
    classes : sequence of str, keyword-only, optional
        Class names for ``(x, y)`` data (default: the metric's, else "0".."K−1");
        for a dataset, a subset of its classes in the model's output order.
    split, limit, batch_size, device, seed, score_normalize, bins, data_options, memory_format : keyword-only
        As in :class:`AuditConfig`. The models' own layout is put back after
        the audit; early stop comes with ``attack`` (``AttackConfig(...,
        early_stop=True)``).
    progress : keyword-only, optional

    Returns
    -------
    report : AuditReport
        ``report.to_dict()`` is the ``wpgdkit audit --json`` document
        (schema ``wpgdkit-audit/1``); models are marked ``method: "external"``.

    Raises
    ------
    WpgdkitError
        For data or a model that do not fit each other, a metric over other
        classes, a missing attack, or settings out of range.

    Examples
    --------
    >>> from wpgdkit import audit_model, ThreatModel  # doctest: +SKIP
    >>> report = audit_model({"mine": net}, (x_test, y_test), metric="metrics/cifar10-wordnet.csv",
    ...                      attack=ThreatModel(eps=8/255, steps=20))
    >>> report.to_dict()["models"][0]["adversarial_error"]
    """
    from wpgdkit.attacks import AttackConfig as _AttackConfig

    if attack is None:
        raise WpgdkitError("give attack: an AttackConfig, or a ThreatModel for PGD on cross-entropy "
                           "(e.g. ThreatModel(eps=8/255, steps=20))")
    if isinstance(attack, ThreatModel):
        attack = _AttackConfig("pgd", attack)
    if not isinstance(attack, _AttackConfig):
        raise WpgdkitError(f"attack must be an AttackConfig or a ThreatModel, got {type(attack).__name__}")
    models = dict(model) if isinstance(model, dict) else {getattr(model, "model_name", None) or "model": model}
    if not models:
        raise WpgdkitError("give at least one model to audit")
    subjects = [subject_from_module(m, str(name)) for name, m in models.items()]
    unique_names(subjects)
    extra = {role: _role_subject(role, value, subjects) for role, value in
             (("baseline", baseline), ("reference", reference)) if value is not None}
    threat = attack.threat
    config = AuditConfig(checkpoints=tuple(s.name for s in subjects), attack=attack.name, eps=threat.eps,
                         norm=threat.norm, step_size=threat.step_size, eps_text=threat.eps_text, steps=threat.steps,
                         restarts=threat.restarts, targets=attack.targets, attack_p=attack.p, attack_lam=attack.lam,
                         score_normalize=score_normalize, split=split, limit=limit, batch_size=batch_size,
                         device=device, seed=seed, bins=bins, memory_format=memory_format,
                         early_stop=attack.early_stop,
                         baseline=extra["baseline"].path if "baseline" in extra else None,
                         reference=extra["reference"].path if "reference" in extra else None)
    _validate_settings(config)
    resolved, x, y = _python_data(data, metric, classes, split=split, limit=limit, seed=seed, options=data_options)
    if isinstance(metric, (str, os.PathLike)):
        from wpgdkit.labelmetric import read_metric

        metric_value, origin = _align(read_metric(metric), resolved, str(metric)), str(metric)
    elif metric is not None:
        metric_value, origin = _align(metric, resolved, "the metric given"), "the metric given"
    elif isinstance(data, tuple):
        metric_value, origin = None, None
    else:
        metric_value, origin = _resolve_metric(None, subjects, resolved)
    attack = _AttackConfig(attack.name, threat.replace(bounds=resolved.input_range), p=attack.p, lam=attack.lam,
                           targets=attack.targets, early_stop=attack.early_stop)
    attack.threat.check_inputs(resolved.input_shape)
    _check_layout(config, resolved)
    if attack.entry.needs_metric and metric_value is None:
        raise WpgdkitError(f"the {attack.name} attack needs a label metric; give metric")
    attack.check()
    return _run(config, subjects, extra, resolved, attack, metric_value, origin, x, y, progress=progress)


def _role_subject(role: str, value: Any, subjects: list[AuditSubject]) -> AuditSubject:
    if isinstance(value, str):
        match = next((s for s in subjects if s.name == value), None)
        if match is None:
            raise WpgdkitError(f"{role} {value!r} is not one of the audited models ({', '.join(s.name for s in subjects)})")
        return match
    match = next((s for s in subjects if s.module is value), None)
    return match if match is not None else subject_from_module(value, role)


def _python_data(data: Any, metric: Any, classes: Sequence[str] | None, *, split: str, limit: int | None, seed: int,
                 options: Any) -> tuple[AuditData, Tensor, Tensor]:
    """:class:`AuditData` and the points, from ``(x, y)`` tensors or a dataset."""
    from wpgdkit.training.data import load_eval_split

    if isinstance(data, tuple):
        return _tensor_data(data, metric, classes, limit=limit)
    name = getattr(data, "name", data)
    if not isinstance(name, str):
        raise WpgdkitError(f"data must be (x, y) tensors, a dataset name or file, or a DatasetSpec; "
                           f"got {type(data).__name__}")
    spec_classes = tuple(classes) if classes else None
    resolved = resolve_data([], dataset=name, options=options, classes=spec_classes)
    x, y = load_eval_split(resolved.dataset, resolved.class_indices, split=split, limit=limit, seed=seed)
    return resolved, x, y


def _tensor_data(data: tuple, metric: Any, classes: Sequence[str] | None, *,
                 limit: int | None) -> tuple[AuditData, Tensor, Tensor]:
    if len(data) != 2:
        raise WpgdkitError(f"data as a tuple must be (x, y), got {len(data)} items")
    x, y = (torch.as_tensor(v) for v in data)
    if not x.is_floating_point():
        raise WpgdkitError(f"x must hold floating-point inputs, got {x.dtype}")
    if y.dim() != 1 or len(y) != len(x) or len(x) == 0:
        raise WpgdkitError(f"x and y must hold the same positive number of points (x {tuple(x.shape)}, "
                           f"y {tuple(y.shape)})")
    if y.is_floating_point() and not bool((y == y.round()).all()):
        raise WpgdkitError("y must hold integer class labels")
    y = y.to(torch.int64)
    if not bool(torch.isfinite(x).all()):
        raise WpgdkitError("x holds NaN or infinite values")
    if classes is None and metric is not None and not isinstance(metric, (str, os.PathLike)):
        classes = metric.classes
    k = len(classes) if classes is not None else int(y.max()) + 1
    if int(y.min()) < 0 or int(y.max()) >= k:
        raise WpgdkitError(f"labels must be in 0..{k - 1} ({k} classes), got {int(y.min())}..{int(y.max())}")
    names = tuple(str(c) for c in classes) if classes is not None else tuple(str(i) for i in range(k))
    if limit is not None:
        x, y = x[:limit], y[:limit]
    low, high = float(x.min()), float(x.max())
    # Images in [0, 1] keep the usual pixel bounds; other data is left unbounded.
    bounds = (0.0, 1.0) if 0.0 <= low and high <= 1.0 and x.dim() >= 3 else None
    resolved = AuditData(dataset="tensors", classes=names, class_indices=tuple(range(k)), dataset_classes=names,
                         input_shape=tuple(x.shape[1:]), input_range=bounds,
                         eps_units="pixel intensity in [0, 1]" if bounds else "the inputs' own units")
    return resolved, x.float(), y


def _measure(item: AuditSubject, pred: ModelPredictions, y: Tensor, k: int, cost: Tensor | None,
             baseline_rates: Tensor | None, report: AuditReport, config: AuditConfig) -> ModelAudit:
    run = item.checkpoint.settings if item.checkpoint is not None else None
    method = item.method
    m = ModelAudit(
        name=item.name, checkpoint=item.path, method=method,
        p=run.p if run is not None and method in METRIC_METHODS else None,
        train_eps=run.threat.eps if run is not None and method != "ce" else None,
        natural_error=error_rate(y, pred.natural), adversarial_error=error_rate(y, pred.adversarial),
        confusion_natural=confusion_matrix(y, pred.natural, k),
        confusion_adversarial=confusion_matrix(y, pred.adversarial, k),
        predictions=pred, memory_format=pred.memory_format,
    )
    if baseline_rates is not None:
        m.gap = accuracy_gap(confusion_matrix(y, pred.natural, k, normalize="true"), baseline_rates)
        if cost is not None and k >= 3:
            m.correlation = gap_correlation(m.gap, cost)
    if cost is not None:
        m.score = weighted_score(m.confusion_adversarial, cost, normalize=config.score_normalize)
        if report.reference_score is not None:
            m.score_delta = m.score - report.reference_score
        m.severity_natural = _none_if_nan(mistake_severity(y, pred.natural, cost))
        m.severity_adversarial = _none_if_nan(mistake_severity(y, pred.adversarial, cost))
        m.hdist_natural = _none_if_nan(hierarchical_distance_at_1(y, pred.natural, cost))
        m.hdist_adversarial = _none_if_nan(hierarchical_distance_at_1(y, pred.adversarial, cost))
        m.cost_sensitive_robust_error = _none_if_nan(cost_sensitive_robust_error(
            y, pred.adversarial, cost, threshold=report.cost_threshold))
    m.standard_errors = _standard_errors(m, y, cost, report, config)
    return m


def _standard_errors(m: ModelAudit, y: Tensor, cost: Tensor | None, report: AuditReport,
                     config: AuditConfig) -> dict[str, Any]:
    """Binomial standard errors of the rates, and S's from the confusion counts (one test set; seeds not included)."""
    n = len(y)
    out: dict[str, Any] = {"natural_error": _none_if_nan(binomial_standard_error(m.natural_error, n)),
                           "adversarial_error": _none_if_nan(binomial_standard_error(m.adversarial_error, n))}
    if cost is None:
        return out
    tau = report.cost_threshold
    seeded = int(seed_classes(cost, threshold=tau)[y].sum()) if tau is not None and math.isfinite(tau) else 0
    out.update(
        score=_none_if_nan(score_standard_error(m.confusion_adversarial, cost, normalize=config.score_normalize)),
        cost_sensitive_robust_error=(_none_if_nan(binomial_standard_error(m.cost_sensitive_robust_error, seeded))
                                     if m.cost_sensitive_robust_error is not None else None),
        hierarchical_distance_at_1={
            "natural": _none_if_nan(score_standard_error(m.confusion_natural, cost, normalize="all")),
            "adversarial": _none_if_nan(score_standard_error(m.confusion_adversarial, cost, normalize="all"))},
    )
    return out


def _none_if_nan(value: float) -> float | None:
    return None if math.isnan(value) else value
