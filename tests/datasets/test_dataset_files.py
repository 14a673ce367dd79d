"""Datasets from files: .npz arrays, .csv tables, image folders, and in-memory arrays."""

from __future__ import annotations

import csv
import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import wpgdkit.datasets.files as files
from wpgdkit.datasets import (
    DataFormatError,
    DataOptions,
    DatasetSpec,
    FolderImageDataset,
    TensorFeatureDataset,
    TensorImageDataset,
    dataset_from_arrays,
    get_dataset,
    is_dataset_reference,
    list_datasets,
    load_split,
    load_tensors,
    open_dataset,
    reopen_dataset,
)
from wpgdkit.errors import DataNotFoundError, UnknownNameError, WpgdkitError


@pytest.fixture(autouse=True)
def fresh_opened(monkeypatch):
    """Each test starts with no opened datasets and leaves none behind."""
    monkeypatch.setattr(files, "_OPENED", {})


def _tabular(seed: int = 0, n_train: int = 60, n_test: int = 21, features: int = 4, classes: int = 3):
    rng = np.random.default_rng(seed)
    x_train = rng.normal(size=(n_train, features)) * np.arange(1, features + 1) + 10
    x_test = rng.normal(size=(n_test, features)) * np.arange(1, features + 1) + 10
    y_train = np.arange(n_train) % classes
    y_test = np.arange(n_test) % classes
    return x_train, y_train, x_test, y_test


def _npz(path: Path, **arrays) -> str:
    np.savez(path, **arrays)
    return str(path)


def _write_csv(path: Path, header: list[str], rows: list[list]) -> str:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return str(path)


def _png(path: Path, mode: str, size: tuple[int, int], value) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, value).save(path, format="PNG")


# --- references and the registry -----------------------------------------------------


@pytest.mark.parametrize("text, expected", [
    ("data.npz", True), ("dir/DATA.NPZ", True), ("x.csv", True), ("X.Csv", True),
    ("imagefolder:pets", True), ("imagefolder:", True),
    ("cifar10", False), ("data.npy", False), ("data.csv.gz", False), ("folder:pets", False),
])
def test_is_dataset_reference(text, expected):
    assert is_dataset_reference(text) is expected


def test_unknown_name_mentions_the_file_forms():
    with pytest.raises(UnknownNameError) as info:
        get_dataset("foo")
    message = str(info.value)
    assert message.startswith("unknown dataset 'foo'; choose one of: cifar10,")
    assert message.endswith(", toy, or a .npz/.csv file, or imagefolder:PATH")


def test_get_dataset_finds_the_opened_spec_and_list_datasets_does_not(tmp_path):
    x_train, y_train, x_test, y_test = _tabular()
    reference = _npz(tmp_path / "data.npz", x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    before = list_datasets()
    spec = open_dataset(reference, DataOptions(standardize=True))
    assert spec.name == reference
    assert get_dataset(reference) is spec  # the options it was opened with, not the defaults
    assert list_datasets() == before


def test_get_dataset_opens_an_unopened_reference_with_default_options(tmp_path):
    x_train, y_train, x_test, y_test = _tabular()
    reference = _npz(tmp_path / "data.npz", x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    spec = get_dataset(reference)
    assert spec.eps_units == "the features' own units" and not spec.source["options"]["standardize"]
    assert get_dataset(reference) is spec


def test_get_dataset_of_a_missing_file_is_data_not_found(tmp_path):
    with pytest.raises(DataNotFoundError, match="not found"):
        get_dataset(str(tmp_path / "absent.npz"))


# --- .npz: the shape families ------------------------------------------------------------


def test_npz_tabular_with_per_feature_bounds(tmp_path):
    x_train, y_train, x_test, y_test = _tabular()
    reference = _npz(tmp_path / "tab.npz", x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test,
                     class_names=np.array(["ant", "bee", "cow"]))
    spec = open_dataset(reference)
    assert spec.classes == ("ant", "bee", "cow")
    assert spec.input_shape == (4,)
    lows, highs = spec.input_range
    train32 = x_train.astype(np.float32)
    assert lows == tuple(float(v) for v in train32.min(axis=0))
    assert highs == tuple(float(v) for v in train32.max(axis=0))
    assert spec.per_feature_range and spec.eps_unit_text == "the features' own units"
    x, y = load_tensors(reference, "test")
    assert x.dtype == torch.float32 and y.dtype == torch.int64
    np.testing.assert_array_equal(x.numpy(), x_test.astype(np.float32))
    np.testing.assert_array_equal(y.numpy(), y_test)
    assert isinstance(load_split(reference, "train"), TensorFeatureDataset)
    assert spec.synsets is None


def test_npz_series_keep_their_shape_and_bound_every_value(tmp_path):
    rng = np.random.default_rng(1)
    x_train, x_test = rng.normal(size=(30, 2, 7)), rng.normal(size=(12, 2, 7))
    y_train, y_test = np.arange(30) % 2, np.arange(12) % 2
    reference = _npz(tmp_path / "series.npz", x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    spec = open_dataset(reference)
    assert spec.input_shape == (2, 7)
    lows, highs = spec.input_range
    flat = x_train.astype(np.float32).reshape(30, -1)
    assert len(lows) == len(highs) == 14
    assert lows == tuple(flat.min(axis=0).tolist()) and highs == tuple(flat.max(axis=0).tolist())
    x, _ = load_tensors(reference, "train", limit=5, seed=3)
    assert x.shape == (5, 2, 7)
    assert "inputs of shape 2x7" in spec.description


def test_npz_uint8_images_gain_a_channel_and_scale_to_unit_range(tmp_path):
    rng = np.random.default_rng(2)
    x_train = rng.integers(0, 256, size=(10, 5, 6), dtype=np.uint8)
    x_test = rng.integers(0, 256, size=(4, 5, 6), dtype=np.uint8)
    reference = _npz(tmp_path / "img.npz", x_train=x_train, y_train=np.arange(10) % 2, x_test=x_test,
                     y_test=np.array([0, 1, 0, 1]))
    spec = open_dataset(reference)
    assert spec.input_shape == (1, 5, 6) and spec.input_range == (0.0, 1.0)
    assert spec.eps_unit_text == "pixel intensity in [0, 1]"
    dataset = load_split(reference, "train")
    assert isinstance(dataset, TensorImageDataset)
    x, _ = dataset.take()
    np.testing.assert_allclose(x.numpy(), x_train[:, None].astype(np.float32) / 255, rtol=0, atol=1e-7)


def test_npz_float_images_in_unit_range_are_images(tmp_path):
    rng = np.random.default_rng(3)
    x_train, x_test = rng.random(size=(8, 3, 4, 4)), rng.random(size=(4, 3, 4, 4))
    arrays = dict(x_train=x_train, y_train=np.arange(8) % 2, x_test=x_test, y_test=np.arange(4) % 2)
    spec = open_dataset(_npz(tmp_path / "img.npz", **arrays))
    assert spec.input_shape == (3, 4, 4) and spec.input_range == (0.0, 1.0)
    assert spec.eps_units == "pixel intensity in [0, 1]"
    # The same arrays with one value above 1 are features, bounded per value.
    arrays["x_test"] = x_test * 1.5 + 0.01
    spec = open_dataset(_npz(tmp_path / "feat.npz", **arrays))
    assert spec.per_feature_range and len(spec.input_range[0]) == 48


def test_breast_cancer_npz_with_test_fraction_and_standardisation(tmp_path):
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer()
    reference = _npz(tmp_path / "cancer.npz", x_train=data.data, y_train=data.target,
                     class_names=np.array(list(data.target_names)))
    spec = open_dataset(reference, DataOptions(test_fraction=0.2, standardize=True, seed=1))
    assert spec.classes == ("malignant", "benign") and spec.input_shape == (30,)
    x_train, y_train = load_tensors(reference, "train")
    x_test, y_test = load_tensors(reference, "test")
    assert len(y_train) + len(y_test) == 569
    assert abs(len(y_test) - 0.2 * 569) <= 2
    np.testing.assert_allclose(x_train.numpy().mean(axis=0), 0, atol=1e-5)
    assert spec.eps_unit_text == "standard deviations of each feature"


# --- standardisation and bounds -----------------------------------------------------------


def test_standardisation_matches_numpy_with_training_statistics(tmp_path):
    x_train, y_train, x_test, y_test = _tabular(seed=4)
    x_train[:, 2] = 7.0  # a constant feature: std 0 counts as 1
    reference = _npz(tmp_path / "s.npz", x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    spec = open_dataset(reference, DataOptions(standardize=True))
    mean = x_train.astype(np.float64).mean(axis=0)
    std = x_train.astype(np.float64).std(axis=0)
    std[std == 0] = 1
    expected_train, expected_test = (x_train - mean) / std, (x_test - mean) / std
    got_train, _ = load_tensors(reference, "train")
    got_test, _ = load_tensors(reference, "test")
    np.testing.assert_allclose(got_train.numpy(), expected_train, rtol=0, atol=1e-5)
    np.testing.assert_allclose(got_test.numpy(), expected_test, rtol=0, atol=1e-5)
    assert np.all(got_train.numpy()[:, 2] == 0)
    lows, highs = spec.input_range  # bounds of the standardised training split
    np.testing.assert_allclose(lows, expected_train.min(axis=0), atol=1e-5)
    np.testing.assert_allclose(highs, expected_train.max(axis=0), atol=1e-5)
    assert spec.eps_units == "standard deviations of each feature"


def test_bounds_none_and_scalar(tmp_path):
    x_train, y_train, x_test, y_test = _tabular()
    reference = _npz(tmp_path / "b.npz", x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    assert open_dataset(reference, DataOptions(bounds="none")).input_range is None
    spec = open_dataset(reference, DataOptions(bounds="-100,100"))
    assert spec.input_range == (-100.0, 100.0) and not spec.per_feature_range
    assert spec.eps_unit_text == "the features' own units"
    with pytest.raises(DataFormatError, match=r"the train split has values in \[.*\], outside --bounds 0,1"):
        open_dataset(reference, DataOptions(bounds="0,1"))


@pytest.mark.parametrize("bounds", ["", "0", "1,0", "0,0", "a,b", "0,inf", "0,1,2", "Data"])
def test_bad_bounds_are_refused_on_construction(bounds):
    with pytest.raises(WpgdkitError, match="--bounds must be data, none or LOW,HIGH"):
        DataOptions(bounds=bounds)


# --- the held-out test split ----------------------------------------------------------------


def _held_out_rows(reference: str, seed: int) -> set[int]:
    open_dataset(reference, DataOptions(test_fraction=0.25, seed=seed))
    x_test, _ = load_tensors(reference, "test")
    return {int(row) for row in x_test[:, 0]}


def test_test_fraction_is_stratified_and_seeded(tmp_path):
    counts = {0: 40, 1: 20, 2: 10}
    y = np.concatenate([np.full(n, k) for k, n in counts.items()])
    x = np.stack([np.arange(len(y)), np.zeros(len(y))], axis=1).astype(np.float64)  # column 0: the row number
    reference = _npz(tmp_path / "f.npz", x_train=x, y_train=y)
    open_dataset(reference, DataOptions(test_fraction=0.25, seed=5))
    x_train, y_train = load_tensors(reference, "train")
    x_test, y_test = load_tensors(reference, "test")
    assert {k: int((y_test == k).sum()) for k in counts} == {0: 10, 1: 5, 2: 3}  # 2.5 rounds half up
    assert {k: int((y_train == k).sum()) for k in counts} == {0: 30, 1: 15, 2: 7}
    rows = sorted(int(r) for r in torch.cat([x_train[:, 0], x_test[:, 0]]))
    assert rows == list(range(len(y)))  # a partition of the rows
    assert all(y[int(r)] == int(label) for r, label in zip(x_test[:, 0], y_test))
    assert _held_out_rows(reference, 5) == _held_out_rows(reference, 5)
    assert _held_out_rows(reference, 5) != _held_out_rows(reference, 6)
    assert get_dataset(reference).source["options"]["seed"] == 6


# --- CSV ---------------------------------------------------------------------------------------


def test_csv_with_integer_labels_and_test_fraction(tmp_path):
    rows = [[i * 0.5, -i, i % 3] for i in range(30)]
    reference = _write_csv(tmp_path / "ints.csv", ["a", "b", "label"], rows)
    spec = open_dataset(reference, DataOptions(test_fraction=0.2))
    assert spec.classes == ("0", "1", "2") and spec.input_shape == (2,)
    x_train, y_train = load_tensors(reference, "train")
    x_test, _ = load_tensors(reference, "test")
    assert len(x_train) == 24 and len(x_test) == 6
    np.testing.assert_array_equal(x_train[:, 1].numpy(), -2 * x_train[:, 0].numpy())
    np.testing.assert_array_equal(y_train.numpy(), (x_train[:, 0].numpy() * 2).astype(int) % 3)


def test_csv_with_string_labels_a_label_column_and_a_test_file(tmp_path):
    train_rows = [["zebra", 1, 2], ["ant", 3, 4], ["moth", 5, 6], ["ant", 7, 8]]
    reference = _write_csv(tmp_path / "train.csv", ["kind", "w", "h"], train_rows)
    # The test file may order its columns differently; they are matched by name.
    test = _write_csv(tmp_path / "test.csv", ["h", "kind", "w"], [[20, "moth", 10], [40, "zebra", 30]])
    spec = open_dataset(reference, DataOptions(test=test, label_column="kind"))
    assert spec.classes == ("ant", "moth", "zebra")  # sorted names
    x, y = load_tensors(reference, "train")
    np.testing.assert_array_equal(x.numpy(), [[1, 2], [3, 4], [5, 6], [7, 8]])
    np.testing.assert_array_equal(y.numpy(), [2, 0, 1, 0])
    x, y = load_tensors(reference, "test")
    np.testing.assert_array_equal(x.numpy(), [[10, 20], [30, 40]])
    np.testing.assert_array_equal(y.numpy(), [1, 2])
    record = spec.source_record()
    assert record["kind"] == "csv" and record["test"] == test and record["options"]["label_column"] == "kind"
    assert record["sha256"] == hashlib.sha256(Path(reference).read_bytes()).hexdigest()
    assert record["test_sha256"] == hashlib.sha256(Path(test).read_bytes()).hexdigest()


# --- image folders --------------------------------------------------------------------------


def _folder(root: Path, layout: dict[str, dict[str, list]], mode: str = "RGB", size=(6, 4)) -> str:
    """``layout[split][class]`` is the list of pixel values of that class's images."""
    for split, classes in layout.items():
        for name, values in classes.items():
            (root / split / name).mkdir(parents=True, exist_ok=True)
            for i, value in enumerate(values):
                _png(root / split / name / f"img_{i}.png", mode, size, value)
    return f"imagefolder:{root}"


def test_image_folder_rgb_with_wordnet_id_classes(tmp_path, wordnet):
    red, green, blue = (255, 0, 0), (0, 255, 0), (0, 0, 255)
    reference = _folder(tmp_path / "pets", {
        "train": {"n02084071": [red, green], "n02121808": [blue]},
        "val": {"n02121808": [green]},
    })
    spec = open_dataset(reference)
    assert spec.classes == ("n02084071", "n02121808")
    assert spec.synset_ids == spec.classes and spec.synsets == spec.classes
    assert files.wordnet_id_to_name(spec.synsets, wordnet) == ("dog.n.01", "domestic_cat.n.01")
    assert spec.input_shape == (3, 4, 6) and spec.input_range == (0.0, 1.0)
    assert spec.source["test"] == "val" and spec.source["kind"] == "imagefolder"
    dataset = load_split(reference, "train")
    assert isinstance(dataset, FolderImageDataset)
    x, y = dataset.take()
    assert x.shape == (3, 3, 4, 6) and x.dtype == torch.float32
    assert y.tolist() == [0, 0, 1]
    assert x[0, :, 0, 0].tolist() == [1.0, 0.0, 0.0] and x[2, :, 0, 0].tolist() == [0.0, 0.0, 1.0]
    x, y = load_tensors(reference, "test")
    assert y.tolist() == [1] and x[0, :, 0, 0].tolist() == [0.0, 1.0, 0.0]


def test_image_folder_wordnet_metric_resolves_the_ids(tmp_path):
    from wpgdkit.labelmetric import BuildConfig, build_metric

    reference = _folder(tmp_path / "pets", {
        "train": {"n02084071": [(1, 2, 3)], "n02121808": [(3, 2, 1)], "n01503061": [(0, 0, 0)]},
        "test": {"n02084071": [(9, 9, 9)]},
    })
    open_dataset(reference)
    metric = build_metric(BuildConfig(source="wordnet", dataset=reference))
    matrix = np.asarray(metric.matrix)
    assert metric.classes == ("n01503061", "n02084071", "n02121808")
    assert matrix[1, 2] < matrix[0, 1]  # dog is nearer to cat than to bird


def test_image_folder_greyscale_resized_with_a_synset_map(tmp_path):
    root = tmp_path / "shapes"
    reference = _folder(root, {"train": {"square": [0, 255], "circle": [128]}, "test": {"square": [64]}}, mode="L")
    _png(root / "train" / "circle" / "big.png", "L", (10, 12), 200)  # another size: resized
    synsets = _write_csv(tmp_path / "synsets.csv", ["class", "synset"],
                         [["square", "square.n.01"], ["circle", "circle.n.01"], ["extra", "dog.n.01"]])
    spec = open_dataset(reference, DataOptions(image_size=5, synsets=synsets))
    assert spec.classes == ("circle", "square")
    assert spec.synset_ids == ("circle.n.01", "square.n.01")
    assert spec.input_shape == (1, 5, 5)
    x, y = load_tensors(reference, "train")
    assert x.shape == (4, 1, 5, 5) and y.tolist() == [0, 0, 1, 1]
    # Sorted paths: big.png, then img_0.png (128), then the squares 0 and 255.
    np.testing.assert_allclose(x[:, 0, 2, 2].numpy(), [200 / 255, 128 / 255, 0, 1], atol=1e-6)
    assert spec.source["options"]["image_size"] == 5


def test_image_folder_mode_follows_the_first_image(tmp_path):
    root = tmp_path / "mixed"
    reference = _folder(root, {"train": {"a": [10], "b": [20]}, "test": {"a": [30]}}, mode="L")
    _png(root / "train" / "b" / "rgb.png", "RGB", (6, 4), (255, 0, 0))
    spec = open_dataset(reference)
    assert spec.input_shape == (1, 4, 6)
    x, _ = load_tensors(reference, "train")
    assert x.shape == (3, 1, 4, 6)
    assert abs(float(x[2, 0, 0, 0]) - 76 / 255) < 1.5 / 255  # red as PIL's luminance


def test_image_folder_hash_covers_names_and_sizes(tmp_path):
    root = tmp_path / "h"
    reference = _folder(root, {"train": {"a": [1], "b": [2]}, "test": {"a": [3]}}, mode="L")
    first = open_dataset(reference).source["sha256"]
    assert open_dataset(reference).source["sha256"] == first
    _png(root / "test" / "b" / "new.png", "L", (6, 4), 9)
    assert open_dataset(reference).source["sha256"] != first


# --- the rest of wpgdkit on an opened dataset --------------------------------------------------


def test_prepare_data_trains_on_an_opened_reference(tmp_path):
    from wpgdkit.training.data import DataConfig, data_record, prepare_data

    x_train, y_train, x_test, y_test = _tabular(n_train=50)
    reference = _npz(tmp_path / "train.npz", x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    open_dataset(reference, DataOptions(standardize=True))
    data = prepare_data(DataConfig(dataset=reference, val_fraction=0.2, classes=("0", "2")))
    assert data.classes == ("0", "2") and data.input_shape == (4,)
    assert len(data.train) + len(data.val) == int(((y_train == 0) | (y_train == 2)).sum())
    x, y = data.train.take(torch.arange(len(data.train)))
    assert x.dtype == torch.float32 and set(y.tolist()) == {0, 1}
    assert data.input_range == get_dataset(reference).input_range
    assert data_record(DataConfig(dataset=reference)).dataset == reference


def test_prepare_data_on_an_image_folder(tmp_path):
    from wpgdkit.training.data import DataConfig, prepare_data

    reference = _folder(tmp_path / "f", {"train": {"a": [(1, 1, 1)] * 3, "b": [(2, 2, 2)] * 3}, "test": {"a": [(0, 0, 0)]}})
    open_dataset(reference)
    data = prepare_data(DataConfig(dataset=reference, val_fraction=0.5))
    x, _ = data.train.take(torch.arange(len(data.train)))
    assert x.shape == (3, 3, 4, 6) and not data.augment


def test_reopen_from_the_source_record_and_detect_changes(tmp_path):
    x_train, y_train, x_test, y_test = _tabular()
    reference = _npz(tmp_path / "r.npz", x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    spec = open_dataset(reference, DataOptions(standardize=True, bounds="none"))
    record = spec.source_record()
    assert record == {
        "kind": "npz", "reference": reference, "path": reference, "test": None,
        "sha256": hashlib.sha256(Path(reference).read_bytes()).hexdigest(),
        "options": {"label_column": None, "test_fraction": None, "bounds": "none", "standardize": True,
                    "image_size": None, "synsets": None},
    }
    files._OPENED.clear()
    again = reopen_dataset(record)
    assert get_dataset(reference) is again
    assert (again.input_range, again.eps_units) == (None, "standard deviations of each feature")
    np.testing.assert_array_equal(load_tensors(reference, "test")[0].numpy(),
                                  spec.loader("test", data_dir=tmp_path, download=False, seed=0).take()[0].numpy())
    _npz(tmp_path / "r.npz", x_train=x_train + 1, y_train=y_train, x_test=x_test, y_test=y_test)
    files._OPENED.clear()
    with pytest.raises(DataFormatError, match="changed since it was recorded"):
        reopen_dataset(record)
    assert files.opened_dataset(reference) is None
    assert reopen_dataset(record, check=False).source["sha256"] != record["sha256"]


def test_dataset_from_arrays_takes_tensors(tmp_path):
    x_train, y_train, x_test, y_test = _tabular()
    spec = dataset_from_arrays("mine", torch.from_numpy(x_train), torch.from_numpy(y_train), x_test, y_test,
                               class_names=["a", "b", "c"])
    assert get_dataset("mine") is spec and spec.source is None and spec.classes == ("a", "b", "c")
    x, y = load_tensors("mine", "test")
    np.testing.assert_array_equal(x.numpy(), x_test.astype(np.float32))
    with pytest.raises(DataFormatError, match="'toy' is a registered dataset"):
        dataset_from_arrays("toy", x_train, y_train, x_test, y_test)
    held = dataset_from_arrays("held", x_train, y_train, options=DataOptions(test_fraction=0.5, bounds="none"))
    assert len(load_tensors("held", "test")[1]) == 30 and held.input_range is None


# --- DatasetSpec ----------------------------------------------------------------------------------


def _no_loader(split, *, data_dir, download, seed):
    raise AssertionError("not loaded")


def _spec(**changes) -> DatasetSpec:
    fields = dict(name="s", classes=("a", "b"), input_shape=(2, 3), input_range=None, description="-",
                  how_to_get="-", loader=_no_loader)
    fields.update(changes)
    return DatasetSpec(**fields)


def test_spec_per_feature_range_is_checked_and_normalised():
    spec = _spec(input_range=([0, 1, 2, 3, 4, 5], np.arange(6) + 1.0))
    assert spec.input_range == ((0.0, 1.0, 2.0, 3.0, 4.0, 5.0), (1.0, 2.0, 3.0, 4.0, 5.0, 6.0))
    assert spec.per_feature_range and hash(spec) == hash(_spec(input_range=spec.input_range))
    assert _spec(input_range=([0.0] * 6, [0.0] * 6)).input_range[0] == (0.0,) * 6  # low == high allowed
    with pytest.raises(ValueError, match="6 each"):
        _spec(input_range=([0.0] * 5, [1.0] * 5))
    with pytest.raises(ValueError, match="finite lows <= highs"):
        _spec(input_range=([0.0] * 6, [1.0] * 5 + [-1.0]))
    with pytest.raises(ValueError, match="finite lows <= highs"):
        _spec(input_range=([0.0] * 6, [1.0] * 5 + [float("inf")]))
    with pytest.raises(ValueError, match="empty input range"):
        _spec(input_range=(1.0, 1.0))


def test_spec_new_fields():
    spec = _spec(eps_units="metres", source={"kind": "npz", "options": {"a": 1}}, synset_ids=("dog.n.01", "n02121808"))
    assert spec.eps_unit_text == "metres"
    assert spec.synsets == ("dog.n.01", "n02121808")
    record = spec.source_record()
    record["options"]["a"] = 2  # a copy
    assert spec.source["options"]["a"] == 1
    with pytest.raises(TypeError):
        spec.source["kind"] = "csv"
    assert spec == _spec(eps_units="metres", source=None, synset_ids=("dog.n.01", "n02121808"))  # source not compared
    hash(spec)
    with pytest.raises(ValueError, match="1 synset ids for 2 classes"):
        _spec(synset_ids=("dog.n.01",))
    with pytest.raises(ValueError, match="neither a noun synset name"):
        _spec(synset_ids=("dog", None))
    with pytest.raises(ValueError, match="JSON-able"):
        _spec(source={"path": Path("x")})


@pytest.mark.parametrize("name, text", [
    ("cifar10", "pixel intensity in [0, 1]"), ("mnist", "pixel intensity in [0, 1]"), ("toy", "the features' own units"),
])
def test_builtin_eps_unit_text(name, text):
    assert get_dataset(name).eps_unit_text == text


def test_spec_scalar_range_text():
    assert _spec(input_range=(-1, 1)).eps_unit_text == "input units in [-1, 1]"


# --- the CLI's options -----------------------------------------------------------------------------


def test_cli_data_options():
    from wpgdkit.cli._dataopts import DATASET_HELP, data_options

    options = data_options(Path("t.csv"), "y", None, "0,1", True, None, Path("s.csv"), 7)
    assert options == DataOptions(test="t.csv", label_column="y", bounds="0,1", standardize=True, synsets="s.csv", seed=7)
    assert options.scalar_bounds == (0.0, 1.0)
    for form in (".npz", ".csv", "imagefolder:PATH", "wpgdkit datasets"):
        assert form in DATASET_HELP
    with pytest.raises(WpgdkitError, match=r"--test-fraction must be a number in \(0, 1\), got 1.5"):
        data_options(test_fraction=1.5)


@pytest.mark.parametrize("changes, message", [
    ({"test_fraction": 0.0}, "--test-fraction must be"),
    ({"test_fraction": 1}, "--test-fraction must be"),
    ({"image_size": 0}, "--image-size must be"),
    ({"seed": -1}, "--seed must be"),
    ({"label_column": " "}, "--label-column must be"),
    ({"test": ""}, "--test must name a file"),
])
def test_bad_options(changes, message):
    with pytest.raises(WpgdkitError, match=message):
        DataOptions(**changes)


# --- bad input: one line each, nothing recorded ---------------------------------------------------


def _good_arrays():
    x_train, y_train, x_test, y_test = _tabular(n_train=12, n_test=6)
    return dict(x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)


def _bad_npz(**changes):
    arrays = _good_arrays()
    arrays.update(changes)
    return {k: v for k, v in arrays.items() if v is not None}


BAD_NPZ = {
    "missing arrays": (_bad_npz(y_train=None), r"lacks array\(s\) y_train; it holds x_test, x_train, y_test"),
    "missing y_test": (_bad_npz(y_test=None), "lacks y_test; it holds x_test, x_train, y_train"),
    "no test split": (_bad_npz(x_test=None, y_test=None), "has no test split: add x_test and y_test, or give --test-fraction"),
    "length mismatch": (_bad_npz(y_train=np.zeros(11, dtype=int)), "x_train has 12 points but y_train 11 labels"),
    "negative labels": (_bad_npz(y_test=np.array([0, 1, -1, 0, 1, 2])), r"y_test holds negative labels \(e.g. -1\)"),
    "fractional labels": (_bad_npz(y_train=np.arange(12) % 3 + 0.5), "y_train holds non-integer labels"),
    "NaN labels": (_bad_npz(y_train=np.full(12, np.nan)), "y_train holds non-integer labels"),
    "string labels": (_bad_npz(y_train=np.array(["a"] * 12)), "y_train has dtype <U1; labels must be integers"),
    "2-D labels": (_bad_npz(y_train=np.zeros((12, 1), dtype=int)), r"y_train has shape \(12, 1\)"),
    "out of range": (_bad_npz(class_names=np.array(["a", "b"])), "label 2 is out of range for the 2 class_names"),
    "too many names": (_bad_npz(class_names=np.array(["a", "b", "c", "d"])),
                       r"class_names holds 4 names but the labels run 0..2 \(3 classes\)"),
    "duplicate names": (_bad_npz(class_names=np.array(["a", "b", "a"])), "duplicate class names: a"),
    "control character": (_bad_npz(class_names=np.array(["a", "b\x1b", "c"])), "holds control character U\\+001B"),
    "numeric class names": (_bad_npz(class_names=np.arange(3)), "class_names must be a 1-D array of strings"),
    "NaN features": (_bad_npz(x_test=np.where(np.eye(6, 4) > 0, np.nan, 1.0)),
                     "the test split holds 4 NaN or infinite feature values"),
    "inf features": (_bad_npz(x_train=np.full((12, 4), np.inf)), "the train split holds 48 NaN or infinite"),
    "empty split": (_bad_npz(x_test=np.zeros((0, 4)), y_test=np.zeros(0, dtype=int)), "the test split is empty"),
    "one class": (_bad_npz(y_train=np.zeros(12, dtype=int), y_test=np.zeros(6, dtype=int)),
                  "needs at least 2 classes; the labels hold only 1"),
    "shape mismatch": (_bad_npz(x_test=np.zeros((6, 3))), "x_test points have shape 3 but x_train points 4"),
    "1-D features": (_bad_npz(x_train=np.zeros(12)), r"x_train has shape \(12,\); expected one row per point"),
    "complex features": (_bad_npz(x_train=np.zeros((12, 4), dtype=complex)), "x_train has dtype complex128"),
    "string features": (_bad_npz(x_train=np.full((12, 4), "1")), "x_train has dtype <U1"),
}


@pytest.mark.parametrize("case", list(BAD_NPZ))
def test_bad_npz(tmp_path, case):
    arrays, message = BAD_NPZ[case]
    reference = _npz(tmp_path / "bad.npz", **arrays)
    with pytest.raises(WpgdkitError, match=message) as info:
        open_dataset(reference)
    assert "\n" not in str(info.value) and str(info.value).startswith(reference)
    assert files.opened_dataset(reference) is None


def test_bad_npz_files(tmp_path):
    missing = str(tmp_path / "absent.npz")
    with pytest.raises(DataNotFoundError, match="dataset file .*absent.npz not found"):
        open_dataset(missing)
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"not a zip at all")
    with pytest.raises(DataFormatError, match=r"is not an .npz archive \(a zip of .npy arrays"):
        open_dataset(str(garbage))
    empty = tmp_path / "empty.npz"
    empty.write_bytes(b"")
    with pytest.raises(DataFormatError, match="is not an .npz archive"):
        open_dataset(str(empty))
    single = tmp_path / "single.npz"
    with single.open("wb") as handle:
        np.save(handle, np.zeros(3))
    with pytest.raises(DataFormatError, match="it holds one .npy array"):
        open_dataset(str(single))
    objects = _npz(tmp_path / "objects.npz", **_bad_npz(class_names=np.array(["a", 1, None], dtype=object)))
    with pytest.raises(DataFormatError, match="array class_names holds Python objects"):
        open_dataset(objects)
    folder = tmp_path / "folder.npz"
    folder.mkdir()
    with pytest.raises(WpgdkitError, match="is a folder"):
        open_dataset(str(folder))


def test_bad_npz_options(tmp_path):
    reference = _npz(tmp_path / "o.npz", **_good_arrays())
    with pytest.raises(DataFormatError, match="has a test split .*; drop --test-fraction"):
        open_dataset(reference, DataOptions(test_fraction=0.5))
    with pytest.raises(DataFormatError, match="--test applies to .csv files"):
        open_dataset(reference, DataOptions(test="t.csv"))
    with pytest.raises(DataFormatError, match="--image-size applies to imagefolder: datasets, not to .npz data"):
        open_dataset(reference, DataOptions(image_size=8))
    with pytest.raises(DataFormatError, match="--label-column applies to .csv files"):
        open_dataset(reference, DataOptions(label_column="y"))
    small = _npz(tmp_path / "small.npz", x_train=np.zeros((4, 2)), y_train=np.array([0, 1, 0, 1]))
    with pytest.raises(DataFormatError, match="--test-fraction 0.1 of 4 points leaves the test split empty"):
        open_dataset(small, DataOptions(test_fraction=0.1))
    with pytest.raises(DataFormatError, match="leaves the train split empty"):
        open_dataset(small, DataOptions(test_fraction=0.9))


def test_bad_csv(tmp_path):
    header = ["a", "b", "label"]
    good = [[1, 2, 0], [3, 4, 1]]

    def fails(rows, message, options=DataOptions(test_fraction=0.5), header=header):
        reference = _write_csv(tmp_path / "bad.csv", header, rows)
        with pytest.raises(WpgdkitError, match=message) as info:
            open_dataset(reference, options)
        assert "\n" not in str(info.value)
        assert files.opened_dataset(reference) is None

    fails(good, r"has no column 'y' \(choose the label column with --label-column\); its columns are: a, b, label",
          DataOptions(test_fraction=0.5, label_column="y"))
    fails(good + [[5, "six", 0]], r"bad.csv: line 4, column 'b': 'six', not a number")
    fails(good + [[5, "", 0]], r"line 4, column 'b': empty")
    fails(good + [[5, 6]], "line 4 has 2 cells, the header 3")
    fails(good + [[5, 6, -1]], "line 4: label -1 is negative")
    fails(good + [[5, 6, " "]], "line 4: no label in column 'label'")
    fails(good, "the header repeats column\\(s\\) a", header=["a", "a", "label"])
    fails(good, "column 2 of the header has no name", header=["a", "", "label"])
    fails([[0], [1]], "has no feature columns besides 'label'", header=["label"])
    fails([], "the train split is empty")
    fails(good, r"holds one split: give --test FILE .* or --test-fraction F", DataOptions())
    fails(good, "give either --test or --test-fraction, not both", DataOptions(test="t.csv", test_fraction=0.5))
    fails([[1, 2, 0], [3, 4, 0]], "needs at least 2 classes")
    fails([[1, "nan", 0], [3, "inf", 1]], "the train split holds 2 NaN or infinite feature values")
    fails(good, "--image-size applies to imagefolder: datasets, not to .csv data", DataOptions(test_fraction=0.5, image_size=3))
    empty = tmp_path / "empty.csv"
    empty.write_text("\n\n")
    with pytest.raises(DataFormatError, match="is empty; expected a header row"):
        open_dataset(str(empty), DataOptions(test_fraction=0.5))
    latin = tmp_path / "latin.csv"
    latin.write_bytes("a,label\n1,caf\xe9\n".encode("latin-1"))
    with pytest.raises(DataFormatError, match="is not UTF-8 text"):
        open_dataset(str(latin), DataOptions(test_fraction=0.5))
    train = _write_csv(tmp_path / "train.csv", header, good)
    test = _write_csv(tmp_path / "test.csv", ["a", "c", "label"], good)
    with pytest.raises(DataFormatError, match="its feature columns differ from .*train.csv's: lacks b; adds c"):
        open_dataset(train, DataOptions(test=test))
    with pytest.raises(DataNotFoundError, match="test file .*absent.csv not found"):
        open_dataset(train, DataOptions(test=str(tmp_path / "absent.csv")))


def test_bad_image_folders(tmp_path):
    def fails(reference, message, options=DataOptions(), error=WpgdkitError):
        with pytest.raises(error, match=message) as info:
            open_dataset(reference, options)
        assert "\n" not in str(info.value)
        assert files.opened_dataset(reference) is None

    fails("imagefolder:", "imagefolder: needs a folder")
    fails(f"imagefolder:{tmp_path / 'absent'}", "image folder .*absent not found", error=DataNotFoundError)
    (tmp_path / "file").write_text("x")
    fails(f"imagefolder:{tmp_path / 'file'}", "is not a folder")
    no_train = tmp_path / "no_train"
    (no_train / "test" / "a").mkdir(parents=True)
    fails(f"imagefolder:{no_train}", "has no train folder; expected", error=DataNotFoundError)
    no_test = _folder(tmp_path / "no_test", {"train": {"a": [1], "b": [2]}}, mode="L")
    fails(no_test, "has no test or val folder", error=DataNotFoundError)
    sizes = tmp_path / "sizes"
    reference = _folder(sizes, {"train": {"a": [1], "b": [2]}, "test": {"a": [3]}}, mode="L")
    _png(sizes / "test" / "a" / "odd.png", "L", (5, 5), 0)
    fails(reference, r"odd.png is 5x5 pixels but .*img_0.png is 6x4; give --image-size N")
    broken = tmp_path / "broken"
    reference = _folder(broken, {"train": {"a": [1], "b": [2]}, "test": {"a": [3]}}, mode="L")
    (broken / "train" / "b" / "zz.png").write_bytes(b"not an image")
    fails(reference, r"cannot read image .*zz.png")
    control = _folder(tmp_path / "control", {"train": {"a": [1], "b\x01": [2]}, "test": {"a": [3]}}, mode="L")
    fails(control, "holds control character U\\+0001")
    extra = _folder(tmp_path / "extra", {"train": {"a": [1], "b": [2]}, "test": {"c": [3]}}, mode="L")
    fails(extra, "holds class folder\\(s\\) 'c' that .* lacks")
    empty_class = _folder(tmp_path / "empty_class", {"train": {"a": [1], "b": []}, "test": {"a": [3]}}, mode="L")
    fails(empty_class, "class folder .*b holds no images")
    empty_test = _folder(tmp_path / "empty_test", {"train": {"a": [1], "b": [2]}, "test": {"a": []}}, mode="L")
    fails(empty_test, "the test split is empty")
    good = _folder(tmp_path / "good", {"train": {"cat": [1], "dog": [2]}, "test": {"cat": [3]}}, mode="L")
    synsets = _write_csv(tmp_path / "synsets.csv", ["class", "synset"], [["cat", "cat.n.01"]])
    fails(good, r"synsets.csv maps no synset for class\(es\) 'dog'", DataOptions(synsets=synsets))
    wrong = _write_csv(tmp_path / "wrong.csv", ["class", "synset"], [["cat", "cat.n.01"], ["dog", "dog"]])
    fails(good, "'dog' \\(class 'dog'\\) is neither a noun synset name", DataOptions(synsets=wrong))
    fails(good, "--standardize applies to .csv and .npz data", DataOptions(standardize=True))
    fails(good, "--test-fraction applies to .csv and .npz data", DataOptions(test_fraction=0.5))
    fails(good, r"images are read into \[0, 1\], outside --bounds 0,0.5", DataOptions(bounds="0,0.5"))
    assert open_dataset(good, DataOptions(bounds="none")).input_range is None


def test_an_image_changed_after_opening_is_one_line(tmp_path):
    root = tmp_path / "later"
    reference = _folder(root, {"train": {"a": [1], "b": [2]}, "test": {"a": [3]}}, mode="L")
    open_dataset(reference)
    (root / "train" / "a" / "img_0.png").write_bytes(b"garbage")
    with pytest.raises(DataFormatError, match="cannot read image .*img_0.png"):
        load_tensors(reference, "train")
    (root / "train" / "b" / "img_0.png").unlink()
    with pytest.raises(DataNotFoundError, match="img_0.png does not exist"):
        load_split(reference, "train")[1]
