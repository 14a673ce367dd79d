"""The 3-class 2-D toy problem."""

from __future__ import annotations

import math

import pytest
import torch

from wpgdkit.datasets import get_dataset, load_split, load_tensors
from wpgdkit.datasets.toy import ToyConfig, make_toy
from wpgdkit.errors import WpgdkitError

# cos/sin of 90, 210 and 330 degrees, by hand.
CENTRES = torch.tensor([[0.0, 1.0], [-math.sqrt(3) / 2, -0.5], [math.sqrt(3) / 2, -0.5]])


def test_spec():
    spec = get_dataset("toy")
    assert spec.classes == ("0", "1", "2") and spec.input_shape == (2,) and spec.input_range is None


@pytest.mark.parametrize(("split", "per_class"), [("train", 1000), ("test", 500)])
def test_sizes_balance_and_dtypes(split, per_class):
    x, y = load_tensors("toy", split, seed=0)
    assert x.shape == (3 * per_class, 2) and x.dtype == torch.float32
    assert y.dtype == torch.int64 and torch.bincount(y).tolist() == [per_class] * 3
    # Shuffled: a prefix already holds every class.
    assert set(y[:30].tolist()) == {0, 1, 2}


def test_reproducible_for_a_seed():
    for split in ("train", "test"):
        a = load_tensors("toy", split, seed=5)
        b = load_tensors("toy", split, seed=5)
        assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_seeds_and_splits_differ():
    train0, _ = load_tensors("toy", "train", seed=0)
    train1, _ = load_tensors("toy", "train", seed=1)
    test0, _ = load_tensors("toy", "test", seed=0)
    test1, _ = load_tensors("toy", "test", seed=1)
    assert not torch.equal(train0, train1)
    assert not torch.equal(train0[:1500], test0)
    # Not the seed / seed + 1 scheme: no split of one seed repeats another seed's.
    assert not torch.equal(train1[:1500], test0) and not torch.equal(train0[:1500], test1)


@pytest.mark.parametrize("split", ["train", "test"])
def test_class_means_and_spread(split):
    x, y = load_tensors("toy", split, seed=2)
    for k in range(3):
        points = x[y == k]
        # Standard error of a mean is 0.35 / sqrt(500) < 0.016; allow about 4 of them.
        torch.testing.assert_close(points.mean(0), CENTRES[k], atol=0.06, rtol=0)
        torch.testing.assert_close(points.std(0), torch.full((2,), 0.35), atol=0.04, rtol=0)


def test_neighbouring_classes_overlap_a_little():
    x, y = load_tensors("toy", "train", seed=0)
    nearest = torch.cdist(x, CENTRES).argmin(1)
    error = (nearest != y).float().mean().item()
    # Nearest-centre error of three clusters sqrt(3) apart with sigma 0.35 is about 1.3%.
    assert 0.003 < error < 0.04


def test_items_and_config():
    x, y = load_split("toy", "test", seed=0)[3]
    assert x.shape == (2,) and x.dtype == torch.float32 and type(y) is int
    small = ToyConfig(train_per_class=4, test_per_class=2, std=0.0)
    points, labels = make_toy("train", seed=0, config=small)
    assert points.shape == (12, 2)
    torch.testing.assert_close(points, CENTRES[labels], atol=1e-6, rtol=0)


def test_negative_seed_is_rejected():
    with pytest.raises(WpgdkitError, match="seed"):
        load_split("toy", "train", seed=-1)
