"""Finding, selecting and loading plugins.

Built-in plugins (modules of :mod:`qcore.builtin`) and installed plugins (the ``qcore`` entry-point group) are
registered the same way. Which ones load is decided by a :class:`PluginSelection`, merged from the environment
(``QCORE_PLUGINS``, ``QCORE_DISABLE_PLUGIN_AUTOLOAD``), a config's ``plugins:`` section and ``-p`` options. Nothing
is loaded when qcore is imported: a :class:`~qcore.kernel.Kernel` loads plugins when it is built.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.metadata as metadata
import importlib.util
import logging
import os
import types
import warnings
from collections.abc import Iterable, Mapping
from typing import Any

import attrs
import pluggy

from qcore import hookspecs
from qcore.errors import DuplicateComponentError, PluginLoadError, PluginSelectionError, QcoreError
from qcore.registry import KindRegistrar, KindSpec

logger = logging.getLogger(__name__)

#: The pluggy project name and the entry-point group plugins register under.
PROJECT = "qcore"
ENTRY_POINT_GROUP = "qcore"
#: Plugins of the kernel itself, always registered first; essential ones cannot be disabled.
BUILTIN_PLUGINS: Mapping[str, str] = {"core": "qcore.builtin.core", "qlib_workflow": "qcore.builtin.qlib_workflow"}
ESSENTIAL_PLUGINS = frozenset({"core"})
ENV_PLUGINS = "QCORE_PLUGINS"
ENV_NO_AUTOLOAD = "QCORE_DISABLE_PLUGIN_AUTOLOAD"

hookimpl = pluggy.HookimplMarker(PROJECT)
#: Marks a hook specification of a plugin's own (added to the kernel through ``qcore_addhooks``).
hookspec = hookspecs.hookspec


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in {"1", "true", "yes", "on"}


@attrs.frozen
class PluginSelection:
    """Which plugins to load.

    :ivar enable: plugins to load even without autoload (an entry-point name, or a dotted module path).
    :ivar disable: plugins never to load.
    :ivar autoload: load every installed plugin not disabled; ``None`` leaves the choice to a later source
        (and means ``True`` in the end).
    """

    enable: tuple[str, ...] = ()
    disable: tuple[str, ...] = ()
    autoload: bool | None = None

    @classmethod
    def parse(cls, args: Iterable[str], autoload: bool | None = None) -> PluginSelection:
        """Read ``-p``-style arguments: ``name`` enables, ``no:name`` disables; commas separate several."""
        enable: list[str] = []
        disable: list[str] = []
        for arg in args:
            for item in str(arg).split(","):
                item = item.strip()
                if not item:
                    continue
                if item.startswith("no:"):
                    name = item[3:].strip()
                    if not name:
                        raise PluginSelectionError(f"plugin selection {item!r} names no plugin after 'no:'")
                    disable.append(name)
                else:
                    enable.append(item)
        return cls(tuple(enable), tuple(disable), autoload)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> PluginSelection:
        """The selection given by ``QCORE_PLUGINS`` and ``QCORE_DISABLE_PLUGIN_AUTOLOAD``."""
        env = os.environ if environ is None else environ
        autoload = False if _truthy(env.get(ENV_NO_AUTOLOAD)) else None
        return cls.parse([env.get(ENV_PLUGINS, "")], autoload=autoload)

    def then(self, later: PluginSelection) -> PluginSelection:
        """Merge with a selection that takes precedence (a later source: env, then config, then command line)."""
        enable = [n for n in self.enable if n not in later.disable] + [n for n in later.enable if n not in self.enable]
        disable = [n for n in self.disable if n not in later.enable] + [
            n for n in later.disable if n not in self.disable
        ]
        autoload = self.autoload if later.autoload is None else later.autoload
        return PluginSelection(tuple(enable), tuple(disable), autoload)

    @property
    def autoloads(self) -> bool:
        """Whether installed plugins load without being named."""
        return self.autoload is not False


@attrs.frozen
class PluginInfo:
    """What ``qcore plugins`` shows about one loaded plugin."""

    name: str
    module: str
    distribution: str | None = None
    version: str | None = None
    builtin: bool = False
    hooks: tuple[str, ...] = ()
    components: Mapping[str, tuple[str, ...]] = attrs.field(factory=dict)
    kinds: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready mapping (the stable ``qcore plugins --json`` schema)."""
        return {
            "name": self.name,
            "module": self.module,
            "distribution": self.distribution,
            "version": self.version,
            "builtin": self.builtin,
            "hooks": list(self.hooks),
            "components": {kind: list(names) for kind, names in self.components.items()},
            "kinds": list(self.kinds),
        }


def installed_entry_points() -> dict[str, metadata.EntryPoint]:
    """Entry points of the ``qcore`` group by name (the first one wins if two distributions share a name)."""
    found: dict[str, metadata.EntryPoint] = {}
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        if ep.name in found:
            logger.warning("two distributions register the qcore plugin %r; using the first", ep.name)
            continue
        found[ep.name] = ep
    return dict(sorted(found.items()))


def _dist_of(ep: metadata.EntryPoint) -> tuple[str | None, str | None]:
    dist = getattr(ep, "dist", None)
    if dist is None:
        return None, None
    return dist.metadata["Name"], dist.version


def new_plugin_manager() -> pluggy.PluginManager:
    """An empty plugin manager that knows qcore's hook specifications."""
    pm = pluggy.PluginManager(PROJECT)
    pm.add_hookspecs(hookspecs)
    # Historic: every plugin registered later gets the call too, so it can add hook specs of its own.
    pm.hook.qcore_addhooks.call_historic(kwargs={"pluginmanager": pm})
    return pm


@attrs.define
class LoadedPlugins:
    """The outcome of :func:`load_plugins`: the manager, what was loaded, and what failed (non-strict mode)."""

    pm: pluggy.PluginManager
    infos: dict[str, PluginInfo]
    failures: dict[str, PluginLoadError] = attrs.field(factory=dict)
    kinds: dict[str, KindSpec] = attrs.field(factory=dict)


def _hook_names(pm: pluggy.PluginManager, plugin: object) -> tuple[str, ...]:
    callers = pm.get_hookcallers(plugin) or []
    return tuple(sorted(c.name for c in callers))


def _register(pm: pluggy.PluginManager, plugin: object, name: str, dist: str | None) -> None:
    try:
        pm.register(plugin, name=name)
    except pluggy.PluginValidationError as exc:
        raise PluginLoadError(name, dist, exc) from exc
    except ValueError as exc:  # already registered under another name
        raise PluginLoadError(name, dist, exc) from exc


def _load_error(infos: Mapping[str, PluginInfo], plugin: str, cause: BaseException) -> PluginLoadError:
    info = infos.get(plugin)
    return PluginLoadError(plugin, info.distribution if info else None, cause)


def _declare_kinds(
    pm: pluggy.PluginManager, infos: Mapping[str, PluginInfo]
) -> tuple[dict[str, KindSpec], dict[str, PluginLoadError]]:
    """Call every ``qcore_register_kinds`` (built-ins first) and make sure each kind's hook has a spec.

    Returns the kinds by name and one error per plugin whose declaration failed (a kind or alias another plugin
    already declared, a bad spec, a hook that cannot take ``register``); a failed plugin's kinds are dropped.
    """
    kinds: dict[str, KindSpec] = {}
    owners: dict[str, KindSpec] = {}  # every name and alias -> its kind
    errors: dict[str, PluginLoadError] = {}

    def declare(spec: KindSpec) -> None:
        for key in (spec.name, *spec.aliases):
            holder = owners.get(key)
            if holder is not None:
                raise DuplicateComponentError("component kind", key, holder.plugin, spec.plugin)
        kinds[spec.name] = spec
        owners.update(dict.fromkeys((spec.name, *spec.aliases), spec))

    for impl in pm.hook.qcore_register_kinds.get_hookimpls():
        before = dict(kinds)
        try:
            impl.function(**{n: KindRegistrar(impl.plugin_name, declare) for n in impl.argnames})
            for spec in [k for name, k in kinds.items() if name not in before]:
                _ensure_spec(pm, spec)
        except Exception as exc:
            errors[impl.plugin_name] = _load_error(infos, impl.plugin_name, exc)
            for name in set(kinds) - set(before):
                del kinds[name]
            owners = {key: k for key, k in owners.items() if k.name in kinds}
    return kinds, errors


def _ensure_spec(pm: pluggy.PluginManager, kind: KindSpec) -> None:
    """Add the spec ``hook_name(register)`` for ``kind`` unless a plugin specified the hook itself."""
    caller = getattr(pm.hook, kind.hook_name, None)
    if caller is not None and caller.has_spec():
        if "register" not in caller.spec.argnames:
            raise TypeError(f"kind {kind.name!r}: hook {kind.hook_name!r} does not take a 'register' argument")
        return

    def spec(register: Any) -> None:
        """Register components."""

    spec.__name__ = kind.hook_name
    spec.__doc__ = f"Register {kind.name} components: ``register(name, factory, ...)``. {kind.description}".strip()
    try:
        pm.add_hookspecs(types.SimpleNamespace(**{kind.hook_name: hookspec(spec)}))
    except pluggy.PluginValidationError as exc:  # an implementation that takes other arguments than register
        raise QcoreError(f"kind {kind.name!r}: {exc}") from exc


def _pending_errors(pm: pluggy.PluginManager, infos: Mapping[str, PluginInfo]) -> dict[str, PluginLoadError]:
    """Hookimpls with no matching spec (misspelled hook names), as one error per offending plugin.

    A hook is checked when its prefix (``qcore_``, ``qrl_``...) is one some specified hook uses: the kernel's, or
    that of a plugin that added hooks or declared kinds. A hook of a plugin that is not loaded stays optional.
    """
    specs = sorted(n for n in vars(pm.hook) if getattr(pm.hook, n).has_spec())
    prefixes = {name.split("_", 1)[0] + "_" for name in specs}
    errors: dict[str, PluginLoadError] = {}
    for hook_name in list(vars(pm.hook)):
        caller = getattr(pm.hook, hook_name)
        if caller.has_spec() or not hook_name.startswith(tuple(prefixes)):
            continue
        for impl in caller.get_hookimpls():
            if impl.optionalhook or impl.plugin_name in errors:
                continue
            close = difflib.get_close_matches(hook_name, specs, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            cause = pluggy.PluginValidationError(
                impl.plugin, f"unknown hook {hook_name!r} in plugin {impl.plugin_name!r}{hint}"
            )
            errors[impl.plugin_name] = _load_error(infos, impl.plugin_name, cause)
    return errors


def load_plugins(
    selection: PluginSelection | None = None,
    *,
    strict: bool = True,
    extra: Mapping[str, object] | None = None,
) -> LoadedPlugins:
    """Build a fresh plugin manager and register the selected plugins.

    Order: built-ins, then ``extra`` plugin objects (tests), then enabled module paths, then installed entry points
    (all of them with autoload, else only the enabled ones), each in name order.

    :param selection: which plugins to load; ``None`` loads every installed plugin.
    :param strict: a plugin that fails to import or register raises :class:`PluginLoadError`; when false it is
        skipped with a warning and recorded in ``failures``.
    :param extra: plugin objects to register by name, as if they were installed.
    """
    selection = selection or PluginSelection()
    pm = new_plugin_manager()
    infos: dict[str, PluginInfo] = {}
    failures: dict[str, PluginLoadError] = {}

    blocked_essentials = ESSENTIAL_PLUGINS & set(selection.disable)
    if blocked_essentials:
        raise PluginSelectionError(f"plugin {sorted(blocked_essentials)[0]!r} is essential and cannot be disabled")
    for name in selection.disable:
        pm.set_blocked(name)

    def attempt(name: str, dist: str | None, version: str | None, module: str, get: Any, builtin: bool) -> None:
        try:
            plugin = get()
            _register(pm, plugin, name, dist)
        except PluginLoadError as exc:
            error = exc
        except Exception as exc:  # an import error or anything a plugin module raises at import
            error = PluginLoadError(name, dist, exc)
            error.__cause__ = exc
        else:
            infos[name] = PluginInfo(name, module, dist, version, builtin, _hook_names(pm, plugin))
            logger.debug("loaded plugin %s (%s %s)", name, dist or module, version or "")
            return
        if strict:
            raise error
        warnings.warn(str(error), RuntimeWarning, stacklevel=3)
        failures[name] = error

    for name, module in BUILTIN_PLUGINS.items():
        if name not in selection.disable:
            attempt(name, "qcore", _kernel_version(), module, lambda m=module: importlib.import_module(m), True)
    for name, plugin in (extra or {}).items():
        if name not in selection.disable:
            mod = getattr(plugin, "__name__", type(plugin).__name__)
            attempt(name, None, None, mod, lambda p=plugin: p, False)

    entry_points = installed_entry_points()
    wanted = set(entry_points) if selection.autoloads else set()
    for name in selection.enable:
        if name in infos or name in BUILTIN_PLUGINS:
            continue
        if name in entry_points:
            wanted.add(name)
        elif _importable(name):
            attempt(name, None, None, name, lambda m=name: importlib.import_module(m), False)
        else:
            available = sorted(set(entry_points) | set(BUILTIN_PLUGINS))
            close = difflib.get_close_matches(name, available, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise PluginSelectionError(f"no installed plugin named {name!r}{hint} (installed: {', '.join(available)})")
    for name in sorted(wanted):
        if name in selection.disable or name in infos:
            continue
        ep = entry_points[name]
        dist, version = _dist_of(ep)
        attempt(name, dist, version, ep.value, ep.load, False)

    kinds, kind_errors = _declare_kinds(pm, infos)
    for name, error in {**kind_errors, **_pending_errors(pm, infos)}.items():
        if strict or name in ESSENTIAL_PLUGINS:
            raise error
        warnings.warn(str(error), RuntimeWarning, stacklevel=2)
        pm.unregister(name=name)
        infos.pop(name, None)
        failures[name] = error
        kinds = {k: spec for k, spec in kinds.items() if spec.plugin != name}
    for name, info in infos.items():
        declared = tuple(k for k, spec in kinds.items() if spec.plugin == name)
        if declared:
            infos[name] = attrs.evolve(info, kinds=declared)
    logger.info(
        "loaded %d plugin(s): %s",
        len(infos),
        ", ".join(f"{n} ({i.distribution or i.module} {i.version or ''})".strip() for n, i in infos.items()),
    )
    return LoadedPlugins(pm, infos, failures, kinds)


def _importable(module: str) -> bool:
    """Whether ``module`` names an importable module (a local plugin enabled by path, ``-p mypkg.plugin``)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def _kernel_version() -> str:
    from qcore import __version__

    return __version__
