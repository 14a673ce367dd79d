"""The one-line error policy of every command, and the checks of output paths while flags are parsed.

Bad input (a usage error, a :class:`~wpgdkit.errors.WpgdkitError`) ends as
one line on stderr and exit code 2 (:class:`OneLineErrorGroup`, :func:`fail`).
No Rich here: a command's errors need only typer.
:mod:`wpgdkit.cli._common` re-exports every name.
"""

from __future__ import annotations

import re
import sys
from typing import Any

import typer
from typer.core import TyperGroup

from wpgdkit.cli._stdout import EXIT_BROKEN_PIPE, stdout_failed
from wpgdkit.atomic import output_file_problem, output_folder_problem, terminate_as_interrupt
from wpgdkit.errors import WpgdkitError

__all__ = ["EXIT_BROKEN_PIPE", "EXIT_INTERRUPTED", "EXIT_USAGE", "OneLineErrorGroup", "as_flags", "fail",
           "output_file", "output_folder"]

EXIT_USAGE = 2  # bad input, missing data: one line on stderr, nothing written
EXIT_INTERRUPTED = 130  # 128 + SIGINT, the shell convention


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
            # The error was built from ctx.get_help(), which Rich's help already printed: print its message only
            # (the help text where click formatted it, the empty string where Rich did), not a second page.
            typer.echo(exc.format_message())
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
            sys.exit(stdout_failed(exc))  # a failed stdout ends quietly or in one line; any other OSError is raised
        if not standalone_mode:
            return rv
        sys.exit(rv if isinstance(rv, int) else 0)


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
