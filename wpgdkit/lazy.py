"""Package attributes imported on first use (PEP 562), so that ``import wpgdkit`` and the CLI stay light.

A package lists ``{name: module}`` and takes its ``__getattr__`` and
``__dir__`` from :func:`lazy_attributes`; the first access to ``name`` imports
``module`` (torch, scipy, ... come with it) and caches the value in the
package's namespace, so later accesses cost nothing.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["lazy_attributes"]


def lazy_attributes(package: str, namespace: dict[str, Any], table: Mapping[str, str]
                    ) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for ``package``, whose globals are ``namespace``, resolving names from ``table``."""

    def __getattr__(name: str) -> Any:
        if name in table:
            value = getattr(importlib.import_module(table[name]), name)
            namespace[name] = value
            return value
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(table))

    return __getattr__, __dir__
