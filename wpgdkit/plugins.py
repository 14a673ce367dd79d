"""Plugins: models, datasets and metric sources from other distributions.

A separate distribution adds names to wpgdkit's registries by declaring
entry points (read with :mod:`importlib.metadata`, as timm-style plugin
registries do) in one of three groups:

========================== ============================================
group                      registry
========================== ============================================
``wpgdkit.models``         :func:`wpgdkit.models.register_model`
``wpgdkit.datasets``       :func:`wpgdkit.datasets.register_dataset`
``wpgdkit.metric_sources`` :func:`wpgdkit.labelmetric.register_source`
========================== ============================================

For example, in the plugin's ``pyproject.toml``::

    [project.entry-points."wpgdkit.models"]
    tabular = "wpgdkit_tabular:register_models"

An entry point names either a registration function, called with no
arguments, or a module, whose import is the registration (its
``@register_model`` decorators run). A registry loads its group the first
time it is read (names, an item, membership, iteration, length), once per
process and in a stable order: sorted by distribution name, then entry-point
name. ``import wpgdkit`` and building a registry read no metadata.

Errors
------
A plugin that fails to import, whose registration raises, or that registers a
name already taken does not stop the others from loading: what it registered
in that registry is removed again and a :class:`PluginError` is kept, one line
naming the distribution, the entry point and the error::

    plugin 'wpgdkit-tabular' (wpgdkit.models: tabular = wpgdkit_tabular:register) failed: ImportError: ...

It is raised by :meth:`~wpgdkit.registry.Registry.get` (every lookup of an
item in that registry, built-in names included), so a command that uses the
registry ends with that line and exit code 2 rather than running with a
half-registered plugin. Listing names (``names()``, ``in``, iteration,
``len``) does not raise and gives the names that did register: the command
line builds its ``--help`` choices from them when it is imported, and
``wpgdkit --version`` and ``--help`` must keep working whatever plugin is
installed.

Environment
-----------
``WPGDKIT_NO_PLUGINS=1``
    Load no entry points at all, e.g. to run wpgdkit while a broken plugin
    is installed, or to find out whether a plugin causes a problem. Any value
    but empty or ``0`` disables them; it is read at the first use of each
    registry, not at import.
"""

from __future__ import annotations

import os
import types
from collections.abc import Callable
from typing import Any

from wpgdkit.errors import WpgdkitError

__all__ = [
    "DATASETS_GROUP",
    "ENTRY_POINT_GROUPS",
    "METRIC_SOURCES_GROUP",
    "MODELS_GROUP",
    "NO_PLUGINS_ENV",
    "PluginError",
    "describe_entry_point",
    "discover",
    "plugin_failure",
    "plugins_disabled",
    "run_entry_point",
]

#: Entry-point group of model plugins.
MODELS_GROUP = "wpgdkit.models"
#: Entry-point group of dataset plugins.
DATASETS_GROUP = "wpgdkit.datasets"
#: Entry-point group of metric-source plugins.
METRIC_SOURCES_GROUP = "wpgdkit.metric_sources"
#: Every group wpgdkit reads.
ENTRY_POINT_GROUPS: tuple[str, ...] = (MODELS_GROUP, DATASETS_GROUP, METRIC_SOURCES_GROUP)

#: Environment variable that, set to anything but empty or ``0``, disables plugin loading.
NO_PLUGINS_ENV = "WPGDKIT_NO_PLUGINS"

# A plugin's error message is printed as one line: longer ones are cut here
# (the full exception stays on __cause__ for a debugger or a traceback).
_MAX_MESSAGE = 500


class PluginError(WpgdkitError):
    """A plugin (an entry point of another distribution) failed to load or register.

    The message is one line naming the distribution, the entry point and the
    error; the original exception, if any, is the ``__cause__``.
    """


def plugins_disabled() -> bool:
    """Whether ``$WPGDKIT_NO_PLUGINS`` disables entry-point loading."""
    return os.environ.get(NO_PLUGINS_ENV, "").strip() not in ("", "0")


def discover(group: str) -> list[Any]:
    """The entry points of ``group``, sorted by distribution name, then entry-point name.

    Parameters
    ----------
    group : str
        An entry-point group, e.g. :data:`MODELS_GROUP`.

    Returns
    -------
    list of importlib.metadata.EntryPoint
        Empty when :func:`plugins_disabled`.

    Raises
    ------
    PluginError
        If the installed distributions' metadata cannot be read.
    """
    if plugins_disabled():
        return []
    # Imported here, not at module level: importlib.metadata pulls in email,
    # zipfile and csv, which `import wpgdkit` and `wpgdkit --version` never need.
    import importlib.metadata

    try:
        found = list(importlib.metadata.entry_points(group=group))
    except Exception as exc:  # a corrupt METADATA or entry_points.txt of any distribution
        raise PluginError(f"cannot list the {group} plugins: {_one_line(exc)}") from exc
    # The order registration happens in decides list order and which of two
    # clashing plugins wins, so it must not depend on sys.path or file-system order.
    return sorted(found, key=lambda ep: (_dist_name(ep).casefold(), ep.name))


def describe_entry_point(ep: Any) -> str:
    """``plugin 'dist' (group: name = value)``, how messages name an entry point."""
    where = f"({ep.group}: {ep.name} = {ep.value})"
    dist = _dist_name(ep)
    return f"plugin {dist!r} {where}" if dist else f"plugin {where}"


def run_entry_point(ep: Any) -> None:
    """Load ``ep`` and run its registration.

    A callable is called with no arguments; a module has registered by being
    imported. Exceptions propagate (the registry turns them into a
    :class:`PluginError`).

    Raises
    ------
    TypeError
        If the entry point names something else (a constant, an instance).
    """
    target = ep.load()
    if isinstance(target, types.ModuleType):
        return
    if not callable(target):
        raise TypeError(f"the entry point names a {type(target).__name__}, not a registration function or a module")
    register: Callable[[], object] = target
    register()


def plugin_failure(ep: Any, exc: BaseException, *, with_type: bool = True) -> PluginError:
    """The :class:`PluginError` for ``exc`` raised while loading ``ep``, one line."""
    what = f"{type(exc).__name__}: {_one_line(exc)}" if with_type else _one_line(exc)
    error = PluginError(f"{describe_entry_point(ep)} failed: {what}")
    error.__cause__ = exc
    return error


def _dist_name(ep: Any) -> str:
    dist = getattr(ep, "dist", None)
    name = getattr(dist, "name", None) if dist is not None else None
    return str(name) if name else ""


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or "(no message)"
    return text if len(text) <= _MAX_MESSAGE else text[: _MAX_MESSAGE - 3] + "..."
