"""Where the shipped data files (``metrics/``) live.

In a source checkout or an editable install they are the top-level
``metrics/`` folder; a wheel carries the same files as ``wpgdkit/_metrics/``
(see ``[tool.hatch.build.targets.wheel.force-include]`` in pyproject.toml).
"""

from __future__ import annotations

from pathlib import Path

from wpgdkit.errors import DataNotFoundError

__all__ = ["metrics_dir", "shipped_file"]

_PACKAGE_DIR = Path(__file__).resolve().parent


def metrics_dir() -> Path:
    """Return the folder holding the shipped label metrics and class mappings."""
    installed = _PACKAGE_DIR / "_metrics"
    if installed.is_dir():
        return installed
    return _PACKAGE_DIR.parent / "metrics"


def shipped_file(name: str) -> Path:
    """Return the path of a shipped data file, e.g. ``"cifar10-wordnet.csv"``.

    Raises
    ------
    DataNotFoundError
        If the file is not shipped; the message lists the files that are.
    """
    path = metrics_dir() / name
    if not path.is_file():
        available = sorted(p.name for p in metrics_dir().glob("*") if p.is_file())
        raise DataNotFoundError(
            f"no shipped file {name!r} in {metrics_dir()}; available: {', '.join(available) or 'none'}"
        )
    return path
