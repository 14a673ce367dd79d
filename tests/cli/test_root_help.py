"""``wpgdkit --help`` is written without typer (wpgdkit/cli/_root_help.py): the same page either way.

:func:`wpgdkit.cli.main` answers ``--help``, a bare ``wpgdkit`` and
``--version`` before importing typer; the typer app's root group prints its
help through the same function. These tests hold the two routes to the same
bytes and the page to the app it describes: every option the root group
accepts, every command with its own summary.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
from typer.main import get_command
from typer.testing import CliRunner

from wpgdkit import __version__
from wpgdkit.cli import COMMANDS, app
from wpgdkit.cli._lazy import walk_commands
from wpgdkit.cli._root_help import APP_HELP, ROOT_OPTIONS

_TIMEOUT_S = 120
# No terminal, a fixed width, no colour switch inherited from the machine that runs the tests.
_ENV = {"COLUMNS": "100", "LINES": "50", "TERM": "dumb"}
_UNSET = ("FORCE_COLOR", "PY_COLORS", "GITHUB_ACTIONS", "TERMINAL_WIDTH", "NO_COLOR", "_TYPER_FORCE_DISABLE_TERMINAL")


def fresh(*args: str) -> subprocess.CompletedProcess:
    """``python -m wpgdkit ARGS`` in a new interpreter: the fast path a user's shell takes."""
    env = {k: v for k, v in os.environ.items() if k not in _UNSET} | _ENV
    return subprocess.run([sys.executable, "-m", "wpgdkit", *args], capture_output=True, text=True, env=env,
                          timeout=_TIMEOUT_S)


def through_typer(*args: str):
    """The same command line through the typer app (``CliRunner``), which never takes the fast path."""
    env = dict.fromkeys(_UNSET) | _ENV  # None unsets the variable for the call
    return CliRunner().invoke(app, list(args), prog_name="python -m wpgdkit", env=env)


def words(page: str) -> str:
    """The page's text without the panels' borders, one space between words."""
    return " ".join(re.sub(r"[│╭╮╰╯─]", " ", page).split())


@pytest.mark.parametrize("args", [("--help",), ()], ids=["--help", "no arguments"])
def test_the_fast_page_is_the_typer_apps_page(args):
    fast, slow = fresh(*args), through_typer(*args)
    assert fast.returncode == slow.exit_code == 0, fast.stderr
    assert fast.stderr == ""
    assert fast.stdout == slow.output
    assert "\x1b" not in fast.stdout  # no terminal: no colour


def test_version_is_the_same_either_way():
    fast, slow = fresh("--version"), through_typer("--version")
    assert fast.returncode == slow.exit_code == 0
    assert fast.stdout == slow.output == f"wpgdkit {__version__}\n"


def test_the_page_lists_every_command_with_its_summary_in_order():
    page = words(fresh("--help").stdout)
    assert page.startswith(f"Usage: python -m wpgdkit [OPTIONS] COMMAND [ARGS]... {APP_HELP}")
    commands = page[page.index("Commands"):]
    positions = [commands.index(f"{name} {summary}") for name, (_, summary) in COMMANDS.items()]
    assert positions == sorted(positions)


def test_the_page_lists_exactly_the_root_groups_options():
    root = get_command(app)
    ctx = root.make_context("wpgdkit", [], resilient_parsing=True)
    visible = [opt for param in root.get_params(ctx) if not getattr(param, "hidden", False) for opt in param.opts]
    assert visible == list(ROOT_OPTIONS)
    version = next(param for param in root.get_params(ctx) if "--version" in param.opts)
    assert version.help == ROOT_OPTIONS["--version"]
    page = words(fresh("--help").stdout)
    for flag, text in ROOT_OPTIONS.items():
        assert f"{flag} {text}" in page


def test_every_command_is_reached_through_the_app():
    # The fast path answers three command lines only; anything else is the typer app's.
    done = fresh("datasets", "--json", "-")
    assert done.returncode == 0, done.stderr
    assert '"datasets"' in done.stdout
    unknown = fresh("--versio")
    assert unknown.returncode == 2
    assert unknown.stderr.startswith("wpgdkit: error: ") and len(unknown.stderr.splitlines()) == 1


def test_a_forced_colour_page_is_coloured():
    env = {k: v for k, v in os.environ.items() if k not in _UNSET} | _ENV | {"FORCE_COLOR": "1", "TERM": "xterm"}
    done = subprocess.run([sys.executable, "-m", "wpgdkit", "--help"], capture_output=True, text=True, env=env,
                          timeout=_TIMEOUT_S)
    assert done.returncode == 0
    assert "\x1b[" in done.stdout
    assert words(re.sub(r"\x1b\[[0-9;]*m", "", done.stdout)) == words(fresh("--help").stdout)


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
@pytest.mark.parametrize("args", [["--help"], ["--version"], []], ids=["--help", "--version", "no arguments"])
def test_the_fast_path_on_a_full_standard_output_is_one_line(args):
    with open("/dev/full", "w") as full:
        done = subprocess.run([sys.executable, "-m", "wpgdkit", *args], stdout=full, stderr=subprocess.PIPE,
                              text=True, timeout=_TIMEOUT_S)
    assert done.returncode == 2, done.stderr
    assert done.stderr == "wpgdkit: error: cannot write to standard output: No space left on device\n"


def test_the_fast_path_on_a_closed_pipe_is_a_quiet_exit():
    proc = subprocess.Popen([sys.executable, "-m", "wpgdkit", "--help"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    proc.stdout.close()  # the reader is gone before the page is written
    _, err = proc.communicate(timeout=_TIMEOUT_S)
    assert proc.returncode == 1
    assert err == b""


@pytest.mark.parametrize("args", [(), ("metric",)], ids=["wpgdkit", "wpgdkit metric"])
def test_a_group_called_bare_prints_its_page_once(args):
    # Click builds its "no arguments" error from ctx.get_help(), which Rich's help prints as it builds it.
    result = through_typer(*args)
    assert result.exit_code == 0
    assert result.output.count("Usage:") == 1, result.output


@pytest.mark.parametrize("words, cword, expected", [("wpgdkit met", 1, "metric"), ("wpgdkit metric ch", 2, "check"),
                                                    ("wpgdkit metric build --so", 3, "--source")])
def test_shell_completion_is_not_taken_for_a_bare_call(words, cword, expected):
    # A completion script runs `wpgdkit` with no arguments and _WPGDKIT_COMPLETE set: typer answers, not the page.
    env = {k: v for k, v in os.environ.items() if k not in _UNSET} | _ENV | {
        "_WPGDKIT_COMPLETE": "complete_bash", "COMP_WORDS": words, "COMP_CWORD": str(cword)}
    code = "import sys; sys.argv = ['wpgdkit']; from wpgdkit.cli import main; main()"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=_TIMEOUT_S)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [expected]


def _bracketed(command) -> list[str]:
    texts = [command.help or "", *(getattr(p, "help", None) or "" for p in command.params)]
    return [m for text in texts for m in re.findall(r"\[[^\]\[]*\]", text.replace("\\[", "["))]


HELP_WITH_BRACKETS = [(path, fragments) for path, command in walk_commands(get_command(app))
                      for fragments in [_bracketed(command)] if fragments]


def test_some_help_texts_hold_brackets():
    assert any("[i,j]" in fragments for _, fragments in HELP_WITH_BRACKETS)  # C[i,j] of --allow-asymmetric


@pytest.mark.parametrize("path, fragments", HELP_WITH_BRACKETS, ids=[" ".join(p) for p, _ in HELP_WITH_BRACKETS])
def test_brackets_in_help_texts_are_printed_as_written(path, fragments):
    # Rich markup would take C[i,j] or (C^p)[k] for tags and drop them from --help.
    result = CliRunner().invoke(app, [*path, "--help"], env=dict.fromkeys(_UNSET) | _ENV | {"COLUMNS": "400"})
    assert result.exit_code == 0, result.output
    page = words(result.output)
    for fragment in fragments:
        assert " ".join(fragment.split()) in page, (fragment, page[:2000])
    assert "\\[" not in page
