"""In-memory datasets: whole splits held as tensors.

Images stay ``uint8`` (a quarter of the memory of float32) and are converted
to float in [0, 1] only when items are read.
"""

from __future__ import annotations

import torch
from torch.utils.data import Dataset

__all__ = ["TensorFeatureDataset", "TensorImageDataset"]


def _check_labels(labels: torch.Tensor, n: int) -> torch.Tensor:
    if labels.dtype != torch.int64 or labels.shape != (n,):
        raise ValueError(f"labels must be int64 of shape ({n},), got {labels.dtype} {tuple(labels.shape)}")
    return labels


class TensorImageDataset(Dataset):
    """Images as one ``uint8`` tensor plus labels.

    Parameters
    ----------
    images : torch.Tensor of uint8, shape (N, C, H, W)
    labels : torch.Tensor of int64, shape (N,)

    Items are ``(x, y)`` with ``x`` float32 of shape (C, H, W) in [0, 1] and
    ``y`` a Python ``int``.
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        if images.dtype != torch.uint8 or images.dim() != 4:
            raise ValueError(f"images must be uint8 of shape (N, C, H, W), got {images.dtype} {tuple(images.shape)}")
        self.images = images
        self.labels = _check_labels(labels, images.shape[0])

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.images[index].to(torch.float32).div_(255.0), int(self.labels[index])

    def take(self, indices: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``(x, y)``: float32 (M, C, H, W) in [0, 1] and int64 (M,).

        Indexing the ``uint8`` tensor first converts only the chosen images.
        """
        images, labels = (self.images, self.labels) if indices is None else (self.images[indices], self.labels[indices])
        return images.to(torch.float32).div_(255.0), labels.clone()


class TensorFeatureDataset(Dataset):
    """Real-valued inputs of any shape plus labels (the toy problem, data read from files).

    Parameters
    ----------
    features : torch.Tensor of float32, shape (N, *input_shape)
        Feature vectors (N, D), series (N, C, T), float images (N, C, H, W), ...
    labels : torch.Tensor of int64, shape (N,)
    """

    def __init__(self, features: torch.Tensor, labels: torch.Tensor) -> None:
        if features.dtype != torch.float32 or features.dim() < 2:
            raise ValueError(f"features must be float32 of shape (N, *input_shape), got {features.dtype} {tuple(features.shape)}")
        self.features = features
        self.labels = _check_labels(labels, features.shape[0])

    def __len__(self) -> int:
        return self.features.shape[0]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.features[index].clone(), int(self.labels[index])

    def take(self, indices: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``(x, y)``: float32 (M, *input_shape) and int64 (M,), copies of the stored data."""
        if indices is None:
            return self.features.clone(), self.labels.clone()
        return self.features[indices], self.labels[indices]
