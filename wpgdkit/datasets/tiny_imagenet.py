"""Tiny-ImageNet (200 classes of 64x64 images) from its standard folder.

Layout (the unzipped ``tiny-imagenet-200.zip``)::

    tiny-imagenet-200/
        wnids.txt                       the 200 WordNet ids, one a line
        train/<wnid>/images/*.JPEG      500 images per class
        val/images/*.JPEG               10,000 images
        val/val_annotations.txt         filename, wnid, x0, y0, x1, y1 (tab-separated)

The test labels are not public, so the ``test`` split is the ``val`` folder.
Labels follow the canonical order shipped with wpgdkit
(``tiny-imagenet-200-wnids.txt``), not the order of the folder's ``wnids.txt``,
so that label ``k`` means the same class on every machine. Images are decoded
lazily, one file per item.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from wpgdkit.errors import DataNotFoundError, WpgdkitError

if TYPE_CHECKING:  # pragma: no cover
    from wpgdkit.datasets.imagefiles import ImageFileDataset

__all__ = ["HOW_TO_GET", "IMAGE_SIZE", "ImageFileDataset", "TinyImageNetSource", "canonical_wnids"]

IMAGE_SIZE = 64
HOW_TO_GET = (
    "download http://cs231n.stanford.edu/tiny-imagenet-200.zip and unzip it into the data dir "
    "(giving <data_dir>/tiny-imagenet-200/wnids.txt)"
)
_FOLDER = "tiny-imagenet-200"
_IMAGE_SUFFIXES = {".jpeg", ".jpg", ".png"}


def canonical_wnids() -> tuple[str, ...]:
    """The 200 Tiny-ImageNet WordNet ids in wpgdkit's label order (shipped with the package)."""
    text = resources.files("wpgdkit.datasets").joinpath("tiny-imagenet-200-wnids.txt").read_text(encoding="ascii")
    return tuple(line.strip() for line in text.splitlines() if line.strip())


@dataclass(frozen=True)
class TinyImageNetSource:
    """Where and how to read Tiny-ImageNet.

    Attributes
    ----------
    name : str
        Registry name.
    classes : tuple of str, length 200
        The WordNet ids in label order.
    """

    name: str
    classes: tuple[str, ...]

    def load(self, split: str, *, data_dir: Path, download: bool, seed: int) -> ImageFileDataset:
        """Index ``split`` (``test`` is the ``val`` folder) as an :class:`ImageFileDataset`.

        ``seed`` is unused: the split is fixed by the files.

        Raises
        ------
        WpgdkitError
            If ``download`` is set (there is no automatic download), if the
            folder's ``wnids.txt`` holds another set of classes, or if the
            annotations are malformed.
        DataNotFoundError
            If the folder or a part of it is missing.
        """
        import torch

        from wpgdkit.datasets.imagefiles import ImageFileDataset

        if download:
            raise WpgdkitError(f"{self.name} cannot be downloaded automatically; {HOW_TO_GET}")
        root = self._find_root(data_dir)
        self._check_wnids(root / "wnids.txt")
        paths, labels = self._train_files(root) if split == "train" else self._val_files(root)
        return ImageFileDataset(paths, torch.tensor(labels, dtype=torch.int64))

    def _find_root(self, data_dir: Path) -> Path:
        for root in (data_dir / _FOLDER, data_dir):
            if (root / "wnids.txt").is_file():
                return root
        raise DataNotFoundError(
            f"{self.name} not found (looked for {data_dir / _FOLDER / 'wnids.txt'} and {data_dir / 'wnids.txt'}); {HOW_TO_GET}"
        )

    def _check_wnids(self, path: Path) -> None:
        found = {line.strip() for line in path.read_text(encoding="ascii", errors="replace").splitlines() if line.strip()}
        expected = set(self.classes)
        if found != expected:
            unknown, absent = sorted(found - expected), sorted(expected - found)
            parts = [f"unknown ids {_preview(unknown)}" if unknown else "", f"missing ids {_preview(absent)}" if absent else ""]
            raise WpgdkitError(f"{path} does not list the 200 Tiny-ImageNet classes: {'; '.join(p for p in parts if p)}")

    def _train_files(self, root: Path) -> tuple[list[Path], list[int]]:
        train = root / "train"
        if not train.is_dir():
            raise DataNotFoundError(f"{self.name} train split not found: no folder {train}; {HOW_TO_GET}")
        paths: list[Path] = []
        labels: list[int] = []
        # A class folder may be absent or empty (e.g. a trimmed copy); its label still exists.
        for label, wnid in enumerate(self.classes):
            folder = train / wnid / "images"
            files = sorted(_image_files(folder), key=_natural_key) if folder.is_dir() else []
            paths += files
            labels += [label] * len(files)
        return paths, labels

    def _val_files(self, root: Path) -> tuple[list[Path], list[int]]:
        annotations = root / "val" / "val_annotations.txt"
        if not annotations.is_file():
            raise DataNotFoundError(f"{self.name} test split not found: no file {annotations}; {HOW_TO_GET}")
        label_of = {wnid: label for label, wnid in enumerate(self.classes)}
        images = root / "val" / "images"
        entries: dict[str, int] = {}
        for number, line in enumerate(annotations.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            fields = line.split("\t")
            if len(fields) < 2 or fields[1].strip() not in label_of:
                raise WpgdkitError(f"{annotations} line {number}: expected 'filename<TAB>wnid<TAB>...' with a known wnid, got {line[:80]!r}")
            filename = fields[0].strip()
            if filename in entries:
                raise WpgdkitError(f"{annotations} line {number}: {filename} is annotated twice")
            entries[filename] = label_of[fields[1].strip()]
        # Sorted by name (val_0, val_1, ..., val_9999) so the order does not depend on the file's.
        names = sorted(entries, key=_natural_key)
        missing = [name for name in names if not (images / name).is_file()]
        if missing:
            raise DataNotFoundError(f"{len(missing)} annotated images missing from {images}, e.g. {missing[0]}")
        return [images / name for name in names], [entries[name] for name in names]


def _image_files(folder: Path) -> list[Path]:
    return [p for p in folder.iterdir() if p.suffix.lower() in _IMAGE_SUFFIXES and p.is_file()]


def _natural_key(item: Path | str) -> list[int | str]:
    """Sort key ordering ``x_2`` before ``x_10``."""
    name = item.name if isinstance(item, Path) else item
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def _preview(ids: list[str], limit: int = 3) -> str:
    shown = ", ".join(ids[:limit])
    return shown + (f" and {len(ids) - limit} more" if len(ids) > limit else "")


def __getattr__(name: str) -> Any:
    # ImageFileDataset is a torch Dataset: it lives in wpgdkit.datasets.imagefiles, loaded on first use.
    if name == "ImageFileDataset":
        from wpgdkit.datasets.imagefiles import ImageFileDataset

        return ImageFileDataset
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
