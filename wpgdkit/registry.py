"""A named registry (as timm's ``register_model``/``create_model``).

Datasets, metric sources and, later, models and attacks are looked up by name
through one :class:`Registry` each, so an unknown name always fails the same
way: an :class:`~wpgdkit.errors.UnknownNameError` listing the valid names.
The CLI's ``--help`` choices and the parametrised tests read the same names.

A registry given an ``entry_point_group`` also holds what other installed
distributions register through that group (see :mod:`wpgdkit.plugins`):
loaded lazily, at the first read, once; ``WPGDKIT_NO_PLUGINS=1`` disables it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any, Generic, TypeVar

from wpgdkit import plugins
from wpgdkit.errors import UnknownNameError

__all__ = ["Registry"]

T = TypeVar("T")


class _DuplicateNameError(ValueError):
    """A name registered twice; its message already names both registrations."""


class Registry(Generic[T]):
    """Items of one kind by name, plus those plugins register.

    Parameters
    ----------
    kind : str
        What the items are, for messages ("dataset", "metric source").
    sort : bool, default=False
        List names sorted; otherwise in registration order (built-in items,
        registered at import, before plugins' ones).
    entry_point_group : str, optional
        Entry-point group whose plugins register into this registry, e.g.
        ``"wpgdkit.models"``. Its entry points are loaded the first time the
        registry is read (:meth:`names`, :meth:`get`, ``in``, iteration,
        ``len``), not at import, and only once. ``None``: no plugins.

    Notes
    -----
    A plugin that fails is reported by :meth:`get` as a
    :class:`~wpgdkit.plugins.PluginError` (one line, naming the plugin), for
    every name; :meth:`names` and the other reads list what did register and
    never raise it, since the command line builds its ``--help`` choices from
    them at import. The environment variable ``WPGDKIT_NO_PLUGINS=1``
    (any value but empty or ``0``) disables loading, read at the first use.
    See :mod:`wpgdkit.plugins`.
    """

    def __init__(self, kind: str, *, sort: bool = False, entry_point_group: str | None = None) -> None:
        self.kind = kind
        self._sort = sort
        self._items: dict[str, T] = {}
        self.entry_point_group = entry_point_group
        # Which plugin registered a name, so that a clash names both sides.
        self._origins: dict[str, str] = {}
        self._plugins_loaded = entry_point_group is None
        # Set while entry points load: a plugin's registration reads and
        # writes this registry (register_model, list_models) and must neither
        # start the loading again nor see the errors of the plugins before it.
        self._loading = False
        self._loading_origin: str | None = None
        self._loading_added: list[str] = []
        self._plugin_errors: list[plugins.PluginError] = []
        # Two threads reading a fresh registry at once must not both run the plugins.
        self._lock = threading.RLock()

    def register(self, name: str, item: T) -> T:
        """Add ``item`` under ``name`` and return it.

        Registering does not load the plugins (built-in items register at
        import, before anything reads the registry).

        Raises
        ------
        ValueError
            If the name is taken (a programming error, not bad input). While a
            plugin registers, the message names both registrations.
        """
        if name in self._items:
            existing = self._origins.get(name)
            if existing is None and self._loading_origin is None:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            raise _DuplicateNameError(f"{self.kind} {name!r} is already registered by {existing or 'wpgdkit'}")
        self._items[name] = item
        if self._loading_origin is not None:
            self._origins[name] = self._loading_origin
            self._loading_added.append(name)
        return item

    def get(self, name: str) -> T:
        """Return the item named ``name``.

        Raises
        ------
        PluginError
            If a plugin of this registry's group failed to load or register
            (whatever ``name`` is: the registry is incomplete).
        UnknownNameError
            If there is none; the message lists the valid names.
        """
        self._load_plugins()
        self._raise_plugin_errors()
        try:
            return self._items[name]
        except KeyError:
            raise UnknownNameError(f"unknown {self.kind} {name!r}; choose one of: {', '.join(self.names())}") from None

    def copy(self) -> Registry[T]:
        """A registry with the same items (tests register into a copy).

        The plugins are loaded into this registry first, so the copy holds
        them (and their errors) and never loads them a second time.
        """
        self._load_plugins()
        other: Registry[T] = Registry(self.kind, sort=self._sort, entry_point_group=self.entry_point_group)
        other._items = dict(self._items)
        other._origins = dict(self._origins)
        other._plugin_errors = list(self._plugin_errors)
        other._plugins_loaded = True
        return other

    def names(self) -> list[str]:
        """The registered names, plugins' included (sorted, or in registration order)."""
        self._load_plugins()
        return sorted(self._items) if self._sort else list(self._items)

    @property
    def plugin_errors(self) -> tuple[plugins.PluginError, ...]:
        """The errors of the plugins that failed, in loading order (loads them first)."""
        self._load_plugins()
        return tuple(self._plugin_errors)

    def __contains__(self, name: object) -> bool:
        self._load_plugins()
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        self._load_plugins()
        return len(self._items)

    # --- plugins ---------------------------------------------------------------

    def _load_plugins(self) -> None:
        """Load this registry's entry points, once; failures are kept, not raised."""
        if self._plugins_loaded:
            return
        with self._lock:
            if self._plugins_loaded or self._loading:
                return  # done by another thread, or a plugin reading us while it registers
            self._loading = True
            try:
                assert self.entry_point_group is not None
                try:
                    entry_points = plugins.discover(self.entry_point_group)
                except plugins.PluginError as exc:
                    self._plugin_errors.append(exc)
                    entry_points = []
                for ep in entry_points:
                    self._load_one(ep)
            finally:
                self._loading = False
                self._plugins_loaded = True

    def _load_one(self, ep: Any) -> None:
        self._loading_origin = plugins.describe_entry_point(ep)
        self._loading_added = []
        try:
            plugins.run_entry_point(ep)
        except Exception as exc:  # any failure of a third party's code: ImportError, its own bugs
            # Take back what it registered here before failing, so that the
            # names listed are those of complete plugins only.
            for name in self._loading_added:
                self._items.pop(name, None)
                self._origins.pop(name, None)
            self._plugin_errors.append(
                plugins.plugin_failure(ep, exc, with_type=not isinstance(exc, _DuplicateNameError))
            )
        finally:
            self._loading_origin = None
            self._loading_added = []

    def _raise_plugin_errors(self) -> None:
        if not self._plugin_errors or self._loading:
            return
        first = self._plugin_errors[0]
        more = len(self._plugin_errors) - 1
        message = str(first)
        if more:
            message += f" (and {more} more {self.entry_point_group} plugin error{'s' if more > 1 else ''})"
        message += f"; set {plugins.NO_PLUGINS_ENV}=1 to run without plugins"
        raise plugins.PluginError(message) from first.__cause__
