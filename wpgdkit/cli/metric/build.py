"""``wpgdkit metric build``: a label metric from WordNet, a linear classifier, a network, the uniform metric or a file."""

from __future__ import annotations

import sys
from contextlib import nullcontext
from pathlib import Path
from typing import Annotated, Optional

import typer

from wpgdkit.cli._common import DeviceName, choices, output_file, safe, split_list, stderr
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
from wpgdkit.cli._modelopts import InputShapeOpt, MeanOpt, ModelKwargsOpt, ModelOpt, StdOpt, WeightsOpt, model_source
from wpgdkit.cli.metric._shared import cache_option
from wpgdkit.datasets import SPLITS
from wpgdkit.errors import WpgdkitError
from wpgdkit.labelmetric import (
    FORMATS,
    NORMALIZATIONS,
    BuildConfig,
    build_metric,
    get_source,
    list_sources,
    metric_summary,
    read_metric,
    write_metric,
)
from wpgdkit.labelmetric.io import metric_file_bytes, metric_to_csv

__all__ = ["build"]

# --help choices come from the same registries the library resolves names with.
SourceName = choices("SourceName", list_sources())
Normalization = choices("Normalization", list(NORMALIZATIONS))
SplitName = choices("SplitName", list(SPLITS))


def _measure_help() -> str:
    """The sources' measures for --help; a broken plugin source must not break every command's start-up."""
    parts = []
    for name in list_sources():
        try:
            source = get_source(name)
        except WpgdkitError:
            continue
        if source.measures:
            parts.append(f"{name}: {', '.join(source.measures)} "
                         f"(default {source.default_measure or 'the checkpoint attack norm'})")
    return "; ".join(parts)


MEASURE_HELP = _measure_help()

BuildCacheOption = cache_option("wordnet: reuse the classes' hypernym closure", "opening WordNet")

def _check_output_path(out: Path | None, force: bool) -> None:
    # Fail before any work: a wrong extension, or a file that no metric could equal, found after a long
    # build wastes it.
    if out is None:
        return
    if out.suffix.lower() not in FORMATS:
        raise WpgdkitError(f"--out must end in {', '.join(FORMATS)}; got {out.name}")
    if not force and out.exists() and out.suffix.lower() != ".npy":  # an .npy cannot be read without its classes
        try:
            read_metric(out)
        except WpgdkitError:
            raise WpgdkitError(f"--out {out} exists and is not a label metric; pass --force to replace it") from None


def build(
    dataset: Annotated[
        Optional[str],
        typer.Option(help=DATASET_HELP + " The metric is over its classes (boundary, confusion: the checkpoint's, "
                     "or the data a --model classifies)."),
    ] = None,
    source: Annotated[
        SourceName, typer.Option(help="Where the distances come from.")
    ] = SourceName("wordnet"),
    measure: Annotated[
        Optional[str],
        typer.Option(help=f"The source's measure. {MEASURE_HELP}."),
    ] = None,
    classes: Annotated[
        Optional[str], typer.Option(help="Keep only these classes, by names or indices: '3,5' or 'cat,dog'.")
    ] = None,
    normalize: Annotated[
        Normalization, typer.Option(help="Divide by the largest entry (max) or keep the raw distances (none).")
    ] = Normalization("none"),
    out: Annotated[
        Optional[Path], typer.Option("--out", "-o", help="Output file (.csv, .json, .npy); CSV on stdout if omitted.", callback=output_file)
    ] = None,
    wordnet_dir: Annotated[
        Optional[Path], typer.Option(help="WordNet database or NLTK data folder (else $WPGDKIT_WORDNET_DIR, NLTK's path, /usr/share/wordnet).")
    ] = None,
    cache: BuildCacheOption = True,
    synset_map: Annotated[
        Optional[Path], typer.Option(help="CSV with 'class' and 'synset' columns, for classes outside the registry.")
    ] = None,
    data_dir: Annotated[Optional[Path], typer.Option(help="Dataset folder (else $WPGDKIT_DATA_DIR, ./data).")] = None,
    download: Annotated[bool, typer.Option(help="Allow downloading the dataset through torchvision.")] = False,
    limit: Annotated[Optional[int], typer.Option(
        help="linear: fit on a seeded random subset of N training points; boundary: the first N points of each "
        "class; confusion: the first N points.")] = None,
    seed: Annotated[int, typer.Option(help="linear: seed of --limit's subset and of the fit.")] = 0,
    l2: Annotated[float, typer.Option(help="linear: ridge penalty on the pixel-space weights.")] = 1e-3,
    max_iter: Annotated[int, typer.Option(help="linear: L-BFGS iterations.")] = 200,
    checkpoint: Annotated[Optional[Path], typer.Option(
        help="boundary, confusion: a model trained by 'wpgdkit train' (.pt; dataset and classes come from it), "
             "or a TorchScript / torch.export file (with --dataset).")] = None,
    model: ModelOpt = None,
    model_kwargs: ModelKwargsOpt = None,
    weights: WeightsOpt = None,
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
    split: Annotated[Optional[SplitName], typer.Option(
        help="boundary, confusion: the split the model is evaluated on (default test).")] = None,
    input: Annotated[Optional[Path], typer.Option("--input", help="file: the matrix to import (.csv, .json, .npy).")] = None,
    class_list: Annotated[Optional[Path], typer.Option(help="Class names, one per line (for .npy input or uniform).")] = None,
    allow_asymmetric: Annotated[bool, typer.Option(help="Accept C[i,j] != C[j,i].")] = False,
    device: Annotated[DeviceName, typer.Option(
        help="boundary, confusion: where the network runs; auto picks CUDA when available.")] = DeviceName("auto"),
    threads: Annotated[Optional[int], typer.Option(
        help="linear, boundary, confusion: torch CPU threads (default: torch's choice).")] = None,
    force: Annotated[bool, typer.Option(
        "--force", help="Replace --out when it holds something else (without it, a different file there is "
        "refused, and one already holding this metric is left as it is).")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No summary on stderr.")] = False,
) -> None:
    """Build a label metric from WordNet, a linear classifier, a trained network, the uniform metric or a file.

    boundary and confusion read a checkpoint (--checkpoint model.pt) and run
    it on --device (a GPU when there is one). Without --out the CSV goes to stdout (messages to
    stderr), so it pipes.
    """
    _check_output_path(out, force)
    config = BuildConfig(
        source=source.value, dataset=dataset, measure=measure,
        model=model_source(model, model_kwargs, weights, input_shape, mean, std),
        data_options=_data_options_or_none(test, label_column, test_fraction, bounds, standardize, image_size, synsets,
                                           seed),
        classes=split_list(classes), normalize=normalize.value,
        wordnet_dir=str(wordnet_dir) if wordnet_dir else None, synset_map=str(synset_map) if synset_map else None,
        data_dir=str(data_dir) if data_dir else None, download=download, limit=limit, seed=seed, l2=l2,
        max_iter=max_iter, checkpoint=str(checkpoint) if checkpoint else None, split=split.value if split else None,
        input=str(input) if input else None, class_list=str(class_list) if class_list else None,
        allow_asymmetric=allow_asymmetric, device=device.value, threads=threads, use_cache=cache,
    )
    with stderr.status(f"building the {safe(source.value)} metric", spinner="dots") if not quiet else nullcontext():
        metric = build_metric(config)
    if out is None:
        sys.stdout.write(metric_to_csv(metric))
        where = "CSV on stdout"
    elif force or not out.exists():
        write_metric(metric, out)
        where = f"wrote {safe(out)}"
    elif _holds(out, metric_file_bytes(metric, out)):
        where = f"{safe(out)} already holds it"  # a rerun of the same build: the file is left as it was
    else:
        raise WpgdkitError(f"--out {out} exists and holds something else; pass --force to replace it")
    if not quiet:
        stderr.print(f"{where}: {safe(metric_summary(metric))}")


def _holds(path: Path, data: bytes) -> bool:
    """Whether the file at ``path`` is exactly ``data`` (False when it cannot be read)."""
    try:
        return path.stat().st_size == len(data) and path.read_bytes() == data
    except OSError:
        return False


def _data_options_or_none(*values):
    """The dataset-file options, or None when all are at their defaults (a registered dataset's case)."""
    options = data_options(*values)
    return None if options.is_default else options
