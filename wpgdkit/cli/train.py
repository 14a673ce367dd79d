"""``wpgdkit train``: adversarial training with CE, PGD or WPGD."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from wpgdkit.cli._common import DeviceName, choices, split_list, stderr, output_file
from wpgdkit.datasets import list_datasets

DatasetName = choices("TrainDatasetName", list_datasets())
MethodName = choices("MethodName", ["ce", "pgd", "wpgd"])
NormName = choices("NormName", ["linf", "l2"])
ScheduleName = choices("ScheduleName", ["piecewise", "cosine", "constant"])


def _model_names() -> list[str]:
    from wpgdkit.models import list_models

    return list_models()


ModelName = choices("ModelName", _model_names())


class RichProgress:
    """Per-batch progress bar on stderr and one summary line per epoch."""

    def __init__(self, epochs: int) -> None:
        self.epochs = epochs
        self.bar = Progress(
            TextColumn("epoch {task.fields[epoch]}/{task.fields[epochs]}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]:.4f}  acc {task.fields[acc]:.3f}  {task.fields[ips]:.0f} img/s"),
            TimeElapsedColumn(), console=stderr, transient=True,
        )
        self.task = None

    def __enter__(self) -> RichProgress:
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.started:
            self.bar.stop()

    @property
    def started(self) -> bool:
        return self.task is not None

    def start_epoch(self, epoch: int, batches: int) -> None:
        # The display starts with the first epoch, so an error found while
        # setting up (missing data, no GPU) stays the single line on stderr.
        if not self.started:
            self.bar.start()
        if self.task is not None:
            self.bar.remove_task(self.task)
        self.task = self.bar.add_task("train", total=batches, epoch=epoch + 1, epochs=self.epochs, loss=0.0, acc=0.0, ips=0.0)

    def advance(self, stats: dict[str, float]) -> None:
        self.bar.update(self.task, advance=1, loss=stats["loss"], acc=stats["acc"], ips=stats["images_per_s"])

    def end_epoch(self, record: dict[str, Any]) -> None:
        parts = [f"epoch {record['epoch']}/{self.epochs}", f"loss {record['train_loss']:.4f}"]
        for key, label in (("train_accuracy", "train acc"), ("train_adversarial_accuracy", "train adv acc"),
                           ("val_accuracy", "val acc"), ("val_robust_accuracy", "val robust acc")):
            if key in record:
                parts.append(f"{label} {record[key]:.4f}")
        parts.append(f"{record['images_per_s']:.0f} img/s")
        self.bar.console.print("  ".join(parts))


def train(
    dataset: Annotated[DatasetName, typer.Option(help="Dataset to train on.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Checkpoint (.pt); the JSON-lines log goes beside it.", callback=output_file)],
    model: Annotated[ModelName, typer.Option(help="Model registry name.")] = ModelName("small-cnn"),
    method: Annotated[MethodName, typer.Option(help="ce: clean; pgd: PGD adversarial training; wpgd: Wasserstein PGD.")] = MethodName("pgd"),
    metric: Annotated[Optional[Path], typer.Option(help="Label-metric file (required for wpgd).")] = None,
    p: Annotated[float, typer.Option("--p", help="Power of the metric, C^p.")] = 1.0,
    lam: Annotated[str, typer.Option("--lam", help="λ of the entropy term 1/(λ log K)·H(ŷ); 'inf' drops it.")] = "inf",
    norm: Annotated[NormName, typer.Option(help="Threat model.")] = NormName("linf"),
    eps: Annotated[str, typer.Option(help="Budget, e.g. 8/255 or 0.5.")] = "8/255",
    step_size: Annotated[Optional[str], typer.Option(help="Inner step, e.g. 2/255 (default 2.5·eps/steps).")] = None,
    steps: Annotated[int, typer.Option(help="Inner PGD steps.")] = 8,
    eval_steps: Annotated[int, typer.Option(help="PGD steps of the per-epoch robust validation accuracy (0: skip).")] = 8,
    epochs: Annotated[int, typer.Option(help="Training epochs.")] = 10,
    batch_size: Annotated[int, typer.Option(help="Global batch size (split over torchrun processes).")] = 128,
    lr: Annotated[float, typer.Option(help="Initial learning rate (SGD, Nesterov momentum).")] = 0.1,
    momentum: Annotated[float, typer.Option(help="SGD momentum.")] = 0.9,
    weight_decay: Annotated[float, typer.Option(help="Weight decay.")] = 5e-4,
    schedule: Annotated[ScheduleName, typer.Option(help="Learning-rate schedule.")] = ScheduleName("piecewise"),
    classes: Annotated[Optional[str], typer.Option(help="Sub-problem, e.g. 3,5 or cat,dog (labels re-indexed).")] = None,
    imbalance: Annotated[Optional[float], typer.Option(help="Down-sample one class to this ratio (Sec. 3.2).")] = None,
    imbalance_class: Annotated[Optional[str], typer.Option(help="Class to down-sample (default: the last selected).")] = None,
    limit: Annotated[Optional[int], typer.Option(help="Train on a seeded random subset of N points.")] = None,
    val_fraction: Annotated[float, typer.Option(help="Held-out share of the training split.")] = 0.1,
    augment: Annotated[bool, typer.Option(help="Random crop + flip for CIFAR-like and Tiny-ImageNet images.")] = True,
    data_dir: Annotated[Optional[Path], typer.Option(help="Dataset folder (else $WPGDKIT_DATA_DIR, ./data).")] = None,
    download: Annotated[bool, typer.Option(help="Allow downloading the dataset through torchvision.")] = False,
    resume: Annotated[bool, typer.Option(help="Continue from --out if it exists.")] = False,
    device: Annotated[DeviceName, typer.Option(help="auto picks CUDA when available.")] = DeviceName("auto"),
    amp: Annotated[bool, typer.Option(help="bfloat16 mixed precision on CUDA.")] = True,
    workers: Annotated[int, typer.Option(help="DataLoader workers (file-backed datasets).")] = 0,
    seed: Annotated[int, typer.Option(help="Seed of the split, order, augmentation, attack starts and weights.")] = 0,
    deterministic: Annotated[bool, typer.Option(help="Deterministic algorithms (bitwise-reproducible on CPU).")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress output.")] = False,
) -> None:
    """Train a model with CE, PGD or WPGD; checkpoint after every epoch.

    Example: wpgdkit train --dataset cifar10 --model wrn-16-10 --method wpgd
    --metric metrics/cifar10-wordnet.csv --p 2.5 --eps 4/255 --steps 8 --epochs 100 --out runs/c10-wpgd.pt.
    Runs unchanged under torchrun --nproc_per_node N (DistributedDataParallel).
    """
    from wpgdkit.budget import parse_budget, parse_lam
    from wpgdkit.training import DataConfig, TrainConfig, log_path_for
    from wpgdkit.training import train as run_training

    config = TrainConfig(
        data=DataConfig(dataset=dataset.value, classes=split_list(classes), imbalance=imbalance,
                        imbalance_class=imbalance_class, limit=limit, val_fraction=val_fraction, augment=augment,
                        data_dir=str(data_dir) if data_dir else None, download=download, seed=seed),
        model=model.value, method=method.value, metric=str(metric) if metric else None, p=p, lam=parse_lam(lam),
        norm=norm.value, eps=parse_budget(eps, name="--eps"),
        step_size=parse_budget(step_size, name="--step-size") if step_size is not None else None,
        steps=steps, eval_steps=eval_steps, epochs=epochs, batch_size=batch_size, lr=lr, momentum=momentum,
        weight_decay=weight_decay, schedule=schedule.value, out=str(out), resume=resume, device=device.value,
        amp=amp, workers=workers, seed=seed, deterministic=deterministic,
    )
    if quiet:
        result = run_training(config)
    else:
        with RichProgress(epochs) as progress:
            result = run_training(config, progress=progress)
    if not quiet and result.history:
        stderr.print(f"checkpoint: {result.checkpoint}  log: {log_path_for(result.checkpoint)}")
