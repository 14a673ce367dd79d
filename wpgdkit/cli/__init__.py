"""The ``wpgdkit`` command line: a thin layer over the library.

Each command (or command group) is a module, composed here. Every error
from bad input ends as one line on stderr and exit code 2
(:class:`~wpgdkit.cli._errors.OneLineErrorGroup`).

A command's module is imported when the command is looked up, not when the
command line starts: ``wpgdkit --version`` imports none of them, and
``wpgdkit metric build`` only ``wpgdkit.cli.metric``. No command module
imports torch at import time either, so ``--help`` of every command, ``datasets``,
``models`` and the WordNet, file and uniform metrics run without it.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator, MutableMapping
from typing import Annotated, Any, Callable, Optional

import typer
from typer.core import TyperCommand

from wpgdkit import __version__
from wpgdkit.cli._errors import OneLineErrorGroup, output_file

__all__ = ["COMMANDS", "app", "main"]

#: The commands in ``--help`` order: where each is defined, ``"module:attribute"`` of a command function or of a
#: ``typer.Typer`` group (imported on first use; None for a command defined in this module), and the first
#: paragraph of its help, which ``wpgdkit --help`` lists without importing the module
#: (tests/cli/test_startup_imports.py checks that it is the command's own).
COMMANDS: dict[str, tuple[str | None, str | None]] = {
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
    "datasets": (None, None),
    "metric": ("wpgdkit.cli.metric:app", "Build, check, show and compare label metrics (K×K class-cost matrices)."),
}


def _load_command(name: str, target: str) -> Any:
    """The click command of ``target`` (``"module:attribute"``), as ``app.command``/``add_typer`` would build it."""
    module, attribute = target.split(":")
    obj = getattr(importlib.import_module(module), attribute)
    if isinstance(obj, typer.Typer):
        command = typer.main.get_group(obj)  # no completion options: those are the root's only
    else:
        single = typer.Typer(add_completion=False)
        single.command(name)(obj)
        command = typer.main.get_command(single)
    command.name = name
    return command


class _LazyCommands(MutableMapping):
    """The root group's commands by name, in :data:`COMMANDS` order; each built the first time it is read.

    Listing the names (``keys``, ``in``, iteration) imports nothing; reading a
    command (``[name]``, ``get``, ``items``) imports its module. While
    :attr:`summaries` is set (the root's ``--help`` is being written), a command
    not built yet is read as a stand-in holding its name and summary only.
    """

    def __init__(self, built: MutableMapping[str, Any], loaders: dict[str, Callable[[], Any]]) -> None:
        order = [*COMMANDS, *(name for name in built if name not in COMMANDS)]
        self._commands: dict[str, Any] = {name: built.get(name) for name in order if name in built or name in loaders}
        self._loaders = loaders
        self.summaries = False

    def __getitem__(self, name: str) -> Any:
        command = self._commands[name]
        if command is None and name in self._loaders:
            summary = COMMANDS.get(name, (None, None))[1]
            if self.summaries and summary is not None:
                return TyperCommand(name=name, help=summary)
            command = self._commands[name] = self._loaders[name]()  # an import that fails can be retried
            del self._loaders[name]
        return command

    def __setitem__(self, name: str, command: Any) -> None:
        self._commands[name] = command
        self._loaders.pop(name, None)

    def __delitem__(self, name: str) -> None:
        del self._commands[name]
        self._loaders.pop(name, None)

    def __iter__(self) -> Iterator[str]:
        return iter(self._commands)

    def __len__(self) -> int:
        return len(self._commands)


class _RootGroup(OneLineErrorGroup):
    """The ``wpgdkit`` group: its commands' modules are imported when a command is looked up."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        loaders = {name: (lambda name=name, target=target: _load_command(name, target))
                   for name, (target, _) in COMMANDS.items() if target is not None and name not in self.commands}
        self.commands = _LazyCommands(self.commands, loaders)

    def list_commands(self, ctx: Any) -> list[str]:
        return list(self.commands)  # the names only: TyperGroup's reads every command

    def format_help(self, ctx: Any, formatter: Any) -> None:
        # The list of commands needs their summaries only: `wpgdkit --help` imports no command module.
        self.commands.summaries = True
        try:
            super().format_help(ctx, formatter)
        finally:
            self.commands.summaries = False


app = typer.Typer(
    name="wpgdkit",
    cls=_RootGroup,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Cost-sensitive adversarial robustness with Wasserstein PGD: label metrics, training, audits.",
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"wpgdkit {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        Optional[bool], typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = None,
) -> None:
    """Cost-sensitive adversarial robustness with Wasserstein PGD (WPGD)."""


@app.command()
def datasets(
    json_out: Annotated[Optional[str], typer.Option("--json", help="Write the list as JSON to PATH, or - for stdout.", callback=output_file)] = None,
) -> None:
    """List the registered datasets: classes, input shape, WordNet synsets, how to get them."""
    from rich.table import Table

    from wpgdkit.datasets import get_dataset, list_datasets

    this = sys.modules[__name__]  # safe, stdout, write_json: loaded on first use (see __getattr__)
    safe, stdout = this.safe, this.stdout
    specs = [get_dataset(name) for name in list_datasets()]
    if json_out is not None:
        this.write_json({"datasets": [s.to_dict() for s in specs]}, json_out)
        if json_out == "-":
            return
    table = Table()
    for col in ("name", "classes", "input", "WordNet", "description"):
        table.add_column(col)
    for s in specs:
        table.add_row(safe(s.name), str(s.num_classes), "×".join(map(str, s.input_shape)),
                      "yes" if s.synsets else "-", safe(s.description))
    stdout.print(table)


def main() -> None:
    """Console-script entry point."""
    app()


def __getattr__(name: str) -> Any:
    # What the datasets command prints with comes from wpgdkit.cli._common, which imports Rich (and
    # write_json NumPy): loaded on first use, so `wpgdkit --version` needs neither (PEP 562).
    if name in ("safe", "stdout", "write_json"):
        from wpgdkit.cli import _common

        value = getattr(_common, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
