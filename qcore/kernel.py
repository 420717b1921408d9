"""The kernel: loaded plugins plus the registries they fill, behind a typed facade.

The rest of qcore (and notebooks) talk to a :class:`Kernel`, never to pluggy's untyped hook relay.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import attrs
import pluggy

from qcore.builtin.kinds import BUILTIN_KINDS
from qcore.errors import ComponentContractError, PluginLoadError, QcoreError, UnknownComponentError
from qcore.plugins import LoadedPlugins, PluginInfo, PluginSelection, load_plugins
from qcore.registry import KindSpec, Registrar, Registry, missing_members

if TYPE_CHECKING:
    from qcore.reporting import ComparedRun, ReportSection

logger = logging.getLogger(__name__)

#: The kernel's own registry kinds and the hook that fills each (plugins may declare more: ``Kernel.kinds()``).
REGISTRY_HOOKS: Mapping[str, str] = {spec.name: spec.hook_name for spec in BUILTIN_KINDS}

#: Plural and short spellings of the kernel's own kinds (``qcore list models``).
KIND_ALIASES: Mapping[str, str] = {alias: spec.name for spec in BUILTIN_KINDS for alias in spec.aliases}


def _kind_key(kind: str) -> str:
    return kind.strip().lower().replace("-", "_")


def _asks_for_kernel(factory: Any) -> bool:
    """Whether ``factory`` declares a keyword-only ``kernel`` parameter."""
    try:
        parameter = inspect.signature(factory).parameters.get("kernel")
    except (TypeError, ValueError):
        return False
    return parameter is not None and parameter.kind is inspect.Parameter.KEYWORD_ONLY


def normalise_kind(kind: str) -> str:
    """The canonical name of one of the kernel's own kinds (accepts plurals such as ``models``).

    Plugin-declared kinds need a kernel: :meth:`Kernel.kind`.
    """
    key = _kind_key(kind)
    key = KIND_ALIASES.get(key, key)
    if key not in REGISTRY_HOOKS:
        raise UnknownComponentError("component kind", kind, list(REGISTRY_HOOKS))
    return key


class Kernel:
    """Loaded plugins and the component registries they filled.

    Build one with :meth:`Kernel.load`; each kernel has its own plugin manager and registries, so tests and
    notebooks can hold several with different plugin selections.
    """

    def __init__(self, loaded: LoadedPlugins) -> None:
        self._loaded = loaded
        self._registries: dict[str, Registry[Any]] | None = None
        self._aliases = {alias: spec.name for spec in loaded.kinds.values() for alias in (spec.name, *spec.aliases)}
        self._protocols: dict[str, type | tuple[type, ...] | None] = {}

    @classmethod
    def load(
        cls,
        selection: PluginSelection | None = None,
        *,
        strict: bool = True,
        extra: Mapping[str, object] | None = None,
        use_env: bool = True,
    ) -> Kernel:
        """Load plugins and return a kernel.

        :param selection: plugins to enable or disable; merged after the environment's selection.
        :param strict: raise on a plugin that fails to load instead of skipping it with a warning.
        :param extra: plugin objects to register by name (handy in tests and notebooks).
        :param use_env: honour ``QCORE_PLUGINS`` and ``QCORE_DISABLE_PLUGIN_AUTOLOAD``.

        Loading also stops numpy from asking for transparent huge pages (:func:`qcore.memory.avoid_hugepage_stalls`;
        ``NUMPY_MADVISE_HUGEPAGE`` set by the user keeps their choice): large frames are then written without waiting
        on memory compaction.
        """
        from qcore.memory import avoid_hugepage_stalls

        avoid_hugepage_stalls()
        merged = PluginSelection.from_env() if use_env else PluginSelection()
        if selection is not None:
            merged = merged.then(selection)
        return cls(load_plugins(merged, strict=strict, extra=extra))

    @property
    def pm(self) -> pluggy.PluginManager:
        """The underlying pluggy manager (for advanced use; prefer the methods of this class)."""
        return self._loaded.pm

    @property
    def failures(self) -> Mapping[str, PluginLoadError]:
        """Plugins skipped because they failed to load (non-strict mode only)."""
        return dict(self._loaded.failures)

    # -- kinds -----------------------------------------------------------------------------------------------------

    def kinds(self) -> list[KindSpec]:
        """Every component kind: the kernel's own first, then those plugins declared, in declaration order."""
        return list(self._loaded.kinds.values())

    def kind(self, kind: str) -> KindSpec:
        """The kind named ``kind`` or one of its aliases (``models``); an unknown kind lists the known ones."""
        name = self._aliases.get(_kind_key(kind))
        if name is None:
            raise UnknownComponentError("component kind", kind, list(self._loaded.kinds))
        return self._loaded.kinds[name]

    # -- registries ---------------------------------------------------------------------------------------------

    def _build_registries(self) -> dict[str, Registry[Any]]:
        registries: dict[str, Registry[Any]] = {}
        for kind in self._loaded.kinds.values():
            registry: Registry[Any] = Registry(kind.name)
            caller = getattr(self.pm.hook, kind.hook_name)
            for impl in caller.get_hookimpls():
                registrar = Registrar(registry, impl.plugin_name)
                args = {"register": registrar}
                try:
                    impl.function(**{name: args[name] for name in impl.argnames})
                except QcoreError:
                    raise
                except Exception as exc:
                    info = self._loaded.infos.get(impl.plugin_name)
                    raise PluginLoadError(impl.plugin_name, info.distribution if info else None, exc) from exc
            registries[kind.name] = registry
        return registries

    def registry(self, kind: str) -> Registry[Any]:
        """The registry of ``kind`` (``model``, ``models``, ``strategy``, a plugin's ``rl_algorithm``...), built on
        first use."""
        spec = self.kind(kind)
        if self._registries is None:
            self._registries = self._build_registries()
        return self._registries[spec.name]

    def create(self, kind: str, name: str, /, **kwargs: Any) -> Any:
        """Build the component ``name`` of ``kind`` with ``kwargs``, checked against the kind's protocol.

        A component that does not satisfy its kind's protocol raises :class:`ComponentContractError` naming the
        plugin that registered it and the members it lacks. A factory with a keyword-only ``kernel`` parameter
        receives this kernel when the caller does not pass one (for components that build others by name).
        """
        registry = self.registry(kind)
        entry = registry.entry(name)
        if "kernel" not in kwargs and _asks_for_kernel(entry.factory):
            kwargs["kernel"] = self  # a composite component builds its parts through this kernel's registries
        built = registry.create(name, **kwargs)
        protocol = self._protocol(registry.kind)
        if protocol is not None:
            missing = missing_members(built, protocol)
            if missing:
                alternatives = protocol if isinstance(protocol, tuple) else (protocol,)
                wanted = " or ".join(f"{p.__module__}.{p.__qualname__}" for p in alternatives)
                raise ComponentContractError(registry.kind, entry.name, entry.plugin, type(built).__qualname__,
                                             wanted, missing)
        return built

    def _protocol(self, kind: str) -> type | tuple[type, ...] | None:
        if kind not in self._protocols:
            self._protocols[kind] = self._loaded.kinds[kind].resolve_protocol()
        return self._protocols[kind]

    # -- introspection --------------------------------------------------------------------------------------------

    def plugins(self) -> list[PluginInfo]:
        """Loaded plugins with their hooks and the components each registered, built-ins first."""
        owned: dict[str, dict[str, list[str]]] = {}
        for kind in self._loaded.kinds:
            for entry in self.registry(kind):
                owned.setdefault(entry.plugin, {}).setdefault(kind, []).append(entry.name)
        out = []
        for name, info in self._loaded.infos.items():
            components = {kind: tuple(names) for kind, names in owned.get(name, {}).items()}
            out.append(attrs.evolve(info, components=components))
        return sorted(out, key=lambda i: (not i.builtin, i.name))

    def plugin_names(self) -> list[str]:
        """Names of the loaded plugins."""
        return list(self._loaded.infos)

    # -- hooks ------------------------------------------------------------------------------------------------------

    def register_commands(self, cli: Any) -> None:
        """Let plugins add their subcommands to the click group ``cli``."""
        self.pm.hook.qcore_register_commands(cli=cli, kernel=self)

    def before_run(self, context: Any) -> None:
        """Fire ``qcore_before_run``."""
        self.pm.hook.qcore_before_run(context=context)

    def after_run(self, context: Any, result: Any) -> None:
        """Fire ``qcore_after_run``."""
        self.pm.hook.qcore_after_run(context=context, result=result)

    def on_run_error(self, context: Any, error: BaseException) -> None:
        """Fire ``qcore_on_run_error``."""
        self.pm.hook.qcore_on_run_error(context=context, error=error)

    def translate_config(self, document: Any) -> Any:
        """``qcore_translate_config``: the first plugin's translation of a foreign workflow document, else None."""
        return self.pm.hook.qcore_translate_config(document=document)

    def default_records(self, config: Any) -> list[str]:
        """``qcore_default_records``: the records a config without a ``records`` section runs, each once."""
        names = [name for result in self._in_plugin_order("qcore_default_records", config=config) for name in result]
        return list(dict.fromkeys(names))

    def run_summary(self, config: Any, result: Any) -> list[tuple[str, str]]:
        """``qcore_run_summary``: every plugin's ``(label, formatted value)`` rows for a finished run."""
        rows = self._in_plugin_order("qcore_run_summary", config=config, result=result)
        return [(str(label), str(value)) for part in rows for label, value in part]

    def run_hints(self, config: Any, result: Any) -> list[str]:
        """``qcore_run_hints``: every plugin's "where to look" lines for a finished run."""
        return [str(line) for part in self._in_plugin_order("qcore_run_hints", config=config, result=result)
                for line in part]  # fmt: skip

    def render_comparison(self, runs: Sequence[ComparedRun]) -> list[ReportSection]:
        """``qcore_render_comparison``: every plugin's report sections drawing the compared ``runs``."""
        return [section for part in self._in_plugin_order("qcore_render_comparison", runs=runs)
                for section in part]  # fmt: skip

    def _in_plugin_order(self, hook_name: str, **kwargs: Any) -> list[Any]:
        """Each implementation's non-None result in plugin order: built-ins first, then the others as they were
        registered (pluggy calls them the other way round); ``tryfirst`` ones before, ``trylast`` ones after, each
        group in plugin order."""
        impls = [impl for impl in getattr(self.pm.hook, hook_name).get_hookimpls()
                 if not (impl.hookwrapper or getattr(impl, "wrapper", False))]  # fmt: skip
        # pluggy keeps trylast implementations first and newest first, the others oldest first
        last = [impl for impl in impls if impl.trylast][::-1]
        impls = [i for i in impls if i.tryfirst] + [i for i in impls if not i.tryfirst and not i.trylast] + last
        results = []
        for impl in impls:
            value = impl.function(**{name: kwargs[name] for name in impl.argnames})
            if value is not None:
                results.append(value)
        return results
