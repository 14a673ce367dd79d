"""What happens when standard output fails: one policy for typer's commands and for the answers given without it.

A reader that goes away (``wpgdkit --help | head -1``: EPIPE) ends the
process quietly with exit code 1, Click's own convention; a full disk or
quota behind a redirected stdout is bad input like any other: one line on
stderr, exit code 2. No typer here: :func:`wpgdkit.cli.main` answers
``--version`` and ``--help`` before importing it.
"""

from __future__ import annotations

import errno
import os
import sys

__all__ = ["EXIT_BROKEN_PIPE", "stdout_failed", "silence_stdout"]

#: Exit code when the reader of standard output went away (EPIPE, e.g. ``wpgdkit bench --json - | head -1``):
#: nothing is printed, exit 1 -- Click's own convention (its main() pacifies the streams the same way), kept
#: for an EPIPE that reaches us, so a closed pipe is never reported as bad input.
EXIT_BROKEN_PIPE = 1
_EXIT_USAGE = 2
# Errors of an OSError escaping a command that mean "standard output cannot take more": every file the
# toolkit writes goes through wpgdkit.atomic (an OutputError, one line), so an unwrapped one is stdout.
_STDOUT_FULL = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}


def silence_stdout() -> None:
    """Point standard output at /dev/null after it failed, so Python's flush at exit prints no second traceback.

    The Python docs' note on SIGPIPE: what is still buffered would be written
    (and fail) again at interpreter exit. Where stdout has no file descriptor
    (a test runner's buffer), nothing needs doing.
    """
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):
        return
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, fd)
        os.close(devnull)
    except OSError:
        pass


def stdout_failed(exc: OSError) -> int:
    """The exit code for ``exc`` raised while writing standard output, after silencing it (and one line on stderr).

    Raises ``exc`` again when it is not a failure of standard output: any
    other OSError is a bug and keeps its traceback.
    """
    if exc.errno == errno.EPIPE:
        silence_stdout()
        return EXIT_BROKEN_PIPE  # the reader left: a quiet exit, no message
    if exc.errno in _STDOUT_FULL:
        silence_stdout()
        sys.stderr.write(f"wpgdkit: error: cannot write to standard output: {exc.strerror or os.strerror(exc.errno)}\n")
        return _EXIT_USAGE
    raise exc
