"""Metric sources by name (a registry, like timm's ``register_model``).

Each source turns a :class:`BuildConfig` into a :class:`LabelMetric` over a
dataset's classes: ``wordnet`` (distances between the classes' synsets),
``linear`` (a linear classifier's boundary distances, the paper's MNIST
metric), ``boundary`` and ``confusion`` (a trained network's boundary
distances and confusions, read from a checkpoint), ``uniform`` (1 off the
diagonal; WPGD then equals PGD) and ``file`` (a user's matrix).
:func:`build_metric` adds the class subset, normalisation, validation and the
provenance with the command that rebuilds the result.
"""

from __future__ import annotations

import dataclasses
import shlex
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from wpgdkit import __version__
from wpgdkit.errors import MetricFormatError, UnknownNameError, WpgdkitError
from wpgdkit.device import check_threads, torch_threads
from wpgdkit.inputs import Range, check_number, check_seed, read_text
from wpgdkit.labelmetric.core import LabelMetric, Provenance, check_normalization, resolve_class_indices
from wpgdkit.labelmetric.io import check_class_names, parse_csv_rows, read_class_list, read_metric
from wpgdkit.labelmetric.validate import check_entries, validate_metric
from wpgdkit.registry import Registry

__all__ = [
    "BUILD_RANGES",
    "BuildConfig",
    "MetricSource",
    "register_source",
    "get_source",
    "list_sources",
    "build_metric",
    "read_synset_map",
]


#: The valid range of each number of :class:`BuildConfig`, written once here
#: (``limit`` when given; the seed is checked by :func:`~wpgdkit.inputs.check_seed`).
#: :class:`~wpgdkit.labelmetric.linear.LinearFitConfig` checks ``l2`` and ``max_iter`` against these too.
BUILD_RANGES = {
    "limit": Range(1, integer=True),
    "l2": Range(0),
    "max_iter": Range(1, 100_000, integer=True),
}


@dataclass(frozen=True)
class BuildConfig:
    """Everything ``wpgdkit metric build`` needs; each source reads its part.

    Attributes
    ----------
    source : str
        Source registry name.
    dataset : str or None
        Dataset registry name (classes, synsets, training data). The
        checkpoint sources take it from the checkpoint; if given, it must agree.
    measure : str or None
        Source-specific measure (WordNet: path, lch, wup, lca-depth); None for the default.
    classes : tuple of str or None
        Keep only these classes (names or indices), in this order.
    normalize : {"none", "max"}
        See :data:`~wpgdkit.labelmetric.core.NORMALIZATIONS`.
    wordnet_dir, synset_map : str or None
        WordNet location; a CSV mapping classes to synsets (columns ``class``, ``synset``).
    data_dir, download, limit, seed, l2, max_iter
        Training data and fit settings of the ``linear`` source. ``limit``
        also caps the checkpoint sources' points: the first ``limit`` of
        each class (``boundary``) or in total (``confusion``).
    checkpoint : str or None
        A trained model (``boundary`` and ``confusion`` sources): a wpgdkit
        checkpoint, or a TorchScript / ``torch.export`` file (then ``dataset``
        says which data it classifies).
    model : ModelSource or None
        A model from anywhere for the ``boundary`` and ``confusion`` sources
        (``--model torchvision:resnet18 --weights ft.pt``), on ``dataset``;
        also the permission to import the user's module for a checkpoint trained with it.
    data_options : DataOptions or None
        How to read ``dataset`` when it is a file (:class:`~wpgdkit.datasets.files.DataOptions`).
    split : {"train", "test"} or None
        The split the checkpoint sources evaluate the model on
        (:data:`wpgdkit.datasets.SPLITS`); None: test.
    input, class_list : str or None
        The matrix file and, for NPY, its class names (``file`` source).
    allow_asymmetric : bool
    device : {"auto", "cpu", "cuda"}
        Where the checkpoint sources run the network; ``auto`` picks CUDA when
        available. The matrices agree across devices up to floating-point
        rounding, so the device is not part of the rebuild command.
    threads : int or None
        torch's CPU threads while the source computes (the ``linear``,
        ``boundary`` and ``confusion`` sources; the others do not use torch);
        None leaves torch's default. Like the device, not part of the rebuild
        command.
    use_cache : bool
        ``wordnet``: reuse (and save) the classes' hypernym closure in the
        cache folder (:mod:`wpgdkit.labelmetric.wordnet_cache`); False reads
        NLTK and leaves the cache alone. The result is the same bit for bit,
        so it is neither in the provenance nor in the rebuild command.
    """

    source: str = "wordnet"
    dataset: str | None = None
    measure: str | None = None
    classes: tuple[str, ...] | None = None
    normalize: str = "none"
    wordnet_dir: str | None = None
    synset_map: str | None = None
    data_dir: str | None = None
    download: bool = False
    limit: int | None = None
    seed: int = 0
    l2: float = 1e-3
    max_iter: int = 200
    checkpoint: str | None = None
    model: Any = None
    data_options: Any = None
    split: str | None = None
    input: str | None = None
    class_list: str | None = None
    allow_asymmetric: bool = False
    device: str = "auto"
    threads: int | None = None
    use_cache: bool = True

    def __post_init__(self) -> None:
        # Refused here, before any data, WordNet or checkpoint is read.
        for name, valid in BUILD_RANGES.items():
            value = getattr(self, name)
            if value is not None or name != "limit":
                check_number("--" + name.replace("_", "-"), value, valid)
        check_seed("--seed", self.seed)


@dataclass(frozen=True)
class MetricSource:
    """A registered source: its name, help text, measures and builder."""

    name: str
    description: str
    build: Callable[[BuildConfig], LabelMetric]
    measures: tuple[str, ...] = ()
    default_measure: str | None = None
    # BuildConfig fields this source reads, recorded in the rebuild command.
    options: tuple[str, ...] = ()
    # The classes the built metric will have, found cheaply (no data, WordNet or
    # model loaded), so that --classes is checked before the build; None: not known up front.
    classes: Callable[[BuildConfig], tuple[str, ...] | None] | None = None


def _model_words(source: Any) -> list[str]:
    words = ["--model", source.spec]
    if source.kwargs:
        words += ["--model-kwargs", source.kwargs.to_json()]
    if source.weights:
        words += ["--weights", source.weights]
    for flag, value in (("--input-shape", source.input_shape), ("--mean", source.mean), ("--std", source.std)):
        if value is not None:
            words += [flag, ",".join(f"{v:g}" if isinstance(v, float) else str(v) for v in value)]
    return words


def _data_words(options: Any) -> list[str]:
    """The flags of the dataset-file options that differ from their defaults."""
    defaults = type(options)()
    words: list[str] = []
    for name in ("test", "label_column", "test_fraction", "bounds", "image_size", "synsets"):
        value = getattr(options, name)
        if value != getattr(defaults, name):
            words += ["--" + name.replace("_", "-"), str(value)]
    if options.standardize:
        words.append("--standardize")
    return words


_SOURCES: Registry[MetricSource] = Registry("metric source", entry_point_group="wpgdkit.metric_sources")


def register_source(source: MetricSource) -> MetricSource:
    """Add a source; raises ValueError if the name is taken."""
    return _SOURCES.register(source.name, source)


def list_sources() -> list[str]:
    """Registered source names, in registration order."""
    return _SOURCES.names()


def get_source(name: str) -> MetricSource:
    """The source called ``name``; UnknownNameError listing the valid names otherwise."""
    return _SOURCES.get(name)


# --- the sources ---------------------------------------------------------------


def _dataset(config: BuildConfig):
    from wpgdkit.audit.subjects import open_spec

    if config.dataset is None:
        raise WpgdkitError(f"--source {config.source} needs --dataset")
    return open_spec(config.dataset, config.data_options)


def read_synset_map(path: str | Path) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Read a CSV mapping classes to WordNet synsets (columns ``class`` and ``synset``).

    Returns
    -------
    classes, synsets : tuple of str
    """
    path = Path(path)
    rows = [(line, row) for line, row in parse_csv_rows(read_text(path, what="synset map"), origin=str(path))
            if any(cell.strip() for cell in row)]
    header = [cell.strip() for cell in rows[0][1]] if rows else []
    if len(rows) < 2 or "class" not in header or "synset" not in header:
        raise MetricFormatError(f"{path}: expected a CSV with 'class' and 'synset' columns")
    at_class, at_synset = header.index("class"), header.index("synset")
    classes: list[str] = []
    synsets: list[str] = []
    for line, row in rows[1:]:
        name = row[at_class].strip() if at_class < len(row) else ""
        synset = row[at_synset].strip() if at_synset < len(row) else ""
        if not name:
            raise MetricFormatError(f"{path}: line {line}: no class name")
        if not synset:
            raise MetricFormatError(f"{path}: line {line}: no synset for class {name[:80]!r}")
        check_class_names([name], f"{path}: line {line}")
        if len(synset) > 1000:
            raise MetricFormatError(f"{path}: line {line}: synset name longer than 1,000 characters")
        classes.append(name)
        synsets.append(synset)
    check_class_names(classes, str(path))
    return tuple(classes), tuple(synsets)


def _build_wordnet(config: BuildConfig) -> LabelMetric:
    from wpgdkit.labelmetric.wordnet_cache import wordnet_closure

    measure = config.measure or "path"
    if config.synset_map is not None:
        classes, names = read_synset_map(config.synset_map)
        if config.dataset is not None and classes != _dataset(config).classes:
            raise MetricFormatError(f"{config.synset_map}: its classes differ from {config.dataset}'s (names and order)")
    else:
        spec = _dataset(config)
        if spec.synsets is None or any(s is None for s in spec.synsets):
            raise WpgdkitError(
                f"dataset {spec.name} has no WordNet synsets for its classes; "
                "use --source linear, or give --synset-map CLASSES.csv"
            )
        classes, names = spec.classes, spec.synsets
    closure = wordnet_closure(names, config.wordnet_dir, use_cache=config.use_cache)
    matrix = closure.distance_matrix(measure)
    return LabelMetric(
        tuple(classes),
        matrix,
        Provenance(source="wordnet", measure=measure, dataset=config.dataset, wordnet_version=closure.wordnet_version),
    )


def _build_linear(config: BuildConfig) -> LabelMetric:
    from wpgdkit.datasets import load_tensors
    from wpgdkit.labelmetric.linear import LinearFitConfig, linear_metric_matrix

    spec = _dataset(config)
    if config.measure not in (None, "boundary"):
        raise UnknownNameError(f"unknown measure {config.measure!r} for --source linear; choose one of: boundary")
    x, y = load_tensors(
        spec.name, "train", data_dir=config.data_dir, download=config.download, limit=config.limit, seed=config.seed
    )
    fit = LinearFitConfig(l2=config.l2, max_iter=config.max_iter, seed=config.seed)
    matrix = linear_metric_matrix(x, y, spec.num_classes, config=fit)
    return LabelMetric(spec.classes, matrix, Provenance(source="linear", measure="boundary", dataset=spec.name))


def _trained_model(config: BuildConfig, device):
    """The network to measure: a wpgdkit checkpoint, a self-contained model file, or ``--model`` on ``--dataset``."""
    from wpgdkit.labelmetric.network import foreign_trained_model, load_trained_model

    if config.checkpoint is None and config.model is None:
        raise WpgdkitError(f"--source {config.source} needs --checkpoint PATH (a wpgdkit checkpoint, a TorchScript or "
                           "torch.export file) or --model SPEC with --dataset")
    if config.checkpoint is not None:
        from wpgdkit.inputs import input_file
        from wpgdkit.models.archive import model_file_kind

        kind = model_file_kind(input_file(config.checkpoint, what="checkpoint"))
        if kind not in ("torchscript", "export"):
            return load_trained_model(config.checkpoint, dataset=config.dataset, device=device,
                                      trusted_source=config.model)
        if config.model is not None:
            raise WpgdkitError(f"{config.checkpoint} is a self-contained model; give it or --model, not both")
    if config.dataset is None:
        raise WpgdkitError("a model from outside wpgdkit carries no dataset: give --dataset")
    return foreign_trained_model(model_file=config.checkpoint, source=config.model, dataset=config.dataset,
                                 options=config.data_options, device=device)


def _device(config: BuildConfig):
    from wpgdkit.device import resolve_device

    # A deep network's K input gradients per point are slow on a CPU, hence
    # auto; an unknown name or cuda without a GPU is refused here.
    return resolve_device(config.device)


def _checkpoint_provenance(config: BuildConfig, trained, measure: str, points: int) -> Provenance:
    parameters = {**trained.summary, "split": config.split or "test", "points": points}
    return Provenance(source=config.source, measure=measure, dataset=trained.dataset, parameters=parameters)


def _build_boundary(config: BuildConfig) -> LabelMetric:
    from wpgdkit.labelmetric.network import boundary_distance_matrix, evaluation_points

    device = _device(config)
    trained = _trained_model(config, device)
    norm = config.measure or trained.norm
    x, y = evaluation_points(trained, split=config.split or "test", limit=config.limit, per_class=True,
                             data_dir=config.data_dir, download=config.download)
    matrix = boundary_distance_matrix(trained.model, x.to(device), y.to(device), len(trained.classes), norm=norm)
    return LabelMetric(trained.classes, matrix, _checkpoint_provenance(config, trained, norm, len(y)))


def _build_confusion(config: BuildConfig) -> LabelMetric:
    from wpgdkit.audit.scores import confusion_matrix
    from wpgdkit.labelmetric.network import confusion_distance_matrix, evaluation_points, predict

    device = _device(config)
    trained = _trained_model(config, device)
    measure = config.measure or "neglog"
    x, y = evaluation_points(trained, split=config.split or "test", limit=config.limit,
                             data_dir=config.data_dir, download=config.download)
    counts = confusion_matrix(y, predict(trained.model, x.to(device)).cpu(), len(trained.classes))
    matrix = confusion_distance_matrix(counts, measure=measure)
    return LabelMetric(trained.classes, matrix, _checkpoint_provenance(config, trained, measure, len(y)))


def _wordnet_classes(config: BuildConfig) -> tuple[str, ...]:
    if config.synset_map is not None:
        return read_synset_map(config.synset_map)[0]
    return tuple(_dataset(config).classes)


def _dataset_classes(config: BuildConfig) -> tuple[str, ...]:
    return tuple(_dataset(config).classes)


def _uniform_classes(config: BuildConfig) -> tuple[str, ...]:
    if config.class_list is not None:
        return tuple(read_class_list(config.class_list))
    return tuple(_dataset(config).classes)


def _build_uniform(config: BuildConfig) -> LabelMetric:
    if config.class_list is not None:
        classes = tuple(read_class_list(config.class_list))
    else:
        classes = _dataset(config).classes
    k = len(classes)
    return LabelMetric(classes, np.ones((k, k)) - np.eye(k), Provenance(source="uniform", dataset=config.dataset))


def _build_file(config: BuildConfig) -> LabelMetric:
    if config.input is None:
        raise WpgdkitError("--source file needs --input PATH (.csv, .json, or .npy with --class-list)")
    metric = read_metric(config.input, classes=config.class_list)
    if config.dataset is not None:
        expected = _dataset(config).classes
        if metric.classes != expected:
            raise MetricFormatError(
                f"{config.input}: its classes ({', '.join(metric.classes[:4])}, ...) are not {config.dataset}'s "
                f"in label order ({', '.join(expected[:4])}, ...)"
            )
    original = metric.provenance
    parameters = {"input": str(config.input)}
    if original.source != "file":
        parameters["imported_provenance"] = original.to_dict()
    return dataclasses.replace(metric, provenance=Provenance(source="file", dataset=config.dataset, parameters=parameters))


register_source(MetricSource(
    "wordnet", "distances between the classes' WordNet 3.0 noun synsets", _build_wordnet,
    measures=("path", "lch", "wup", "lca-depth"), default_measure="path", options=("synset_map",),
    classes=_wordnet_classes,
))
register_source(MetricSource(
    "linear", "mean distance of each class's training points to a linear classifier's pairwise boundaries",
    _build_linear, measures=("boundary",), default_measure="boundary", options=("limit", "seed", "l2", "max_iter"),
    classes=_dataset_classes,
))
register_source(MetricSource(
    "boundary", "mean first-order (DeepFool) distance of each class's points to a trained network's pairwise "
    "boundaries, in the attack's norm (default: the checkpoint's)", _build_boundary,
    measures=("linf", "l2"), default_measure=None, options=("checkpoint", "model", "split", "limit"),
))
register_source(MetricSource(
    "confusion", "-log of a trained network's symmetrised, Laplace-smoothed confusion rate on clean points",
    _build_confusion, measures=("neglog", "one-minus"), default_measure="neglog",
    options=("checkpoint", "model", "split", "limit"),
))
register_source(MetricSource(
    "uniform", "1 between any two distinct classes (WPGD then equals PGD)", _build_uniform, options=("class_list",),
    classes=_uniform_classes,
))
register_source(MetricSource(
    "file", "a matrix from a .csv, .json or .npy file", _build_file, options=("input", "class_list"),
))


# --- building ------------------------------------------------------------------


def build_metric(config: BuildConfig) -> LabelMetric:
    """Build a label metric from a source, then subset, normalise and validate it.

    Parameters
    ----------
    config : BuildConfig

    Returns
    -------
    metric : LabelMetric
        Its provenance records the parameters and the exact command that
        rebuilds it (machine-specific paths such as ``--data-dir`` excluded).

    Raises
    ------
    WpgdkitError
        For unknown names, missing data or an invalid result.
    """
    source = get_source(config.source)
    if config.measure is not None and config.measure not in source.measures:
        choices = ", ".join(source.measures) or "none (this source has no measures)"
        raise UnknownNameError(f"unknown measure {config.measure!r} for --source {source.name}; choose one of: {choices}")
    check_normalization(config.normalize)
    if config.split is not None:
        from wpgdkit.datasets import SPLITS

        if config.split not in SPLITS:
            raise UnknownNameError(f"unknown split {config.split!r}; choose one of: {', '.join(SPLITS)}")
    check_threads(config.threads)
    _refuse_unread_options(config, source)
    if config.classes and source.classes is not None:
        # An unknown or repeated class is refused before WordNet, data or a model is loaded.
        known = source.classes(config)
        if known is not None:
            resolve_class_indices(known, config.classes)
    with torch_threads(config.threads):
        metric = source.build(config)
    # A built matrix passes the same entry check as a read one, before
    # subsetting or normalising could hide (or spread) a bad entry.
    try:
        check_entries(metric.matrix, metric.classes)
    except MetricFormatError as exc:
        raise MetricFormatError(f"the {source.name} source produced an invalid metric: {exc}") from None
    if config.classes:
        metric = metric.subset(config.classes)
    metric = metric.normalized(config.normalize)
    validate_metric(metric, allow_asymmetric=config.allow_asymmetric)
    parameters = dict(metric.provenance.parameters)
    parameters["normalize"] = config.normalize
    if config.classes:
        parameters["classes"] = list(metric.classes)
    for name in source.options:
        value = getattr(config, name)
        if value is not None:
            parameters[name] = value.to_dict() if name == "model" else value
    return metric.with_provenance(
        measure=metric.provenance.measure or (config.measure or source.default_measure),
        parameters=parameters,
        tool_version=__version__,
        command=rebuild_command(config, source),
    )


def _refuse_unread_options(config: BuildConfig, source: MetricSource) -> None:
    # A checkpoint silently ignored would make the user believe the metric came from it.
    for name in ("checkpoint", "split", "model"):
        if getattr(config, name) is not None and name not in source.options:
            readers = ", ".join(s for s in list_sources() if name in get_source(s).options)
            raise WpgdkitError(f"--{name} is only read by --source {readers}, not {source.name}")


def rebuild_command(config: BuildConfig, source: MetricSource | None = None) -> str:
    """The ``wpgdkit metric build`` command line for a config (defaults omitted)."""
    source = source or get_source(config.source)
    defaults = BuildConfig()
    words = ["wpgdkit", "metric", "build"]
    if config.dataset is not None:
        words += ["--dataset", config.dataset]
    words += ["--source", config.source]
    if config.measure is not None:
        words += ["--measure", config.measure]
    if config.classes:
        words += ["--classes", ",".join(config.classes)]
    if config.normalize != defaults.normalize:
        words += ["--normalize", config.normalize]
    for name in source.options:
        value = getattr(config, name)
        if name == "model" and value is not None:
            words += _model_words(value)
        elif value is not None and value != getattr(defaults, name):
            words += ["--" + name.replace("_", "-"), str(value)]
    if config.data_options is not None:
        words += _data_words(config.data_options)
    if config.allow_asymmetric:
        words.append("--allow-asymmetric")
    return shlex.join(words)
