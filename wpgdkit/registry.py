"""A named registry (as timm's ``register_model``/``create_model``).

Datasets, metric sources and, later, models and attacks are looked up by name
through one :class:`Registry` each, so an unknown name always fails the same
way: an :class:`~wpgdkit.errors.UnknownNameError` listing the valid names.
The CLI's ``--help`` choices and the parametrised tests read the same names.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Generic, TypeVar

from wpgdkit.errors import UnknownNameError

__all__ = ["Registry"]

T = TypeVar("T")


class Registry(Generic[T]):
    """Items of one kind by name.

    Parameters
    ----------
    kind : str
        What the items are, for messages ("dataset", "metric source").
    sort : bool, default=False
        List names sorted; otherwise in registration order.
    """

    def __init__(self, kind: str, *, sort: bool = False) -> None:
        self.kind = kind
        self._sort = sort
        self._items: dict[str, T] = {}

    def register(self, name: str, item: T) -> T:
        """Add ``item`` under ``name`` and return it.

        Raises
        ------
        ValueError
            If the name is taken (a programming error, not bad input).
        """
        if name in self._items:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        self._items[name] = item
        return item

    def get(self, name: str) -> T:
        """Return the item named ``name``.

        Raises
        ------
        UnknownNameError
            If there is none; the message lists the valid names.
        """
        try:
            return self._items[name]
        except KeyError:
            raise UnknownNameError(f"unknown {self.kind} {name!r}; choose one of: {', '.join(self.names())}") from None

    def copy(self) -> Registry[T]:
        """A registry with the same items (tests register into a copy)."""
        other: Registry[T] = Registry(self.kind, sort=self._sort)
        other._items = dict(self._items)
        return other

    def names(self) -> list[str]:
        return sorted(self._items) if self._sort else list(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._items)
