"""A reader for IDX files, the format of MNIST and Fashion-MNIST.

An IDX file is a 4-byte magic number (two zero bytes, an element-type code,
the number of dimensions ``d``), ``d`` big-endian uint32 sizes, then the
elements in row-major order. Only unsigned bytes (type code ``0x08``) occur
in (Fashion-)MNIST, so only they are supported.
"""

from __future__ import annotations

import gzip
import math
import zlib
from pathlib import Path

import numpy as np
import torch

from wpgdkit.errors import DataNotFoundError, WpgdkitError
from wpgdkit.inputs import input_file

__all__ = ["read_idx"]

_UNSIGNED_BYTE = 0x08


def read_idx(path: str | Path) -> torch.Tensor:
    """Read an IDX file of unsigned bytes, plain or gzip-compressed (``.gz``).

    Parameters
    ----------
    path : str or Path
        The file; a name ending in ``.gz`` is decompressed.

    Returns
    -------
    torch.Tensor of uint8, shape given by the file's header
        E.g. (N, 28, 28) for an image file, (N,) for a label file.

    Raises
    ------
    DataNotFoundError
        If the file does not exist.
    WpgdkitError
        If the file is not an IDX file of unsigned bytes, is truncated, has
        trailing bytes, or is a broken gzip stream.
    """
    path = Path(path)
    raw = _read_bytes(path)
    if len(raw) < 4:
        raise WpgdkitError(f"{path} is truncated: {len(raw)} bytes, too short for an IDX header")
    zero1, zero2, type_code, ndim = raw[:4]
    if zero1 or zero2 or ndim == 0:
        raise WpgdkitError(f"{path} is not an IDX file (magic number {raw[:4].hex()})")
    if type_code != _UNSIGNED_BYTE:
        raise WpgdkitError(f"{path} holds IDX element type 0x{type_code:02X}; only unsigned bytes (0x08) are supported")
    header_size = 4 + 4 * ndim
    if len(raw) < header_size:
        raise WpgdkitError(f"{path} is truncated inside its header ({len(raw)} of {header_size} bytes)")
    shape = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    # Python's integers: NumPy's int64 product of a corrupted header (huge sizes) wraps around.
    expected = math.prod(shape)
    found = len(raw) - header_size
    if found < expected:
        raise WpgdkitError(f"{path} is truncated or its header is corrupted: {found:,} data bytes, "
                           f"header {shape} needs {expected:,}")
    if found > expected:
        raise WpgdkitError(f"{path} has {found - expected} trailing bytes after the {shape} data")
    # A bytearray is writable, so torch can share its memory without a copy or a warning.
    data = np.frombuffer(raw, dtype=np.uint8, count=expected, offset=header_size)
    return torch.from_numpy(data.reshape(shape))


def _read_bytes(path: Path) -> bytearray:
    input_file(path, what="IDX file")  # missing: not found; a folder: says so
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as handle:
                return bytearray(handle.read())
        return bytearray(path.read_bytes())
    except FileNotFoundError:
        raise DataNotFoundError(f"{path} does not exist") from None
    except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
        raise WpgdkitError(f"{path} is not a valid gzip file ({exc})") from None
    except OSError as exc:
        raise DataNotFoundError(f"cannot read {path}: {exc.strerror or exc}") from None
