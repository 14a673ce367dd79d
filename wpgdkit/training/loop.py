"""Adversarial training: CE, PGD (Madry et al.), WPGD (paper, Definition 6) and their fast variants.

The inner loop maximises the attack loss inside the ε-ball (cross-entropy for
``pgd``, the Wasserstein loss ℓ_W of eq. 5 for ``wpgd``); the outer loop
minimises cross-entropy at the adversarial point x* (eq. 6). ``ce`` trains on
clean inputs. ``fast-pgd`` and ``fast-wpgd`` replace the inner loop by a single
step of 1.25·ε from a uniform random start (Wong, Rice & Kolter, "Fast is
better than free", ICLR 2020, Algorithm 3), on cross-entropy and on ℓ_W; a
guard watches the per-epoch PGD accuracy on the validation split for the
catastrophic overfitting such single-step training is prone to.
"""

from __future__ import annotations

import contextlib
import glob
import math
import os
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from wpgdkit import __version__
from wpgdkit.atomic import terminate_as_interrupt
from wpgdkit.attacks.threat import ThreatModel
from wpgdkit.checkpoint import (FAST_METHODS, METHODS, METRIC_METHODS, SCHEDULES, Checkpoint, OptimizerRecord,
                                 RunSettings, inner_attack, load_checkpoint, metric_digest)
from wpgdkit.device import DEVICE_NAMES
from wpgdkit.errors import UnknownNameError, WpgdkitError
from wpgdkit.inputs import Range, check_number, check_seed
from wpgdkit.jsonutil import dumps_json
from wpgdkit.models.layout import MEMORY_FORMATS  # the layouts a run may train in (the audit's too)
from wpgdkit.training.data import DataConfig, augment_batch, batch_generator, batch_seed, prepare_data
from wpgdkit.training.distributed import setup_distributed

__all__ = ["METHODS", "SCHEDULES", "CO_GUARDS", "MEMORY_FORMATS", "CatastrophicOverfittingWarning", "TrainConfig",
           "TrainResult", "train", "log_path_for", "run_settings"]

#: The fast methods' step, in units of ε: Wong et al.'s α = 1.25·ε (larger steps overfit catastrophically sooner).
FAST_STEP_FACTOR = 1.25
#: What the catastrophic-overfitting guard does on a collapse: stop the run, warn and go on, or nothing.
CO_GUARDS = ("stop", "warn", "off")
#: Steps between two reads of the running loss and accuracy from the device (over torchrun: between two
#: all-reduces of them). The divergence check reads them too: a non-finite loss stops the run at the next read,
#: naming the step where it first appeared; the steps in between never reach a checkpoint.
SYNC_EVERY = 32
#: With a progress display on one process, they are also read once this many seconds passed since the last read.
_PROGRESS_READ_S = 0.5
#: The guard's collapse rule (see :class:`TrainConfig`): the best robust validation accuracy so far must have
#: reached CO_MIN_BEST, and the epoch's must fall below CO_FRACTION of it.
CO_MIN_BEST = 0.20
CO_FRACTION = 0.5


class CatastrophicOverfittingWarning(UserWarning):
    """A fast method's robust validation accuracy collapsed (Wong et al. 2020, Sec. 5)."""


@dataclass(frozen=True)
class TrainConfig:
    """Everything ``wpgdkit train`` needs. Defaults follow the paper (Sec. 5).

    Attributes
    ----------
    data : DataConfig
    model : str
        Model registry name (when ``model_source`` is None).
    model_source : ModelSource or None
        A network from outside the registry (``torchvision:resnet18``,
        ``my_models.py:build``, ...; :class:`~wpgdkit.models.foreign.ModelSource`),
        with its keyword arguments, initial weights and normalisation. Importing
        a user's module runs its code: the user named it.
    class_weights : str or None
        Weights of the outer cross-entropy per class: ``"balanced"``
        (n / (K · n_k), as scikit-learn) or a file (see
        :func:`~wpgdkit.training.class_weights.resolve_class_weights`); None: unweighted.
    method : {"ce", "pgd", "wpgd", "fast-pgd", "fast-wpgd"}
        ``fast-pgd`` and ``fast-wpgd`` (Wong, Rice & Kolter 2020) take one
        step of size ``step_size`` (default 1.25·ε) from a uniform random start
        in the ε-ball, on cross-entropy and on ℓ_W respectively.
    metric : str or None
        Label-metric file (required for ``wpgd`` and ``fast-wpgd``); its classes
        must be the dataset's, or the selected ``--classes``, by name and order.
    p, lam : float
        Power of the metric and λ of eq. 5 (``inf``: no entropy term).
    norm, eps, step_size, steps, random_start
        The inner attack's :class:`~wpgdkit.attacks.ThreatModel` (``step_size``
        None takes its default, 2.5·ε/steps). The fast methods fix one step:
        ``steps`` must be left at its default (which they ignore) or be 1;
        ``step_size`` None means 1.25·ε, and a given one replaces it (the
        projection keeps a step longer than ε inside the ball); ``random_start``
        must stay True (from the clean point the single step is FGSM, which
        overfits catastrophically).
    eval_steps : int
        PGD steps of the per-epoch robust validation accuracy (0 skips it).
        The fast methods' guard needs it: at least 1 unless ``co_guard`` is off.
    co_guard : {"stop", "warn", "off"}
        The catastrophic-overfitting guard of the fast methods (ignored by the
        others). Epoch t *collapses* when its robust validation accuracy
        (``val_robust_accuracy``, ``eval_steps``-step PGD on the validation
        split) is below ``CO_FRACTION`` (0.5) of the best of the earlier epochs
        of the run, and that best is at least ``CO_MIN_BEST`` (0.2): single-step
        training that overfits drops to near zero within an epoch, while a model
        still near chance is not judged. ``stop`` ends the run there without
        saving epoch t: ``out`` keeps epoch t − 1 (every epoch since the best
        passed the test, so it is a good one), the log gets epoch t's record
        with a ``collapse`` entry, :attr:`TrainResult.collapse` holds it, and a
        :class:`CatastrophicOverfittingWarning` says so in one line. ``warn``
        warns the same way, for every epoch below the threshold, and trains on
        (the saved records keep their ``collapse`` entry). The guard is not part of the run's fingerprint: it never
        changes the weights of a saved epoch. Resuming a stopped run continues
        from epoch t − 1 and replays epoch t with the same batches and starts,
        so with ``stop`` it stops there again (a bitwise replay on
        deterministic hardware) and leaves ``out`` as it was; resume with
        ``warn`` (or ``off``) to train through the collapse on purpose.
    epochs, batch_size, lr, momentum, weight_decay, schedule
        SGD with Nesterov momentum; the schedule is per step: ``piecewise``
        (×0.1 at 50 % and 75 % of training), ``cosine`` or ``constant``.
    out : str
        Checkpoint path; the log (one JSON line per epoch) is written beside it.
    resume : bool
        Continue from ``out`` if it exists (it must be the same run: equal
        :meth:`~wpgdkit.checkpoint.RunSettings.fingerprint`).
    force : bool
        Start over even if ``out`` holds a run (its log starts afresh). Without
        ``resume`` or ``force`` an existing ``out`` is refused.
    device : {"auto", "cpu", "cuda"}
    amp : bool
        bfloat16 autocast on CUDA.
    memory_format : {"auto", "contiguous", "channels_last"}
        The layout of the network's weights and inputs, chosen once before the
        first step. ``channels_last`` (NHWC) suits convolutions on tensor
        cores and applies to image inputs (C, H, W) only. ``auto`` measures
        both on CUDA (:func:`wpgdkit.models.layout.preferred_memory_format`
        with ``train=True``) and keeps the default (contiguous) layout on a CPU
        and in a ``deterministic`` run, so that a seeded run there gives the
        same weights bit for bit. Checkpoints do not depend on it: their
        tensors are saved contiguous, and it is not part of the fingerprint.
    workers : int
        DataLoader workers for file-backed datasets.
    seed : int
    deterministic : bool
        ``torch.use_deterministic_algorithms(True)`` (and cuDNN determinism).
    """

    data: DataConfig
    model: str = "small-cnn"
    model_source: Any = None
    class_weights: str | None = None
    method: str = "pgd"
    metric: str | None = None
    p: float = 1.0
    lam: float = math.inf
    norm: str = "linf"
    eps: float = 8 / 255
    step_size: float | None = None
    steps: int = 8
    random_start: bool = True
    eval_steps: int = 8
    co_guard: str = "stop"
    epochs: int = 10
    batch_size: int = 128
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    schedule: str = "piecewise"
    out: str = "runs/model.pt"
    resume: bool = False
    force: bool = False
    device: str = "auto"
    amp: bool = True
    memory_format: str = "auto"
    workers: int = 0
    seed: int = 0
    deterministic: bool = False

    def threat(self, bounds: tuple[float, float] | None) -> ThreatModel:
        """The inner attack's threat model on data in ``bounds`` (validated there).

        For the fast methods: one step of ``step_size``, by default
        ``FAST_STEP_FACTOR · eps`` (1.25·ε), whatever ``steps`` says.
        """
        if self.method in FAST_METHODS:
            step = self.step_size
            if step is None and isinstance(self.eps, (int, float)) and not isinstance(self.eps, bool):
                step = FAST_STEP_FACTOR * self.eps  # (a bad eps is left to the threat model's one line)
            return ThreatModel(eps=self.eps, step_size=step, steps=1, norm=self.norm,
                               random_start=self.random_start, bounds=bounds)
        return ThreatModel(eps=self.eps, step_size=self.step_size, steps=self.steps, norm=self.norm,
                           random_start=self.random_start, bounds=bounds)

    @property
    def guarded(self) -> bool:
        """Whether the catastrophic-overfitting guard watches this run (a fast method, ``co_guard`` not off)."""
        return self.method in FAST_METHODS and self.co_guard != "off"


_DEFAULT_STEPS = TrainConfig.__dataclass_fields__["steps"].default


@dataclass
class TrainResult:
    """What :func:`train` returns: the checkpoint path and the per-epoch records.

    Attributes
    ----------
    checkpoint : Path
    history : list of dict
        The records of the epochs saved in ``checkpoint``.
    collapse : dict or None
        When the catastrophic-overfitting guard stopped the run: the record of
        the collapsed epoch, which was not saved (its ``collapse`` entry names
        the epoch ``checkpoint`` keeps). None otherwise.
    """

    checkpoint: Path
    history: list[dict[str, Any]] = field(default_factory=list)
    collapse: dict[str, Any] | None = None

    @property
    def stopped(self) -> bool:
        """Whether the catastrophic-overfitting guard ended the run before its last epoch."""
        return self.collapse is not None


def log_path_for(checkpoint: str | os.PathLike[str]) -> Path:
    """``runs/c10.pt`` -> ``runs/c10.log.jsonl``."""
    path = Path(checkpoint)
    return path.with_name(path.stem + ".log.jsonl")


# The valid range of every numeric setting, written once (the CLI's flags are these names).
_RANGES = {
    "p": Range(0, 1e3, low_open=True),                 # C^p with p > 1000 overflows any metric above 2
    "lam": Range(0, None, low_open=True, allow_inf=True),
    "epochs": Range(1, 1_000_000, integer=True),
    "batch_size": Range(1, 1 << 20, integer=True),
    "lr": Range(0, 1e3, low_open=True),
    "momentum": Range(0, 1, high_open=True),
    "weight_decay": Range(0, 1),
    "eval_steps": Range(0, 100_000, integer=True),
    "workers": Range(0, 256, integer=True),
}
_DATA_RANGES = {
    "limit": Range(2, None, integer=True),
    "val_fraction": Range(0, 1, high_open=True),
    "imbalance": Range(0, 1, low_open=True),
}


class DivergenceError(WpgdkitError):
    """The training loss became NaN or infinite; the checkpoint keeps the last finite epoch."""


def _validate(config: TrainConfig) -> None:
    if config.method not in METHODS:
        raise UnknownNameError(f"unknown method {config.method!r}; choose one of: {', '.join(METHODS)}")
    if config.co_guard not in CO_GUARDS:
        raise UnknownNameError(f"unknown co_guard {config.co_guard!r}; choose one of: {', '.join(CO_GUARDS)}")
    if config.schedule not in SCHEDULES:
        raise UnknownNameError(f"unknown schedule {config.schedule!r}; choose one of: {', '.join(SCHEDULES)}")
    if config.device not in DEVICE_NAMES:
        raise UnknownNameError(f"unknown device {config.device!r}; choose one of: {', '.join(DEVICE_NAMES)}")
    if config.memory_format not in MEMORY_FORMATS:
        raise UnknownNameError(f"unknown memory_format {config.memory_format!r}; choose one of: "
                               f"{', '.join(MEMORY_FORMATS)}")
    for name, valid in _RANGES.items():
        check_number(name, getattr(config, name), valid)
    check_seed("seed", config.seed)
    check_seed("seed", config.data.seed)
    for name, valid in _DATA_RANGES.items():
        value = getattr(config.data, name)
        if value is not None:
            check_number(name, value, valid)
    if config.method in FAST_METHODS:
        _validate_fast(config)
    config.threat(bounds=None)  # eps, step_size, steps, norm: validated by the threat model, before any work
    from wpgdkit.models import get_model_spec

    if config.model_source is None or config.model_source.kind() == "registry":
        get_model_spec(config.model_source.spec if config.model_source is not None else config.model)
    if config.method in METRIC_METHODS and config.metric is None:
        raise WpgdkitError(f"method {config.method} needs a label metric (metric), e.g. metrics/cifar10-wordnet.csv")
    if Path(config.out).suffix != ".pt":
        raise WpgdkitError(f"out must end in .pt, got {config.out}")


def _validate_fast(config: TrainConfig) -> None:
    """What a single-step method refuses: other step counts, no random start, a guard with nothing to watch."""
    method = config.method
    # The default cannot be told from an explicit equal value: it is ignored (and so accepted), anything else refused.
    if config.steps not in (1, _DEFAULT_STEPS) or isinstance(config.steps, bool):
        raise WpgdkitError(f"steps must be 1 or left out for method {method} (it takes one step of "
                           f"{FAST_STEP_FACTOR:g}·eps from a random start), got {config.steps!r}")
    if not config.random_start:
        raise WpgdkitError(f"random_start must be True for method {method}: one step from the clean point is "
                           "FGSM, which overfits catastrophically (Wong et al. 2020)")
    if not config.guarded:
        return
    if config.eval_steps < 1:
        raise WpgdkitError(f"eval_steps must be at least 1 for method {method}: its catastrophic-overfitting guard "
                           "watches the PGD accuracy on the validation split (or turn the guard off: co_guard off)")
    if config.data.val_fraction == 0:
        raise WpgdkitError(f"val_fraction must be above 0 for method {method}: its catastrophic-overfitting guard "
                           "watches the PGD accuracy on the validation split (or turn the guard off: co_guard off)")


def _load_metric(config: TrainConfig, classes: tuple[str, ...]):
    """The metric over the training classes: sliced from the dataset's, or given for them."""
    if config.metric is None:
        return None
    from wpgdkit.datasets import get_dataset
    from wpgdkit.labelmetric import read_metric, validate_metric
    from wpgdkit.labelmetric.align import align_metric

    metric = read_metric(config.metric)
    validate_metric(metric, allow_asymmetric=True)
    return align_metric(metric, classes, get_dataset(config.data.dataset).classes, origin=str(config.metric))


def run_settings(config: TrainConfig, *, metric=None) -> RunSettings:
    """The :class:`~wpgdkit.checkpoint.RunSettings` a run of ``config`` records, without loading data.

    Its :meth:`~wpgdkit.checkpoint.RunSettings.fingerprint` equals that of the
    checkpoint such a run writes: the experiments reuse a file only then.

    Parameters
    ----------
    config : TrainConfig
    metric : LabelMetric, keyword-only, optional
        The metric over the run's classes, when the caller has it already
        (else read from ``config.metric``).
    """
    from wpgdkit.training.data import data_record, dataset_spec

    _validate(config)
    data = data_record(config.data)
    if metric is None and config.method in METRIC_METHODS:
        metric = _load_metric(config, data.classes)
    shape = tuple(dataset_spec(config.data).input_shape)
    threat = config.threat(data.input_range)
    threat.check_inputs(shape)
    if config.memory_format == "channels_last" and len(shape) != 3:
        raise WpgdkitError(f"memory_format must be auto or contiguous for inputs of shape {'×'.join(map(str, shape))}: "
                           "channels_last applies to images (C×H×W)")
    if metric is not None and config.method in METRIC_METHODS:
        from wpgdkit.losses import check_powered_cost

        check_powered_cost(float(metric.matrix.max()), config.p)
    return RunSettings(
        model=_model_record(config, len(data.classes), shape),
        data=data, method=config.method, threat=threat,
        optimizer=OptimizerRecord(epochs=config.epochs, batch_size=config.batch_size, lr=float(config.lr),
                                  momentum=float(config.momentum), weight_decay=float(config.weight_decay),
                                  schedule=config.schedule),
        seed=config.seed, p=float(config.p), lam=float(config.lam),
        metric_sha256=metric_digest(metric.matrix) if config.method in METRIC_METHODS and metric is not None else None,
        class_weights=_class_weights_identity(config.class_weights),
    )


def _class_weights_identity(spec: str | None) -> dict[str, Any] | None:
    """What identifies the class weighting before any data is loaded: the mode, or the weight file's content."""
    if spec is None:
        return None
    from wpgdkit.training.class_weights import CLASS_WEIGHT_MODES

    if spec in CLASS_WEIGHT_MODES:
        return {"mode": spec}
    from wpgdkit.inputs import file_sha256

    return {"mode": "file", "sha256": file_sha256(spec, what="class_weights file")}


def _model_record(config: TrainConfig, num_classes: int, shape: tuple[int, ...]):
    """The run's :class:`~wpgdkit.checkpoint.ModelRecord`: a registry name, or the foreign source that rebuilds it."""
    from wpgdkit.checkpoint import ModelRecord
    from wpgdkit.models import dataset_normalization

    source = config.model_source
    if source is None or source.kind() == "registry":
        name = source.spec if source is not None else config.model
        mean, std = dataset_normalization(config.data.dataset)
        if source is not None and source.mean is not None:
            mean, std = source.mean, source.std
        return ModelRecord(name, num_classes, shape, tuple(mean) if mean is not None else None,
                           tuple(std) if std is not None else None)
    record = source.to_dict()
    if source.weights:
        # The initial weights change the run; their content identifies them, not their path.
        from wpgdkit.inputs import file_sha256

        record["weights_sha256"] = file_sha256(source.weights)
    return ModelRecord(source.spec, num_classes, shape, source=record)


def _build_network(config: TrainConfig, settings: RunSettings) -> torch.nn.Module:
    """A fresh network (seeded), with the source's initial weights when it names some."""
    source = config.model_source
    if source is not None and source.kind() != "registry":
        from wpgdkit.models.foreign import build_foreign_model

        return build_foreign_model(source, num_classes=settings.model.num_classes, input_shape=settings.model.input_shape)
    model = settings.model.build()
    if source is not None and source.weights:
        from wpgdkit.models.foreign import load_weights

        load_weights(model.net, source.weights)
    return model


def _lr_lambda(schedule: str, total_steps: int) -> Callable[[int], float]:
    def factor(step: int) -> float:
        t = step / max(total_steps, 1)
        if schedule == "piecewise":
            return 1.0 if t < 0.5 else 0.1 if t < 0.75 else 0.01
        if schedule == "cosine":
            return 0.5 * (1.0 + math.cos(math.pi * min(t, 1.0)))
        return 1.0

    return factor


class _Autocast(torch.nn.Module):
    """Runs the wrapped model under bfloat16 autocast and returns float32 logits."""

    def __init__(self, model: torch.nn.Module, device_type: str) -> None:
        super().__init__()
        self.model, self.device_type = model, device_type

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(self.device_type, dtype=torch.bfloat16):
            return self.model(x).float()


def train(
    config: TrainConfig,
    *,
    on_epoch_end: Callable[[dict[str, Any]], None] | None = None,
    progress: Any | None = None,
) -> TrainResult:
    """Train a model with CE, PGD, WPGD, fast-PGD or fast-WPGD and checkpoint it after every epoch.

    Parameters
    ----------
    config : TrainConfig
    on_epoch_end : callable, keyword-only, optional
        Called with each epoch's record after its checkpoint is written (not for
        an epoch the catastrophic-overfitting guard stopped at: nothing is written).
    progress : optional
        A reporter with ``start_epoch(epoch, batches)``, ``advance(stats)`` and
        ``end_epoch(record)`` (the CLI passes a Rich one).

    Returns
    -------
    result : TrainResult
    """
    _validate(config)
    out = Path(config.out)
    _check_destination(config, out)
    ctx = setup_distributed(config.device)
    progress = progress if ctx.is_main else None  # one progress display, from rank 0
    try:
        with _exclusive(out) if ctx.is_main else contextlib.nullcontext(), terminate_as_interrupt():
            return _run(config, ctx, out, progress, on_epoch_end)
    finally:
        ctx.close()


def _run(config: TrainConfig, ctx, out: Path, progress: Any | None,
         on_epoch_end: Callable[[dict[str, Any]], None] | None) -> TrainResult:
    from wpgdkit.attacks import AttackConfig, create_attack
    from wpgdkit.models import count_parameters

    from wpgdkit.training.data import data_record

    # Everything that can be refused is checked before the data is loaded (minutes for a large set).
    metric = _load_metric(config, data_record(config.data).classes)
    settings = run_settings(config, metric=metric)
    if config.deterministic:
        _make_deterministic()
    data = prepare_data(config.data)
    if config.guarded and len(data.val) == 0:
        raise WpgdkitError(f"val_fraction must leave a validation split for method {config.method}: "
                           f"{config.data.val_fraction:g} of this data gave none (its catastrophic-overfitting guard "
                           "watches the PGD accuracy there; or turn the guard off: co_guard off)")
    torch.manual_seed(config.seed)  # the same initial weights on every rank
    model = _build_network(config, settings)
    class_weights = _class_weights(config, data, ctx.device)
    model.to(ctx.device)
    layout = _memory_format(config, ctx, data, model)
    if layout != torch.contiguous_format:
        from wpgdkit.models.layout import apply_memory_format

        apply_memory_format(model, layout)
    optimizer = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum,
                                weight_decay=config.weight_decay, nesterov=config.momentum > 0)
    if ctx.world_size > 1 and config.batch_size % ctx.world_size:
        raise WpgdkitError(f"batch_size {config.batch_size} must divide evenly over {ctx.world_size} processes")
    steps_per_epoch = max(1, len(range(0, len(data.train), config.batch_size)))
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _lr_lambda(config.schedule, config.epochs * steps_per_epoch))
    history: list[dict[str, Any]] = []
    start_epoch = 0
    if config.resume and out.exists():
        state = load_checkpoint(out, map_location=ctx.device)
        _check_resumable(state, settings, config)
        state.load_weights_into(model)
        optimizer.load_state_dict(state.optimizer_state)
        scheduler.load_state_dict(state.scheduler_state)
        history = list(state.history)
        start_epoch = state.epoch
    elif ctx.is_main:
        log_path_for(out).unlink(missing_ok=True)  # a new run (or force): its log starts afresh
    forward_model = _Autocast(model, ctx.device.type) if (config.amp and ctx.device.type == "cuda") else model
    trained = ctx.wrap(forward_model)
    threat = settings.threat
    # The inner maximisation of eq. 2 / eq. 6: PGD on CE, or on ℓ_W with the metric (WPGD); the fast methods run
    # the same attacks with their one-step threat model (config.threat).
    attack = None if config.method == "ce" else create_attack(
        AttackConfig(inner_attack(config.method), threat, p=config.p, lam=config.lam), forward_model, metric=metric)
    evaluation = create_attack(AttackConfig("pgd", threat.with_steps(config.eval_steps)), forward_model) \
        if config.eval_steps > 0 else None
    guard = _CollapseGuard.resumed(history) if config.guarded else None
    for epoch in range(start_epoch, config.epochs):
        try:
            record = _train_epoch(config, ctx, data, trained, optimizer, scheduler, attack, epoch, progress,
                                  class_weights, layout=layout)
            _check_weights(model, epoch)
        except DivergenceError as exc:
            kept = (f"{out} keeps epoch {history[-1]['epoch']}, the last finite one" if history else "nothing was saved")
            raise DivergenceError(f"{exc}; {kept} (try a lower lr, or check eps and the metric)") from None
        record.update(_evaluate(config, ctx, data, forward_model, evaluation, epoch, layout=layout))
        if guard is not None and _collapsed(ctx, guard, record):
            record["collapse"] = guard.describe(config.co_guard, kept_epoch=epoch)
            if ctx.is_main:
                warnings.warn(_collapse_message(config, out, record), CatastrophicOverfittingWarning, stacklevel=3)
            if config.co_guard == "stop":
                # Epoch t's weights are not saved: out keeps epoch t - 1. The log still says what happened.
                if ctx.is_main:
                    with open(log_path_for(out), "a", encoding="utf-8") as log:
                        log.write(dumps_json(record, indent=None))
                if progress is not None:
                    progress.end_epoch(record)
                return TrainResult(out, history, collapse=record)
        history.append(record)
        if ctx.is_main:
            # Tensors saved contiguous: the checkpoint is the same whatever layout the run trained in.
            _save_epoch(out, record, lambda: Checkpoint(
                settings=settings, epoch=epoch + 1, state_dict=contiguous_tensors(model.state_dict()),
                history=history, metric=metric, optimizer_state=contiguous_tensors(optimizer.state_dict()),
                scheduler_state=scheduler.state_dict(), eval_steps=config.eval_steps, amp=config.amp,
                deterministic=config.deterministic, parameters=count_parameters(model), tool_version=__version__))
        if progress is not None:
            progress.end_epoch(record)
        if on_epoch_end is not None:
            on_epoch_end(record)
    return TrainResult(out, history)


def _save_epoch(out: Path, record: dict[str, Any], checkpoint: Callable[[], Checkpoint]) -> None:
    """Write an epoch's checkpoint (atomically), then its log line: all that an epoch writes.

    ``checkpoint`` builds the record to save (the train-loop benchmark
    replaces this function to time an epoch that writes nothing).
    """
    checkpoint().save(out)
    with open(log_path_for(out), "a", encoding="utf-8") as log:
        log.write(dumps_json(record, indent=None))


def contiguous_tensors(value: Any) -> Any:
    """``value`` with every tensor in it (in dicts, lists and tuples) in the default contiguous layout.

    A state dict of a channels_last network saved as it is keeps NHWC strides
    on disk; through this, a checkpoint holds the same bytes whatever layout
    the run trained in, and loads alike into a network of either layout.
    Tensors already contiguous are passed through, not copied.
    """
    if isinstance(value, torch.Tensor):
        return value.contiguous()
    if isinstance(value, dict):
        return {key: contiguous_tensors(item) for key, item in value.items()}
    if type(value) in (list, tuple):
        return type(value)(contiguous_tensors(item) for item in value)
    return value


def _memory_format(config: TrainConfig, ctx, data, model: torch.nn.Module) -> torch.memory_format:
    """The layout the run trains in (see :class:`TrainConfig`): as asked, or measured once for ``auto`` on CUDA.

    ``auto`` keeps the default layout on a CPU and in a deterministic run: the
    two layouts' kernels round differently, and a measured choice could differ
    between two runs (or a run and its resumption) of the same seed.
    """
    if config.memory_format == "channels_last":
        return torch.channels_last
    if config.memory_format == "contiguous" or ctx.device.type != "cuda" or config.deterministic:
        return torch.contiguous_format
    if len(data.input_shape) != 3 or len(data.train) == 0:
        return torch.contiguous_format
    channels_last = False
    if ctx.is_main:
        from wpgdkit.models.layout import preferred_memory_format

        _, example, _ = next(batch_generator(data.train, batch_size=config.batch_size, seed=config.seed, epoch=0,
                                             shuffle=False))
        # A training step in each layout, at the run's precision; the model's values, modes and the random state
        # are left as they were.
        timed = _Autocast(model, ctx.device.type) if config.amp else model
        channels_last = preferred_memory_format(timed, example.to(ctx.device), train=True) == torch.channels_last
    # Rank 0 decides for all: DistributedDataParallel needs the same layout on every rank.
    votes = ctx.all_reduce_sum(torch.tensor([1.0 if channels_last else 0.0], dtype=torch.float64))
    return torch.channels_last if votes[0].item() > 0 else torch.contiguous_format


def _to_layout(x: torch.Tensor, layout: torch.memory_format) -> torch.Tensor:
    """A batch of images in the run's layout (a no-op for the default one)."""
    if layout == torch.contiguous_format or x.dim() != 4:
        return x
    return x.contiguous(memory_format=layout)


@dataclass
class _CollapseGuard:
    """The best robust validation accuracy of a run so far, and the collapse rule (see :class:`TrainConfig`)."""

    best: float = 0.0
    best_epoch: int | None = None

    @classmethod
    def resumed(cls, history: list[dict[str, Any]]) -> _CollapseGuard:
        """The guard of a run whose saved epochs are ``history`` (empty for a new run)."""
        guard = cls()
        for record in history:
            guard.offer(record)
        return guard

    def offer(self, record: dict[str, Any]) -> None:
        accuracy = record.get("val_robust_accuracy")
        if accuracy is not None and accuracy > self.best:
            self.best, self.best_epoch = float(accuracy), int(record["epoch"])

    def collapses(self, record: dict[str, Any]) -> bool:
        """Whether ``record``'s epoch collapsed; if not, it joins the run's best."""
        accuracy = record.get("val_robust_accuracy")
        if accuracy is None:
            return False
        if self.best >= CO_MIN_BEST and accuracy < CO_FRACTION * self.best:
            return True
        self.offer(record)
        return False

    def describe(self, action: str, *, kept_epoch: int) -> dict[str, Any]:
        """The ``collapse`` entry of a collapsed epoch's record."""
        out: dict[str, Any] = {"action": action, "best_val_robust_accuracy": self.best, "best_epoch": self.best_epoch,
                               "threshold": CO_FRACTION * self.best}
        if action == "stop":
            out["kept_epoch"] = kept_epoch
        return out


def _collapsed(ctx, guard: _CollapseGuard, record: dict[str, Any]) -> bool:
    """The guard's verdict, the same on every rank: a rank that stops alone would leave the others waiting."""
    verdict = guard.collapses(record)
    votes = ctx.all_reduce_sum(torch.tensor([1.0 if verdict else 0.0], dtype=torch.float64))
    return votes[0].item() > 0


def _collapse_message(config: TrainConfig, out: Path, record: dict[str, Any]) -> str:
    c = record["collapse"]
    what = (f"stopped; {out} keeps epoch {c['kept_epoch']}" if c["action"] == "stop"
            else "training goes on (the guard only warns)")
    return (f"catastrophic overfitting at epoch {record['epoch']} of {config.method}: robust validation accuracy "
            f"{record['val_robust_accuracy']:.3f} < {CO_FRACTION:g} × {c['best_val_robust_accuracy']:.3f} "
            f"(epoch {c['best_epoch']}); {what}")


def _check_weights(model: torch.nn.Module, epoch: int) -> None:
    """A finite loss can still step to infinite weights: never save those (one read from the device for all)."""
    tensors = [(key, tensor) for key, tensor in model.state_dict().items() if tensor.is_floating_point()]
    if not tensors:
        return
    finite = torch.stack([torch.isfinite(tensor).all() for _, tensor in tensors]).tolist()
    for (key, _), ok in zip(tensors, finite):
        if not ok:
            raise DivergenceError(f"the weights became non-finite ({key}) in epoch {epoch + 1}")


@contextlib.contextmanager
def _exclusive(out: Path) -> Iterator[None]:
    """Hold a lock on ``out`` for the run: a second process training into the same file gets one line.

    The lock is ``.<name>.lock`` beside ``out`` (removed at the end). Once it
    is held nothing else writes ``out``, so temporaries that a killed run left
    behind (``.<name>.*.tmp``) are removed here.
    """
    import fcntl

    folder = out.parent
    created = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    lock = folder / f".{out.name}.lock"
    while True:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise WpgdkitError(f"another process is training into {out}; wait for it to finish or choose another out") from None
        try:
            same = os.stat(lock).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)  # the previous holder removed the file between our open and our lock: take a fresh one
    try:
        for stale in folder.glob(f".{glob.escape(out.name)}.*.tmp"):
            stale.unlink(missing_ok=True)
        yield
    finally:
        lock.unlink(missing_ok=True)
        os.close(fd)
        if created:
            with contextlib.suppress(OSError):
                folder.rmdir()  # only if the run left it empty (it failed before writing anything)


def _check_destination(config: TrainConfig, out: Path) -> None:
    """Never silently replace a finished (or interrupted) run."""
    if out.exists() and not (config.resume or config.force):
        raise WpgdkitError(f"{out} already holds a run; resume it (resume) or start over (force)")


def _class_weights(config: TrainConfig, data, device: torch.device) -> torch.Tensor | None:
    if config.class_weights is None:
        return None
    from wpgdkit.training.class_weights import resolve_class_weights

    weights = resolve_class_weights(config.class_weights, data.train.labels, len(data.classes), classes=data.classes)
    return weights.to(device) if weights is not None else None


def _train_epoch(config, ctx, data, trained, optimizer, scheduler, attack, epoch, progress, class_weights=None, *,
                 layout=torch.contiguous_format):
    n_batches = len(range(0, len(data.train), config.batch_size))
    if progress is not None:
        progress.start_epoch(epoch, n_batches)
    start = time.perf_counter()
    stats = _EpochStats(ctx, epoch, n_batches, progress, start)
    pin = ctx.device.type == "cuda"  # pinned batches copy while the GPU works (from pageable memory the copy waits)
    for index, x, y in batch_generator(data.train, batch_size=config.batch_size, seed=config.seed, epoch=epoch,
                                       rank=ctx.rank, world_size=ctx.world_size, workers=config.workers):
        if pin:
            x, y = x.pin_memory(), y.pin_memory()
        x, y = x.to(ctx.device, non_blocking=True), y.to(ctx.device, non_blocking=True)
        if data.augment:
            x = augment_batch(x, generator=torch.Generator(device=x.device).manual_seed(batch_seed(config.seed, epoch, index, 0)))
        x = _to_layout(x, layout)
        if attack is not None:
            generator = torch.Generator(device=x.device).manual_seed(batch_seed(config.seed, epoch, index, 1) + ctx.rank)
            x = attack(x, y, generator=generator)
        trained.train()
        logits = trained(x)
        # Weighted: a weighted mean over the batch (normalised by the weights of its labels), as F.cross_entropy defines it.
        loss = F.cross_entropy(logits, y, weight=class_weights)
        stats.add(index, loss, logits, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
    stats.read()
    elapsed = time.perf_counter() - start
    totals = stats.totals
    seen = max(totals["seen"], 1)
    return {
        "epoch": epoch + 1, "train_loss": totals["loss"] / seen,
        "train_accuracy" if config.method == "ce" else "train_adversarial_accuracy": totals["correct"] / seen,
        "lr": scheduler.get_last_lr()[0], "images_per_s": totals["seen"] / max(elapsed, 1e-9), "seconds": elapsed,
    }


class _EpochStats:
    """An epoch's summed loss, correct predictions and count: kept on the device, read every :data:`SYNC_EVERY` steps.

    Reading a value from a GPU waits for all the work queued before it; doing
    so at every step (the loss for the display and the divergence check)
    would stall the queue once per batch. The values of the steps since the
    last read are summed over the ranks in one all-reduce (every rank reads
    at the same steps), then added up in step order, in float64 as before,
    so the epoch's record is the same as read step by step. A non-finite
    loss raises :class:`DivergenceError` naming its step; the later steps of
    the block changed only weights that are never saved.
    """

    def __init__(self, ctx, epoch: int, n_batches: int, progress: Any | None, start: float) -> None:
        self.ctx, self.epoch, self.n_batches, self.progress, self.start = ctx, epoch, n_batches, progress, start
        self.totals: dict[str, Any] = {"loss": 0.0, "correct": 0, "seen": 0}
        self.pending: list[tuple[int, torch.Tensor, int]] = []  # (batch index, [loss·n, correct] on the device, n)
        self.last_read = start

    def add(self, index: int, loss: torch.Tensor, logits: torch.Tensor, y: torch.Tensor) -> None:
        with torch.no_grad():
            values = torch.stack((loss.detach().to(torch.float64) * len(y),
                                  (logits.argmax(1) == y).sum().to(torch.float64)))
        self.pending.append((index, values, len(y)))
        # The display reads on time as well, on one process only: the ranks must all-reduce at the same steps.
        if len(self.pending) >= SYNC_EVERY or (self.progress is not None and self.ctx.world_size == 1
                                               and time.perf_counter() - self.last_read >= _PROGRESS_READ_S):
            self.read()

    def read(self) -> None:
        if not self.pending:
            return
        values = torch.stack([v for _, v, _ in self.pending])
        sizes = torch.tensor([[float(n)] for _, _, n in self.pending], dtype=torch.float64).to(values.device)
        block = self.ctx.all_reduce_sum(torch.cat((values, sizes), dim=1)).tolist()
        indices = [index for index, _, _ in self.pending]
        self.pending.clear()
        totals = self.totals
        for index, (loss_sum, correct, seen) in zip(indices, block):
            if not math.isfinite(loss_sum):
                raise DivergenceError(f"the training loss became {loss_sum} at epoch {self.epoch + 1}, step "
                                      f"{index + 1} of {self.n_batches}")
            totals["loss"] += loss_sum
            totals["correct"] += int(correct)
            totals["seen"] += int(seen)
            if self.progress is not None:
                elapsed = time.perf_counter() - self.start
                self.progress.advance({"loss": totals["loss"] / totals["seen"], "acc": totals["correct"] / totals["seen"],
                                       "images_per_s": totals["seen"] / max(elapsed, 1e-9)})
        self.last_read = time.perf_counter()


def _evaluate(config, ctx, data, model, evaluation, epoch, *, layout=torch.contiguous_format) -> dict[str, Any]:
    """Clean and PGD (cross-entropy) accuracy on the validation split (counted on the device, read once)."""
    if len(data.val) == 0:
        return {}
    correct = torch.zeros((), dtype=torch.int64, device=ctx.device)
    robust = torch.zeros((), dtype=torch.int64, device=ctx.device)
    seen = 0
    model.eval()
    for index, x, y in batch_generator(data.val, batch_size=config.batch_size, seed=config.seed, epoch=epoch,
                                       shuffle=False, workers=config.workers):
        x, y = _to_layout(x.to(ctx.device), layout), y.to(ctx.device)
        with torch.no_grad():
            correct += (model(x).argmax(1) == y).sum()
        if evaluation is not None:
            generator = torch.Generator(device=x.device).manual_seed(batch_seed(config.seed, epoch, index, 2))
            x_adv = evaluation(x, y, generator=generator)
            with torch.no_grad():
                robust += (model(x_adv).argmax(1) == y).sum()
        seen += len(y)
    out = {"val_accuracy": int(correct) / seen}
    if evaluation is not None:
        out["val_robust_accuracy"] = int(robust) / seen
    return out


def _check_resumable(state: Checkpoint, settings: RunSettings, config: TrainConfig) -> None:
    """Resume only the same run: every setting that changes the weights must agree."""
    if state.fingerprint() != settings.fingerprint():
        differences = state.settings.differences(settings)
        shown = "; ".join(differences[:3]) + (f"; and {len(differences) - 3} more" if len(differences) > 3 else "")
        raise WpgdkitError(f"cannot resume {config.out}: it was trained with other settings (saved vs now: {shown}); "
                           "start over (force)")


def _make_deterministic() -> None:
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.benchmark = False
