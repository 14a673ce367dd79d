"""The options of datasets read from files, shared by ``train``, ``audit`` and ``metric build``.

A command declares them as parameters typed with the ``Annotated`` aliases
below and turns them into :class:`~wpgdkit.datasets.files.DataOptions` with
:func:`data_options`, then opens a file reference before anything looks the
dataset up::

    if is_dataset_reference(dataset):
        open_dataset(dataset, data_options(test, label_column, ..., seed))

Typer is imported here and in the other CLI modules only; the library never imports it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from wpgdkit.datasets.files import DataOptions

__all__ = [
    "BoundsOption",
    "DATASET_HELP",
    "DataTestOption",
    "ImageSizeOption",
    "LabelColumnOption",
    "StandardizeOption",
    "SynsetsOption",
    "TestFractionOption",
    "data_options",
]

def dataset_help() -> str:
    """Help of every command's ``--dataset``: the registered names (plugins' too) and the file forms."""
    from wpgdkit.datasets import list_datasets

    return (f"Dataset: {', '.join(list_datasets())} (see `wpgdkit datasets`), a .npz or .csv file, "
            "or imagefolder:PATH.")


#: The same, computed once when the CLI is imported (the registry is read then anyway).
DATASET_HELP = dataset_help()


DataTestOption = Annotated[
    Optional[Path],
    typer.Option("--test", metavar="FILE",
                 help="CSV dataset: a second CSV (same columns) holding the test split."),
]
LabelColumnOption = Annotated[
    Optional[str],
    typer.Option("--label-column", metavar="NAME",
                 help="CSV dataset: the label column (default: label)."),
]
TestFractionOption = Annotated[
    Optional[float],
    typer.Option("--test-fraction", metavar="F",
                 help="CSV/NPZ without a test split: hold out this share of the points (stratified, seeded by --seed)."),
]
BoundsOption = Annotated[
    str,
    typer.Option("--bounds", metavar="data|none|LOW,HIGH",
                 help="Input bounds of non-image data: each feature's training min and max (data), unbounded (none), "
                      "or LOW,HIGH for every value. Images are in [0, 1]."),
]
StandardizeOption = Annotated[
    bool,
    typer.Option("--standardize",
                 help="Standardise each feature with the training split's mean and std (ε then in standard deviations)."),
]
ImageSizeOption = Annotated[
    Optional[int],
    typer.Option("--image-size", metavar="N",
                 help="imagefolder: resize every image to NxN (default: all images must be the same size)."),
]
SynsetsOption = Annotated[
    Optional[Path],
    typer.Option("--synsets", metavar="FILE",
                 help="CSV with columns class,synset giving each class's WordNet synset (dog.n.01 or n02084071)."),
]


def data_options(
    test: Path | str | None = None,
    label_column: str | None = None,
    test_fraction: float | None = None,
    bounds: str = "data",
    standardize: bool = False,
    image_size: int | None = None,
    synsets: Path | str | None = None,
    seed: int = 0,
) -> DataOptions:
    """The :class:`~wpgdkit.datasets.files.DataOptions` of a command's flags.

    Raises
    ------
    WpgdkitError
        For a value out of range, named by its flag (one line on the command line).
    """
    return DataOptions(
        test=None if test is None else str(test),
        label_column=label_column,
        test_fraction=test_fraction,
        bounds=bounds,
        standardize=standardize,
        image_size=image_size,
        synsets=None if synsets is None else str(synsets),
        seed=seed,
    )
