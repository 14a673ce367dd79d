"""Downloads through torchvision, the one place wpgdkit touches the network."""

from __future__ import annotations

from pathlib import Path

from wpgdkit.errors import DataNotFoundError

__all__ = ["download_with_torchvision"]


def download_with_torchvision(class_name: str, root: Path, *, train: bool, dataset: str) -> None:
    """Download and extract a torchvision dataset into ``root`` in torchvision's layout.

    Parameters
    ----------
    class_name : str
        Name of the class in :mod:`torchvision.datasets`, e.g. ``"CIFAR10"``.
    root : Path
        The data folder; torchvision creates its own sub-folder in it.
    train : bool
        Which split to fetch (MNIST downloads both; CIFAR one archive for both).
    dataset : str
        Registry name, for the error message.

    Raises
    ------
    DataNotFoundError
        If the download or the extraction fails (no network, bad checksum, ...).
    """
    # Imported here so that merely loading the registry stays cheap.
    import torchvision.datasets

    factory = getattr(torchvision.datasets, class_name)
    try:
        factory(root=str(root), train=train, download=True)
    except (OSError, RuntimeError, ValueError) as exc:
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise DataNotFoundError(f"could not download {dataset} with torchvision into {root}: {reason}") from None
