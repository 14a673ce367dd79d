"""The ``wpgdkit`` command line: a thin layer over the library.

Each command (or command group) is a module, composed by the typer app in
:mod:`wpgdkit.cli._app` (``wpgdkit.cli.app``, loaded on first use). Every
error from bad input ends as one line on stderr and exit code 2
(:class:`~wpgdkit.cli._errors.OneLineErrorGroup`).

Nothing is imported before it is needed. :func:`main` answers ``--version``
and the root's ``--help`` without importing typer (the help page needs Rich
only, :mod:`wpgdkit.cli._root_help`); any other command line goes to the typer
app, which imports a command's module when the command is looked up
(``wpgdkit metric build`` imports only ``wpgdkit.cli.metric`` and its ``build`` module). No command
module imports torch at import time, so ``--help`` of every command,
``datasets``, ``models`` and the WordNet, file and uniform metrics run without it.
"""

from __future__ import annotations

import os
import sys

from wpgdkit import __version__

__all__ = ["COMMANDS", "VERSION_LINE", "app", "main"]

#: What ``wpgdkit --version`` prints, on either route.
VERSION_LINE = f"wpgdkit {__version__}"

#: The commands in ``--help`` order: where each is defined, ``"module:attribute"`` of a command function or of a
#: ``typer.Typer`` group (imported on first use), and the first paragraph of its help, which ``wpgdkit --help``
#: lists without importing the module (tests/cli/test_startup_imports.py checks that it is the command's own).
COMMANDS: dict[str, tuple[str, str]] = {
    "train": ("wpgdkit.cli.train:train",
              "Train a model with CE, PGD, WPGD, fast-PGD or fast-WPGD; checkpoint after every epoch."),
    "models": ("wpgdkit.cli.models:models",
               "List the registered models: supported inputs and, with --parameters, parameter count for a dataset."),
    "audit": ("wpgdkit.cli.audit:audit",
              "Audit models: NE, AE (per class too), confusion matrices, accuracy gap G and ρ(G, C), score S (eq. 7)."),
    "bench": ("wpgdkit.cli.bench:bench", "Time the toolkit on this machine: median of several repeats after a warm-up."),
    "reproduce": ("wpgdkit.cli.reproduce:reproduce",
                  "Run one of the paper's experiments: train what is missing, audit, write report.md with tables, "
                  "plots and commands."),
    "demo": ("wpgdkit.cli.demo:demo",
             "Run the paper's toy problem end to end: train CE, PGD and WPGD, audit them, draw their decision "
             "boundaries."),
    "datasets": ("wpgdkit.cli.datasets:datasets",
                 "List the registered datasets: classes, input shape, WordNet synsets, how to get them."),
    "metric": ("wpgdkit.cli.metric:app", "Build, check, show and compare label metrics (K×K class-cost matrices)."),
}


def main(prog_name: str | None = None) -> None:
    """Console-script entry point: ``wpgdkit ARGS``.

    ``wpgdkit --version``, ``wpgdkit --help`` and a bare ``wpgdkit`` (which
    prints the help) are answered here, before typer is imported: they are
    what shell loops call most. A shell's completion script also calls a bare
    ``wpgdkit`` (with ``_WPGDKIT_COMPLETE`` set): that goes to typer. The answers are the typer
    app's own (same text, same exit code 0; tests/cli/test_root_help.py).
    """
    args = sys.argv[1:]
    if args in (["--version"], [], ["--help"]) and not _completing():
        try:
            if args == ["--version"]:
                sys.stdout.write(VERSION_LINE + "\n")
            else:
                from wpgdkit.cli._root_help import print_root_help

                print_root_help(prog_name)
                sys.stdout.write("\n")  # typer prints the page, then echoes the (empty) formatted help
            sys.stdout.flush()
        except OSError as exc:
            from wpgdkit.cli._stdout import stdout_failed

            sys.exit(stdout_failed(exc))
        return
    from wpgdkit.cli._app import app

    app(prog_name=prog_name)


def _completing() -> bool:
    """Whether a shell's completion script called us: click's ``_<PROG>_COMPLETE`` variable, no arguments."""
    return any(key.startswith("_") and key.endswith("_COMPLETE") for key in os.environ)


def __getattr__(name: str) -> object:
    # The typer app is built on first use (PEP 562): `wpgdkit --version` and `--help` never import typer.
    if name == "app":
        from wpgdkit.cli._app import app

        globals()["app"] = app
        return app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
