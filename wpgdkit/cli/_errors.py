"""The one-line error policy of every command, and the checks of output paths while flags are parsed.

Bad input (a usage error, a :class:`~wpgdkit.errors.WpgdkitError`) ends as
one line on stderr and exit code 2 (:class:`OneLineErrorGroup`, :func:`fail`).
No Rich here: ``wpgdkit --version`` imports this module and typer only.
:mod:`wpgdkit.cli._common` re-exports every name.
"""

from __future__ import annotations

import errno
import os
import re
import sys
from typing import Any

import typer
from typer.core import TyperGroup

from wpgdkit.atomic import output_file_problem, output_folder_problem, terminate_as_interrupt
from wpgdkit.errors import WpgdkitError

__all__ = ["EXIT_BROKEN_PIPE", "EXIT_INTERRUPTED", "EXIT_USAGE", "OneLineErrorGroup", "as_flags", "fail",
           "output_file", "output_folder"]

EXIT_USAGE = 2  # bad input, missing data: one line on stderr, nothing written
EXIT_INTERRUPTED = 130  # 128 + SIGINT, the shell convention
#: Exit code when the reader of standard output went away (EPIPE, e.g. ``wpgdkit bench --json - | head -1``):
#: nothing is printed, exit 1 -- Click's own convention (its main() pacifies the streams the same way), kept
#: for an EPIPE that reaches us, so a closed pipe is never reported as bad input.
EXIT_BROKEN_PIPE = 1
# Errors of an OSError escaping a command that mean "standard output cannot take more": every file the
# toolkit writes goes through wpgdkit.atomic (an OutputError, one line), so an unwrapped one is stdout.
_STDOUT_FULL = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}


def _click_class(name: str) -> type[Exception]:
    # Typer >= 0.29 vendors click (typer._click); older releases use click itself.
    # typer.BadParameter derives from the right UsageError/ClickException either way.
    return next(c for c in typer.BadParameter.__mro__ if c.__name__ == name)


_USAGE_ERROR = _click_class("UsageError")
_CLICK_EXCEPTION = _click_class("ClickException")
# Raised when a group is called with no arguments: that is a request for help, not an error.
_NO_ARGS_IS_HELP = getattr(sys.modules[_USAGE_ERROR.__module__], "NoArgsIsHelpError", ())

# C0 controls (ESC among them), DEL and the C1 controls: a terminal acts on them instead of showing them.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def _visible(text: str) -> str:
    """``text`` with every control character written as its escape, ``"\\x1b"`` for ESC."""
    return _CONTROL.sub(lambda m: repr(m.group())[1:-1], text)


# Library parameters that are also flags: the library speaks of ``batch_size``, the
# command line of ``--batch-size``.
_PARAMETERS = ("eps", "step_size", "steps", "restarts", "attack_p", "attack_lam", "p", "lam", "epochs", "batch_size",
               "lr", "momentum", "weight_decay", "eval_steps", "workers", "threads", "limit", "test_limit", "bins",
               "metric", "resume", "force", "out", "seed", "val_fraction", "imbalance", "norm", "class_weights",
               "model_kwargs", "weights", "input_shape", "mean", "std", "model", "dataset", "label_column",
               "test_fraction", "test", "bounds", "image_size", "synsets", "model_dir", "threat_model", "standardize",
               "targets", "co_guard")
_PARAMETER_PATTERN = re.compile(r"(^|; |\()(" + "|".join(sorted(_PARAMETERS, key=len, reverse=True)) + r")(?= must\b|\))")


def as_flags(message: str) -> str:
    """A library message with its parameter names as the CLI's flags: ``steps must ...`` -> ``--steps must ...``."""
    return _PARAMETER_PATTERN.sub(lambda m: m.group(1) + "--" + m.group(2).replace("_", "-"), message)


def fail(message: str) -> None:
    """Print ``wpgdkit: error: message`` as one line on stderr and exit 2."""
    line = _visible(" ".join(str(message).split()))  # one line, whatever the message held
    typer.echo(f"wpgdkit: error: {line}", err=True)
    sys.exit(EXIT_USAGE)


class OneLineErrorGroup(TyperGroup):
    """A command group whose errors are one line on stderr and exit code 2.

    Click's usage errors (an unknown option, a value outside its choices) and
    the library's :class:`WpgdkitError` family end the same way; any other
    exception is a bug and keeps its traceback.
    """

    def invoke(self, ctx: Any) -> Any:
        # Ctrl-C (or SIGTERM, below) in a command without its own message: one line, exit 130.
        # Caught here, inside click's main, which would print a blank line and "Aborted.".
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            typer.echo("wpgdkit: interrupted", err=True)
            raise typer.Exit(EXIT_INTERRUPTED) from None

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra: Any):
        with terminate_as_interrupt():
            return self._main(args, prog_name, complete_var, standalone_mode, **extra)

    def _main(self, args, prog_name, complete_var, standalone_mode, **extra: Any):
        try:
            rv = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except _NO_ARGS_IS_HELP as exc:
            typer.echo(exc.ctx.get_help() if exc.ctx else str(exc))
            sys.exit(0)
        except _USAGE_ERROR as exc:
            where = f"{exc.ctx.command_path}: " if exc.ctx is not None else ""
            # Typer validates choices with pydantic, whose messages start "Value error, ".
            fail(f"{where}{exc.format_message().replace('Value error, ', '')} (see --help)")
        except _CLICK_EXCEPTION as exc:
            fail(exc.format_message())
        except typer.Abort:
            typer.echo("Aborted.", err=True)
            sys.exit(1)
        except WpgdkitError as exc:
            fail(as_flags(str(exc)))
        except OSError as exc:
            if exc.errno == errno.EPIPE:
                _silence_stdout()
                sys.exit(EXIT_BROKEN_PIPE)  # the reader left: a quiet exit, no message
            if exc.errno in _STDOUT_FULL:
                _silence_stdout()
                fail(f"cannot write to standard output: {exc.strerror or os.strerror(exc.errno)}")
            raise  # any other OSError is a bug: keep its traceback
        if not standalone_mode:
            return rv
        sys.exit(rv if isinstance(rv, int) else 0)


def _silence_stdout() -> None:
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


def output_file(value: Any) -> Any:
    """Typer callback of every output-file option (``--json``, ``--out``, ``--plot``).

    Refuses a destination that cannot be written (a folder, a file where a
    folder should be, no permission) while the flags are parsed, before a
    long run is spent on a result that could not be saved. ``-`` is stdout.
    """
    if value is not None and str(value) != "-":
        problem = output_file_problem(value)
        if problem is not None:
            raise typer.BadParameter(problem)
    return value


def output_folder(value: Any) -> Any:
    """Typer callback of every output-folder option (``--plots``, ``demo``/``reproduce --out``), as :func:`output_file`."""
    if value is not None:
        problem = output_folder_problem(value)
        if problem is not None:
            raise typer.BadParameter(problem)
    return value
