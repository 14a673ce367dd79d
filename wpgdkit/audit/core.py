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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import Tensor

from wpgdkit import __version__
from wpgdkit.attacks import AttackConfig, ThreatModel
from wpgdkit.audit.scores import (
    SCORE_NORMALIZATIONS,
    accuracy_gap,
    confusion_matrix,
    entropy_histogram,
    error_rate,
    gap_correlation,
    mistake_severity,
    prediction_entropy,
    weighted_score,
)
from wpgdkit.checkpoint import Checkpoint
from wpgdkit.errors import WpgdkitError
from wpgdkit.inputs import Range, check_number, check_seed, input_file
from wpgdkit.labelmetric.compare import Correlation
from wpgdkit.labelmetric.core import LabelMetric

__all__ = ["AuditConfig", "ModelPredictions", "ModelAudit", "AuditReport", "audit", "AUDIT_SCHEMA"]

AUDIT_SCHEMA = "wpgdkit-audit/1"


@dataclass(frozen=True)
class AuditConfig:
    """Everything ``wpgdkit audit`` needs.

    Attributes
    ----------
    checkpoints : tuple of str
        The models to audit (all trained on the same dataset and classes).
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
    """

    checkpoints: tuple[str, ...]
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


@dataclass
class ModelPredictions:
    """Raw outputs of one model on the audit points (all on the CPU)."""

    natural: Tensor          # (N,) predicted classes on clean inputs
    adversarial: Tensor      # (N,) predicted classes on adversarial inputs (None-free)
    natural_entropy: Tensor  # (N,) nats
    adversarial_entropy: Tensor


@dataclass
class ModelAudit:
    """Everything measured for one model.

    Attributes
    ----------
    name, checkpoint : str
        A short name (the file's stem, made unique) and the path.
    method : str
        How it was trained (ce, pgd, wpgd), with ``p`` and ``train_eps``.
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
        "directional_robustness": _directional(rates_adv, report.classes),
        "gap": _tensor_list(m.gap),
        "correlation": None if m.correlation is None else m.correlation.to_dict(),
        "score": m.score,
        "score_delta": m.score_delta,
        "mistake_severity": {"natural": m.severity_natural, "adversarial": m.severity_adversarial},
        "entropy": entropy,
    }


def _directional(rates: Tensor, classes: tuple[str, ...]) -> list[dict[str, Any]]:
    """Per ordered pair (k, k'), k ≠ k': the share of class-k points the adversary sends to k' (Fig. 11)."""
    k = len(classes)
    return [{"from": classes[i], "to": classes[j], "rate": float(rates[i, j])}
            for i in range(k) for j in range(k) if i != j]


# --- loading --------------------------------------------------------------------------


@dataclass
class _Loaded:
    path: str
    name: str
    checkpoint: Checkpoint


def _load(path: str) -> _Loaded:
    from wpgdkit.checkpoint import load_checkpoint

    return _Loaded(path=str(path), name=Path(path).stem, checkpoint=load_checkpoint(path))


def _same_file(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return Path(a).resolve() == Path(b).resolve()


def _check_compatible(first: _Loaded, other: _Loaded, role: str) -> None:
    a, b = first.checkpoint.data, other.checkpoint.data
    if a.dataset != b.dataset:
        raise WpgdkitError(f"{role} {other.path} was trained on {b.dataset}, but {first.path} on {a.dataset}")
    if a.classes != b.classes:
        raise WpgdkitError(f"{role} {other.path} was trained on other classes than {first.path} "
                           f"({', '.join(b.classes[:4])}, ... vs {', '.join(a.classes[:4])}, ...)")


def _unique_names(loaded: list[_Loaded]) -> None:
    seen: dict[str, int] = {}
    for item in loaded:
        count = seen.get(item.name, 0)
        seen[item.name] = count + 1
        if count:
            item.name = f"{item.name}-{count + 1}"


def _resolve_metric(config: AuditConfig, loaded: list[_Loaded]) -> tuple[LabelMetric | None, str | None]:
    """The metric: ``config.metric``, else the first checkpoint's, else the dataset's shipped one; over the run's classes."""
    from wpgdkit.datasets import get_dataset
    from wpgdkit.labelmetric import read_metric, validate_metric
    from wpgdkit.labelmetric.align import align_metric, shipped_metric_file
    from wpgdkit.resources import metrics_dir

    data = loaded[0].checkpoint.data
    if config.metric is not None:
        metric, origin = read_metric(config.metric), str(config.metric)
    else:
        carried = next((item for item in loaded if item.checkpoint.metric is not None), None)
        if carried is not None:
            metric, origin = carried.checkpoint.metric, f"checkpoint {carried.path}"
        else:
            file = shipped_metric_file(data.dataset)
            if file is None:
                return None, None
            metric, origin = read_metric(file), f"shipped {file.relative_to(metrics_dir())}"
    validate_metric(metric, allow_asymmetric=True)
    return align_metric(metric, data.classes, get_dataset(data.dataset).classes, origin=f"the metric from {origin}"), origin


def _attack_config(config: AuditConfig, loaded: list[_Loaded]) -> AttackConfig:
    """The budget from the parameters, else from the adversarially trained checkpoints."""
    trained = [item for item in loaded if item.checkpoint.method != "ce"] or loaded
    eps, norm = config.eps, config.norm
    if eps is None or norm is None:
        budgets = {(item.checkpoint.threat.eps, item.checkpoint.threat.norm) for item in trained}
        if len(budgets) > 1:
            listed = ", ".join(f"{n} ε={e:g}" for e, n in sorted(budgets))
            raise WpgdkitError(f"the checkpoints were trained with different budgets ({listed}); give eps and norm")
        (train_eps, train_norm), = budgets
        eps = train_eps if eps is None else eps
        norm = train_norm if norm is None else norm
    threat = ThreatModel(eps=eps, step_size=config.step_size, steps=config.steps, norm=norm, restarts=config.restarts,
                         bounds=loaded[0].checkpoint.data.input_range,
                         eps_text=config.eps_text if config.eps is not None else None)
    return AttackConfig(config.attack, threat, p=config.attack_p, lam=config.attack_lam)


#: The valid range of every number of :class:`AuditConfig`, written once (the messages name the flags).
#: Counts stop at 2**31 - 1: far above any real audit, and within what torch indexes with.
_COUNT = Range(1, 2**31 - 1, integer=True)
AUDIT_RANGES: dict[str, Range] = {
    "steps": _COUNT,
    "restarts": Range(1, 10_000, integer=True),
    "batch_size": _COUNT,
    "limit": _COUNT,
    "bins": Range(1, 100_000, integer=True),
    "attack_p": Range(0, None, low_open=True),
    "attack_lam": Range(0, None, low_open=True, allow_inf=True),
    "eps": Range(0, None, low_open=True),
    "step_size": Range(0, None, low_open=True),
}


def _validate(config: AuditConfig) -> None:
    """Every number in its range and every input file a readable file, before any checkpoint is loaded."""
    if not config.checkpoints:
        raise WpgdkitError("give at least one checkpoint to audit")
    if config.score_normalize not in SCORE_NORMALIZATIONS:
        raise WpgdkitError(f"unknown score normalisation {config.score_normalize!r}; "
                           f"choose one of: {', '.join(SCORE_NORMALIZATIONS)}")
    for name, valid in AUDIT_RANGES.items():
        value = getattr(config, name)
        if value is not None or name in ("steps", "restarts", "batch_size", "bins", "attack_p", "attack_lam"):
            check_number(name, value, valid)
    check_seed("seed", config.seed)
    # A folder, a missing or unreadable file: one line saying which, not "not found" for a folder.
    for path in config.checkpoints:
        input_file(path, what="checkpoint")
    for role in ("baseline", "reference"):
        if getattr(config, role) is not None:
            input_file(getattr(config, role), what=f"--{role} checkpoint")
    if config.metric is not None:
        input_file(config.metric, what="--metric file")
    from wpgdkit.attacks import get_attack

    get_attack(config.attack)


# --- running --------------------------------------------------------------------------


def _predict(model, x: Tensor, y: Tensor, attack, *, batch_size: int, seed: int, device: torch.device,
             progress: AuditProgress | None) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Clean and adversarial predictions and entropies over all points, batch by batch."""
    from wpgdkit.training.data import batch_seed

    outputs: list[list[Tensor]] = [[], [], [], []]
    for index, start in enumerate(range(0, len(x), batch_size)):
        xb = x[start:start + batch_size].to(device)
        yb = y[start:start + batch_size].to(device)
        with torch.no_grad():
            clean = model(xb)
        if attack is not None:
            # Restart r of batch b starts from a seed of (seed, r, b): every model faces the same starts.
            seeds = [batch_seed(seed, restart, index, 3) for restart in range(attack.threat.restarts)]
            x_adv = attack(xb, yb, seeds=seeds)
            with torch.no_grad():
                adv = model(x_adv)
        else:
            adv = clean
        for out, value in zip(outputs, (clean.argmax(1), adv.argmax(1), prediction_entropy(clean),
                                        prediction_entropy(adv))):
            out.append(value.detach().cpu())
        if progress is not None:
            progress.advance()
    return tuple(torch.cat(parts) for parts in outputs)  # type: ignore[return-value]


def audit(config: AuditConfig, *, progress: AuditProgress | None = None) -> AuditReport:
    """Audit one or more checkpoints against one adversary and one label metric.

    Parameters
    ----------
    config : AuditConfig
    progress : keyword-only, optional
        Reporter with ``start_model(name, batches)`` and ``advance()``.

    Returns
    -------
    report : AuditReport
        Per model: NE, AE, confusion matrices, the gap to the baseline and its
        correlation with the metric, S and S − S_ref, mistake severity and
        prediction entropies.

    Raises
    ------
    WpgdkitError
        For unreadable checkpoints, checkpoints of different datasets or
        classes, a metric over other classes, or bad settings.
    """
    from wpgdkit.attacks import create_attack
    from wpgdkit.device import resolve_device
    from wpgdkit.training.data import load_eval_split

    _validate(config)
    loaded = [_load(path) for path in config.checkpoints]
    _unique_names(loaded)
    first = loaded[0]
    for item in loaded[1:]:
        _check_compatible(first, item, "checkpoint")
    extra: dict[str, _Loaded] = {}
    for role, path in (("baseline", config.baseline), ("reference", config.reference)):
        if path is None:
            continue
        match = next((item for item in loaded if _same_file(item.path, path)), None)
        if match is None:
            match = _load(path)
            match.name = f"{role}:{match.name}"
            _check_compatible(first, match, f"--{role}")
        extra[role] = match
    attack = _attack_config(config, loaded)
    metric, origin = _resolve_metric(config, loaded)
    if attack.entry.needs_metric and metric is None:
        raise WpgdkitError(f"the {attack.name} attack needs a label metric and none was found; give one (metric)")
    attack.check()
    device = resolve_device(config.device)
    data = first.checkpoint.data
    classes = data.classes
    x, y = load_eval_split(data.dataset, data.class_indices, split=config.split, data_dir=config.data_dir,
                           limit=config.limit, seed=data.seed)
    cost64 = torch.tensor(metric.matrix, dtype=torch.float64) if metric is not None else None
    k = len(classes)

    # Every model to run, each once: the audited ones, then a baseline or
    # reference that is not among them (the baseline needs no attack).
    jobs: list[tuple[_Loaded, bool]] = [(item, True) for item in loaded]
    if "reference" in extra and all(extra["reference"] is not item for item in loaded):
        jobs.append((extra["reference"], True))
    if "baseline" in extra and all(extra["baseline"] is not job for job, _ in jobs):
        jobs.append((extra["baseline"], False))
    predictions: dict[int, ModelPredictions] = {}
    n_batches = math.ceil(len(x) / config.batch_size)
    for item, attacked in jobs:
        model = item.checkpoint.build_model(device)
        adversary = create_attack(attack, model, metric=metric) if attacked else None
        if progress is not None:
            progress.start_model(item.name, n_batches)
        outs = _predict(model, x, y, adversary, batch_size=config.batch_size, seed=config.seed, device=device,
                        progress=progress)
        predictions[id(item)] = ModelPredictions(*outs)
        del model

    report = AuditReport(config=config, attack=attack, dataset=data.dataset, classes=classes, labels=y,
                         metric=metric, metric_origin=origin,
                         baseline=extra["baseline"].path if "baseline" in extra else None,
                         reference=extra["reference"].path if "reference" in extra else None)
    baseline_rates = None
    if "baseline" in extra:
        base = predictions[id(extra["baseline"])]
        baseline_rates = confusion_matrix(y, base.natural, k, normalize="true")
        report.baseline_natural_error = error_rate(y, base.natural)
    if "reference" in extra and cost64 is not None:
        ref = predictions[id(extra["reference"])]
        report.reference_score = weighted_score(confusion_matrix(y, ref.adversarial, k), cost64,
                                                normalize=config.score_normalize)
    for item in loaded:
        report.models.append(_measure(item, predictions[id(item)], y, k, cost64, baseline_rates, report, config))
    return report


def _measure(item: _Loaded, pred: ModelPredictions, y: Tensor, k: int, cost: Tensor | None,
             baseline_rates: Tensor | None, report: AuditReport, config: AuditConfig) -> ModelAudit:
    run = item.checkpoint.settings
    method = run.method
    m = ModelAudit(
        name=item.name, checkpoint=item.path, method=method,
        p=run.p if method == "wpgd" else None,
        train_eps=run.threat.eps if method != "ce" else None,
        natural_error=error_rate(y, pred.natural), adversarial_error=error_rate(y, pred.adversarial),
        confusion_natural=confusion_matrix(y, pred.natural, k),
        confusion_adversarial=confusion_matrix(y, pred.adversarial, k),
        predictions=pred,
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
    return m


def _none_if_nan(value: float) -> float | None:
    return None if math.isnan(value) else value
