"""The real Fashion-MNIST, as installed by Debian's ``dataset-fashion-mnist`` package."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from wpgdkit.datasets import load_split, load_tensors

DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")

pytestmark = pytest.mark.skipif(
    not (DEBIAN_DIR / "train-images-idx3-ubyte.gz").is_file(),
    reason=f"Debian's dataset-fashion-mnist is not installed ({DEBIAN_DIR} lacks train-images-idx3-ubyte.gz)",
)

# First ten labels of each split as published with the dataset.
FIRST_TRAIN_LABELS = [9, 0, 0, 3, 0, 2, 7, 2, 5, 5]
FIRST_TEST_LABELS = [9, 2, 1, 1, 6, 1, 4, 6, 5, 7]


@pytest.fixture(scope="module")
def empty_data_dir(tmp_path_factory) -> Path:
    """A data dir with nothing in it, so only the Debian folder can supply the files."""
    return tmp_path_factory.mktemp("empty-data")


@pytest.fixture(scope="module")
def train(empty_data_dir):
    return load_split("fashion-mnist", "train", data_dir=empty_data_dir)


def test_train_split(train):
    assert len(train) == 60000
    assert train.images.shape == (60000, 1, 28, 28) and train.images.dtype == torch.uint8
    assert torch.bincount(train.labels, minlength=10).tolist() == [6000] * 10
    assert train.labels[:10].tolist() == FIRST_TRAIN_LABELS
    x, y = train[0]
    assert x.dtype == torch.float32 and x.shape == (1, 28, 28) and y == 9
    assert 0.0 <= x.min() and x.max() <= 1.0 and x.max() > 0.9


def test_test_split(empty_data_dir):
    x, y = load_tensors("fashion-mnist", "test", data_dir=empty_data_dir)
    assert x.shape == (10000, 1, 28, 28) and x.dtype == torch.float32
    assert y.shape == (10000,) and y.dtype == torch.int64
    assert torch.bincount(y, minlength=10).tolist() == [1000] * 10
    assert y[:10].tolist() == FIRST_TEST_LABELS
    assert x.min() == 0.0 and x.max() == 1.0
    # Values are k/255 exactly: scaling back gives integers.
    assert torch.equal(x[:50] * 255, (x[:50] * 255).round())


def test_limited_subset_is_sorted_and_reproducible(train, empty_data_dir):
    x, y = load_tensors("fashion-mnist", "train", data_dir=empty_data_dir, limit=100, seed=0)
    index = torch.randperm(60000, generator=torch.Generator().manual_seed(0))[:100].sort().values
    assert x.shape == (100, 1, 28, 28) and y.shape == (100,)
    assert torch.equal(y, train.labels[index])
    assert torch.equal(x, train.images[index].float() / 255)
    x2, y2 = load_tensors("fashion-mnist", "train", data_dir=empty_data_dir, limit=100, seed=0)
    assert torch.equal(x, x2) and torch.equal(y, y2)
    # Another seed draws another subset (checked on the smaller test split to stay fast).
    _, y_seed0 = load_tensors("fashion-mnist", "test", data_dir=empty_data_dir, limit=100, seed=0)
    _, y_seed1 = load_tensors("fashion-mnist", "test", data_dir=empty_data_dir, limit=100, seed=1)
    assert not torch.equal(y_seed0, y_seed1)
