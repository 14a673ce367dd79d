"""``wpgdkit reproduce EXPERIMENT``: the paper's experiments at a scale the user picks."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from wpgdkit.cli._common import DeviceName, choices, stderr, stdout, write_json, output_file, output_folder
from wpgdkit.attacks import NORMS
from wpgdkit.cli._progress import RichPhases, interruptible
from wpgdkit.experiments.reproduce import SCALES, experiment_descriptions, list_experiments

ExperimentName = choices("ExperimentName", list_experiments())
ScaleName = choices("ScaleName", list(SCALES))
NormName = choices("ReproduceNormName", list(NORMS))

_EXPERIMENTS_HELP = "; ".join(f"{name}: {text}" for name, text in experiment_descriptions().items())


def reproduce(
    experiment: Annotated[ExperimentName, typer.Argument(help=_EXPERIMENTS_HELP)],
    scale: Annotated[ScaleName, typer.Option(help="quick: Fashion-MNIST or toy on a CPU in minutes; cpu: the MLP on all of Fashion-MNIST, 10 epochs, full test set (a CPU); paper: WRN-16-10, CIFAR-10, ε = 4/255, 8 inner steps, 20-step evaluation (a GPU).")] = ScaleName("quick"),
    dataset: Annotated[Optional[str], typer.Option(help="Dataset (default: the scale's).")] = None,
    model: Annotated[Optional[str], typer.Option(help="Model registry name (default: the scale's).")] = None,
    epochs: Annotated[Optional[int], typer.Option(help="Training epochs (default: the scale's).")] = None,
    limit: Annotated[Optional[int], typer.Option(help="Training points, a seeded subset (default: the scale's).")] = None,
    test_limit: Annotated[Optional[int], typer.Option(help="Audit the first N test points (default: the scale's).")] = None,
    eps: Annotated[Optional[str], typer.Option(help="Budget for training and evaluation, e.g. 4/255.")] = None,
    norm: Annotated[Optional[NormName], typer.Option(help="Threat model.")] = None,
    steps: Annotated[Optional[int], typer.Option(help="Inner PGD/WPGD steps in training.")] = None,
    eval_steps: Annotated[Optional[int], typer.Option(help="PGD steps of the audit.")] = None,
    metric: Annotated[Optional[Path], typer.Option(help="Label metric (default: the dataset's shipped WordNet one).")] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="Run folder: checkpoints in runs/ (shared, resumed), a report folder per experiment.", callback=output_folder)] = Path("wpgdkit-results"),
    device: Annotated[DeviceName, typer.Option(help="auto picks CUDA when available.")] = DeviceName("auto"),
    seed: Annotated[int, typer.Option(help="Seed of data subsets, training and attacks.")] = 0,
    data_dir: Annotated[Optional[Path], typer.Option(help="Dataset folder (else $WPGDKIT_DATA_DIR, ./data).")] = None,
    download: Annotated[bool, typer.Option(help="Allow downloading the dataset through torchvision.")] = False,
    threads: Annotated[Optional[int], typer.Option(help="torch CPU threads (default: torch's choice)")] = None,
    json_out: Annotated[Optional[str], typer.Option("--json", help="Also write the results as JSON to PATH, or - for stdout.", callback=output_file)] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress output.")] = False,
) -> None:
    """Run one of the paper's experiments: train what is missing, audit, write report.md with tables, plots and commands.

    Example: wpgdkit reproduce p-sweep --scale quick --out results/. An interrupted run resumes; finished
    checkpoints in OUT/runs are reused by every experiment that needs them.
    """
    from wpgdkit.budget import parse_budget
    from wpgdkit.device import torch_threads
    from wpgdkit.experiments.reproduce import ReproduceConfig, run_experiment

    config = ReproduceConfig(
        experiment=experiment.value, scale=scale.value, dataset=dataset, model=model, epochs=epochs, limit=limit,
        test_limit=test_limit, eps=parse_budget(eps, name="--eps") if eps is not None else None,
        norm=norm.value if norm else None, steps=steps, eval_steps=eval_steps,
        metric=str(metric) if metric else None, out=str(out), device=device.value, seed=seed,
        data_dir=str(data_dir) if data_dir else None, download=download,
    )
    # Checkpoints are written atomically after each epoch and reused by the next run.
    kept = f"finished checkpoints in {out / 'runs'} are kept and the same command resumes"
    with interruptible(lambda: kept), torch_threads(threads):
        result = run_experiment(config, progress=None if quiet else RichPhases())
    if json_out is not None:
        write_json(result.document, json_out)
    if not quiet and json_out != "-":
        stdout.print(result.summary_markdown, markup=False)
        stderr.print(f"report: {result.report}")
