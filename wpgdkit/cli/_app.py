"""The typer app of the ``wpgdkit`` command line: its root group, built lazily from :data:`wpgdkit.cli.COMMANDS`.

A command's module is imported when the command is looked up, not when the
command line starts: ``wpgdkit metric build`` imports only
``wpgdkit.cli.metric``. The root's help page is written by
:mod:`wpgdkit.cli._root_help` (Rich only), here and on the fast path of
:func:`wpgdkit.cli.main`, which does not import this module.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, MutableMapping
from typing import Annotated, Any, Callable, Optional

import typer

from wpgdkit import __version__
from wpgdkit.cli import COMMANDS
from wpgdkit.cli._errors import OneLineErrorGroup
from wpgdkit.cli._root_help import APP_HELP, ROOT_OPTIONS, print_root_help

__all__ = ["RootGroup", "app"]


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
    command (``[name]``, ``get``, ``items``) imports its module.
    """

    def __init__(self, built: MutableMapping[str, Any], loaders: dict[str, Callable[[], Any]]) -> None:
        order = [*COMMANDS, *(name for name in built if name not in COMMANDS)]
        self._commands: dict[str, Any] = {name: built.get(name) for name in order if name in built or name in loaders}
        self._loaders = loaders

    def __getitem__(self, name: str) -> Any:
        command = self._commands[name]
        if command is None and name in self._loaders:
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


class RootGroup(OneLineErrorGroup):
    """The ``wpgdkit`` group: its commands' modules are imported when a command is looked up."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        loaders = {name: (lambda name=name, target=target: _load_command(name, target))
                   for name, (target, _) in COMMANDS.items() if name not in self.commands}
        self.commands = _LazyCommands(self.commands, loaders)

    def list_commands(self, ctx: Any) -> list[str]:
        return list(self.commands)  # the names only: TyperGroup's reads every command

    def format_help(self, ctx: Any, formatter: Any) -> None:
        # The same page as `wpgdkit --help` before typer is imported: one renderer, no command module imported.
        print_root_help(ctx.command_path)


app = typer.Typer(
    name="wpgdkit",
    cls=RootGroup,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help=APP_HELP,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"wpgdkit {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        Optional[bool], typer.Option("--version", callback=_version, is_eager=True, help=ROOT_OPTIONS["--version"])
    ] = None,
) -> None:
    """Cost-sensitive adversarial robustness with Wasserstein PGD (WPGD)."""
