"""Sub-problems, imbalance, limits, validation split, seeded batches and augmentation."""

from __future__ import annotations

import pytest
import torch

from wpgdkit.errors import WpgdkitError
from wpgdkit.training.data import DataConfig, augment_batch, batch_generator, epoch_order, prepare_data


def test_classes_reindex_labels_in_the_given_order():
    data = prepare_data(DataConfig("toy", classes=("2", "0"), val_fraction=0.0))
    assert data.classes == ("2", "0") and data.class_indices == (2, 0)
    # toy has 1000 training points per class: all of classes 2 and 0 are kept, relabelled 0 and 1.
    assert torch.bincount(data.train.labels).tolist() == [1000, 1000]
    x, y = data.train.take(torch.arange(len(data.train)))
    from wpgdkit.datasets import load_tensors

    full_x, full_y = load_tensors("toy", "train")
    # every relabelled point is the original point of the mapped class
    for label, original in ((0, 2), (1, 0)):
        picked = x[y == label]
        assert torch.equal(picked, full_x[full_y == original])


def test_imbalance_downsamples_the_last_selected_class_to_the_ratio():
    data = prepare_data(DataConfig("toy", classes=("0", "1"), imbalance=0.3, val_fraction=0.0, seed=3))
    assert torch.bincount(data.train.labels).tolist() == [1000, 300]
    other = prepare_data(DataConfig("toy", classes=("0", "1"), imbalance=0.3, imbalance_class="0", val_fraction=0.0))
    assert torch.bincount(other.train.labels).tolist() == [300, 1000]
    again = prepare_data(DataConfig("toy", classes=("0", "1"), imbalance=0.3, val_fraction=0.0, seed=3))
    assert torch.equal(again.train.indices, data.train.indices)  # seeded


def test_limit_and_validation_split_partition_the_points():
    data = prepare_data(DataConfig("toy", limit=500, val_fraction=0.2, seed=1))
    assert len(data.train) == 400 and len(data.val) == 100
    assert not set(data.train.indices.tolist()) & set(data.val.indices.tolist())


@pytest.mark.parametrize(
    "config, fragment",
    [
        (DataConfig("toy", imbalance=0.0), "--imbalance"),
        (DataConfig("toy", imbalance=1.5), "--imbalance"),
        (DataConfig("toy", val_fraction=1.0), "--val-fraction"),
        (DataConfig("toy", classes=("0",)), "at least 2 classes"),
        (DataConfig("toy", classes=("0", "7")), "out of range"),
        (DataConfig("toy", classes=("0", "1"), imbalance=0.5, imbalance_class="2"), "not among"),
        (DataConfig("toy", limit=1), "--limit"),
    ],
)
def test_bad_data_configs(config, fragment):
    with pytest.raises(WpgdkitError, match=fragment):
        prepare_data(config)


def test_epoch_order_depends_on_seed_and_epoch_only():
    assert torch.equal(epoch_order(50, seed=1, epoch=2), epoch_order(50, seed=1, epoch=2))
    assert not torch.equal(epoch_order(50, seed=1, epoch=2), epoch_order(50, seed=1, epoch=3))
    assert sorted(epoch_order(50, seed=0, epoch=0).tolist()) == list(range(50))


def test_ranks_split_each_global_batch():
    data = prepare_data(DataConfig("toy", limit=64, val_fraction=0.0))
    single = [y for _, _, y in batch_generator(data.train, batch_size=16, seed=0, epoch=0)]
    ranks = [[y for _, _, y in batch_generator(data.train, batch_size=16, seed=0, epoch=0, rank=r, world_size=2)]
             for r in range(2)]
    for b, whole in enumerate(single):
        assert torch.equal(whole[0::2], ranks[0][b]) and torch.equal(whole[1::2], ranks[1][b])


def test_augment_batch_crops_and_flips():
    x = torch.arange(2 * 1 * 6 * 6, dtype=torch.float32).reshape(2, 1, 6, 6) + 1
    out = augment_batch(x, generator=torch.Generator().manual_seed(0), padding=2)
    assert out.shape == x.shape
    for i in range(2):
        padded = torch.nn.functional.pad(x[i], (2, 2, 2, 2))
        # the output is some 6×6 window of the padded image, maybe mirrored
        windows = [padded[:, dy:dy + 6, dx:dx + 6] for dy in range(5) for dx in range(5)]
        assert any(torch.equal(out[i], w) or torch.equal(out[i], w.flip(-1)) for w in windows)
    again = augment_batch(x, generator=torch.Generator().manual_seed(0), padding=2)
    assert torch.equal(out, again)


def test_augmentation_only_for_large_images():
    assert prepare_data(DataConfig("toy")).augment is False
    assert prepare_data(DataConfig("fashion-mnist", limit=20)).augment is False


def test_cifar_and_tiny_imagenet_folders(cifar10_dir, tiny_imagenet_dir):
    c10 = prepare_data(DataConfig("cifar10", data_dir=str(cifar10_dir), val_fraction=0.25))
    assert len(c10.train) + len(c10.val) == 20 and c10.augment
    tiny = prepare_data(DataConfig("tiny-imagenet", data_dir=str(tiny_imagenet_dir), val_fraction=0.0))
    assert len(tiny.train) == 9 and tiny.input_shape == (3, 64, 64)
    _, x, y = next(batch_generator(tiny.train, batch_size=4, seed=0, epoch=0))
    assert x.shape == (4, 3, 64, 64) and set(y.tolist()) <= {0, 1, 2}
