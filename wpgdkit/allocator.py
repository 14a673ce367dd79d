"""Keep freed memory in the process during an attack, instead of handing it back to the OS at every step.

An attack step allocates and frees the model's activations and their
gradients: tens of MB per step for a small CNN at batch 256. glibc's malloc
returns the free top of its heap to the OS once it exceeds its trim threshold
(adaptive, at most 64 MiB) and serves blocks above its mmap threshold (at most
32 MiB) by fresh ``mmap`` calls; either way the next step touches new pages,
and every 4 KiB page costs a page fault and zeroing in the kernel. On the
small CNN that was a third of the attack's time at batch 256 (system time),
and a quarter at batch 128.

:func:`retain_freed_memory` raises both thresholds inside the block, so the
memory of one step is reused by the next (the process holds its peak, which
it needed anyway), and on exit sets them to glibc's own ceilings of its
adaptive thresholds and trims the heap, returning what is free::

    with retain_freed_memory():
        for xb, yb in batches:
            x_adv = attack(xb, yb)

Only glibc (Linux) is tuned; elsewhere, or with ``WPGDKIT_RETAIN_MEMORY=0``
in the environment, the block changes nothing. glibc's thresholds are global
to the process and cannot be read back: after the (outermost) block they are
fixed at 32 MiB (mmap) and 64 MiB (trim) rather than adaptive below those.
Nested and concurrent blocks tune once, for as long as any is open. Results
do not depend on it, only system time does.
"""

from __future__ import annotations

import ctypes
import os
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["RETAIN_ENV", "retain_freed_memory", "retention_active"]

#: Set to ``0`` to leave malloc alone (a process that must return memory to the OS at once).
RETAIN_ENV = "WPGDKIT_RETAIN_MEMORY"

# mallopt parameters (malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
# Inside the block: 1 GiB (a tensor larger than that is still mmapped, as before).
_DURING = 1 << 30
# After it: glibc's ceilings of its adaptive thresholds (DEFAULT_MMAP_THRESHOLD_MAX on 64-bit, trim twice that).
_AFTER_MMAP = 32 << 20
_AFTER_TRIM = 64 << 20

_lock = threading.Lock()
_depth = 0
_libc: ctypes.CDLL | None = None
_libc_loaded = False


def _glibc() -> ctypes.CDLL | None:
    global _libc, _libc_loaded
    if not _libc_loaded:
        _libc_loaded = True
        if sys.platform.startswith("linux"):
            try:
                libc = ctypes.CDLL("libc.so.6")
                # gnu_get_libc_version exists only in glibc (not musl): mallopt's numbers are glibc's.
                if all(hasattr(libc, name) for name in ("mallopt", "malloc_trim", "gnu_get_libc_version")):
                    libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
                    libc.malloc_trim.argtypes = [ctypes.c_size_t]
                    _libc = libc
            except OSError:
                _libc = None
    return _libc


def retention_active() -> bool:
    """Is a :func:`retain_freed_memory` block open and tuning malloc now?"""
    return _depth > 0


@contextmanager
def retain_freed_memory() -> Iterator[None]:
    """Inside the block, freed memory stays in the process for reuse (glibc); a no-op elsewhere or when turned off."""
    global _depth
    libc = _glibc() if os.environ.get(RETAIN_ENV, "1") != "0" else None
    if libc is None:
        yield
        return
    with _lock:
        _depth += 1
        if _depth == 1:
            libc.mallopt(_M_TRIM_THRESHOLD, _DURING)
            libc.mallopt(_M_MMAP_THRESHOLD, _DURING)
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0:
                libc.mallopt(_M_MMAP_THRESHOLD, _AFTER_MMAP)
                libc.mallopt(_M_TRIM_THRESHOLD, _AFTER_TRIM)
                libc.malloc_trim(0)
