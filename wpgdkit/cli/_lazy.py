"""Command groups whose commands are imported when they are called: ``wpgdkit`` and ``wpgdkit metric``.

A group lists its commands as ``{name: ("module:attribute", summary)}``
(:data:`wpgdkit.cli.COMMANDS`, :data:`wpgdkit.cli.metric.COMMANDS`): the
module of a command function or of a ``typer.Typer`` group, and the first
paragraph of its help (tests/cli/test_startup_imports.py checks that it is
the command's own). Listing the names imports nothing; looking a command up
imports its module, so ``wpgdkit metric check`` never imports what ``metric
build`` needs (the dataset and model registries, their options).
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, MutableMapping
from typing import Any, Callable, ClassVar

import typer

from wpgdkit.cli._errors import OneLineErrorGroup

__all__ = ["LazyGroup", "load_command", "walk_commands"]


def load_command(name: str, target: str) -> Any:
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
    _literal_help(command)
    return command


def _literal_help(command: Any) -> None:
    """Make the help texts of ``command`` (and of its sub-commands) print as written.

    Typer reads help as Rich markup, where ``C[i,j]`` or ``(C^p)[k]`` are tags
    and vanish from ``--help``; no help text here is meant as markup, so any
    bracket that looks like a tag is escaped, once, where every command is built
    (:func:`load_command`).
    """
    from rich.markup import escape

    if command.help:
        command.help = escape(command.help)
    if command.short_help:
        command.short_help = escape(command.short_help)
    for param in command.params:
        if getattr(param, "help", None):
            param.help = escape(param.help)
    if not isinstance(command, LazyGroup):  # a lazy group's commands go through load_command themselves
        for sub in getattr(command, "commands", {}).values():
            _literal_help(sub)


class _LazyCommands(MutableMapping):
    """A group's commands by name, in the order of its table; each built the first time it is read.

    Listing the names (``keys``, ``in``, iteration) imports nothing; reading a
    command (``[name]``, ``get``, ``items``) imports its module.
    """

    def __init__(self, built: MutableMapping[str, Any], table: dict[str, tuple[str, str]]) -> None:
        self._loaders: dict[str, Callable[[], Any]] = {
            name: (lambda name=name, target=target: load_command(name, target))
            for name, (target, _) in table.items() if name not in built}
        order = [*table, *(name for name in built if name not in table)]
        self._commands: dict[str, Any] = {name: built.get(name) for name in order
                                          if name in built or name in self._loaders}

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


class LazyGroup(OneLineErrorGroup):
    """A group whose commands, listed in :attr:`lazy_commands`, are imported when they are looked up.

    Subclass it with the table and pass the subclass as ``typer.Typer(cls=...)``.
    """

    #: ``{name: ("module:attribute", summary)}``, in ``--help`` order.
    lazy_commands: ClassVar[dict[str, tuple[str, str]]] = {}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.commands = _LazyCommands(self.commands, self.lazy_commands)

    def list_commands(self, ctx: Any) -> list[str]:
        return list(self.commands)  # the names only: TyperGroup's reads every command


def walk_commands(group: Any, prefix: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    """Every command and sub-command under ``group`` (a click group), depth first: ``(path, command)``.

    ``path`` is what a user types after ``wpgdkit``: ``("metric", "build")``.
    Reading a command builds it (imports its module).
    """
    for name, command in group.commands.items():
        path = (*prefix, name)
        yield path, command
        if hasattr(command, "commands"):
            yield from walk_commands(command, path)
