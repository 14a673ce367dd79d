"""The datasets of image files, decoded on access: Tiny-ImageNet's and image folders'.

They are :class:`torch.utils.data.Dataset` subclasses, so they live apart from
the modules that find and check the files (:mod:`~wpgdkit.datasets.tiny_imagenet`,
:mod:`~wpgdkit.datasets.files`): those import no torch, and neither does
listing the registered datasets. Both names are still importable from there.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from wpgdkit.datasets.files import DataFormatError, _reading_image
from wpgdkit.datasets.tiny_imagenet import IMAGE_SIZE
from wpgdkit.errors import DataNotFoundError, WpgdkitError

__all__ = ["FolderImageDataset", "ImageFileDataset"]


class _DecodedImages(Dataset):
    """Image files with int64 labels, decoded on access by the subclass's ``_decode`` (uint8 ``item_shape``)."""

    paths: list[Path]
    labels: torch.Tensor

    @staticmethod
    def _check_labels(paths: list[Path], labels: torch.Tensor) -> None:
        if labels.dtype != torch.int64 or labels.shape != (len(paths),):
            raise ValueError(f"labels must be int64 of shape ({len(paths)},), got {labels.dtype} {tuple(labels.shape)}")

    @property
    def item_shape(self) -> tuple[int, int, int]:
        raise NotImplementedError

    def _decode(self, path: Path) -> torch.Tensor:
        raise NotImplementedError

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self._decode(self.paths[index]).to(torch.float32).div_(255.0), int(self.labels[index])

    def take(self, indices: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``(x, y)``: float32 (M, *item_shape) in [0, 1] and int64 (M,), decoding only those files."""
        chosen = range(len(self.paths)) if indices is None else indices.tolist()
        images = torch.empty((len(chosen), *self.item_shape), dtype=torch.uint8)
        for row, i in enumerate(chosen):
            images[row] = self._decode(self.paths[i])
        labels = self.labels.clone() if indices is None else self.labels[indices]
        return images.to(torch.float32).div_(255.0), labels


class ImageFileDataset(_DecodedImages):
    """Image files with labels, decoded on access.

    Parameters
    ----------
    paths : sequence of Path, length N
        The image files.
    labels : torch.Tensor of int64, shape (N,)
    size : int
        Expected width and height; other sizes raise rather than being resized
        silently, since the input shape is part of the dataset's contract.

    Items are ``(x, y)``: ``x`` float32 of shape (3, size, size) in [0, 1],
    ``y`` a Python ``int``.
    """

    def __init__(self, paths: list[Path], labels: torch.Tensor, *, size: int = IMAGE_SIZE) -> None:
        self._check_labels(paths, labels)
        self.paths = list(paths)
        self.labels = labels
        self.size = size

    @property
    def item_shape(self) -> tuple[int, int, int]:
        return (3, self.size, self.size)

    def _decode(self, path: Path) -> torch.Tensor:
        """Decode one file to uint8 (3, size, size)."""
        from PIL import Image, UnidentifiedImageError

        try:
            with Image.open(path) as image:
                pixels = np.asarray(image.convert("RGB"), dtype=np.uint8)
        except FileNotFoundError:
            raise DataNotFoundError(f"{path} does not exist") from None
        # PIL reports corrupt or hostile files as any of these.
        except (UnidentifiedImageError, Image.DecompressionBombError, OSError, SyntaxError) as exc:
            raise WpgdkitError(f"cannot decode image {path}: {' '.join(str(exc).split())}") from None
        if pixels.shape != (self.size, self.size, 3):
            raise WpgdkitError(f"{path} is {pixels.shape[1]}x{pixels.shape[0]} pixels, expected {self.size}x{self.size}")
        return torch.from_numpy(pixels.copy()).permute(2, 0, 1)



class FolderImageDataset(_DecodedImages):
    """Images of an image folder, decoded (and resized) on access.

    Parameters
    ----------
    paths : list of Path, length N
    labels : torch.Tensor of int64, shape (N,)
    mode : {"L", "RGB"}
        Colour mode every image is converted to: 1 or 3 channels.
    size : (int, int)
        ``(height, width)`` of every item.
    resize : bool
        Resize images to ``size`` (bilinear); otherwise a file of another
        size raises (it changed since the folder was opened).

    Items are ``(x, y)``: ``x`` float32 of shape (C, H, W) in [0, 1], ``y`` a Python ``int``.
    """

    def __init__(self, paths: list[Path], labels: torch.Tensor, *, mode: str, size: tuple[int, int], resize: bool) -> None:
        self._check_labels(paths, labels)
        if mode not in ("L", "RGB"):
            raise ValueError(f"mode must be L or RGB, got {mode!r}")
        self.paths, self.labels, self.mode, self.size, self.resize = list(paths), labels, mode, tuple(size), resize

    @property
    def channels(self) -> int:
        return 1 if self.mode == "L" else 3

    @property
    def item_shape(self) -> tuple[int, int, int]:
        return (self.channels, *self.size)

    def _decode(self, path: Path) -> torch.Tensor:
        """One file as uint8 (C, H, W)."""
        from PIL import Image

        height, width = self.size
        with _reading_image(path):
            with Image.open(path) as image:
                image = image.convert(self.mode)
                if self.resize and image.size != (width, height):
                    image = image.resize((width, height), Image.Resampling.BILINEAR)
                pixels = np.asarray(image, dtype=np.uint8)
        if pixels.shape[:2] != (height, width):
            raise DataFormatError(f"{path} is {pixels.shape[1]}x{pixels.shape[0]} pixels, expected {width}x{height}")
        pixels = pixels[:, :, None] if pixels.ndim == 2 else pixels
        return torch.from_numpy(pixels.copy()).permute(2, 0, 1)
