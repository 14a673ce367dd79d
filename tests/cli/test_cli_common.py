"""What every command shares (wpgdkit.cli._common): safe printing, the one write_json, one-line errors."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from wpgdkit.cli import _common
from wpgdkit.cli._common import safe


def _printed(markup: str) -> str:
    out = io.StringIO()
    Console(file=out, width=200, highlight=False, emoji=False, color_system=None).print(markup)
    return out.getvalue().rstrip("\n")


@pytest.mark.parametrize(
    "text",
    ["[critical]", "[/bold]", "[red]x[/red]", "a[b]c", "[link=http://x]y", "@[click]", "back\\[slash]", "C[0, 1]"],
)
def test_markup_is_printed_as_written(text):
    assert _printed(safe(text)) == text
    assert _printed(f"[bold]{safe(text)}[/]: x") == f"{text}: x"  # inside markup of our own too


def test_a_trailing_backslash_does_not_escape_the_markup_after_it():
    folder = "dir\\"  # one backslash, at the end
    assert _printed(f"[bold]{safe(folder)}[/] and [bold]{safe('[x]')}[/]") == "dir\\ and [x]"


def test_control_characters_become_their_escapes():
    assert safe("a\x1bb") == "a\\x1bb"
    assert safe("\x00\x07\t\n\r\x7f\x9b") == "\\x00\\x07\\t\\n\\r\\x7f\\x9b"
    assert _printed(safe("esc\x1b[31mred")) == "esc\\x1b[31mred"


def test_safe_leaves_ordinary_text_alone_and_takes_any_object():
    assert safe("T-shirt/top, ε=0.5 ×") == "T-shirt/top, ε=0.5 ×"
    assert safe(3) == "3"
    from pathlib import Path

    assert safe(Path("a/[b]/c.csv")) == "a/\\[b]/c.csv"


def test_consoles_print_emoji_codes_as_written(capsys):
    _common.stdout.print(safe(":dog: and :cat:"))
    assert capsys.readouterr().out == ":dog: and :cat:\n"


def test_write_json_is_the_library_function():
    from wpgdkit.jsonutil import write_json

    assert _common.write_json is write_json


def test_fail_is_one_visible_line(capsys):
    with pytest.raises(SystemExit) as exit_info:
        _common.fail("bad\x1b[2J\nname")
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == "wpgdkit: error: bad\\x1b[2J name\n"


# --- standard output that cannot take more ----------------------------------------------------

import os  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
@pytest.mark.parametrize("args", [["datasets", "--json", "-"], ["datasets"]])
def test_a_full_standard_output_is_one_line_not_a_traceback(args):
    with open("/dev/full", "w") as full:
        done = subprocess.run([sys.executable, "-m", "wpgdkit", *args], stdout=full, stderr=subprocess.PIPE,
                              text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    assert done.stderr == "wpgdkit: error: cannot write to standard output: No space left on device\n"


def test_a_broken_pipe_on_standard_output_is_a_quiet_exit(monkeypatch):
    from typer.testing import CliRunner

    from wpgdkit.cli import app

    def broken(*args, **kwargs):
        raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr("wpgdkit.cli._common.write_json", broken)
    result = CliRunner().invoke(app, ["datasets", "--json", "-"])
    assert result.exit_code == _common.EXIT_BROKEN_PIPE == 1  # Click's convention: quiet, exit 1
    assert result.stderr == ""


def test_another_os_error_keeps_its_traceback(monkeypatch):
    from typer.testing import CliRunner

    from wpgdkit.cli import app

    def other(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr("wpgdkit.cli._common.write_json", other)
    result = CliRunner().invoke(app, ["datasets", "--json", "-"])
    assert isinstance(result.exception, PermissionError)  # a bug, not bad input: not hidden


def test_ctrl_c_in_any_command_is_one_line_and_exit_130(monkeypatch):
    from typer.testing import CliRunner

    from wpgdkit.cli import app

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("wpgdkit.datasets.list_datasets", interrupted)
    result = CliRunner().invoke(app, ["datasets"])
    assert result.exit_code == 130
    assert result.stderr == "wpgdkit: interrupted\n"


def test_sigterm_unwinds_like_ctrl_c_while_a_command_runs():
    import signal

    from wpgdkit.atomic import terminate_as_interrupt

    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(KeyboardInterrupt), terminate_as_interrupt():
        signal.raise_signal(signal.SIGTERM)
    assert signal.getsignal(signal.SIGTERM) is before  # restored
