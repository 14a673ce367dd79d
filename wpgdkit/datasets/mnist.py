"""MNIST and Fashion-MNIST from IDX files, plain or gzip-compressed.

The files are looked for, in order, in torchvision's layout
(``<data_dir>/MNIST/raw``), in a folder named after the dataset
(``<data_dir>/mnist``), in ``<data_dir>`` itself, and in system-wide installs
(Debian's ``dataset-fashion-mnist`` package).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from wpgdkit.datasets._torchvision import download_with_torchvision
from wpgdkit.errors import DataNotFoundError, WpgdkitError
from wpgdkit.inputs import input_file

if TYPE_CHECKING:  # pragma: no cover
    from wpgdkit.datasets.memory import TensorImageDataset

__all__ = ["SYSTEM_DIRS", "IdxSource"]

#: Folders outside the data folder where distributions install the files,
#: searched last. Keyed by registry name; tests may patch it.
SYSTEM_DIRS: dict[str, tuple[Path, ...]] = {
    "fashion-mnist": (Path("/usr/share/datasets/fashion-mnist"),),
}

_FILE_STEMS = {"train": "train", "test": "t10k"}
_IMAGE_SIZE = (28, 28)


@dataclass(frozen=True)
class IdxSource:
    """Where and how to find one MNIST-like dataset.

    Attributes
    ----------
    name : str
        Registry name, e.g. ``"fashion-mnist"``; also the plain folder name searched.
    torchvision_class : str
        Class in :mod:`torchvision.datasets` (``"FashionMNIST"``), whose name is
        also torchvision's folder (``<data_dir>/FashionMNIST/raw``).
    num_classes : int
        Labels must lie in ``0 .. num_classes - 1``.
    how_to_get : str
        One line telling the user how to obtain the files.
    """

    name: str
    torchvision_class: str
    num_classes: int
    how_to_get: str

    def search_dirs(self, data_dir: Path) -> list[Path]:
        """Folders searched for the files, in order."""
        local = [data_dir / self.torchvision_class / "raw", data_dir / self.name, data_dir]
        return local + list(SYSTEM_DIRS.get(self.name, ()))

    def load(self, split: str, *, data_dir: Path, download: bool, seed: int) -> TensorImageDataset:
        """Load ``split`` as a :class:`TensorImageDataset` of (N, 1, 28, 28) uint8 images.

        ``seed`` is unused: the split is fixed by the files.

        Raises
        ------
        DataNotFoundError
            If no searched folder holds both files of the split (and
            ``download`` is off or fails).
        WpgdkitError
            If a file is malformed or images and labels disagree.
        """
        files = self._find(split, data_dir)
        if files is None and download:
            download_with_torchvision(self.torchvision_class, data_dir, train=split == "train", dataset=self.name)
            files = self._find(split, data_dir)
        if files is None:
            looked = ", ".join(str(d) for d in self.search_dirs(data_dir))
            raise DataNotFoundError(f"{self.name} not found (looked in {looked}); {self.how_to_get}")
        return self._read(*files)

    def _find(self, split: str, data_dir: Path) -> tuple[Path, Path] | None:
        """Return the (images, labels) files of ``split`` from the first folder holding both."""
        stem = _FILE_STEMS[split]
        for folder in self.search_dirs(data_dir):
            images = _existing(folder, f"{stem}-images-idx3-ubyte")
            labels = _existing(folder, f"{stem}-labels-idx1-ubyte")
            # Both from one folder: mixing releases could pair wrong labels.
            if images is not None and labels is not None:
                return images, labels
        return None

    def _read(self, images_path: Path, labels_path: Path) -> TensorImageDataset:
        import torch

        from wpgdkit.datasets.idx import read_idx
        from wpgdkit.datasets.memory import TensorImageDataset

        images = read_idx(images_path)
        labels = read_idx(labels_path)
        if images.dim() != 3 or tuple(images.shape[1:]) != _IMAGE_SIZE:
            raise WpgdkitError(f"{images_path} holds images of shape {tuple(images.shape[1:])}, expected {_IMAGE_SIZE}")
        if labels.dim() != 1:
            raise WpgdkitError(f"{labels_path} is not a label file: {labels.dim()} dimensions, expected 1")
        if labels.shape[0] != images.shape[0]:
            raise WpgdkitError(f"{labels_path} holds {labels.shape[0]} labels but {images_path} holds {images.shape[0]} images")
        if labels.numel() and int(labels.max()) >= self.num_classes:
            raise WpgdkitError(f"{labels_path} holds label {int(labels.max())}, expected 0..{self.num_classes - 1}")
        return TensorImageDataset(images.unsqueeze(1), labels.to(torch.int64))


def _existing(folder: Path, name: str) -> Path | None:
    """The plain file if present (no decompression needed), else the ``.gz`` one."""
    candidates = (folder / name, folder / f"{name}.gz")
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    for candidate in candidates:
        if candidate.exists():  # a folder (or a device) where the file should be: say so, not "not found"
            return input_file(candidate, what="IDX file")
    return None
