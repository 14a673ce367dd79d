"""Where computations run: ``--device`` names and ``--threads``.

Every command that runs a network resolves its ``--device`` and ``--threads``
here, so the names, the errors and the defaults are the same everywhere.
Importing this module does not import torch (``DEVICE_NAMES`` serves
``--help``); the functions do.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from wpgdkit.errors import WpgdkitError

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = ["DEVICE_NAMES", "resolve_device", "check_threads", "torch_threads"]

#: What every ``device`` parameter (and ``--device`` flag) accepts; ``auto`` picks CUDA when available.
DEVICE_NAMES = ("auto", "cpu", "cuda")


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """The torch device for ``name``: ``auto`` picks CUDA when available; ``cuda`` without a GPU is an error.

    Parameters
    ----------
    name : {"auto", "cpu", "cuda"}
    local_rank : int, default=0
        Under ``torchrun``, the process's GPU is ``local_rank`` modulo the GPU count.

    Raises
    ------
    WpgdkitError
        For an unknown name, or ``cuda`` on a machine without one.
    """
    if name not in DEVICE_NAMES:
        raise WpgdkitError(f"unknown device {name!r}; choose one of: {', '.join(DEVICE_NAMES)}")
    import torch

    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        if not torch.cuda.is_available():
            raise WpgdkitError("device cuda asked for, but no CUDA device is available (use cpu)")
        return torch.device("cuda", local_rank % torch.cuda.device_count())
    return torch.device("cpu")


def check_threads(threads: int | None) -> None:
    """Refuse a thread count that is not a whole number of at least 1 (None: torch's own choice)."""
    if threads is None:
        return
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise WpgdkitError(f"threads must be a whole number of at least 1, got {threads!r}")


@contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """torch's intra-op CPU threads set to ``threads`` inside the block, restored after (None: unchanged)."""
    check_threads(threads)
    if threads is None:
        yield
        return
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)
