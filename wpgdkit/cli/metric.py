"""``wpgdkit metric``: build, check, show and compare label metrics."""

from __future__ import annotations

import os
import sys
from contextlib import nullcontext
from pathlib import Path
from typing import Annotated, Optional

import numpy as np
import typer
from rich.table import Table

from wpgdkit.cli._common import (
    OneLineErrorGroup,
    DeviceName,
    choices,
    safe,
    split_list,
    stderr,
    stdout,
    write_json,
    output_file,
)
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
from wpgdkit.datasets import SPLITS
from wpgdkit.errors import WpgdkitError
from wpgdkit.figures import check_plot_suffix
from wpgdkit.labelmetric import (
    FORMATS,
    NORMALIZATIONS,
    BuildConfig,
    LabelMetric,
    analyze_metric,
    build_metric,
    get_source,
    list_sources,
    metric_correlation,
    metric_origin,
    metric_summary,
    nearest_and_farthest,
    read_metric,
    validate_metric,
    write_metric,
)
from wpgdkit.labelmetric.check_cache import cached_reference_check
from wpgdkit.labelmetric.io import metric_to_csv
from wpgdkit.labelmetric.validate import MetricReport

app = typer.Typer(
    cls=OneLineErrorGroup,
    no_args_is_help=True,
    help="Build, check, show and compare label metrics (K×K class-cost matrices).",
)

EXIT_CHECK_FAILED = 1

# --help choices come from the same registries the library resolves names with.
SourceName = choices("SourceName", list_sources())
Normalization = choices("Normalization", list(NORMALIZATIONS))
SplitName = choices("SplitName", list(SPLITS))
PlotOrder = choices("PlotOrder", ["metric", "label"])
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

# Options shared by the commands that read a metric file.
ClassListOption = Annotated[Optional[Path], typer.Option("--classes", help="Class names, one per line (needed for .npy).")]
AsymmetricOption = Annotated[bool, typer.Option(help="Accept C[i,j] != C[j,i].")]
JsonOption = Annotated[Optional[str], typer.Option("--json", help="Write the result as JSON to PATH, or - for stdout.", callback=output_file)]


def _cache_option(reuse: str, instead: str):
    """``--cache/--no-cache``, worded the same for every command that keeps what it can rebuild."""
    return Annotated[bool, typer.Option(
        "--cache/--no-cache", help=f"{reuse} saved in the cache folder ($WPGDKIT_CACHE_DIR, else "
        f"$XDG_CACHE_HOME/wpgdkit, ~/.cache/wpgdkit) instead of {instead}; --no-cache neither reads nor writes it. "
        "Same result either way.")]


BuildCacheOption = _cache_option("wordnet: reuse the classes' hypernym closure", "opening WordNet")
CheckCacheOption = _cache_option(
    "Reuse the report of the same check (same matrix, classes and options, same versions of wpgdkit, NumPy, POT "
    "and SciPy)", "running POT again")


def _check_output_path(out: Path | None) -> None:
    # Fail before any work: a wrong extension found after a long build wastes it.
    if out is not None and out.suffix.lower() not in FORMATS:
        raise WpgdkitError(f"--out must end in {', '.join(FORMATS)}; got {out.name}")


@app.command()
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
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No summary on stderr.")] = False,
) -> None:
    """Build a label metric from WordNet, a linear classifier, a trained network, the uniform metric or a file.

    boundary and confusion read a checkpoint (--checkpoint model.pt) and run
    it on --device (a GPU when there is one). Without --out the CSV goes to stdout (messages to
    stderr), so it pipes.
    """
    _check_output_path(out)
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
    else:
        write_metric(metric, out)
    if not quiet:
        where = f"wrote {safe(out)}" if out else "CSV on stdout"
        stderr.print(f"{where}: {safe(metric_summary(metric))}")


def _data_options_or_none(*values):
    """The dataset-file options, or None when all are at their defaults (a registered dataset's case)."""
    options = data_options(*values)
    return None if options.is_default else options


def _load(path: Path, classes: Path | None, allow_asymmetric: bool) -> tuple[LabelMetric, MetricReport]:
    metric = read_metric(path, classes=classes)
    validate_metric(metric, allow_asymmetric=allow_asymmetric)
    return metric, analyze_metric(metric)


def _structure_lines(report: MetricReport) -> list[str]:
    # Plain text, not markup: "C[cat, dog]" would be a Rich tag, so print them through safe().
    lines = [f"symmetric: {'yes' if report.symmetric else 'no'}"]
    if report.triangle_violations:
        v = report.worst_triangle_violation
        lines.append(
            f"triangle inequality: violated by {report.triangle_violations} ordered triples; worst "
            f"C[{v.i}, {v.j}] exceeds C[{v.i}, {v.k}] + C[{v.k}, {v.j}] by {v.excess:.4g}"
        )
    else:
        lines.append("triangle inequality: holds")
    lines.append(f"PSD (Definition 3): {report.psd_note()}")
    if report.euclidean_embeddable is not None:
        lines.append(f"Euclidean distance matrix: {'yes' if report.euclidean_embeddable else 'no'}")
    return lines


def _import_pot_for_numpy() -> None:
    """Import POT with only its NumPy backend, unless torch, JAX, TensorFlow or CuPy is loaded already.

    ``import ot`` imports every array library it finds installed, torch
    included (seconds), to accept their arrays, and scikit-learn and networkx
    for k-means and graph partitions; ``metric check`` hands it NumPy arrays
    and solves plain transport problems only. Its backend switches
    (``POT_BACKEND_DISABLE_*``) are set for the import alone and restored
    after, and the two optional libraries are hidden from it while it imports
    (it takes them as absent; a POT that needs them is imported again, plainly).
    The numbers are the same either way.
    """
    if "ot" in sys.modules:
        return
    backends = {"torch": "POT_BACKEND_DISABLE_PYTORCH", "jax": "POT_BACKEND_DISABLE_JAX",
                "tensorflow": "POT_BACKEND_DISABLE_TENSORFLOW", "cupy": "POT_BACKEND_DISABLE_CUPY"}
    keys = [key for module, key in backends.items() if module not in sys.modules and key not in os.environ]
    hidden = [name for name in ("sklearn", "networkx") if name not in sys.modules]
    try:
        os.environ.update(dict.fromkeys(keys, "1"))
        sys.modules.update(dict.fromkeys(hidden))  # None: importing them raises ImportError
        try:
            import ot  # noqa: F401
        except ImportError:
            for name in hidden:
                sys.modules.pop(name, None)
            hidden = []
            import ot  # noqa: F401,F811
    finally:
        for key in keys:
            os.environ.pop(key, None)
        for name in hidden:
            if sys.modules.get(name, False) is None:
                del sys.modules[name]


@app.command()
def check(
    path: Annotated[Path, typer.Argument(help="Metric file (.csv, .json, .npy).")],
    classes: ClassListOption = None,
    allow_asymmetric: AsymmetricOption = False,
    p: Annotated[float, typer.Option("--p", help="Power of the cost, C^p.", min=0.0)] = 1.0,
    samples: Annotated[int, typer.Option(help="Random prediction vectors compared with ot.emd2.", min=1)] = 1000,
    sinkhorn_samples: Annotated[int, typer.Option(help="How many of them also go through log-domain Sinkhorn.", min=0)] = 20,
    seed: Annotated[int, typer.Option(help="Seed of the random prediction vectors.")] = 0,
    cache: CheckCacheOption = True,
    json_out: JsonOption = None,
) -> None:
    """Validate a metric, then check the closed-form Wasserstein distance against POT.

    Lemma 4: for a one-hot target, W_p^p(onehot(k), q) = (C^p)[k]·q. The check
    compares it with ot.emd2 (to 1e-9, relative) and with log-domain Sinkhorn as
    the regularisation shrinks. Exit 0 when all holds, 1 when a check fails,
    2 for a malformed file.

    The POT report is kept in the cache folder: checking the same matrix with
    the same options again prints the same output without running (or
    importing) POT; the JSON says "cached": true. --no-cache runs it afresh.
    """
    if p <= 0:
        raise WpgdkitError(f"--p must be positive, got {p}")
    metric, report = _load(path, classes, allow_asymmetric)
    ot_report, cached = cached_reference_check(metric, p=p, samples=samples, sinkhorn_samples=sinkhorn_samples,
                                               seed=seed, use_cache=cache, prepare=_import_pot_for_numpy)
    if json_out is not None:
        write_json(
            {"path": str(path), "classes": list(metric.classes), "structure": report.to_dict(),
             "wasserstein_check": ot_report.to_dict(), "passed": ot_report.passed, "cached": cached},
            json_out,
        )
    if json_out != "-":
        console = stdout
        console.print(f"[bold]{safe(path)}[/]: {metric.num_classes} classes, valid label metric")
        for line in _structure_lines(report):
            console.print(f"  {safe(line)}")
        console.print(
            f"closed form vs ot.emd2, p={p:g}, {samples} samples: max relative error "
            f"{ot_report.emd_max_relative_error:.3g} (tolerance {ot_report.emd_tolerance:g})"
        )
        if ot_report.sinkhorn:
            table = Table(title=f"log-domain Sinkhorn, {ot_report.sinkhorn_samples} samples", title_justify="left")
            for col in ("ε / max C^p", "transport cost error", "W − entropic objective", "ε·H(q) (Lemma 4)", "plain Sinkhorn error"):
                table.add_column(col, justify="right")
            for row in ot_report.sinkhorn:
                table.add_row(
                    f"{row.reg_relative:g}", f"{row.cost_error:.2e}", f"{row.objective_gap:.6g}",
                    f"{row.expected_gap:.6g}", "nan" if np.isnan(row.plain_error) else f"{row.plain_error:.2e}",
                )
            console.print(table)
        for failure in ot_report.failures:
            console.print(f"[red]FAIL[/] {safe(failure)}")
        console.print("[green]all checks passed[/]" if ot_report.passed else "[red]check failed[/]")
    if not ot_report.passed:
        raise typer.Exit(EXIT_CHECK_FAILED)


@app.command()
def show(
    path: Annotated[Path, typer.Argument(help="Metric file (.csv, .json, .npy).")],
    classes: ClassListOption = None,
    allow_asymmetric: AsymmetricOption = False,
    top: Annotated[int, typer.Option(help="How many nearest and farthest classes to list.", min=1)] = 3,
    plot: Annotated[Optional[Path], typer.Option(help="Write a heatmap (.png, .pdf, .svg) with class names.", callback=output_file)] = None,
    plot_order: Annotated[PlotOrder, typer.Option(help="Class order of the heatmap: the metric's hierarchy (clusters "
                                                  "contiguous, groups marked) or label order.")] = PlotOrder("metric"),
    json_out: JsonOption = None,
) -> None:
    """Summarise a metric: each class's nearest and farthest classes, structure, provenance."""
    if plot is not None:
        check_plot_suffix(plot)  # before any work, and before matplotlib is imported
    metric, report = _load(path, classes, allow_asymmetric)
    neighbours = nearest_and_farthest(metric, top=top)
    origin = metric_origin(metric)
    if plot is not None:
        from wpgdkit.labelmetric.plot import plot_heatmap

        plot_heatmap(metric.matrix, metric.classes, plot, title=f"{path.name}" + (f" ({origin})" if origin else ""),
                     colorbar_label="cost", order=plot_order.value)
    if json_out is not None:
        write_json(
            {"path": str(path), "classes": list(metric.classes), "provenance": metric.provenance.to_dict(),
             "structure": report.to_dict(), "neighbours": neighbours},
            json_out,
        )
    if json_out == "-":
        return
    prov = metric.provenance
    stdout.print(f"[bold]{safe(path)}[/]: {metric.num_classes} classes, "
                 + (f"source {safe(origin)}" if origin else "no provenance (CSV and NPY files carry none; JSON keeps it)"))
    if prov.command:
        stdout.print(f"  rebuild: {safe(prov.command)}")
    for line in _structure_lines(report):
        stdout.print(f"  {safe(line)}")
    table = Table(show_lines=False)
    table.add_column("class")
    table.add_column(f"nearest {top}")
    table.add_column(f"farthest {top}")
    for entry in neighbours:
        fmt = lambda items: safe(", ".join(f"{n} ({d:.3g})" for n, d in items))  # noqa: E731
        table.add_row(safe(entry["class"]), fmt(entry["nearest"]), fmt(entry["farthest"]))
    stdout.print(table)
    if plot is not None:
        stdout.print(f"heatmap written to {safe(plot)}")


@app.command()
def compare(
    first: Annotated[Path, typer.Argument(help="First metric file.")],
    second: Annotated[Path, typer.Argument(help="Second metric file (same classes; aligned by name).")],
    classes: ClassListOption = None,
    allow_asymmetric: AsymmetricOption = False,
    json_out: JsonOption = None,
) -> None:
    """Correlate two metrics over their off-diagonal entries (Pearson and Spearman)."""
    a, _ = _load(first, classes, allow_asymmetric)
    b, _ = _load(second, classes, allow_asymmetric)
    corr = metric_correlation(a, b)
    if json_out is not None:
        write_json({"first": str(first), "second": str(second), "classes": list(a.classes), **corr.to_dict()}, json_out)
    if json_out == "-":
        return
    table = Table(title=f"{safe(first.name)} vs {safe(second.name)} ({a.num_classes} classes, {corr.pairs} off-diagonal entries)")
    table.add_column("coefficient")
    table.add_column("value", justify="right")
    table.add_column("p-value", justify="right")
    table.add_row("Pearson", f"{corr.pearson:.4f}", f"{corr.pearson_pvalue:.3g}")
    table.add_row("Spearman", f"{corr.spearman:.4f}", f"{corr.spearman_pvalue:.3g}")
    stdout.print(table)
