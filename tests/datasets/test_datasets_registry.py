"""The dataset registry: names, specs, splits, subsets and synset mappings."""

from __future__ import annotations

import torch
import pytest
from torch.utils.data import Dataset

import wpgdkit.datasets.registry as registry
from wpgdkit.datasets import (
    DatasetSpec,
    get_dataset,
    list_datasets,
    load_split,
    load_tensors,
    register_dataset,
)
from wpgdkit.errors import DataNotFoundError, MetricFormatError, UnknownNameError, WpgdkitError

EXPECTED = {
    "cifar10": (10, (3, 32, 32), (0.0, 1.0)),
    "cifar100": (100, (3, 32, 32), (0.0, 1.0)),
    "fashion-mnist": (10, (1, 28, 28), (0.0, 1.0)),
    "mnist": (10, (1, 28, 28), (0.0, 1.0)),
    "tiny-imagenet": (200, (3, 64, 64), (0.0, 1.0)),
    "toy": (3, (2,), None),
}


class _Squares(Dataset):
    """A dataset without ``take``: item i is ([i, i*i], i % 2)."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return torch.tensor([float(i), float(i * i)]), i % 2


@pytest.fixture
def scratch_registry(monkeypatch):
    """Let a test register datasets without leaking them into other tests."""
    monkeypatch.setattr(registry, "_REGISTRY", registry._REGISTRY.copy())


def _squares_spec(name: str = "squares", n: int = 20) -> DatasetSpec:
    return DatasetSpec(
        name=name,
        classes=("even", "odd"),
        input_shape=(2,),
        input_range=None,
        description="test data",
        how_to_get="nothing",
        loader=lambda split, *, data_dir, download, seed: _Squares(n),
    )


def test_registered_names_are_sorted_and_complete():
    assert list_datasets() == sorted(EXPECTED)


@pytest.mark.parametrize("name", list_datasets())
def test_every_dataset_is_gettable_and_well_formed(name):
    spec = get_dataset(name)
    num_classes, shape, value_range = EXPECTED[name]
    assert spec.name == name
    assert spec.num_classes == len(spec.classes) == num_classes
    assert len(set(spec.classes)) == num_classes
    assert spec.input_shape == shape
    assert spec.input_range == value_range
    for line in (spec.description, spec.how_to_get):
        assert line and "\n" not in line


@pytest.mark.parametrize("name", list_datasets())
def test_synsets_match_classes_when_shipped(name):
    synsets = get_dataset(name).synsets
    if name == "toy":
        assert synsets is None
    if synsets is not None:
        assert len(synsets) == get_dataset(name).num_classes
        assert all(s is None or s.count(".") >= 2 for s in synsets)


def test_known_class_orders():
    assert get_dataset("mnist").classes == tuple("0123456789")
    assert get_dataset("fashion-mnist").classes[0] == "T-shirt/top"
    assert get_dataset("fashion-mnist").classes[9] == "Ankle boot"
    assert get_dataset("cifar10").classes[:3] == ("airplane", "automobile", "bird")
    assert get_dataset("cifar100").classes[1] == "aquarium_fish"
    assert get_dataset("cifar100").classes[-1] == "worm"
    assert get_dataset("toy").classes == ("0", "1", "2")


def test_unknown_name_lists_valid_names():
    with pytest.raises(UnknownNameError) as info:
        get_dataset("foo")
    assert str(info.value) == (
        "unknown dataset 'foo'; choose one of: cifar10, cifar100, fashion-mnist, mnist, tiny-imagenet, toy, "
        "or a .npz/.csv file, or imagefolder:PATH"
    )
    assert isinstance(info.value, WpgdkitError)


def test_unknown_split_lists_valid_splits():
    with pytest.raises(WpgdkitError, match=r"unknown split 'val'.*train, test"):
        load_split("toy", "val")


def test_duplicate_registration_is_a_programming_error(scratch_registry):
    register_dataset(_squares_spec())
    with pytest.raises(ValueError, match="already registered"):
        register_dataset(_squares_spec())
    with pytest.raises(ValueError):
        register_dataset(_squares_spec(name="cifar10"))


def test_spec_validation():
    with pytest.raises(ValueError, match="duplicate"):
        DatasetSpec("x", ("a", "a"), (2,), None, "d", "h", lambda *a, **k: None)
    with pytest.raises(ValueError, match="no classes"):
        DatasetSpec("x", (), (2,), None, "d", "h", lambda *a, **k: None)


def test_custom_dataset_without_take_is_stacked(scratch_registry):
    register_dataset(_squares_spec(n=20))
    x, y = load_tensors("squares", "train")
    assert x.dtype == torch.float32 and y.dtype == torch.int64
    assert x[:, 0].tolist() == [float(i) for i in range(20)]
    assert x[:, 1].tolist() == [float(i * i) for i in range(20)]
    assert y.tolist() == [i % 2 for i in range(20)]


@pytest.mark.parametrize("seed", [0, 7])
def test_limit_draws_sorted_seeded_subset(scratch_registry, seed):
    register_dataset(_squares_spec(n=50))
    x, y = load_tensors("squares", "test", limit=8, seed=seed)
    # Reference: the documented recipe, written out independently.
    expected = sorted(torch.randperm(50, generator=torch.Generator().manual_seed(seed))[:8].tolist())
    assert x[:, 0].tolist() == [float(i) for i in expected]
    assert y.tolist() == [i % 2 for i in expected]
    again, _ = load_tensors("squares", "test", limit=8, seed=seed)
    assert torch.equal(x, again)


def test_limit_on_in_memory_dataset_matches_full_tensors():
    full_x, full_y = load_tensors("toy", "test", seed=4)
    x, y = load_tensors("toy", "test", limit=10, seed=4)
    index = torch.randperm(len(full_y), generator=torch.Generator().manual_seed(4))[:10].sort().values
    assert torch.equal(x, full_x[index]) and torch.equal(y, full_y[index])


def test_limit_larger_than_split_keeps_everything():
    full_x, _ = load_tensors("toy", "test")
    x, _ = load_tensors("toy", "test", limit=10**6)
    assert torch.equal(x, full_x)


@pytest.mark.parametrize("limit", [0, -3, 2.5, True])
def test_bad_limit_is_rejected(limit):
    with pytest.raises(WpgdkitError, match="limit"):
        load_tensors("toy", "train", limit=limit)


def test_data_dir_defaults_to_environment_then_cwd(tmp_path, monkeypatch):
    monkeypatch.setenv("WPGDKIT_DATA_DIR", str(tmp_path / "from-env"))
    with pytest.raises(DataNotFoundError, match="from-env"):
        load_split("mnist", "train")
    monkeypatch.delenv("WPGDKIT_DATA_DIR")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DataNotFoundError) as info:
        load_split("mnist", "train")
    assert "looked in data/MNIST/raw, data/mnist, data)" in str(info.value)


@pytest.fixture
def synset_dir(tmp_path, monkeypatch):
    monkeypatch.setattr(registry, "metrics_dir", lambda: tmp_path)
    registry._read_synsets.cache_clear()
    yield tmp_path
    registry._read_synsets.cache_clear()


def _spec_named(name: str) -> DatasetSpec:
    return DatasetSpec(name, ("cat", "dog", "rock"), (2,), None, "d", "h", lambda *a, **k: None)


def test_synsets_read_from_mapping_file(synset_dir):
    (synset_dir / "pets-synsets.csv").write_text(
        "index,class,synset,gloss\n0,cat,cat.n.01,feline\n1,dog,dog.n.01,\"canine, domestic\"\n2,rock,,no noun\n"
    )
    assert _spec_named("pets").synsets == ("cat.n.01", "dog.n.01", None)


def test_synsets_absent_file_gives_none(synset_dir):
    assert _spec_named("nothing-shipped").synsets is None


def test_synsets_with_other_classes_are_rejected(synset_dir):
    (synset_dir / "swapped-synsets.csv").write_text(
        "index,class,synset,gloss\n0,dog,dog.n.01,x\n1,cat,cat.n.01,x\n2,rock,rock.n.01,x\n"
    )
    with pytest.raises(MetricFormatError, match="row 0: 'dog', expected 'cat'"):
        _spec_named("swapped").synsets


def test_items_are_float_tensor_and_int():
    x, y = load_split("toy", "train")[0]
    assert x.dtype == torch.float32 and x.shape == (2,)
    assert type(y) is int


def test_to_dict_is_the_spec_as_json_types():
    spec = get_dataset("cifar10")
    data = spec.to_dict()
    assert list(data) == ["name", "num_classes", "classes", "input_shape", "synsets", "description", "how_to_get"]
    assert data["name"] == "cifar10" and data["num_classes"] == 10
    assert data["classes"][:3] == ["airplane", "automobile", "bird"] and isinstance(data["classes"], list)
    assert data["input_shape"] == [3, 32, 32]
    assert data["synsets"][3] == "cat.n.01" and len(data["synsets"]) == 10
    assert (data["description"], data["how_to_get"]) == (spec.description, spec.how_to_get)
    assert _squares_spec().to_dict()["synsets"] is None  # no shipped mapping
