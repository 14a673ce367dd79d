"""The typer app of the ``wpgdkit`` command line: its root group, built lazily from :data:`wpgdkit.cli.COMMANDS`.

A command's module is imported when the command is looked up, not when the
command line starts (:class:`~wpgdkit.cli._lazy.LazyGroup`): ``wpgdkit metric
build`` imports only ``wpgdkit.cli.metric`` and its ``build`` module. The root's help page is written by
:mod:`wpgdkit.cli._root_help` (Rich only), here and on the fast path of
:func:`wpgdkit.cli.main`, which does not import this module.
"""

from __future__ import annotations

from typing import Annotated, Any, Optional

import typer

from wpgdkit.cli import COMMANDS, VERSION_LINE
from wpgdkit.cli._lazy import LazyGroup
from wpgdkit.cli._root_help import APP_HELP, ROOT_OPTIONS, print_root_help

__all__ = ["RootGroup", "app"]


class RootGroup(LazyGroup):
    """The ``wpgdkit`` group: its commands' modules are imported when a command is looked up."""

    lazy_commands = COMMANDS

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
        typer.echo(VERSION_LINE)
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        Optional[bool], typer.Option("--version", callback=_version, is_eager=True, help=ROOT_OPTIONS["--version"])
    ] = None,
) -> None:
    """Cost-sensitive adversarial robustness with Wasserstein PGD (WPGD)."""
