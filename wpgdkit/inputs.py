"""The boundary where input enters: numbers and their ranges, input files, text files.

Every configuration dataclass checks its numbers with :func:`check_number`
(the valid range written once, where the parameter is defined), and every
file the toolkit reads as a whole goes through :func:`input_file` /
:func:`read_text`, so a folder given for a file, an unreadable file, bytes
that are not UTF-8 or a file far too large all end the same way: one
:class:`~wpgdkit.errors.WpgdkitError` naming the parameter or the path.

Importing this module imports neither torch nor NumPy.
"""

from __future__ import annotations

import math
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wpgdkit.errors import DataNotFoundError, WpgdkitError

__all__ = [
    "Range",
    "SEED_RANGE",
    "check_number",
    "check_seed",
    "input_file",
    "read_text",
    "MAX_TEXT_BYTES",
]

#: Largest text input read (class lists, metric CSV/JSON, synset maps): far above any real one.
MAX_TEXT_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class Range:
    """A numeric range: ``low`` and ``high`` (None: unbounded), each end open or closed.

    ``integer`` asks for a whole number (bool refused); otherwise any finite
    real unless ``allow_inf``.
    """

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    integer: bool = False
    allow_inf: bool = False

    def describe(self) -> str:
        kind = "a whole number" if self.integer else "a number"
        if self.low is not None and self.high is not None:
            left, right = "(" if self.low_open else "[", ")" if self.high_open else "]"
            where = f" in {left}{_show(self.low)}, {_show(self.high)}{right}"
        elif self.low is not None:
            where = f" {'>' if self.low_open else '≥'} {_show(self.low)}"
        elif self.high is not None:
            where = f" {'<' if self.high_open else '≤'} {_show(self.high)}"
        else:
            where = ""
        return kind + where + (" (inf allowed)" if self.allow_inf else "")

    def contains(self, value: Any) -> bool:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        if self.integer and not isinstance(value, int):
            return False
        if isinstance(value, float) and math.isnan(value):
            return False
        if isinstance(value, float) and math.isinf(value):
            if not self.allow_inf:
                return False
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        if self.high is not None and (value >= self.high if self.high_open else value > self.high):
            return False
        return True


def _show(x: float) -> str:
    return str(int(x)) if float(x).is_integer() and abs(x) < 1e16 else f"{x:g}"


#: Seeds: what torch, NumPy and Python's generators all accept.
SEED_RANGE = Range(0, 2**32 - 1, integer=True)


def check_number(name: str, value: Any, valid: Range) -> Any:
    """Return ``value`` if it lies in ``valid``, else raise one error naming the parameter and the range.

    Raises
    ------
    WpgdkitError
        ``"{name} must be {range}, got {value}"``.
    """
    if not valid.contains(value):
        raise WpgdkitError(f"{name} must be {valid.describe()}, got {value!r}")
    return value


def check_seed(name: str, value: Any) -> int:
    """A seed in :data:`SEED_RANGE`."""
    return check_number(name, value, SEED_RANGE)


def input_file(path: str | os.PathLike[str], *, what: str = "file") -> Path:
    """``path`` as a :class:`Path` if it is a readable regular file.

    Raises
    ------
    DataNotFoundError
        If nothing is there.
    WpgdkitError
        If it is a folder, not a regular file, or cannot be read.
    """
    path = Path(path)
    if not path.exists():
        raise DataNotFoundError(f"{what} {path} not found")
    if path.is_dir():
        raise WpgdkitError(f"{what} {path} is a folder, not a file")
    if not path.is_file():
        raise WpgdkitError(f"{what} {path} is not a regular file")
    if not os.access(path, os.R_OK):
        raise WpgdkitError(f"{what} {path} cannot be read (no permission)")
    return path


def read_text(path: str | os.PathLike[str], *, what: str = "file", max_bytes: int = MAX_TEXT_BYTES) -> str:
    """The UTF-8 text of ``path`` (a BOM is dropped), refusing folders, huge files and other encodings.

    Raises
    ------
    DataNotFoundError, WpgdkitError
        As :func:`input_file`; also for a file over ``max_bytes`` or bytes
        that are not UTF-8 (the message gives the offset of the first one).
    """
    path = input_file(path, what=what)
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise WpgdkitError(f"{what} {path} is {size:,} bytes; the limit is {max_bytes:,}")
        data = path.read_bytes()
    except OSError as exc:
        raise WpgdkitError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise WpgdkitError(f"{what} {path} is not UTF-8 text (byte {exc.start} is {data[exc.start]:#04x})") from None


def file_sha256(path: str | os.PathLike[str], *, what: str = "file") -> str:
    """SHA-256 (hex) of a file's content, read in 1 MiB blocks: identifies data by what it holds, not where."""
    import hashlib

    checked = input_file(path, what=what)
    digest = hashlib.sha256()
    try:
        with open(checked, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    except OSError as exc:
        raise DataNotFoundError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    return digest.hexdigest()


def failed_zip_record(path: str | os.PathLike[str]) -> str | None:
    """The name of the first record of a zip archive that fails its CRC-32, or None when all pass.

    torch reads the records of its zip files without checking them, so a
    flipped byte would load as a wrong weight. A file that is not a zip
    archive (legacy format, truncated, foreign) gives None: its loader decides.

    Raises
    ------
    OSError, EOFError, ValueError, RuntimeError, zipfile.LargeZipFile
        When the archive cannot be read at all (the caller words the message).
    """
    try:
        with zipfile.ZipFile(path) as archive:
            return archive.testzip()
    except zipfile.BadZipFile:
        return None


#: What :func:`failed_zip_record` raises for an archive it cannot read.
ZIP_READ_ERRORS: tuple[type[BaseException], ...] = (OSError, EOFError, ValueError, RuntimeError,
                                                    zipfile.LargeZipFile)
