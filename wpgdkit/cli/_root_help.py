"""``wpgdkit --help``: the root's help page, written with Rich alone.

The root help is what a user types first and what shell loops and
completion scripts call most, so it is written here without typer, whose
import and help renderer (Markdown, syntax highlighting) cost three times
the rest of the answer: :func:`wpgdkit.cli.main` prints it before importing
typer, and the typer app's root group prints it through the same function
(:meth:`wpgdkit.cli._app.RootGroup.format_help`), so ``wpgdkit``,
``wpgdkit --help`` and ``CliRunner().invoke(app, ["--help"])`` print the same
page. The commands' summaries come from :data:`wpgdkit.cli.COMMANDS`, the
options from :data:`ROOT_OPTIONS`; tests/cli/test_root_help.py checks both
against the typer app. The layout follows typer's: a usage line, the
description, then an "Options" and a "Commands" panel.
"""

from __future__ import annotations

import os
import sys

__all__ = ["APP_HELP", "ROOT_OPTIONS", "USAGE", "program_name", "print_root_help"]

#: The root group's description (the typer app's ``help=``).
APP_HELP = "Cost-sensitive adversarial robustness with Wasserstein PGD: label metrics, training, audits."
#: The root group's usage after the program name.
USAGE = "[OPTIONS] COMMAND [ARGS]..."
#: The root's options in ``--help`` order: flag -> help (typer adds the two completion options).
ROOT_OPTIONS: dict[str, str] = {
    "--version": "Print the version and exit.",
    "--install-completion": "Install completion for the current shell.",
    "--show-completion": "Show completion for the current shell, to copy it or customize the installation.",
    "--help": "Show this message and exit.",
}

# The styles of typer's help pages, so the root's page looks like every command's.
_STYLE_FLAG = "bold cyan"
_STYLE_USAGE = "yellow"
_STYLE_PANEL_BORDER = "dim"


def program_name() -> str:
    """The name the user typed: ``python -m wpgdkit`` when run as a module, else the script's name."""
    main = sys.modules.get("__main__")
    if getattr(main, "__package__", None) == "wpgdkit" or os.path.basename(sys.argv[0] or "") == "__main__.py":
        return "python -m wpgdkit"
    return os.path.basename(sys.argv[0] or "") or "wpgdkit"


def _console():
    """A stdout console that decides width and colour as typer's help console does (same variables)."""
    from rich.console import Console

    width = os.environ.get("TERMINAL_WIDTH")
    force = True if (os.environ.get("GITHUB_ACTIONS") or os.environ.get("FORCE_COLOR")
                     or os.environ.get("PY_COLORS")) else None
    if os.environ.get("_TYPER_FORCE_DISABLE_TERMINAL"):
        force = False
    return Console(width=int(width) if width and width.isdigit() else None, force_terminal=force,
                   highlight=False, emoji=False)


def _panel(title: str, rows: list[tuple[str, str]], *, first_width: int | None = None):
    from rich.panel import Panel
    from rich.table import Table
    from rich.text import Text

    table = Table(show_header=False, expand=True, box=None, pad_edge=False, padding=(0, 1))
    table.add_column(style=_STYLE_FLAG, no_wrap=True, width=first_width)
    table.add_column(ratio=10)
    for name, text in rows:
        table.add_row(Text(name), Text(text))
    return Panel(table, border_style=_STYLE_PANEL_BORDER, title=title, title_align="left")


def print_root_help(prog_name: str | None = None) -> None:
    """Print the root's help page on standard output.

    Parameters
    ----------
    prog_name : str, optional
        The program name of the usage line; default :func:`program_name`.
    """
    from rich.padding import Padding
    from rich.text import Text

    from wpgdkit.cli import COMMANDS

    console = _console()
    usage = Text.assemble(("Usage: ", _STYLE_USAGE), (f"{prog_name or program_name()} {USAGE}", "bold"))
    console.print(Padding(usage, 1))
    console.print(Padding(Text(APP_HELP), (0, 1, 1, 1)))
    console.print(_panel("Options", list(ROOT_OPTIONS.items())))
    console.print(_panel("Commands", [(name, summary) for name, (_, summary) in COMMANDS.items()],
                         first_width=max(map(len, COMMANDS))))
