"""Registries of named components, one per extension kind.

A plugin fills a registry from its ``qcore_register_*`` hook with *factories*: callables that build the component
when it is first used. Heavy imports (torch, lightgbm, mlflow...) belong inside the factory, so listing what is
available never imports them. Each entry remembers which plugin registered it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

import attrs

from qcore.errors import DuplicateComponentError, UnknownComponentError

logger = logging.getLogger(__name__)

T = TypeVar("T")


@attrs.frozen
class Entry(Generic[T]):
    """One registered component.

    :ivar name: the name configs use to refer to it.
    :ivar factory: builds the component (a class, a function, or any callable returning it).
    :ivar plugin: the plugin that registered it.
    :ivar aliases: other names that resolve to it.
    :ivar description: one line shown by ``qcore list``.
    """

    name: str
    factory: T
    plugin: str
    aliases: tuple[str, ...] = ()
    description: str = ""


@attrs.define
class Registry(Generic[T]):
    """Named factories of one kind (``model``, ``strategy``...), each recorded with its owning plugin."""

    kind: str
    _entries: dict[str, Entry[T]] = attrs.field(factory=dict, alias="_entries")
    _aliases: dict[str, str] = attrs.field(factory=dict, alias="_aliases")

    def add(
        self,
        name: str,
        factory: T,
        *,
        plugin: str,
        aliases: tuple[str, ...] | list[str] = (),
        description: str = "",
        override: bool = False,
    ) -> None:
        """Register ``factory`` under ``name``.

        A name (or alias) already taken by another entry is a :class:`DuplicateComponentError` naming both plugins,
        unless ``override`` is true: then the new entry replaces the old one and a warning names both.
        """
        if not isinstance(name, str) or not name:
            raise ValueError(f"{self.kind} names must be non-empty strings, got {name!r} from plugin {plugin!r}")
        if not description:
            doc = getattr(factory, "__doc__", None) or ""
            description = doc.strip().splitlines()[0] if doc.strip() else ""
        entry = Entry(name=name, factory=factory, plugin=plugin, aliases=tuple(aliases), description=description)
        for key in (name, *entry.aliases):
            holder = self._owner_of(key)
            if holder is not None:
                if not override:
                    raise DuplicateComponentError(self.kind, key, holder.plugin, plugin)
                logger.warning(
                    "%s %r from plugin %r overrides the one from plugin %r", self.kind, key, plugin, holder.plugin
                )
                self._remove(holder.name)
        self._entries[name] = entry
        for alias in entry.aliases:
            self._aliases[alias] = name

    def _owner_of(self, key: str) -> Entry[T] | None:
        if key in self._entries:
            return self._entries[key]
        target = self._aliases.get(key)
        return self._entries[target] if target is not None else None

    def _remove(self, name: str) -> None:
        entry = self._entries.pop(name)
        for alias in entry.aliases:
            self._aliases.pop(alias, None)

    def entry(self, name: str) -> Entry[T]:
        """The entry for ``name`` or one of its aliases; an unknown name lists what is available."""
        found = self._owner_of(name)
        if found is None:
            raise UnknownComponentError(self.kind, name, self.names(include_aliases=True))
        return found

    def get(self, name: str) -> T:
        """The factory registered under ``name`` (or an alias of it)."""
        return self.entry(name).factory

    def create(self, name: str, /, **kwargs: Any) -> Any:
        """Build the component ``name`` by calling its factory with ``kwargs``."""
        factory = self.get(name)
        if not callable(factory):
            raise TypeError(f"{self.kind} {name!r} is not callable and cannot be created with arguments")
        return factory(**kwargs)

    def names(self, include_aliases: bool = False) -> list[str]:
        """Registered names, sorted; with ``include_aliases`` the aliases too."""
        names = list(self._entries)
        if include_aliases:
            names += list(self._aliases)
        return sorted(names)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self._owner_of(name) is not None

    def __iter__(self) -> Iterator[Entry[T]]:
        return iter(sorted(self._entries.values(), key=lambda e: e.name))

    def __len__(self) -> int:
        return len(self._entries)


class Registrar(Generic[T]):
    """What a ``qcore_register_*`` hook receives: a registry bound to the calling plugin.

    ``register(name, factory, ...)`` or ``register.add(...)`` adds an entry owned by that plugin; a plugin never
    has to (and cannot) claim another plugin's name for its entries.
    """

    def __init__(self, registry: Registry[T], plugin: str) -> None:
        self._registry = registry
        self.plugin = plugin

    @property
    def kind(self) -> str:
        """The registry's kind (``model``, ``strategy``...)."""
        return self._registry.kind

    def add(
        self,
        name: str,
        factory: T,
        *,
        aliases: tuple[str, ...] | list[str] = (),
        description: str = "",
        override: bool = False,
    ) -> None:
        """Register ``factory`` as ``name``; see :meth:`Registry.add`."""
        self._registry.add(
            name, factory, plugin=self.plugin, aliases=aliases, description=description, override=override
        )

    __call__ = add

    def names(self) -> list[str]:
        """Names registered so far (by every plugin)."""
        return self._registry.names()


Factory = Callable[..., Any]
