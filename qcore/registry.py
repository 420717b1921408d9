"""Registries of named components, one per extension kind, and the kinds themselves.

A plugin fills a registry from its ``qcore_register_*`` hook with *factories*: callables that build the component
when it is first used. Heavy imports (torch, lightgbm, mlflow...) belong inside the factory, so listing what is
available never imports them; :func:`lazy` writes such a factory from a ``"package.module:Name"`` string. Each entry
remembers which plugin registered it.

A *kind* (``model``, ``strategy``, a plugin's ``rl_algorithm``...) is described by a :class:`KindSpec`: its name,
the hook that fills it, aliases and an optional protocol every built component must satisfy. The kernel's own kinds
and the kinds plugins declare (``qcore_register_kinds``) are the same thing.
"""

from __future__ import annotations

import importlib
import inspect
import logging
import re
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

import attrs

from qcore.errors import DuplicateComponentError, UnknownComponentError

logger = logging.getLogger(__name__)

T = TypeVar("T")

_KIND_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_TARGET = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")


def resolve(target: str) -> Any:
    """The object ``"package.module:Name"`` (``Name`` may be dotted: ``"mod:Class.method"``) names, imported now."""
    if not isinstance(target, str) or not _TARGET.match(target):
        raise ValueError(f"expected 'package.module:Name', got {target!r}")
    module_name, _, attr = target.partition(":")
    obj: Any = importlib.import_module(module_name)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


class LazyFactory:
    """A factory that imports ``"package.module:Name"`` when first called, then calls it with the arguments.

    Build one with :func:`lazy`. ``target`` is kept (``qcore plugins`` and tests can read it) and :meth:`load`
    returns the imported object without calling it.
    """

    def __init__(self, target: str, description: str = "") -> None:
        if not isinstance(target, str) or not _TARGET.match(target):
            raise ValueError(f"lazy() expects 'package.module:Name', got {target!r}")
        self.target = target
        self.__name__ = self.__qualname__ = target.rpartition(":")[2].rpartition(".")[2]
        self.__doc__ = description or target
        self._loaded: Any = None

    def load(self) -> Any:
        """The object the target names (imported on first use, then cached)."""
        if self._loaded is None:
            self._loaded = resolve(self.target)
        return self._loaded

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.load()(*args, **kwargs)

    @property
    def __signature__(self) -> inspect.Signature:
        """The target's signature (importing it), so argument checks see the real parameters, not ``**kwargs``.

        A target that cannot be imported here (an optional dependency missing) reads as ``(*args, **kwargs)``: the
        error then comes, with its own message, when the component is built.
        """
        try:
            return inspect.signature(self.load())
        except ImportError:
            return inspect.Signature([inspect.Parameter("args", inspect.Parameter.VAR_POSITIONAL),
                                      inspect.Parameter("kwargs", inspect.Parameter.VAR_KEYWORD)])  # fmt: skip

    def __repr__(self) -> str:
        return f"lazy({self.target!r})"


def lazy(target: str, *, description: str = "") -> LazyFactory:
    """A factory for ``register(...)`` that imports ``"package.module:Name"`` only when a component is built.

    ``register("lightgbm", lazy("qmodel_zoo.gbdt:LGBModel", description="LightGBM"))`` keeps importing the plugin
    module cheap: the module named by ``target`` (and whatever heavy package it needs) is imported on the first
    call. The description is what ``qcore list`` shows (the target itself when not given).
    """
    return LazyFactory(target, description)


@attrs.frozen
class KindSpec:
    """A component kind: its registry, the hook that fills it, how it may be spelled and what it must satisfy.

    :ivar name: canonical name (``model``, ``rl_algorithm``): lower case, digits and underscores.
    :ivar hook_name: the hook whose implementations receive a :class:`Registrar` for this kind
        (``qcore_register_models``, ``qrl_register_algorithms``). A kind declared by a plugin may use a hook it
        specified itself (through ``qcore_addhooks``); otherwise the kernel adds a spec ``hook_name(register)``.
    :ivar description: one line shown by ``qcore list``.
    :ivar aliases: other spellings (plurals: ``models``) accepted wherever a kind is named.
    :ivar protocol: what every built component must satisfy: a ``runtime_checkable`` protocol (or any class), or
        ``"package.module:Name"`` naming one (imported when the first component is built); alternatives, any of
        which will do, as a tuple or as names joined by ``|``; ``None`` checks nothing.
    :ivar plugin: the plugin that declared the kind (set by the kernel).
    """

    name: str
    hook_name: str
    description: str = ""
    aliases: tuple[str, ...] = attrs.field(default=(), converter=tuple)
    protocol: type | str | tuple[type | str, ...] | None = None
    plugin: str = ""

    def __attrs_post_init__(self) -> None:
        for key in (self.name, *self.aliases):
            if not isinstance(key, str) or not _KIND_NAME.match(key):
                raise ValueError(f"component kind names are lower-case identifiers, got {key!r}")
        if not isinstance(self.hook_name, str) or not self.hook_name.isidentifier() or "_" not in self.hook_name:
            raise ValueError(f"kind {self.name!r}: hook_name must be an identifier like 'myplugin_register_things', "
                             f"got {self.hook_name!r}")  # fmt: skip

    def resolve_protocol(self) -> type | tuple[type, ...] | None:
        """The protocol class (a tuple of them for alternatives), importing those given as strings."""
        if self.protocol is None:
            return None
        items = self.protocol.split("|") if isinstance(self.protocol, str) else self.protocol
        if not isinstance(items, (list, tuple)):
            return items
        classes = tuple(resolve(item.strip()) if isinstance(item, str) else item for item in items)
        return classes[0] if len(classes) == 1 else classes


def protocol_members(protocol: type) -> list[str]:
    """Public attributes and methods a protocol (or class) declares, in definition order, its bases' included."""
    names: list[str] = []
    for klass in reversed(protocol.__mro__):
        if klass is object or klass.__module__ in ("typing", "typing_extensions"):
            continue
        for name in (*getattr(klass, "__annotations__", {}), *vars(klass)):
            if not name.startswith("_") and name not in names:
                names.append(name)
    return names


def missing_members(obj: object, protocol: type | tuple[type, ...]) -> list[str]:
    """Members of ``protocol`` that ``obj`` lacks (empty when it satisfies it).

    For alternatives (a tuple), empty when ``obj`` satisfies any; else what it lacks of the closest one.
    """
    if isinstance(protocol, tuple):
        gaps = [missing_members(obj, one) for one in protocol]
        return min(gaps, key=len) if gaps else []
    if isinstance(obj, protocol):
        return []
    missing = [name for name in protocol_members(protocol) if not hasattr(obj, name)]
    return missing or [f"(not an instance of {protocol.__qualname__})"]


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


class KindRegistrar:
    """What a ``qcore_register_kinds`` hook receives: declares component kinds owned by the calling plugin.

    ``register_kind("rl_algorithm", "qrl_register_algorithms", description=..., aliases=("rl_algorithms",))`` or
    ``register_kind(KindSpec(...))``.
    """

    def __init__(self, plugin: str, declare: Callable[[KindSpec], None]) -> None:
        self.plugin = plugin
        self._declare = declare

    def __call__(
        self,
        kind: KindSpec | str,
        hook_name: str | None = None,
        *,
        description: str = "",
        aliases: tuple[str, ...] | list[str] = (),
        protocol: type | str | None = None,
    ) -> KindSpec:
        """Declare ``kind`` (a :class:`KindSpec`, or its name and hook); returns the spec as recorded."""
        if isinstance(kind, KindSpec):
            spec = attrs.evolve(kind, plugin=self.plugin)
        else:
            if hook_name is None:
                raise ValueError(f"kind {kind!r} needs a hook_name (the hook that fills its registry)")
            spec = KindSpec(kind, hook_name, description, tuple(aliases), protocol, self.plugin)
        self._declare(spec)
        return spec


Factory = Callable[..., Any]
