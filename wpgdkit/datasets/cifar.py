"""CIFAR-10 and CIFAR-100 from their pickled Python batches.

The layout is the one the official archives (and torchvision's ``download``)
extract: ``cifar-10-batches-py/{data_batch_1..5, test_batch, batches.meta}``
and ``cifar-100-python/{train, test, meta}``. Each batch is a pickled dict
with a ``data`` array of (N, 3072) uint8 rows (1024 red, 1024 green, 1024 blue
bytes, each a row-major 32x32 plane) and a list of labels.

We read them ourselves rather than through torchvision, whose classes check
MD5 sums of the full archives, and with a restricted unpickler: a pickle can
run arbitrary code, and a data folder is not trusted input.
"""

from __future__ import annotations

import codecs
import io
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from wpgdkit.datasets._torchvision import download_with_torchvision
from wpgdkit.errors import DataNotFoundError, WpgdkitError
from wpgdkit.inputs import input_file

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from wpgdkit.datasets.memory import TensorImageDataset

__all__ = ["CifarSource", "load_cifar_pickle"]

_ROW_BYTES = 3 * 32 * 32


def _latin1_encode(text: str, encoding: str = "latin1") -> bytes:
    """``_codecs.encode`` limited to latin-1, the only use a data pickle makes of it."""
    if codecs.lookup(encoding).name != "iso8859-1":
        raise pickle.UnpicklingError(f"_codecs.encode with encoding {encoding!r}")
    return text.encode("latin1")


def _reconstruct() -> Callable[..., Any]:
    # numpy 2 moved numpy.core to numpy._core; importing the old name warns.
    try:
        from numpy._core.multiarray import _reconstruct as reconstruct
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import _reconstruct as reconstruct
    return reconstruct


# Everything needed to rebuild dicts of arrays, lists and strings; nothing else.
# Python 2 pickles (the originals) name numpy.core; numpy 2 writes numpy._core;
# Python 3 writes bytes under protocol 2 as _codecs.encode(str, "latin1").
_ALLOWED: dict[tuple[str, str], Callable[[], Any]] = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy", "ndarray"): lambda: np.ndarray,
    ("numpy", "dtype"): lambda: np.dtype,
    ("_codecs", "encode"): lambda: _latin1_encode,
}


class _ArrayUnpickler(pickle.Unpickler):
    """An unpickler that rebuilds only numpy arrays and plain Python containers."""

    def __init__(self, handle: io.BufferedIOBase, *, path: Path) -> None:
        # latin1 turns Python 2 byte strings into str without failing on any byte,
        # which is also what numpy needs to rebuild the arrays' raw data.
        super().__init__(handle, encoding="latin1")
        self.path = path

    def find_class(self, module: str, name: str) -> Any:
        factory = _ALLOWED.get((module, name))
        if factory is None:
            raise WpgdkitError(
                f"refusing to unpickle {module}.{name} from {self.path}: CIFAR batches hold only arrays and lists"
            )
        return factory()


def load_cifar_pickle(path: Path) -> dict[str, Any]:
    """Unpickle one CIFAR batch or meta file with the restricted unpickler.

    Parameters
    ----------
    path : Path
        The pickled file.

    Returns
    -------
    dict
        The file's dict, with keys turned into ``str`` (Python 3 pickles have
        ``bytes`` keys such as ``b"data"``, Python 2 ones ``"data"``).

    Raises
    ------
    DataNotFoundError
        If the file does not exist.
    WpgdkitError
        If the pickle asks for anything but arrays and containers, is corrupt,
        or is not a dict.
    """
    input_file(path, what="CIFAR file")  # missing: not found; a folder: says so
    try:
        with path.open("rb") as handle:
            content = _ArrayUnpickler(handle, path=path).load()
    except WpgdkitError:
        raise
    except FileNotFoundError:
        raise DataNotFoundError(f"{path} does not exist") from None
    except Exception as exc:  # a corrupt pickle can fail in many ways; all mean "bad file"
        reason = " ".join(str(exc).split())  # keep the message on one line
        raise WpgdkitError(f"{path} is not a readable CIFAR pickle ({type(exc).__name__}: {reason})") from None
    if not isinstance(content, dict):
        raise WpgdkitError(f"{path} holds a {type(content).__name__}, expected a dict")
    return {_as_str(key): value for key, value in content.items()}


def _as_str(value: Any) -> Any:
    return value.decode("latin1") if isinstance(value, bytes) else value


@dataclass(frozen=True)
class CifarSource:
    """Where and how to read one CIFAR variant.

    Attributes
    ----------
    name : str
        Registry name, e.g. ``"cifar10"``.
    folder : str
        Sub-folder of the data folder, e.g. ``"cifar-10-batches-py"``.
    train_files, test_files : tuple of str
        Batch files of each split, concatenated in this order.
    meta_file : str
        File holding the class names.
    labels_key : str
        Key of the label list in a batch (``"labels"`` or ``"fine_labels"``).
    names_key : str
        Key of the class names in the meta file.
    classes : tuple of str
        The class names in label order, as registered; the meta file must agree.
    torchvision_class : str
        Class in :mod:`torchvision.datasets` that downloads this layout.
    how_to_get : str
        One line telling the user how to obtain the files.
    """

    name: str
    folder: str
    train_files: tuple[str, ...]
    test_files: tuple[str, ...]
    meta_file: str
    labels_key: str
    names_key: str
    classes: tuple[str, ...]
    torchvision_class: str
    how_to_get: str

    def load(self, split: str, *, data_dir: Path, download: bool, seed: int) -> TensorImageDataset:
        """Load ``split`` as a :class:`TensorImageDataset` of (N, 3, 32, 32) uint8 images.

        ``seed`` is unused: the split is fixed by the files.

        Raises
        ------
        DataNotFoundError
            If a batch file is missing (and ``download`` is off or fails).
        WpgdkitError
            If a file is malformed, refused by the restricted unpickler, or the
            meta file's class names differ from the registered ones.
        """
        import torch

        from wpgdkit.datasets.memory import TensorImageDataset

        root = data_dir / self.folder
        files = [root / name for name in (self.train_files if split == "train" else self.test_files)]
        missing = [path for path in files if not path.is_file()]
        if missing and download:
            download_with_torchvision(self.torchvision_class, data_dir, train=split == "train", dataset=self.name)
            missing = [path for path in files if not path.is_file()]
        for path in missing:
            if path.exists():  # a folder where a batch file should be: say so, not "not found"
                input_file(path, what=f"{self.name} file")
        if missing:
            where = f"{root} lacks {', '.join(p.name for p in missing)}" if root.is_dir() else f"looked in {root}"
            raise DataNotFoundError(f"{self.name} not found ({where}); {self.how_to_get}")
        self._check_meta(root / self.meta_file)
        batches = [self._read_batch(path) for path in files]
        images = torch.cat([b[0] for b in batches])
        labels = torch.cat([b[1] for b in batches])
        return TensorImageDataset(images, labels)

    def _check_meta(self, path: Path) -> None:
        # The meta file is optional, but if present it must confirm the label order.
        if not path.is_file():
            return
        meta = load_cifar_pickle(path)
        names = meta.get(self.names_key)
        if not isinstance(names, (list, tuple)):
            raise WpgdkitError(f"{path} has no list {self.names_key!r} of class names")
        found = tuple(_as_str(n) for n in names)
        if found != self.classes:
            diff = next(
                (f"label {i} is {a!r}, expected {b!r}" for i, (a, b) in enumerate(zip(found, self.classes)) if a != b),
                f"{len(found)} names, expected {len(self.classes)}",
            )
            raise WpgdkitError(f"{path} names the classes differently from {self.name} ({diff}); the label order is a contract")

    def _read_batch(self, path: Path) -> tuple[torch.Tensor, torch.Tensor]:
        """Return one batch as uint8 (n, 3, 32, 32) images and int64 (n,) labels."""
        import torch

        batch = load_cifar_pickle(path)
        data, labels = batch.get("data"), batch.get(self.labels_key)
        if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != _ROW_BYTES:
            shape = f"{data.dtype} {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
            raise WpgdkitError(f"{path}: 'data' must be a uint8 array of shape (n, {_ROW_BYTES}), got {shape}")
        if not isinstance(labels, (list, tuple, np.ndarray)):
            raise WpgdkitError(f"{path} has no list {self.labels_key!r} of labels")
        labels_array = np.asarray(labels)
        if labels_array.shape != (data.shape[0],):
            raise WpgdkitError(f"{path} holds {data.shape[0]} images but {labels_array.size} labels")
        if labels_array.size and labels_array.dtype.kind not in "iu":
            raise WpgdkitError(f"{path}: labels must be integers, got {labels_array.dtype}")
        if labels_array.size and not 0 <= labels_array.min() <= labels_array.max() < len(self.classes):
            raise WpgdkitError(f"{path} holds labels outside 0..{len(self.classes) - 1}")
        # Rows are R, G, B planes of 32x32 row-major pixels: exactly (3, 32, 32).
        images = torch.from_numpy(np.ascontiguousarray(data).reshape(-1, 3, 32, 32))
        return images, torch.from_numpy(labels_array.astype(np.int64, copy=False)).reshape(-1)
