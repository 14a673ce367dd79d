"""Atomic file writes: a killed run never leaves a half-written file."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from wpgdkit.errors import OutputError, WpgdkitError

__all__ = ["terminate_as_interrupt", "atomic_path", "atomic_write_text", "atomic_write_bytes", "output_file_problem", "output_folder_problem"]


def output_file_problem(path: str | os.PathLike[str]) -> str | None:
    """Why ``path`` cannot be written as a file, or None if it can.

    Checked before any work is done, so that a long run does not end on an
    unwritable destination: a folder in the way, an ancestor that is a file,
    or a folder without write permission. Missing folders are fine (they are
    created).
    """
    final = Path(path)
    if final.is_dir():
        return f"{final} is a folder, not a file"
    return _first_existing_problem(final.parents)


def output_folder_problem(path: str | os.PathLike[str]) -> str | None:
    """Why files cannot be written into the folder ``path``, or None if they can.

    As :func:`output_file_problem`: a file in the way, an ancestor that is a
    file, or no write permission; a missing folder is fine (it is created).
    """
    folder = Path(path)
    return _first_existing_problem([folder, *folder.parents])


def _first_existing_problem(candidates) -> str | None:
    # The first folder that exists is where the missing ones will be created.
    for ancestor in candidates:
        if not ancestor.exists():
            continue
        if not ancestor.is_dir():
            return f"{ancestor} is not a folder"
        if not os.access(ancestor, os.W_OK | os.X_OK):
            return f"no permission to write in {ancestor}"
        break
    return None


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it over ``path`` on success.

    The temporary file sits in the destination folder so the final
    ``os.replace`` is a rename within one file system (atomic on POSIX). On
    any exception the temporary file is removed and ``path`` is untouched.
    """
    final = Path(path)
    problem = output_file_problem(final)
    if problem is not None:
        raise OutputError(f"cannot write {final}: {problem}")
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent)
    except OSError as exc:
        raise OutputError(f"cannot write {final}: {exc.strerror or exc}") from exc
    os.close(fd)
    tmp = Path(tmp_name)
    # mkstemp creates 0600; give the result the permissions a plain open() would.
    os.chmod(tmp, 0o666 & ~_current_umask())
    try:
        yield tmp
        os.replace(tmp, final)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError) and not isinstance(exc, WpgdkitError):
            # A full disk or a folder appearing at ``final`` meanwhile: still one line.
            raise OutputError(f"cannot write {final}: {exc.strerror or exc}") from exc
        raise


def _current_umask() -> int:
    # Linux reports it without changing it; os.umask() must set it to read it,
    # which briefly affects files other threads create.
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


@contextlib.contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM (a scheduler's kill, ``timeout``) raises KeyboardInterrupt inside the block, as Ctrl-C does.

    So every :func:`atomic_path` (and every ``finally``) unwinds: temporaries
    are removed and locks released. Only the main thread can take signals; in
    any other thread the block runs unchanged. The previous handler is
    restored after.
    """
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
