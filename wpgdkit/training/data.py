"""Data for training: sub-problems, a validation split, seeded batches and augmentation.

Every random choice is a function of ``(seed, epoch, batch)``: the epoch's
order, the augmentation of each batch and the attack's random start. A run
resumed from an epoch's checkpoint, or split over ``torchrun`` processes,
therefore sees exactly the batches an uninterrupted single-process run sees.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from wpgdkit.datasets import get_dataset, load_split
from wpgdkit.errors import WpgdkitError
from wpgdkit.labelmetric.core import resolve_class_indices

__all__ = [
    "DataConfig", "TrainingData", "prepare_data", "selected_classes", "applies_augmentation", "data_record", "load_eval_split", "augment_batch", "batch_generator", "epoch_order",
]


@dataclass(frozen=True)
class DataConfig:
    """Which data a run trains on.

    Attributes
    ----------
    dataset : str
        A registry name, or a dataset file (``.npz``, ``.csv``, ``imagefolder:PATH``).
    options : DataOptions or None
        How to read a dataset file (:class:`~wpgdkit.datasets.files.DataOptions`:
        test file, label column, test fraction, bounds, standardisation, image size).
    classes : tuple of str or None
        A sub-problem (names or indices); labels are re-indexed 0..K'-1 in this order.
    imbalance : float or None
        Down-sample one class (``imbalance_class``, default the last selected)
        to this fraction of its size, seeded (paper, Sec. 3.2).
    imbalance_class : str or None
    limit : int or None
        Keep a seeded random subset of this many training points (quick runs).
    val_fraction : float
        Held-out share of the training split used for validation.
    augment : bool
        The paper's CIFAR augmentation (random crop with 4-pixel padding and a
        horizontal flip; the same at 64×64); never for MNIST-like or toy data.
    data_dir : str or None
    download : bool
    seed : int
    """

    dataset: str
    classes: tuple[str, ...] | None = None
    options: Any = None
    imbalance: float | None = None
    imbalance_class: str | None = None
    limit: int | None = None
    val_fraction: float = 0.1
    augment: bool = True
    data_dir: str | None = None
    download: bool = False
    seed: int = 0


@dataclass
class TrainingData:
    """The resolved data of a run.

    Attributes
    ----------
    train, val : Dataset
        Items ``(x, y)`` with re-indexed labels.
    classes : tuple of str
        Class names in the re-indexed label order.
    class_indices : tuple of int
        Their labels in the original dataset.
    input_shape : tuple of int
    input_range : tuple of float or None
    augment : bool
        Whether :func:`augment_batch` applies (images with ≥ 32 pixels a side).
    """

    train: Dataset
    val: Dataset
    classes: tuple[str, ...]
    class_indices: tuple[int, ...]
    input_shape: tuple[int, ...]
    input_range: tuple[float, float] | None
    augment: bool


class _Relabelled(Dataset):
    """A view of some items of a dataset with labels mapped to 0..K'-1."""

    def __init__(self, base: Dataset, indices: torch.Tensor, labels: torch.Tensor) -> None:
        self.base, self.indices, self.labels = base, indices, labels

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        x, _ = self.base[int(self.indices[i])]
        return x, int(self.labels[i])

    def take(self, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if hasattr(self.base, "take"):
            x, _ = self.base.take(self.indices[positions])
        else:
            x = torch.stack([self.base[int(j)][0] for j in self.indices[positions]])
        return x, self.labels[positions]


def _labels_of(dataset: Dataset) -> torch.Tensor:
    labels = getattr(dataset, "labels", None)
    if labels is None:
        labels = [int(dataset[i][1]) for i in range(len(dataset))]
    return torch.as_tensor(labels, dtype=torch.int64)


def dataset_spec(config: DataConfig):
    """The :class:`~wpgdkit.datasets.DatasetSpec` of the run's data: registered, or a file opened with ``options``.

    Raises
    ------
    WpgdkitError
        For an unknown name, unreadable files, or options given for a registered dataset.
    """
    from wpgdkit.audit.subjects import open_spec

    return open_spec(config.dataset, config.options)


def prepare_data(config: DataConfig) -> TrainingData:
    """Load the training split and carve out the sub-problem and validation set.

    Raises
    ------
    WpgdkitError
        For unknown classes, an imbalance outside (0, 1], a validation
        fraction outside [0, 1), or too little data.
    """
    spec = dataset_spec(config)
    if config.imbalance is not None and not 0 < config.imbalance <= 1:
        raise WpgdkitError(f"--imbalance must be in (0, 1], got {config.imbalance}")
    if not 0 <= config.val_fraction < 1:
        raise WpgdkitError(f"--val-fraction must be in [0, 1), got {config.val_fraction}")
    if config.limit is not None and config.limit < 2:
        raise WpgdkitError(f"--limit must be at least 2, got {config.limit}")
    selected = selected_classes(config)
    base = load_split(config.dataset, "train", data_dir=config.data_dir, download=config.download, seed=config.seed)
    original = _labels_of(base)
    remap = torch.full((spec.num_classes,), -1, dtype=torch.int64)
    remap[torch.tensor(selected)] = torch.arange(len(selected))
    keep = torch.nonzero(remap[original] >= 0).squeeze(1)
    generator = torch.Generator().manual_seed(config.seed)
    if config.imbalance is not None:
        keep = _downsample(keep, remap[original[keep]], _imbalanced_label(config, spec, selected), config.imbalance, generator)
    if config.limit is not None and config.limit < len(keep):
        keep = keep[torch.randperm(len(keep), generator=generator)[: config.limit]].sort().values
    order = keep[torch.randperm(len(keep), generator=generator)]
    n_val = int(round(len(order) * config.val_fraction))
    val_idx, train_idx = order[:n_val].sort().values, order[n_val:].sort().values
    if len(train_idx) == 0:
        raise WpgdkitError("no training points left after --classes/--imbalance/--limit/--val-fraction")
    labels = remap[original]
    augment = applies_augmentation(config)
    return TrainingData(
        train=_Relabelled(base, train_idx, labels[train_idx]),
        val=_Relabelled(base, val_idx, labels[val_idx]),
        classes=tuple(spec.classes[i] for i in selected),
        class_indices=tuple(selected),
        input_shape=tuple(spec.input_shape),
        input_range=spec.input_range,
        augment=augment,
    )


def selected_classes(config: DataConfig) -> list[int]:
    """The run's classes as labels of the full dataset, in the run's label order (all of them by default).

    Raises
    ------
    WpgdkitError
        For an unknown class, or fewer than 2 classes.
    """
    spec = dataset_spec(config)
    selected = resolve_class_indices(spec.classes, config.classes) if config.classes else list(range(spec.num_classes))
    if len(selected) < 2:
        raise WpgdkitError("training needs at least 2 classes")
    return selected


def applies_augmentation(config: DataConfig) -> bool:
    """Whether the run augments: asked for, and images of at least 32 pixels a side (CIFAR, Tiny-ImageNet)."""
    shape = dataset_spec(config).input_shape
    return bool(config.augment) and len(shape) == 3 and shape[-1] >= 32


def data_record(config: DataConfig):
    """The :class:`~wpgdkit.checkpoint.DataRecord` of a run on ``config``, without loading any data."""
    from wpgdkit.checkpoint import DataRecord

    spec = dataset_spec(config)
    selected = selected_classes(config)
    source = spec.source_record() if getattr(spec, "source", None) is not None else None
    return DataRecord(
        dataset=config.dataset, classes=tuple(spec.classes[i] for i in selected), class_indices=tuple(selected),
        limit=config.limit, val_fraction=float(config.val_fraction),
        imbalance=float(config.imbalance) if config.imbalance is not None else None,
        imbalance_class=config.imbalance_class, augment=applies_augmentation(config),
        input_range=tuple(spec.input_range) if spec.input_range is not None else None, seed=config.seed,
        data_dir=config.data_dir, download=config.download, source=source,
    )


def load_eval_split(
    dataset: str,
    class_indices: Sequence[int],
    *,
    split: str = "test",
    data_dir: str | None = None,
    download: bool = False,
    limit: int | None = None,
    seed: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The points of a split that belong to a run's classes, relabelled as in training.

    Parameters
    ----------
    dataset : str
    class_indices : sequence of int
        The run's classes as labels of the full dataset (a checkpoint's
        ``data.class_indices``); label ``class_indices[i]`` becomes ``i``.
    split : {"train", "test"}, keyword-only
    data_dir, download, seed : keyword-only
        As in :func:`wpgdkit.datasets.load_split`.
    limit : int, keyword-only, optional
        Keep the first ``limit`` such points, in the split's order.

    Returns
    -------
    x : Tensor of shape (N, *input_shape), float32
    y : Tensor of shape (N,), int64
    """
    if limit is not None and limit < 1:
        raise WpgdkitError(f"--limit must be at least 1, got {limit}")
    spec = get_dataset(dataset)
    base = load_split(dataset, split, data_dir=data_dir, download=download, seed=seed)
    original = _labels_of(base)
    remap = torch.full((spec.num_classes,), -1, dtype=torch.int64)
    remap[torch.as_tensor(list(class_indices), dtype=torch.int64)] = torch.arange(len(class_indices))
    keep = torch.nonzero(remap[original] >= 0).squeeze(1)
    if limit is not None:
        keep = keep[:limit]
    if len(keep) == 0:
        raise WpgdkitError(f"the {split} split of {dataset} has no points of the selected classes")
    view = _Relabelled(base, keep, remap[original[keep]])
    return view.take(torch.arange(len(keep)))


def _imbalanced_label(config: DataConfig, spec, selected: Sequence[int]) -> int:
    if config.imbalance_class is None:
        return len(selected) - 1
    (original,) = resolve_class_indices(spec.classes, [config.imbalance_class])
    if original not in selected:
        raise WpgdkitError(f"--imbalance-class {config.imbalance_class} is not among the selected classes")
    return list(selected).index(original)


def _downsample(keep: torch.Tensor, labels: torch.Tensor, label: int, ratio: float, generator) -> torch.Tensor:
    members = keep[labels == label]
    n = max(1, int(round(len(members) * ratio)))
    chosen = members[torch.randperm(len(members), generator=generator)[:n]]
    return torch.cat([keep[labels != label], chosen]).sort().values


def epoch_order(n: int, *, seed: int, epoch: int) -> torch.Tensor:
    """The epoch's permutation of ``n`` items, a function of (seed, epoch) only."""
    return torch.randperm(n, generator=torch.Generator().manual_seed(_mix(seed, epoch)))


def _mix(*parts: int) -> int:
    # A fixed, well-spread seed from a tuple (SplitMix64-style), independent of Python's hash.
    value = 0x9E3779B97F4A7C15
    for part in parts:
        value = (value ^ (int(part) & 0xFFFFFFFFFFFFFFFF)) * 0xBF58476D1CE4E5B9 & 0xFFFFFFFFFFFFFFFF
        value ^= value >> 31
    return value & 0x7FFFFFFFFFFFFFFF


def batch_seed(seed: int, epoch: int, batch: int, purpose: int) -> int:
    """Seed of one batch's augmentation (purpose 0) or attack start (purpose 1)."""
    return _mix(seed, epoch, batch, purpose)


def batch_generator(
    dataset: Dataset, *, batch_size: int, seed: int, epoch: int, rank: int = 0, world_size: int = 1,
    shuffle: bool = True, workers: int = 0,
) -> Iterator[tuple[int, torch.Tensor, torch.Tensor]]:
    """Yield ``(batch_index, x, y)`` for one epoch.

    Each global batch of ``batch_size`` items is split across ``world_size``
    ranks (rank ``r`` takes items ``r::world_size``), so the gradient averaged
    by DistributedDataParallel equals the single-process one. The last,
    incomplete batch is kept (single process) or dropped when it cannot be
    split evenly across ranks.
    """
    n = len(dataset)
    order = epoch_order(n, seed=seed, epoch=epoch) if shuffle else torch.arange(n)
    batches = [order[i : i + batch_size] for i in range(0, n, batch_size)]
    if world_size > 1:
        batches = [b[rank::world_size] for b in batches if len(b) % world_size == 0]
    if hasattr(dataset, "take") and workers == 0:
        for index, positions in enumerate(batches):
            x, y = dataset.take(positions)
            yield index, x, y
        return
    loader = DataLoader(dataset, batch_sampler=[b.tolist() for b in batches], num_workers=workers)
    for index, (x, y) in enumerate(loader):
        yield index, x, torch.as_tensor(y, dtype=torch.int64)


def augment_batch(x: torch.Tensor, *, generator: torch.Generator, padding: int = 4) -> torch.Tensor:
    """Random crop (zero padding ``padding``) and horizontal flip of a batch (N, C, H, W).

    The offsets (N, 2), then the flips (N,), are drawn from ``generator`` on
    its own device; the crops are two gathers for the whole batch (copies of
    values, no arithmetic), so the result is the per-image loop's bit for bit
    without a kernel per image on a GPU.
    """
    n, c, h, w = x.shape
    padded = torch.nn.functional.pad(x, (padding, padding, padding, padding))
    offsets = torch.randint(0, 2 * padding + 1, (n, 2), generator=generator, device=generator.device).to(x.device)
    flips = (torch.rand(n, generator=generator, device=generator.device) < 0.5).to(x.device)
    rows = offsets[:, :1] + torch.arange(h, device=x.device)                   # (N, H): the crop's rows
    cols = offsets[:, 1:] + torch.arange(w, device=x.device)                   # (N, W): its columns ...
    cols = torch.where(flips[:, None], cols.flip(1), cols)                     # ... right to left where flipped
    out = padded.gather(2, rows[:, None, :, None].expand(n, c, h, w + 2 * padding))
    return out.gather(3, cols[:, None, None, :].expand(n, c, h, w))
