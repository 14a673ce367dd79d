"""What every command shares: consoles, the one-line error policy, JSON output."""

from __future__ import annotations

import enum
import json
import sys
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from typer.core import TyperGroup

from wpgdkit.atomic import atomic_write_text, output_file_problem, output_folder_problem
from wpgdkit.errors import WpgdkitError
from wpgdkit.jsonutil import json_value
from wpgdkit.training.distributed import DEVICE_NAMES

__all__ = ["OneLineErrorGroup", "stdout", "stderr", "fail", "write_json", "split_list", "choices", "DeviceName", "output_file", "output_folder"]

EXIT_USAGE = 2  # bad input, missing data: one line on stderr, nothing written


def _click_class(name: str) -> type[Exception]:
    # Typer >= 0.29 vendors click (typer._click); older releases use click itself.
    # typer.BadParameter derives from the right UsageError/ClickException either way.
    return next(c for c in typer.BadParameter.__mro__ if c.__name__ == name)


_USAGE_ERROR = _click_class("UsageError")
_CLICK_EXCEPTION = _click_class("ClickException")
# Raised when a group is called with no arguments: that is a request for help, not an error.
_NO_ARGS_IS_HELP = getattr(sys.modules[_USAGE_ERROR.__module__], "NoArgsIsHelpError", ())

stdout = Console(highlight=False, soft_wrap=False)
stderr = Console(stderr=True, highlight=False, soft_wrap=False)


def fail(message: str) -> None:
    """Print ``wpgdkit: error: message`` as one line on stderr and exit 2."""
    line = " ".join(str(message).split())  # one line, whatever the message held
    typer.echo(f"wpgdkit: error: {line}", err=True)
    sys.exit(EXIT_USAGE)


class OneLineErrorGroup(TyperGroup):
    """A command group whose errors are one line on stderr and exit code 2.

    Click's usage errors (an unknown option, a value outside its choices) and
    the library's :class:`WpgdkitError` family end the same way; any other
    exception is a bug and keeps its traceback.
    """

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra: Any):
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
            fail(str(exc))
        if not standalone_mode:
            return rv
        sys.exit(rv if isinstance(rv, int) else 0)


def choices(name: str, values: list[str]) -> type[enum.Enum]:
    """A ``str`` Enum over registry names, so ``--help`` lists the valid choices."""
    return enum.Enum(name, {value: value for value in values}, type=str)


# Every command's --device: auto picks CUDA when available.
DeviceName = choices("DeviceName", list(DEVICE_NAMES))


def split_list(value: str | None) -> tuple[str, ...] | None:
    """``"cat,dog"`` -> ``("cat", "dog")``; None stays None."""
    if value is None:
        return None
    items = tuple(v.strip() for v in value.split(",") if v.strip())
    if not items:
        raise WpgdkitError("the list is empty")
    return items


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


def write_json(payload: dict[str, Any], destination: str) -> None:
    """Write ``payload`` to a file (atomically) or to stdout for ``-``."""
    text = json.dumps(json_value(payload), indent=2, allow_nan=False) + "\n"
    if destination == "-":
        typer.echo(text, nl=False)
    else:
        atomic_write_text(Path(destination), text)
