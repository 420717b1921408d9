"""The kernel: loaded plugins plus the registries they fill, behind a typed facade.

The rest of qcore (and notebooks) talk to a :class:`Kernel`, never to pluggy's untyped hook relay.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import pluggy

from qcore.errors import PluginLoadError, QcoreError, UnknownComponentError
from qcore.plugins import LoadedPlugins, PluginInfo, PluginSelection, load_plugins
from qcore.registry import Registrar, Registry

logger = logging.getLogger(__name__)

#: Registry kinds and the hook that fills each.
REGISTRY_HOOKS: Mapping[str, str] = {
    "data_provider": "qcore_register_data_providers",
    "market_rules": "qcore_register_market_rules",
    "operator": "qcore_register_operators",
    "feature_set": "qcore_register_feature_sets",
    "processor": "qcore_register_processors",
    "model": "qcore_register_models",
    "strategy": "qcore_register_strategies",
    "executor": "qcore_register_executors",
    "recorder": "qcore_register_recorders",
    "record": "qcore_register_records",
}

#: Plural and short spellings accepted wherever a kind is named (``qcore list models``).
KIND_ALIASES: Mapping[str, str] = {
    "data_providers": "data_provider",
    "providers": "data_provider",
    "provider": "data_provider",
    "data": "data_provider",
    "markets": "market_rules",
    "market": "market_rules",
    "operators": "operator",
    "ops": "operator",
    "feature_sets": "feature_set",
    "features": "feature_set",
    "processors": "processor",
    "models": "model",
    "strategies": "strategy",
    "executors": "executor",
    "recorders": "recorder",
    "records": "record",
}


def normalise_kind(kind: str) -> str:
    """The canonical registry kind for ``kind`` (accepts plurals such as ``models``)."""
    key = kind.strip().lower().replace("-", "_")
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
        """
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

    # -- registries ---------------------------------------------------------------------------------------------

    def _build_registries(self) -> dict[str, Registry[Any]]:
        registries: dict[str, Registry[Any]] = {}
        for kind, hook_name in REGISTRY_HOOKS.items():
            registry: Registry[Any] = Registry(kind)
            caller = getattr(self.pm.hook, hook_name)
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
            registries[kind] = registry
        return registries

    def registry(self, kind: str) -> Registry[Any]:
        """The registry of ``kind`` (``model``, ``models``, ``strategy``...), built on first use."""
        if self._registries is None:
            self._registries = self._build_registries()
        return self._registries[normalise_kind(kind)]

    def create(self, kind: str, name: str, /, **kwargs: Any) -> Any:
        """Build the component ``name`` of ``kind`` with ``kwargs``."""
        return self.registry(kind).create(name, **kwargs)

    # -- introspection --------------------------------------------------------------------------------------------

    def plugins(self) -> list[PluginInfo]:
        """Loaded plugins with their hooks and the components each registered, built-ins first."""
        owned: dict[str, dict[str, list[str]]] = {}
        for kind in REGISTRY_HOOKS:
            for entry in self.registry(kind):
                owned.setdefault(entry.plugin, {}).setdefault(kind, []).append(entry.name)
        out = []
        for name, info in self._loaded.infos.items():
            components = {kind: tuple(names) for kind, names in owned.get(name, {}).items()}
            out.append(
                PluginInfo(
                    info.name, info.module, info.distribution, info.version, info.builtin, info.hooks, components
                )
            )
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
