"""Metric sources and build_metric (wpgdkit.labelmetric.sources)."""

from __future__ import annotations

import dataclasses
import itertools
import shlex

import numpy as np
import pytest

import wpgdkit
from wpgdkit.datasets import get_dataset, load_tensors
from wpgdkit.errors import DataNotFoundError, MetricFormatError, UnknownNameError, WordNetError, WpgdkitError
from wpgdkit.labelmetric.core import LabelMetric, Provenance
from wpgdkit.labelmetric.io import read_metric, write_metric
from wpgdkit.labelmetric.linear import LinearFitConfig, linear_metric_matrix
from wpgdkit.labelmetric.sources import (
    BuildConfig,
    MetricSource,
    build_metric,
    get_source,
    list_sources,
    read_synset_map,
    rebuild_command,
    register_source,
)
from wpgdkit.resources import metrics_dir
from wpgdkit.wordnet import load_wordnet

CIFAR10 = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
CIFAR10_SYNSETS = (
    "airplane.n.01", "car.n.01", "bird.n.01", "cat.n.01", "deer.n.01",
    "dog.n.01", "frog.n.01", "horse.n.01", "ship.n.01", "truck.n.01",
)


@pytest.fixture(scope="module")
def wn():
    return load_wordnet()


@pytest.fixture(scope="module")
def cifar10_wordnet(wn):
    return build_metric(BuildConfig(source="wordnet", dataset="cifar10"))


def nltk_path_matrix(wn, names) -> np.ndarray:
    synsets = [wn.synset(n) for n in names]
    k = len(synsets)
    out = np.zeros((k, k))
    for i, j in itertools.combinations(range(k), 2):
        out[i, j] = out[j, i] = synsets[i].shortest_path_distance(synsets[j])
    return out


# --- the registry -------------------------------------------------------------------------------------


def test_builtin_sources_registered():
    assert {"wordnet", "linear", "uniform", "file"} <= set(list_sources())
    assert get_source("wordnet").measures == ("path", "lch", "wup", "lca-depth")
    assert get_source("wordnet").default_measure == "path"
    assert get_source("linear").measures == ("boundary",)
    assert get_source("uniform").measures == () and get_source("file").measures == ()


def test_unknown_source_lists_the_valid_ones():
    with pytest.raises(UnknownNameError) as info:
        get_source("euclid")
    message = str(info.value)
    assert "'euclid'" in message
    for name in ("wordnet", "linear", "uniform", "file"):
        assert name in message
    with pytest.raises(UnknownNameError, match="euclid"):
        build_metric(BuildConfig(source="euclid", dataset="cifar10"))


def test_registering_a_name_twice_is_refused():
    with pytest.raises(ValueError, match="already registered"):
        register_source(MetricSource("uniform", "again", lambda config: None))
    assert get_source("uniform").description.startswith("1 between")


# --- wordnet ------------------------------------------------------------------------------------------


def test_wordnet_cifar10_default(cifar10_wordnet, wn):
    m = cifar10_wordnet
    assert m.classes == CIFAR10
    assert m.matrix[CIFAR10.index("cat"), CIFAR10.index("dog")] == 4.0
    assert get_dataset("cifar10").synsets == CIFAR10_SYNSETS
    np.testing.assert_array_equal(m.matrix, nltk_path_matrix(wn, CIFAR10_SYNSETS))
    # The shipped file holds the same matrix.
    shipped = read_metric(metrics_dir() / "cifar10-wordnet.csv")
    assert shipped.classes == CIFAR10
    np.testing.assert_array_equal(shipped.matrix, m.matrix)


def test_wordnet_provenance(cifar10_wordnet):
    prov = cifar10_wordnet.provenance
    assert prov.source == "wordnet" and prov.measure == "path" and prov.dataset == "cifar10"
    assert prov.wordnet_version == "3.0"
    assert prov.tool_version == wpgdkit.__version__
    assert prov.command == "wpgdkit metric build --dataset cifar10 --source wordnet"
    assert prov.parameters == {"normalize": "none"}
    # Round trip through the provenance dict (as stored in JSON and the manifest).
    assert Provenance.from_dict(prov.to_dict()) == prov


def test_wordnet_subset_and_normalize(cifar10_wordnet):
    m = build_metric(BuildConfig(source="wordnet", dataset="cifar10", classes=("cat", "dog"), normalize="max"))
    assert m.classes == ("cat", "dog")
    assert m.matrix.tolist() == [[0.0, 1.0], [1.0, 0.0]]
    assert m.provenance.command == "wpgdkit metric build --dataset cifar10 --source wordnet --classes cat,dog --normalize max"
    assert m.provenance.parameters == {"normalize": "max", "classes": ["cat", "dog"]}
    # Subset by index keeps the names in the provenance parameters.
    by_index = build_metric(BuildConfig(source="wordnet", dataset="cifar10", classes=("5", "3")))
    assert by_index.classes == ("dog", "cat") and by_index.provenance.parameters["classes"] == ["dog", "cat"]
    assert by_index.matrix.tolist() == [[0.0, 4.0], [4.0, 0.0]]


def test_wordnet_normalize_max_full(cifar10_wordnet):
    m = build_metric(BuildConfig(source="wordnet", dataset="cifar10", normalize="max"))
    assert m.matrix.max() == 1.0
    np.testing.assert_array_equal(m.matrix, cifar10_wordnet.matrix / cifar10_wordnet.matrix.max())


def test_wordnet_other_measure(wn):
    m = build_metric(BuildConfig(source="wordnet", dataset="cifar10", measure="lch", classes=("cat", "dog", "truck")))
    expected = np.log1p(nltk_path_matrix(wn, ("cat.n.01", "dog.n.01", "truck.n.01")))
    np.testing.assert_allclose(m.matrix, expected, rtol=1e-15, atol=0)
    assert m.provenance.measure == "lch"
    assert m.provenance.command == (
        "wpgdkit metric build --dataset cifar10 --source wordnet --measure lch --classes cat,dog,truck"
    )


def test_wordnet_with_a_synset_map(tmp_path, wn):
    path = tmp_path / "map.csv"
    path.write_text("index,class,synset,gloss\n0,kitty,cat.n.01,x\n1,puppy,dog.n.01,y\n2,lorry,truck.n.01,z\n")
    m = build_metric(BuildConfig(source="wordnet", synset_map=str(path)))
    assert m.classes == ("kitty", "puppy", "lorry")
    np.testing.assert_array_equal(m.matrix, nltk_path_matrix(wn, ("cat.n.01", "dog.n.01", "truck.n.01")))
    assert m.provenance.dataset is None and m.provenance.parameters["synset_map"] == str(path)
    assert shlex.split(m.provenance.command) == [
        "wpgdkit", "metric", "build", "--source", "wordnet", "--synset-map", str(path),
    ]


def test_wordnet_synset_map_must_match_the_dataset(tmp_path):
    path = tmp_path / "map.csv"
    path.write_text("class,synset\ncat,cat.n.01\ndog,dog.n.01\n")
    with pytest.raises(MetricFormatError, match="differ from cifar10"):
        build_metric(BuildConfig(source="wordnet", dataset="cifar10", synset_map=str(path)))


def test_wordnet_unknown_synset_in_map(tmp_path):
    path = tmp_path / "map.csv"
    path.write_text("class,synset\ncat,cat.n.01\nunicorn,unicorn.n.07\n")
    with pytest.raises(WordNetError, match="unicorn.n.07"):
        build_metric(BuildConfig(source="wordnet", synset_map=str(path)))


def test_wordnet_on_toy_needs_synsets():
    with pytest.raises(WpgdkitError, match="synsets") as info:
        build_metric(BuildConfig(source="wordnet", dataset="toy"))
    assert "--synset-map" in str(info.value)


def test_wordnet_needs_a_dataset_or_map():
    with pytest.raises(WpgdkitError, match="needs --dataset"):
        build_metric(BuildConfig(source="wordnet"))


# --- measure and option validation -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "measure", "pattern"),
    [
        ("wordnet", "boundary", r"'boundary' for --source wordnet; choose one of: path, lch, wup, lca-depth"),
        ("linear", "path", r"'path' for --source linear; choose one of: boundary"),
        ("uniform", "path", r"--source uniform; choose one of: none \(this source has no measures\)"),
        ("file", "path", r"--source file"),
    ],
)
def test_measure_validated_per_source(source, measure, pattern):
    with pytest.raises(UnknownNameError, match=pattern):
        build_metric(BuildConfig(source=source, dataset="cifar10", measure=measure))


def test_unknown_normalisation():
    with pytest.raises(UnknownNameError, match="choose one of: max, none"):
        build_metric(BuildConfig(source="uniform", dataset="cifar10", normalize="sum"))


def test_limit_must_be_positive():
    with pytest.raises(WpgdkitError, match="--limit must be a whole number ≥ 1, got 0"):
        build_metric(BuildConfig(source="linear", dataset="toy", limit=0))


@pytest.mark.parametrize(("change", "fragment"), [({"l2": -1.0}, "--l2 must be a number ≥ 0"),
                                                  ({"max_iter": 0}, r"--max-iter must be a whole number in \[1, 100000\]")])
def test_linear_fit_settings_validated(change, fragment):
    with pytest.raises(WpgdkitError, match=fragment):
        build_metric(BuildConfig(source="linear", dataset="toy", **change))


def test_unknown_dataset():
    with pytest.raises(UnknownNameError, match="unknown dataset 'nope'"):
        build_metric(BuildConfig(source="uniform", dataset="nope"))


# --- uniform ----------------------------------------------------------------------------------------------------


def test_uniform_from_a_dataset():
    m = build_metric(BuildConfig(source="uniform", dataset="cifar10"))
    assert m.classes == CIFAR10
    np.testing.assert_array_equal(m.matrix, np.ones((10, 10)) - np.eye(10))
    assert m.provenance.source == "uniform" and m.provenance.measure is None
    assert m.provenance.dataset == "cifar10" and m.provenance.wordnet_version is None
    assert m.provenance.command == "wpgdkit metric build --dataset cifar10 --source uniform"


def test_uniform_from_a_class_list(tmp_path):
    path = tmp_path / "classes.txt"
    path.write_text("red\ngreen\n\nblue\n")
    m = build_metric(BuildConfig(source="uniform", class_list=str(path), classes=("blue", "red")))
    assert m.classes == ("blue", "red") and m.matrix.tolist() == [[0.0, 1.0], [1.0, 0.0]]
    assert m.provenance.parameters == {"normalize": "none", "classes": ["blue", "red"], "class_list": str(path)}
    assert shlex.split(m.provenance.command) == [
        "wpgdkit", "metric", "build", "--source", "uniform", "--classes", "blue,red", "--class-list", str(path),
    ]


def test_uniform_needs_classes_from_somewhere():
    with pytest.raises(WpgdkitError, match="needs --dataset"):
        build_metric(BuildConfig(source="uniform"))


def test_uniform_missing_class_list(tmp_path):
    with pytest.raises(DataNotFoundError):
        build_metric(BuildConfig(source="uniform", class_list=str(tmp_path / "none.txt")))


# --- file -------------------------------------------------------------------------------------------------------


MATRIX = np.array([[0.0, 1.0 / 3, 2.0], [1.0 / 3, 0.0, 1.5], [2.0, 1.5, 0.0]])


@pytest.mark.parametrize("suffix", [".csv", ".json", ".npy"])
def test_file_source_reads_each_format(tmp_path, suffix):
    original = LabelMetric(("0", "1", "2"), MATRIX, Provenance(source="test-origin", measure="m"))
    path = write_metric(original, tmp_path / f"metric{suffix}")
    class_list = None
    if suffix == ".npy":
        class_list = tmp_path / "classes.txt"
        class_list.write_text("0\n1\n2\n")
        class_list = str(class_list)
    m = build_metric(BuildConfig(source="file", input=str(path), class_list=class_list, dataset="toy"))
    assert m.classes == ("0", "1", "2")
    np.testing.assert_array_equal(m.matrix, MATRIX)
    prov = m.provenance
    assert prov.source == "file" and prov.dataset == "toy" and prov.measure is None
    assert prov.parameters["input"] == str(path)
    if suffix == ".json":  # the file's own provenance is kept
        assert prov.parameters["imported_provenance"] == original.provenance.to_dict()
    else:
        assert "imported_provenance" not in prov.parameters
    expected = ["wpgdkit", "metric", "build", "--dataset", "toy", "--source", "file", "--input", str(path)]
    if class_list:
        expected += ["--class-list", class_list]
    assert shlex.split(prov.command) == expected


def test_file_source_class_mismatch_with_dataset(tmp_path):
    path = write_metric(LabelMetric(("a", "b", "c"), MATRIX), tmp_path / "m.csv")
    with pytest.raises(MetricFormatError, match=r"not toy's in label order"):
        build_metric(BuildConfig(source="file", input=str(path), dataset="toy"))
    # Same names, other order: still a mismatch.
    path2 = write_metric(LabelMetric(("1", "0", "2"), MATRIX), tmp_path / "m2.csv")
    with pytest.raises(MetricFormatError, match="label order"):
        build_metric(BuildConfig(source="file", input=str(path2), dataset="toy"))


def test_file_source_validates_and_allows_asymmetric(tmp_path):
    asym = MATRIX.copy()
    asym[0, 1] = 5.0
    path = write_metric(LabelMetric(("a", "b", "c"), asym), tmp_path / "m.csv")
    with pytest.raises(MetricFormatError, match="not symmetric"):
        build_metric(BuildConfig(source="file", input=str(path)))
    m = build_metric(BuildConfig(source="file", input=str(path), allow_asymmetric=True))
    assert m.matrix[0, 1] == 5.0
    assert m.provenance.command.endswith("--allow-asymmetric")


def test_file_source_needs_input():
    with pytest.raises(WpgdkitError, match="needs --input"):
        build_metric(BuildConfig(source="file"))


def test_file_source_npy_without_classes(tmp_path):
    path = write_metric(LabelMetric(("a", "b", "c"), MATRIX), tmp_path / "m.npy")
    with pytest.raises(MetricFormatError, match="class names"):
        build_metric(BuildConfig(source="file", input=str(path)))


# --- linear (on the generated toy dataset: no files needed) --------------------------------------------------------


def test_linear_on_toy_matches_a_direct_recomputation():
    config = BuildConfig(source="linear", dataset="toy", limit=300, seed=2, l2=1e-2, max_iter=100)
    m = build_metric(config)
    assert m.classes == ("0", "1", "2") and m.matrix.shape == (3, 3)
    np.testing.assert_array_equal(m.matrix, m.matrix.T)
    np.testing.assert_array_equal(np.diag(m.matrix), 0.0)
    x, y = load_tensors("toy", "train", limit=300, seed=2)
    direct = linear_metric_matrix(x, y, 3, config=LinearFitConfig(l2=1e-2, max_iter=100, seed=2))
    np.testing.assert_array_equal(m.matrix, direct)
    # The toy centres are an equilateral triangle of side sqrt(3) on the unit circle: every
    # class is about half a side from each boundary.
    off = m.matrix[~np.eye(3, dtype=bool)]
    np.testing.assert_allclose(off, np.sqrt(3) / 2, rtol=0.1)
    prov = m.provenance
    assert prov.source == "linear" and prov.measure == "boundary" and prov.dataset == "toy"
    assert prov.parameters == {"normalize": "none", "limit": 300, "seed": 2, "l2": 1e-2, "max_iter": 100}
    assert prov.command == (
        "wpgdkit metric build --dataset toy --source linear --limit 300 --seed 2 --l2 0.01 --max-iter 100"
    )


def test_linear_needs_a_dataset():
    with pytest.raises(WpgdkitError, match="needs --dataset"):
        build_metric(BuildConfig(source="linear"))


# --- rebuild_command ------------------------------------------------------------------------------------------------


def test_rebuild_command_quotes_awkward_class_names():
    config = BuildConfig(source="wordnet", dataset="fashion-mnist", classes=("T-shirt/top", "Ankle boot"))
    words = shlex.split(rebuild_command(config))
    assert words == [
        "wpgdkit", "metric", "build", "--dataset", "fashion-mnist", "--source", "wordnet",
        "--classes", "T-shirt/top,Ankle boot",
    ]


def test_rebuild_command_omits_defaults_and_machine_paths():
    config = BuildConfig(source="linear", dataset="mnist", data_dir="/home/me/data", download=True, wordnet_dir="/x")
    assert rebuild_command(config) == "wpgdkit metric build --dataset mnist --source linear"
    config = dataclasses.replace(config, seed=3)
    assert rebuild_command(config) == "wpgdkit metric build --dataset mnist --source linear --seed 3"


# --- read_synset_map --------------------------------------------------------------------------------------------------


def test_read_synset_map(tmp_path):
    path = tmp_path / "map.csv"
    path.write_text("index,class,synset,gloss\n0, cat ,cat.n.01 ,a cat\n1,T-shirt/top,jersey.n.03,\"a, shirt\"\n")
    assert read_synset_map(path) == (("cat", "T-shirt/top"), ("cat.n.01", "jersey.n.03"))


def test_read_synset_map_shipped_cifar10():
    classes, synsets = read_synset_map(metrics_dir() / "cifar10-synsets.csv")
    assert classes == CIFAR10 and synsets == CIFAR10_SYNSETS


@pytest.mark.parametrize(
    ("text", "exc", "pattern"),
    [
        ("class,wnid\ncat,n02121620\n", MetricFormatError, "'class' and 'synset' columns"),
        ("", MetricFormatError, "'class' and 'synset' columns"),
        ("class,synset\n", MetricFormatError, "'class' and 'synset' columns"),
        ("class,synset\ncat,cat.n.01\ndog,\n", MetricFormatError, "no synset for class 'dog'"),
        ("class,synset\ncat,cat.n.01\ndog\n", MetricFormatError, "no synset for class 'dog'"),
    ],
)
def test_read_synset_map_errors(tmp_path, text, exc, pattern):
    path = tmp_path / "map.csv"
    path.write_text(text)
    with pytest.raises(exc, match=pattern):
        read_synset_map(path)


def test_read_synset_map_missing_file(tmp_path):
    with pytest.raises(DataNotFoundError, match="synset map"):
        read_synset_map(tmp_path / "missing.csv")


# --- threads, splits and normalisations ----------------------------------------------------------


def _recording_source(monkeypatch, seen: list) -> str:
    """The uniform source, wrapped to record torch's thread count while it builds."""
    import torch

    import wpgdkit.labelmetric.sources as sources

    uniform = get_source("uniform")

    def build(config):
        seen.append(torch.get_num_threads())
        return uniform.build(config)

    wrapped = dataclasses.replace(uniform, build=build)
    monkeypatch.setattr(sources, "get_source", lambda name: wrapped if name == "uniform" else get_source(name))
    return "uniform"


def test_threads_are_set_while_the_source_builds_and_restored_after(monkeypatch):
    import torch

    seen: list[int] = []
    source = _recording_source(monkeypatch, seen)
    before = torch.get_num_threads()
    target = 3 if before != 3 else 2
    metric = build_metric(BuildConfig(source=source, dataset="toy", threads=target))
    build_metric(BuildConfig(source=source, dataset="toy"))
    assert seen == [target, before]  # None leaves torch's setting alone
    assert torch.get_num_threads() == before
    np.testing.assert_array_equal(metric.matrix, 1 - np.eye(3))


def test_threads_are_not_part_of_the_rebuild_command():
    metric = build_metric(BuildConfig(source="uniform", dataset="toy", threads=2))
    assert metric.provenance.command == "wpgdkit metric build --dataset toy --source uniform"
    assert "threads" not in metric.provenance.parameters


@pytest.mark.parametrize("threads", [0, -1, 1.5, True])
def test_bad_threads_refused_before_building(monkeypatch, threads):
    seen: list[int] = []
    source = _recording_source(monkeypatch, seen)
    with pytest.raises(WpgdkitError, match=r"threads must be a whole number of at least 1"):
        build_metric(BuildConfig(source=source, dataset="toy", threads=threads))
    assert seen == []


def test_unknown_split_lists_the_dataset_splits():
    with pytest.raises(UnknownNameError, match=r"unknown split 'val'; choose one of: train, test"):
        build_metric(BuildConfig(source="boundary", checkpoint="model.pt", split="val"))


def test_normalizations_constant_is_what_normalized_accepts():
    from wpgdkit.labelmetric import NORMALIZATIONS

    metric = LabelMetric(("a", "b", "c"), [[0, 2, 4], [2, 0, 2], [4, 2, 0]])
    assert NORMALIZATIONS == ("none", "max")
    assert [metric.normalized(mode).matrix[0, 1] for mode in NORMALIZATIONS] == [2.0, 0.5]
    with pytest.raises(UnknownNameError, match="unknown normalisation 'sum'; choose one of: max, none"):
        metric.normalized("sum")


# --- hardening: text files and built matrices --------------------------------------------------


def test_read_synset_map_not_utf8(tmp_path):
    path = tmp_path / "map.csv"
    path.write_bytes(b"class,synset\ncaf\xe9,cat.n.01\ndog,dog.n.01\n")
    with pytest.raises(WpgdkitError, match=r"synset map .* is not UTF-8 text \(byte 16 is 0xe9\)"):
        read_synset_map(path)


def test_read_synset_map_bom_is_dropped(tmp_path):
    path = tmp_path / "map.csv"
    path.write_bytes("\ufeffclass,synset\ncat,cat.n.01\n".encode())
    assert read_synset_map(path) == (("cat",), ("cat.n.01",))


@pytest.mark.parametrize("length", [1001, 200_000])
def test_read_synset_map_overlong_class_is_one_error(tmp_path, length):
    path = tmp_path / "map.csv"
    path.write_text(f"class,synset\ncat,cat.n.01\n{'x' * length},dog.n.01\n")
    with pytest.raises(MetricFormatError, match=r"line 3"):
        read_synset_map(path)


def test_read_synset_map_duplicate_class(tmp_path):
    path = tmp_path / "map.csv"
    path.write_text("class,synset\ncat,cat.n.01\ncat,dog.n.01\n")
    with pytest.raises(MetricFormatError, match="duplicate class names: cat"):
        read_synset_map(path)


def test_uniform_class_list_not_utf8(tmp_path):
    path = tmp_path / "classes.txt"
    path.write_bytes(b"cat\n\xff\n")
    with pytest.raises(WpgdkitError, match="class list .* is not UTF-8 text"):
        build_metric(BuildConfig(source="uniform", class_list=str(path)))


@pytest.mark.parametrize(("value", "pattern"), [(np.nan, "is nan"), (np.inf, "is inf"), (1e200, "too large")])
@pytest.mark.parametrize("normalize", ["none", "max"])
def test_a_built_matrix_is_checked_like_a_read_one(monkeypatch, value, pattern, normalize):
    import wpgdkit.labelmetric.sources as sources

    uniform = get_source("uniform")

    def build(config):
        metric = uniform.build(config)
        matrix = np.array(metric.matrix)
        matrix[0, 1] = matrix[1, 0] = value
        return dataclasses.replace(metric, matrix=matrix)

    wrapped = dataclasses.replace(uniform, build=build)
    monkeypatch.setattr(sources, "get_source", lambda name: wrapped if name == "uniform" else get_source(name))
    with pytest.raises(MetricFormatError, match="the uniform source produced an invalid metric: .*" + pattern):
        build_metric(BuildConfig(source="uniform", dataset="toy", normalize=normalize))


# --- BuildConfig's numbers are checked when it is made, before any work (regressions) ------------


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        ({"seed": -1}, "--seed"),
        ({"seed": 2**63}, "--seed"),
        ({"l2": float("nan")}, "--l2"),
        ({"l2": float("inf")}, "--l2"),
        ({"l2": -1e-3}, "--l2"),
        ({"max_iter": 0}, "--max-iter"),
        ({"max_iter": 100_001}, "--max-iter"),
        ({"limit": 0}, "--limit"),
        ({"limit": -5}, "--limit"),
    ],
)
def test_build_config_refuses_out_of_range_numbers(kwargs, fragment):
    with pytest.raises(WpgdkitError, match=fragment):
        BuildConfig(source="linear", dataset="toy", **kwargs)


def test_build_config_edges_are_accepted():
    BuildConfig(source="linear", dataset="toy", seed=2**32 - 1, l2=0.0, max_iter=100_000, limit=1)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"source": "wordnet", "dataset": "cifar10"},
        {"source": "linear", "dataset": "mnist"},
        {"source": "uniform", "dataset": "cifar10"},
    ],
)
def test_class_selection_is_checked_before_the_source_builds(monkeypatch, kwargs):
    source = get_source(kwargs["source"])

    def never(config):
        raise AssertionError("the source ran before --classes was checked")

    import wpgdkit.labelmetric.sources as sources_module

    monkeypatch.setattr(sources_module, "get_source", lambda name: dataclasses.replace(source, build=never))
    with pytest.raises(UnknownNameError, match="unknown class 'nosuch'"):
        build_metric(BuildConfig(classes=(get_dataset(kwargs["dataset"]).classes[0], "nosuch"), **kwargs))
