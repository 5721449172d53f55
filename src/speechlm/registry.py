"""Name -> thing registries (formats, architectures, objectives, stages), with helpful misses.

A registry knows the modules that register into it and imports them on first lookup, so adding
a format, an architecture or a stage is a new module plus its name in one ``modules`` tuple;
nothing else is edited. A name that is not registered raises a ``ConfigError`` listing the valid
names.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from speechlm.errors import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    """A mapping of names to specs, filled by the modules it lists (imported lazily)."""

    def __init__(self, kind: str, modules: tuple[str, ...] = ()) -> None:
        self.kind = kind
        self.modules = modules
        self._items: dict[str, T] = {}
        self._loaded = False

    def add(self, name: str, item: T) -> T:
        """Register ``item`` as ``name`` (a second registration of a name is a bug)."""
        if name in self._items and self._items[name] is not item:
            raise ValueError(f"{self.kind} '{name}' is registered twice")
        self._items[name] = item
        return item

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator form of :meth:`add`."""
        return lambda item: self.add(name, item)

    def _load(self) -> None:
        if not self._loaded:
            self._loaded = True
            for module in self.modules:
                importlib.import_module(module)

    def get(self, name: str, key: str | None = None) -> T:
        """The item called ``name``; a miss names ``key`` (or the kind) and the valid names."""
        self._load()
        if name not in self._items:
            where = key or self.kind
            raise ConfigError(f"{where}: unknown {self.kind} '{name}'; valid: "
                              f"{', '.join(self.names())}")
        return self._items[name]

    def names(self) -> list[str]:
        """Registered names, in registration order."""
        self._load()
        return list(self._items)

    def __contains__(self, name: object) -> bool:
        self._load()
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())
