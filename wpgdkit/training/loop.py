"""Adversarial training: CE, PGD (Madry et al.) and WPGD (paper, Definition 6).

The inner loop maximises the attack loss inside the ε-ball (cross-entropy for
``pgd``, the Wasserstein loss ℓ_W of eq. 5 for ``wpgd``); the outer loop
minimises cross-entropy at the adversarial point x* (eq. 6). ``ce`` trains on
clean inputs.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from wpgdkit import __version__
from wpgdkit.errors import MetricFormatError, UnknownNameError, WpgdkitError
from wpgdkit.training.checkpoint import CHECKPOINT_FORMAT, CHECKPOINT_VERSION, load_checkpoint, save_checkpoint
from wpgdkit.training.data import DataConfig, TrainingData, augment_batch, batch_generator, batch_seed, prepare_data
from wpgdkit.training.distributed import setup_distributed

__all__ = ["METHODS", "SCHEDULES", "TrainConfig", "TrainResult", "train", "log_path_for"]

METHODS = ("ce", "pgd", "wpgd")
SCHEDULES = ("piecewise", "cosine", "constant")


@dataclass(frozen=True)
class TrainConfig:
    """Everything ``wpgdkit train`` needs. Defaults follow the paper (Sec. 5).

    Attributes
    ----------
    data : DataConfig
    model : str
        Model registry name.
    method : {"ce", "pgd", "wpgd"}
    metric : str or None
        Label-metric file (required for ``wpgd``); its classes must be the
        dataset's, or the selected ``--classes``, by name and order.
    p, lam : float
        Power of the metric and λ of eq. 5 (``inf``: no entropy term).
    norm, eps, step_size, steps, random_start
        The inner attack; ``step_size`` defaults to ``2.5 ε / steps``.
    eval_steps : int
        PGD steps of the per-epoch robust validation accuracy (0 skips it).
    epochs, batch_size, lr, momentum, weight_decay, schedule
        SGD with Nesterov momentum; the schedule is per step: ``piecewise``
        (×0.1 at 50 % and 75 % of training), ``cosine`` or ``constant``.
    out : str
        Checkpoint path; the log (one JSON line per epoch) is written beside it.
    resume : bool
        Continue from ``out`` if it exists.
    device : {"auto", "cpu", "cuda"}
    amp : bool
        bfloat16 autocast on CUDA.
    workers : int
        DataLoader workers for file-backed datasets.
    seed : int
    deterministic : bool
        ``torch.use_deterministic_algorithms(True)`` (and cuDNN determinism).
    """

    data: DataConfig
    model: str = "small-cnn"
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
    epochs: int = 10
    batch_size: int = 128
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    schedule: str = "piecewise"
    out: str = "runs/model.pt"
    resume: bool = False
    device: str = "auto"
    amp: bool = True
    workers: int = 0
    seed: int = 0
    deterministic: bool = False

    @property
    def attack_step_size(self) -> float:
        # max(): a config with steps < 1 is rejected by validation, which reads this first
        return self.step_size if self.step_size is not None else 2.5 * self.eps / max(self.steps, 1)


@dataclass
class TrainResult:
    """What :func:`train` returns: the checkpoint path and the per-epoch records."""

    checkpoint: Path
    history: list[dict[str, Any]] = field(default_factory=list)


def log_path_for(checkpoint: str | os.PathLike[str]) -> Path:
    """``runs/c10.pt`` -> ``runs/c10.log.jsonl``."""
    path = Path(checkpoint)
    return path.with_name(path.stem + ".log.jsonl")


def _validate(config: TrainConfig) -> None:
    if config.method not in METHODS:
        raise UnknownNameError(f"unknown method {config.method!r}; choose one of: {', '.join(METHODS)}")
    if config.schedule not in SCHEDULES:
        raise UnknownNameError(f"unknown schedule {config.schedule!r}; choose one of: {', '.join(SCHEDULES)}")
    checks = [
        (config.eps > 0, f"--eps must be positive, got {config.eps}"),
        (config.steps >= 1, f"--steps must be at least 1, got {config.steps}"),
        (config.attack_step_size > 0, "--step-size must be positive"),
        (config.p > 0, f"--p must be positive, got {config.p}"),
        (config.lam > 0, f"--lam must be positive (inf for no entropy term), got {config.lam}"),
        (config.epochs >= 1, f"--epochs must be at least 1, got {config.epochs}"),
        (config.batch_size >= 1, f"--batch-size must be at least 1, got {config.batch_size}"),
        (config.lr > 0, f"--lr must be positive, got {config.lr}"),
        (config.eval_steps >= 0, "--eval-steps must be >= 0"),
        (config.workers >= 0, "--workers must be >= 0"),
        (config.device in ("auto", "cpu", "cuda"), f"unknown device {config.device!r}; choose one of: auto, cpu, cuda"),
    ]
    for ok, message in checks:
        if not ok:
            raise WpgdkitError(message)
    if config.method == "wpgd" and config.metric is None:
        raise WpgdkitError("--method wpgd needs --metric (a label-metric file, e.g. metrics/cifar10-wordnet.csv)")
    if Path(config.out).suffix != ".pt":
        raise WpgdkitError(f"--out must end in .pt, got {config.out}")


def _load_metric(config: TrainConfig, data: TrainingData, full_classes: tuple[str, ...]):
    """The metric over the training classes: sliced from the dataset's, or given for them."""
    if config.metric is None:
        return None
    from wpgdkit.labelmetric import read_metric, validate_metric

    metric = read_metric(config.metric)
    validate_metric(metric, allow_asymmetric=True)
    if metric.classes == data.classes:
        return metric
    if metric.classes == full_classes:
        return metric.subset(list(data.classes))
    raise MetricFormatError(
        f"{config.metric}: its classes ({', '.join(metric.classes[:4])}, ...) are neither {config.data.dataset}'s "
        f"nor the selected classes ({', '.join(data.classes[:4])}, ...) in label order"
    )


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


# Settings that must agree for --resume to continue the same run.
_RESUME_KEYS = ("model", "method", "p", "lam", "norm", "eps", "steps", "epochs", "batch_size", "lr", "momentum",
                "weight_decay", "schedule", "seed")


def train(
    config: TrainConfig,
    *,
    on_epoch_end: Callable[[dict[str, Any]], None] | None = None,
    progress: Any | None = None,
) -> TrainResult:
    """Train a model with CE, PGD or WPGD and checkpoint it after every epoch.

    Parameters
    ----------
    config : TrainConfig
    on_epoch_end : callable, keyword-only, optional
        Called with each epoch's record after its checkpoint is written.
    progress : optional
        A reporter with ``start_epoch(epoch, batches)``, ``advance(stats)`` and
        ``end_epoch(record)`` (the CLI passes a Rich one).

    Returns
    -------
    result : TrainResult
    """
    from wpgdkit.attacks import PGDConfig
    from wpgdkit.datasets import get_dataset
    from wpgdkit.losses import WassersteinLoss
    from wpgdkit.models import count_parameters, create_model, dataset_normalization

    _validate(config)
    ctx = setup_distributed(config.device)
    progress = progress if ctx.is_main else None  # one progress display, from rank 0
    try:
        if config.deterministic:
            _make_deterministic()
        spec = get_dataset(config.data.dataset)
        data = prepare_data(config.data)
        metric = _load_metric(config, data, spec.classes)
        torch.manual_seed(config.seed)  # the same initial weights on every rank
        mean, std = dataset_normalization(config.data.dataset)
        model = create_model(config.model, num_classes=len(data.classes), input_shape=data.input_shape, mean=mean, std=std)
        model.to(ctx.device)
        optimizer = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum,
                                    weight_decay=config.weight_decay, nesterov=config.momentum > 0)
        per_rank = config.batch_size
        if ctx.world_size > 1:
            if config.batch_size % ctx.world_size:
                raise WpgdkitError(f"--batch-size {config.batch_size} must divide evenly over {ctx.world_size} processes")
        steps_per_epoch = max(1, sum(1 for _ in range(0, len(data.train), per_rank)))
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _lr_lambda(config.schedule, config.epochs * steps_per_epoch))
        out = Path(config.out)
        history: list[dict[str, Any]] = []
        start_epoch = 0
        if config.resume and out.exists():
            state = load_checkpoint(out, map_location=ctx.device)
            _check_resumable(state, config, data)
            model.load_state_dict(state["model"]["state_dict"])
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            history = list(state["history"])
            start_epoch = int(state["epoch"])
        forward_model = _Autocast(model, ctx.device.type) if (config.amp and ctx.device.type == "cuda") else model
        trained = ctx.wrap(forward_model)
        bounds = data.input_range
        attack = PGDConfig(eps=config.eps, step_size=config.attack_step_size, steps=config.steps, norm=config.norm,
                           random_start=config.random_start, bounds=bounds)
        attack_loss = None
        if config.method == "wpgd":
            cost = torch.tensor(metric.matrix.copy(), dtype=torch.float32, device=ctx.device)
            attack_loss = WassersteinLoss(cost, p=config.p, lam=config.lam).to(ctx.device)
        for epoch in range(start_epoch, config.epochs):
            record = _train_epoch(config, ctx, data, forward_model, trained, optimizer, scheduler, attack, attack_loss,
                                  epoch, progress)
            record.update(_evaluate(config, ctx, data, forward_model, attack, epoch))
            history.append(record)
            if ctx.is_main:
                payload = _checkpoint_payload(config, data, model, metric, optimizer, scheduler, epoch + 1, history,
                                              count_parameters(model))
                save_checkpoint(payload, out)
                with open(log_path_for(out), "a", encoding="utf-8") as log:
                    log.write(json.dumps(record) + "\n")
            if progress is not None:
                progress.end_epoch(record)
            if on_epoch_end is not None:
                on_epoch_end(record)
        return TrainResult(out, history)
    finally:
        ctx.close()


def _train_epoch(config, ctx, data, model, trained, optimizer, scheduler, attack, attack_loss, epoch, progress):
    from wpgdkit.attacks import pgd_attack

    n_batches = len(range(0, len(data.train), config.batch_size))
    if progress is not None:
        progress.start_epoch(epoch, n_batches)
    totals = {"loss": 0.0, "correct": 0, "seen": 0}
    start = time.perf_counter()
    for index, x, y in batch_generator(data.train, batch_size=config.batch_size, seed=config.seed, epoch=epoch,
                                       rank=ctx.rank, world_size=ctx.world_size, workers=config.workers):
        x, y = x.to(ctx.device, non_blocking=True), y.to(ctx.device, non_blocking=True)
        if data.augment:
            x = augment_batch(x, generator=torch.Generator(device=x.device).manual_seed(batch_seed(config.seed, epoch, index, 0)))
        if config.method != "ce":
            generator = torch.Generator(device=x.device).manual_seed(batch_seed(config.seed, epoch, index, 1) + ctx.rank)
            x = pgd_attack(model, x, y, config=attack, loss_fn=attack_loss, generator=generator)
        trained.train()
        logits = trained(x)
        loss = F.cross_entropy(logits, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        stats = ctx.all_reduce_sum(torch.tensor([loss.item() * len(y), (logits.argmax(1) == y).sum().item(), len(y)],
                                                dtype=torch.float64))
        totals["loss"] += stats[0].item()
        totals["correct"] += int(stats[1].item())
        totals["seen"] += int(stats[2].item())
        if progress is not None:
            elapsed = time.perf_counter() - start
            progress.advance({"loss": totals["loss"] / totals["seen"], "acc": totals["correct"] / totals["seen"],
                              "images_per_s": totals["seen"] / max(elapsed, 1e-9)})
    elapsed = time.perf_counter() - start
    seen = max(totals["seen"], 1)
    return {
        "epoch": epoch + 1, "train_loss": totals["loss"] / seen,
        "train_accuracy" if config.method == "ce" else "train_adversarial_accuracy": totals["correct"] / seen,
        "lr": scheduler.get_last_lr()[0], "images_per_s": totals["seen"] / max(elapsed, 1e-9), "seconds": elapsed,
    }


def _evaluate(config, ctx, data, model, attack, epoch) -> dict[str, Any]:
    """Clean and PGD (cross-entropy) accuracy on the validation split."""
    from wpgdkit.attacks import pgd_attack

    if len(data.val) == 0:
        return {}
    correct = robust = seen = 0
    eval_attack = dataclasses.replace(attack, steps=max(config.eval_steps, 1),
                                      step_size=2.5 * attack.eps / max(config.eval_steps, 1))
    model.eval()
    for index, x, y in batch_generator(data.val, batch_size=config.batch_size, seed=config.seed, epoch=epoch,
                                       shuffle=False, workers=config.workers):
        x, y = x.to(ctx.device), y.to(ctx.device)
        with torch.no_grad():
            correct += int((model(x).argmax(1) == y).sum())
        if config.eval_steps > 0:
            generator = torch.Generator(device=x.device).manual_seed(batch_seed(config.seed, epoch, index, 2))
            x_adv = pgd_attack(model, x, y, config=eval_attack, generator=generator)
            with torch.no_grad():
                robust += int((model(x_adv).argmax(1) == y).sum())
        seen += len(y)
    out = {"val_accuracy": correct / seen}
    if config.eval_steps > 0:
        out["val_robust_accuracy"] = robust / seen
    return out


def _check_resumable(state: dict, config: TrainConfig, data: TrainingData) -> None:
    saved = state["run"]
    for key in _RESUME_KEYS:
        now = getattr(config, key)
        if saved.get(key) != now and not (isinstance(now, float) and math.isinf(now) and saved.get(key) == "inf"):
            raise WpgdkitError(f"cannot resume {config.out}: it was trained with {key}={saved.get(key)!r}, not {now!r}")
    if tuple(state["data"]["classes"]) != data.classes:
        raise WpgdkitError(f"cannot resume {config.out}: it was trained on other classes")


def _checkpoint_payload(config, data, model, metric, optimizer, scheduler, epoch, history, parameters) -> dict:
    run = {key: getattr(config, key) for key in _RESUME_KEYS}
    run.update(step_size=config.attack_step_size, random_start=config.random_start, eval_steps=config.eval_steps,
               amp=config.amp, deterministic=config.deterministic, lam=_plain(config.lam))
    return {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "tool_version": __version__,
        "model": {"name": config.model, "num_classes": len(data.classes), "input_shape": list(data.input_shape),
                  "mean": list(model.mean) if model.mean is not None else None,
                  "std": list(model.std) if model.std is not None else None,
                  "parameters": parameters, "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()}},
        "data": {**dataclasses.asdict(config.data), "classes": list(data.classes),
                 "class_indices": list(data.class_indices), "augmented": data.augment,
                 "input_range": list(data.input_range) if data.input_range else None},
        "metric": None if metric is None else {"classes": list(metric.classes),
                                               "matrix": torch.tensor(metric.matrix.copy(), dtype=torch.float64),
                                               "provenance": metric.provenance.to_dict()},
        "method": config.method, "p": config.p, "lam": _plain(config.lam),
        "attack": {"norm": config.norm, "eps": config.eps, "step_size": config.attack_step_size,
                   "steps": config.steps, "random_start": config.random_start},
        "run": run,
        "seed": config.seed,
        "epoch": epoch,
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "history": history,
    }


def _plain(value: float) -> float | str:
    # "inf" rather than float('inf'): the checkpoint's history also goes to JSON logs.
    return "inf" if isinstance(value, float) and math.isinf(value) else value


def _make_deterministic() -> None:
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.benchmark = False
