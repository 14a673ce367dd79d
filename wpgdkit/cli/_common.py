"""What every command shares: consoles, the one-line error policy, JSON output, safe printing."""

from __future__ import annotations

import enum
from typing import Any

from rich.console import Console
from rich.markup import escape

# The one-line error policy and the output-path checks live in wpgdkit.cli._errors (no Rich: the root
# command and `--version` need only them); every command imports them from here.
from wpgdkit.cli._errors import (  # noqa: F401
    EXIT_BROKEN_PIPE,
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    OneLineErrorGroup,
    _visible,
    as_flags,
    fail,
    output_file,
    output_folder,
)
from wpgdkit.errors import WpgdkitError
from wpgdkit.device import DEVICE_NAMES

__all__ = ["OneLineErrorGroup", "stdout", "stderr", "fail", "safe", "write_json", "split_list", "choices", "DeviceName", "output_file", "output_folder"]

# emoji=False: a class called ":dog:" is printed as written, not as a picture.
stdout = Console(highlight=False, soft_wrap=False, emoji=False)
stderr = Console(stderr=True, highlight=False, soft_wrap=False, emoji=False)


def safe(text: Any) -> str:
    """``text`` as a string that Rich prints literally: markup escaped, control characters made visible.

    Every user-provided string printed through Rich (class names, paths,
    provenance, commands; Table cells and titles are markup too) goes through
    this, so ``"[critical]"`` stays on screen, ``"[/bold]"`` raises no
    MarkupError and an ESC in a file cannot drive the terminal. Control
    characters become their Python escapes (``"\\x1b"``, ``"\\n"``, ``"\\t"``).

    Parameters
    ----------
    text : any
        Converted with ``str`` first (a Path, a number).

    Returns
    -------
    str
    """
    return escape(_visible(str(text)))


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


def __getattr__(name: str) -> Any:
    # write_json, re-exported for the commands, is loaded on first use: wpgdkit.jsonutil imports
    # NumPy, which `wpgdkit --version` and `--help` never need (PEP 562).
    if name == "write_json":
        from wpgdkit.jsonutil import write_json

        globals()["write_json"] = write_json
        return write_json
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
