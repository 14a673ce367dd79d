"""``wpgdkit train``: adversarial training with CE, PGD, WPGD or their fast (single-step) variants."""

from __future__ import annotations

import contextlib
import shlex
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Optional

import typer

from wpgdkit.cli._common import DeviceName, _visible, choices, split_list, stderr, output_file
from wpgdkit.attacks import DEFAULT_STEP_FACTOR, NORMS
from wpgdkit.checkpoint import METHODS, SCHEDULES
from wpgdkit.cli._dataopts import (
    DATASET_HELP,
    BoundsOption,
    DataTestOption,
    ImageSizeOption,
    LabelColumnOption,
    StandardizeOption,
    SynsetsOption,
    TestFractionOption,
    data_options,
)
from wpgdkit.cli._modelopts import InputShapeOpt, MeanOpt, ModelKwargsOpt, StdOpt, WeightsOpt, model_source
from wpgdkit.cli._progress import RichProgress, interruptible
from wpgdkit.errors import WpgdkitError
from wpgdkit.models.layout import MEMORY_FORMATS

MethodName = choices("MethodName", list(METHODS))
NormName = choices("NormName", list(NORMS))
ScheduleName = choices("ScheduleName", list(SCHEDULES))
CoGuard = choices("CoGuard", ["stop", "warn", "off"])  # wpgdkit.training.loop.CO_GUARDS (imported lazily: torch)
MemoryFormat = choices("MemoryFormat", list(MEMORY_FORMATS))  # the same layouts as the audit's --memory-format

def _model_help() -> str:
    from wpgdkit.models import list_models

    return (f"The network: {', '.join(list_models())} (see `wpgdkit models`), PKG.MODULE:FACTORY or "
            "path/to/file.py:FACTORY, torchvision:NAME or timm:NAME (extra). Importing a module or .py file runs "
            "its code: name only code you trust.")


_MODEL_HELP = _model_help()


def train(
    dataset: Annotated[str, typer.Option(help=DATASET_HELP)],
    out: Annotated[Path, typer.Option("--out", "-o", help="Checkpoint (.pt); the JSON-lines log goes beside it.", callback=output_file)],
    model: Annotated[str, typer.Option(help=_MODEL_HELP, metavar="SPEC")] = "small-cnn",
    model_kwargs: ModelKwargsOpt = None,
    weights: Annotated[Optional[str], typer.Option(
        "--weights", metavar="FILE", help="Initial weights for --model (fine-tuning): .pt/.pth state dict (read with "
        "weights_only=True) or .safetensors. Never runs code.")] = None,
    input_shape: InputShapeOpt = None,
    mean: MeanOpt = None,
    std: StdOpt = None,
    test: DataTestOption = None,
    label_column: LabelColumnOption = None,
    test_fraction: TestFractionOption = None,
    bounds: BoundsOption = "data",
    standardize: StandardizeOption = False,
    image_size: ImageSizeOption = None,
    synsets: SynsetsOption = None,
    class_weights: Annotated[Optional[str], typer.Option(
        "--class-weights", metavar="balanced|FILE",
        help="Weights of the outer cross-entropy per class: balanced (n / (K·n_k), as scikit-learn) or a file "
             "(class,weight rows, or K numbers).")] = None,
    method: Annotated[MethodName, typer.Option(help=(
        "ce: clean; pgd: PGD adversarial training; wpgd: Wasserstein PGD; fast-pgd, fast-wpgd: one step of "
        "1.25·eps (or --step-size) from a random start on CE or on the Wasserstein loss (Wong et al. 2020; "
        "--steps does not apply), with the --co-guard check."))] = MethodName("pgd"),
    metric: Annotated[Optional[Path], typer.Option(help="Label-metric file (required for wpgd and fast-wpgd).")] = None,
    p: Annotated[float, typer.Option("--p", help="Power of the metric, C^p.")] = 1.0,
    lam: Annotated[str, typer.Option("--lam", help="λ of the entropy term 1/(λ log K)·H(ŷ); 'inf' drops it.")] = "inf",
    norm: Annotated[NormName, typer.Option(help="Threat model.")] = NormName("linf"),
    eps: Annotated[str, typer.Option(help="Budget, e.g. 8/255 or 0.5.")] = "8/255",
    step_size: Annotated[Optional[str], typer.Option(help=f"Inner step, e.g. 2/255 (default {DEFAULT_STEP_FACTOR:g}·eps/steps).")] = None,
    steps: Annotated[int, typer.Option(help="Inner PGD steps.")] = 8,
    eval_steps: Annotated[int, typer.Option(help="PGD steps of the per-epoch robust validation accuracy (0: skip).")] = 8,
    co_guard: Annotated[CoGuard, typer.Option(
        "--co-guard", help="Fast methods: when the per-epoch robust validation accuracy collapses below half its "
        "best (catastrophic overfitting), stop (--out keeps the epoch before), warn, or off.")] = CoGuard("stop"),
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
    resume: Annotated[bool, typer.Option(help="Continue the run in --out (it must have been trained with the same settings).")] = False,
    force: Annotated[bool, typer.Option("--force", help="Start over even if --out holds a run (its log starts afresh).")] = False,
    device: Annotated[DeviceName, typer.Option(help="auto picks CUDA when available.")] = DeviceName("auto"),
    amp: Annotated[bool, typer.Option(help="bfloat16 mixed precision on CUDA.")] = True,
    memory_format: Annotated[MemoryFormat, typer.Option(
        "--memory-format", help="Layout of the network and its inputs: channels_last (NHWC, image models; faster convolutions on tensor cores), contiguous, or auto: measured once at the start on CUDA, contiguous on a CPU and with --deterministic. Checkpoints are the same either way.")] = MemoryFormat("auto"),
    workers: Annotated[int, typer.Option(help="DataLoader workers (file-backed datasets).")] = 0,
    seed: Annotated[int, typer.Option(help="Seed of the split, order, augmentation, attack starts and weights.")] = 0,
    deterministic: Annotated[bool, typer.Option(help="Deterministic algorithms (bitwise-reproducible on CPU).")] = False,
    threads: Annotated[Optional[int], typer.Option(help="torch CPU threads (default: torch's choice)")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress output.")] = False,
) -> None:
    """Train a model with CE, PGD, WPGD, fast-PGD or fast-WPGD; checkpoint after every epoch.

    Example: wpgdkit train --dataset cifar10 --model wrn-16-10 --method wpgd
    --metric metrics/cifar10-wordnet.csv --p 2.5 --eps 4/255 --steps 8 --epochs 100 --out runs/c10-wpgd.pt.
    Runs unchanged under torchrun --nproc_per_node N (DistributedDataParallel).
    """
    from wpgdkit.budget import parse_budget, parse_lam
    from wpgdkit.device import torch_threads
    from wpgdkit.training import DataConfig, TrainConfig, log_path_for
    from wpgdkit.training import train as run_training

    config = TrainConfig(
        data=DataConfig(dataset=dataset, classes=split_list(classes),
                        options=data_options(test, label_column, test_fraction, bounds, standardize, image_size,
                                             synsets, seed),
                        imbalance=imbalance,
                        imbalance_class=imbalance_class, limit=limit, val_fraction=val_fraction, augment=augment,
                        data_dir=str(data_dir) if data_dir else None, download=download, seed=seed),
        model=model, model_source=_model_source(model, model_kwargs, weights, input_shape, mean, std),
        class_weights=class_weights, method=method.value, metric=str(metric) if metric else None, p=p, lam=parse_lam(lam),
        norm=norm.value, eps=parse_budget(eps, name="--eps"),
        step_size=parse_budget(step_size, name="--step-size") if step_size is not None else None,
        steps=steps, eval_steps=eval_steps, co_guard=co_guard.value, epochs=epochs, batch_size=batch_size, lr=lr,
        momentum=momentum, weight_decay=weight_decay, schedule=schedule.value, out=str(out), resume=resume, force=force, device=device.value,
        amp=amp, memory_format=memory_format.value, workers=workers, seed=seed, deterministic=deterministic,
    )
    before = _modified(out)
    with interruptible(lambda: _interrupted(out, epochs, resume, before)), torch_threads(threads), \
            _guard_messages():
        if quiet:
            result = run_training(config)
        else:
            with RichProgress(epochs) as progress:
                result = run_training(config, progress=progress)
    if not quiet and result.history:
        stderr.print(f"checkpoint: {result.checkpoint}  log: {log_path_for(result.checkpoint)}")


@contextlib.contextmanager
def _guard_messages() -> Iterator[None]:
    """The catastrophic-overfitting guard's warnings as one ``wpgdkit: warning:`` line each; its errors with flags."""
    from wpgdkit.training.loop import CatastrophicOverfittingWarning

    with warnings.catch_warnings():
        shown = warnings.showwarning

        def show(message, category, filename, lineno, file=None, line=None):
            if issubclass(category, CatastrophicOverfittingWarning):
                # typer.echo, not the Rich console, which would wrap a long line at the terminal's width.
                typer.echo(f"wpgdkit: warning: {_visible(' '.join(str(message).split()))}", err=True)
            else:
                shown(message, category, filename, lineno, file, line)

        warnings.showwarning = show
        warnings.simplefilter("always", CatastrophicOverfittingWarning)
        try:
            yield
        except WpgdkitError as exc:
            # The library names its parameters co_guard and memory_format; here they are flags (the other names are
            # mapped on exit).
            if exc.args and isinstance(exc.args[0], str):
                for name in ("co_guard", "memory_format"):
                    if name in exc.args[0]:
                        exc.args = (exc.args[0].replace(name, "--" + name.replace("_", "-")), *exc.args[1:])
            raise


def _model_source(model: str, model_kwargs, weights, input_shape, mean, std):
    """A registry name alone stays a name (its checkpoints keep their fingerprints); anything else is a source."""
    from wpgdkit.models.foreign import ModelSource

    extras = (model_kwargs, weights, input_shape, mean, std)
    if all(v is None for v in extras) and ModelSource(spec=model).kind() == "registry":
        return None
    return model_source(model, *extras)


def _modified(path: Path) -> int | None:
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return None


def _interrupted(out: Path, epochs: int, resume: bool, before: int | None) -> str:
    """What Ctrl-C leaves: the last finished epoch in ``out`` (written atomically), and how to go on."""
    from wpgdkit.training import load_checkpoint

    # A file this run neither resumed nor rewrote is someone else's: nothing of this run is in it.
    if not out.is_file() or (not resume and _modified(out) == before):
        return "nothing was saved"
    try:
        held = f"epoch {load_checkpoint(out).epoch} of {epochs}"
    except WpgdkitError:
        held = "the last finished epoch"
    return f"{out} holds {held}; resume with: {_resume_command()}"


def _resume_command() -> str:
    """This command line, as typed, with --resume (and without --force, which would start over)."""
    words = [word for word in sys.argv[1:] if word not in ("--no-resume", "--force")]
    if "--resume" not in words:
        words.append("--resume")
    return shlex.join(["wpgdkit", *words])
