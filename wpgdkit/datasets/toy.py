"""The 3-class 2-D toy problem of the paper's Sec. 3.4.

Three isotropic Gaussian clusters with centres on a circle of radius 1 at
90, 210 and 330 degrees and standard deviation 0.35: neighbouring centres are
sqrt(3) ~ 1.73 apart, so the classes overlap a little and l2 budgets of
0.2-0.8 move a visible share of points across decision boundaries.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from wpgdkit.errors import WpgdkitError

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from wpgdkit.datasets.memory import TensorFeatureDataset

__all__ = ["ToyConfig", "ToySource", "make_toy"]

# Train and test come from independent child streams of one seed, so they
# differ, and no (seed, split) pair reproduces another (unlike seed / seed + 1).
_STREAMS = {"train": 0, "test": 1}


@dataclass(frozen=True)
class ToyConfig:
    """Parameters of the toy problem.

    Attributes
    ----------
    angles_deg : tuple of float, length K
        Angles of the class centres; class ``k`` sits at ``angles_deg[k]``.
    radius : float
        Radius of the circle the centres lie on.
    std : float
        Standard deviation of each coordinate within a cluster.
    train_per_class, test_per_class : int
        Points per class in each split.
    """

    angles_deg: tuple[float, ...] = (90.0, 210.0, 330.0)
    radius: float = 1.0
    std: float = 0.35
    train_per_class: int = 1000
    test_per_class: int = 500

    def centres(self) -> np.ndarray:
        """Class centres, float64 of shape (K, 2)."""
        angles = np.deg2rad(np.asarray(self.angles_deg, dtype=np.float64))
        return self.radius * np.stack([np.cos(angles), np.sin(angles)], axis=1)


def make_toy(split: str, *, seed: int = 0, config: ToyConfig = ToyConfig()) -> tuple[torch.Tensor, torch.Tensor]:
    """Generate one split of the toy problem.

    Parameters
    ----------
    split : {"train", "test"}
    seed : int
        Non-negative seed; the same seed gives the same points.
    config : ToyConfig
        Geometry and sizes.

    Returns
    -------
    x : torch.Tensor of float32, shape (K * per_class, 2)
        Points, shuffled so any prefix mixes the classes.
    y : torch.Tensor of int64, shape (K * per_class,)
        Labels, exactly ``per_class`` of each class.

    Raises
    ------
    WpgdkitError
        If ``seed`` is negative.
    """
    import torch

    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise WpgdkitError(f"toy seed must be a non-negative integer, got {seed!r}")
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(_STREAMS[split],)))
    per_class = config.train_per_class if split == "train" else config.test_per_class
    centres = config.centres()
    labels = np.repeat(np.arange(len(centres)), per_class)
    points = centres[labels] + config.std * rng.standard_normal((labels.size, 2))
    order = rng.permutation(labels.size)
    return torch.from_numpy(points[order].astype(np.float32)), torch.from_numpy(labels[order].astype(np.int64))


@dataclass(frozen=True)
class ToySource:
    """The registry's loader for the toy problem (no files)."""

    config: ToyConfig = ToyConfig()

    @property
    def classes(self) -> tuple[str, ...]:
        """Class names ``"0"``, ``"1"``, ... in label order."""
        return tuple(str(k) for k in range(len(self.config.angles_deg)))

    def load(self, split: str, *, data_dir: Path, download: bool, seed: int) -> TensorFeatureDataset:
        """Generate ``split`` from ``seed``; ``data_dir`` and ``download`` are unused."""
        from wpgdkit.datasets.memory import TensorFeatureDataset

        return TensorFeatureDataset(*make_toy(split, seed=seed, config=self.config))

