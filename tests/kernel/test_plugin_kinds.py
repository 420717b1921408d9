"""Component kinds a plugin declares behave like the kernel's own: registries, listing, ownership, clashes,
did-you-mean, misspelled hooks and protocol checks."""

from __future__ import annotations

import json
import types
from typing import Any, Protocol, runtime_checkable

import pytest
from click.testing import CliRunner

from qcore import KindSpec, hookimpl, hookspec, lazy
from qcore import plugins as plugins_mod
from qcore.builtin.kinds import BUILTIN_KINDS
from qcore.errors import ComponentContractError, DuplicateComponentError, PluginLoadError, UnknownComponentError
from qcore.kernel import KIND_ALIASES, REGISTRY_HOOKS, Kernel, normalise_kind
from qcore.plugins import PluginSelection, load_plugins
from tests.kernel.test_plugins import FakeEntryPoint, module


@runtime_checkable
class RiskModel(Protocol):
    """What the ``risk_model`` kind of these tests requires."""

    def covariance(self, returns: Any) -> Any: ...


class Diagonal:
    def covariance(self, returns: Any) -> Any:
        return "diag"


class Broken:
    """Registered as a risk model although it has no ``covariance``."""


class RiskSpecs:
    @hookspec
    def risk_register_models(self, register: Any) -> None:
        """Register risk models."""


def risk_plugin(**extra: Any) -> types.ModuleType:
    """Declares ``risk_model`` (with its own hookspec and a protocol) and registers one of them."""

    def qcore_addhooks(pluginmanager: Any) -> None:
        pluginmanager.add_hookspecs(RiskSpecs)

    def qcore_register_kinds(register_kind: Any) -> None:
        register_kind(KindSpec("risk_model", "risk_register_models", "Covariance estimators.", ("risk_models",),
                               RiskModel))

    def risk_register_models(register: Any) -> None:
        register("diagonal", Diagonal)

    hooks = {"qcore_addhooks": qcore_addhooks, "qcore_register_kinds": qcore_register_kinds,
             "risk_register_models": risk_register_models, **extra}
    return module("risk", **hooks)


def optimiser_plugin() -> types.ModuleType:
    """Declares ``optimiser`` without a hookspec of its own: the kernel adds ``opt_register_optimisers(register)``."""

    def qcore_register_kinds(register_kind: Any) -> None:
        register_kind("optimiser", "opt_register_optimisers", description="Portfolio optimisers.")

    def opt_register_optimisers(register: Any) -> None:
        register("equal", lazy("collections:OrderedDict", description="Equal weights."))

    return module("opt", qcore_register_kinds=qcore_register_kinds, opt_register_optimisers=opt_register_optimisers)


def third_party(**hooks: Any) -> types.ModuleType:
    return module("third", **hooks)


@pytest.fixture
def fake_eps(monkeypatch: pytest.MonkeyPatch):
    def install(**eps: FakeEntryPoint) -> None:
        monkeypatch.setattr(plugins_mod, "installed_entry_points", lambda: dict(sorted(eps.items())))

    return install


def test_builtin_kinds_come_from_one_table() -> None:
    kernel = Kernel(load_plugins(PluginSelection(autoload=False)))
    assert [(k.name, k.hook_name, k.plugin) for k in kernel.kinds()] == [
        (k.name, k.hook_name, "core") for k in BUILTIN_KINDS
    ]
    assert dict(REGISTRY_HOOKS) == {k.name: k.hook_name for k in BUILTIN_KINDS}
    assert KIND_ALIASES["models"] == "model" and normalise_kind("Strategies") == "strategy"
    from qcore import hookspecs

    specified = {n for n in dir(hookspecs) if n.startswith("qcore_register_")} - {
        "qcore_register_commands", "qcore_register_kinds"}
    assert specified == set(REGISTRY_HOOKS.values())


def test_declared_kind_is_a_registry_like_the_builtins(fake_eps) -> None:
    fake_eps(risk=FakeEntryPoint("risk", risk_plugin), third=FakeEntryPoint("third", lambda: third_party(
        risk_register_models=lambda register: register("shrunk", Diagonal, aliases=("ledoit_wolf",)))))
    kernel = Kernel(load_plugins(PluginSelection(autoload=False, enable=("risk", "third"))))
    spec = kernel.kind("risk_models")
    assert (spec.name, spec.plugin, spec.protocol) == ("risk_model", "risk", RiskModel)
    registry = kernel.registry("risk_model")
    assert registry.names() == ["diagonal", "shrunk"]
    assert registry.entry("ledoit_wolf").plugin == "third"
    assert kernel.create("risk_model", "shrunk").covariance(None) == "diag"
    infos = {i.name: i for i in kernel.plugins()}
    assert infos["risk"].kinds == ("risk_model",)
    assert infos["risk"].components == {"risk_model": ("diagonal",)}
    assert infos["third"].components == {"risk_model": ("shrunk",)}
    with pytest.raises(UnknownComponentError, match="unknown risk_model 'diagonl'; did you mean 'diagonal'"):
        kernel.create("risk_model", "diagonl")
    with pytest.raises(UnknownComponentError, match="unknown component kind 'risk_modle'; did you mean 'risk_model'"):
        kernel.registry("risk_modle")


def test_kernel_adds_the_spec_of_a_kind_without_one(fake_eps) -> None:
    fake_eps(opt=FakeEntryPoint("opt", optimiser_plugin))
    kernel = Kernel(load_plugins(PluginSelection(autoload=False, enable=("opt",))))
    assert kernel.pm.hook.opt_register_optimisers.spec.argnames == ("register",)
    entry = kernel.registry("optimiser").entry("equal")
    assert (entry.plugin, entry.description) == ("opt", "Equal weights.")
    assert kernel.create("optimiser", "equal", a=1) == {"a": 1}


def test_component_clash_names_both_plugins(fake_eps) -> None:
    fake_eps(risk=FakeEntryPoint("risk", risk_plugin), third=FakeEntryPoint("third", lambda: third_party(
        risk_register_models=lambda register: register("diagonal", Diagonal))))
    kernel = Kernel(load_plugins(PluginSelection(autoload=False, enable=("risk", "third"))))
    with pytest.raises(DuplicateComponentError, match="risk_model 'diagonal' is registered by both plugin 'risk' "
                                                      "and plugin 'third'"):
        kernel.registry("risk_model")


def test_kind_clash_names_both_plugins(fake_eps) -> None:
    def clash(register_kind: Any) -> None:
        register_kind("risk_models_v2", "other_register_things", aliases=("risk_models",))

    fake_eps(risk=FakeEntryPoint("risk", risk_plugin),
             third=FakeEntryPoint("third", lambda: third_party(qcore_register_kinds=clash)))
    with pytest.raises(PluginLoadError, match=r"plugin 'third'.*component kind 'risk_models' is registered by both "
                                              r"plugin 'risk' and plugin 'third'"):
        load_plugins(PluginSelection(autoload=False, enable=("risk", "third")))
    fake_eps(third=FakeEntryPoint("third", lambda: third_party(
        qcore_register_kinds=lambda register_kind: register_kind("model", "third_register_models"))))
    with pytest.raises(PluginLoadError, match="component kind 'model' is registered by both plugin 'core' and "
                                              "plugin 'third'"):
        load_plugins(PluginSelection(autoload=False, enable=("third",)))
    with pytest.warns(RuntimeWarning, match="plugin 'third'"):
        loaded = load_plugins(PluginSelection(autoload=False, enable=("third",)), strict=False)
    assert "third" in loaded.failures and list(loaded.kinds) == [k.name for k in BUILTIN_KINDS]


def test_misspelled_hook_of_a_declared_kind_fails_at_load(fake_eps) -> None:
    fake_eps(risk=FakeEntryPoint("risk", risk_plugin), third=FakeEntryPoint("third", lambda: third_party(
        risk_register_model=lambda register: None)))
    with pytest.raises(PluginLoadError, match=r"plugin 'third'.*unknown hook 'risk_register_model'.*did you mean "
                                              r"'risk_register_models'"):
        load_plugins(PluginSelection(autoload=False, enable=("risk", "third")))
    fake_eps(opt=FakeEntryPoint("opt", optimiser_plugin), third=FakeEntryPoint("third", lambda: third_party(
        opt_register_optimizers=lambda register: None)))
    with pytest.raises(PluginLoadError, match="did you mean 'opt_register_optimisers'"):
        load_plugins(PluginSelection(autoload=False, enable=("opt", "third")))
    with pytest.warns(RuntimeWarning, match="unknown hook 'opt_register_optimizers'"):
        loaded = load_plugins(PluginSelection(autoload=False, enable=("opt", "third")), strict=False)
    assert "third" in loaded.failures and "optimiser" in loaded.kinds


def test_hook_of_a_plugin_that_is_not_loaded_stays_optional(fake_eps) -> None:
    fake_eps(third=FakeEntryPoint("third", lambda: third_party(risk_register_models=lambda register: None)))
    kernel = Kernel(load_plugins(PluginSelection(autoload=False, enable=("third",))))
    assert "third" in kernel.plugin_names()
    with pytest.raises(UnknownComponentError, match="unknown component kind 'risk_model'"):
        kernel.registry("risk_model")


def test_hook_that_cannot_take_register_is_refused(fake_eps) -> None:
    fake_eps(third=FakeEntryPoint("third", lambda: third_party(
        qcore_register_kinds=lambda register_kind: register_kind("thing", "qcore_before_run"))))
    with pytest.raises(PluginLoadError, match="hook 'qcore_before_run' does not take a 'register' argument"):
        load_plugins(PluginSelection(autoload=False, enable=("third",)))
    for bad in (lambda k: k("Bad Name", "x_register_y"), lambda k: k("thing", "noprefix"), lambda k: k("thing")):
        fake_eps(third=FakeEntryPoint("third", lambda bad=bad: third_party(qcore_register_kinds=bad)))
        with pytest.raises(PluginLoadError, match="plugin 'third'"):
            load_plugins(PluginSelection(autoload=False, enable=("third",)))


def test_create_checks_the_kind_protocol_and_names_the_plugin(fake_eps) -> None:
    fake_eps(risk=FakeEntryPoint("risk", risk_plugin), third=FakeEntryPoint("third", lambda: third_party(
        risk_register_models=lambda register: register("broken", Broken),
        qcore_register_strategies=lambda register: register("not_a_strategy", Diagonal))))
    kernel = Kernel(load_plugins(PluginSelection(autoload=False, enable=("risk", "third"))))
    with pytest.raises(ComponentContractError) as info:
        kernel.create("risk_model", "broken")
    assert str(info.value) == (
        "risk_model 'broken' from plugin 'third' built a Broken, which does not satisfy "
        "tests.kernel.test_plugin_kinds.RiskModel: missing covariance"
    )
    with pytest.raises(ComponentContractError, match=r"strategy 'not_a_strategy' from plugin 'third'.*qcore\.trading"
                                                     r"\.Strategy or qcore\.trading\.WeightStrategy: missing reset, "
                                                         r"generate_trade_decision"):
        kernel.create("strategy", "not_a_strategy")


def test_every_registered_builtin_kind_component_satisfies_its_protocol(kernel: Kernel) -> None:
    """Every installed strategy, executor, recorder and model class has its kind's methods (no TopkEqualWeight)."""
    from qcore.registry import LazyFactory, protocol_members

    for spec in kernel.kinds():
        protocol = spec.resolve_protocol()
        if protocol is None or spec.plugin != "core":
            continue
        for entry in kernel.registry(spec.name):
            target = entry.factory.load() if isinstance(entry.factory, LazyFactory) else entry.factory
            if isinstance(target, type):
                alternatives = protocol if isinstance(protocol, tuple) else (protocol,)
                satisfied = []
                for one in alternatives:
                    methods = [m for m in protocol_members(one) if callable(getattr(one, m, None))]
                    satisfied.append(bool(methods) and all(callable(getattr(target, m, None)) for m in methods))
                assert any(satisfied), (spec.name, entry.name)


def test_cli_lists_every_kind_with_counts(fake_eps) -> None:
    fake_eps(risk=FakeEntryPoint("risk", risk_plugin))
    runner = CliRunner()
    from qcore.cli import cli

    rows = {r["kind"]: r for r in json.loads(runner.invoke(cli, ["--no-autoload", "-p", "risk", "list",
                                                                 "--json"]).output)}
    assert rows["risk_model"] == {"kind": "risk_model", "count": 1, "plugin": "risk", "hook": "risk_register_models",
                                  "aliases": ["risk_models"], "description": "Covariance estimators."}
    assert rows["model"]["plugin"] == "core" and rows["recorder"]["count"] == 1
    text = runner.invoke(cli, ["--no-autoload", "-p", "risk", "list"]).output
    assert any(line.split()[:3] == ["risk_model", "1", "[risk]"] for line in text.splitlines())
    res = runner.invoke(cli, ["--no-autoload", "-p", "risk", "list", "risk_models"])
    assert res.exit_code == 0 and res.output.startswith("diagonal  [risk]")
    res = runner.invoke(cli, ["--no-autoload", "-p", "risk", "list", "risk_modl"])
    assert res.exit_code == 3 and "did you mean 'risk_model'" in res.output
    plugins = {p["name"]: p for p in json.loads(runner.invoke(cli, ["--no-autoload", "-p", "risk", "plugins",
                                                                    "--json"]).output)}
    assert plugins["risk"]["kinds"] == ["risk_model"]
    assert plugins["risk"]["components"] == {"risk_model": ["diagonal"]}
    assert "declares kinds: risk_model" in runner.invoke(cli, ["--no-autoload", "-p", "risk", "plugins"]).output


def test_public_names() -> None:
    import qcore
    from qcore.registry import Registrar

    assert qcore.Registrar is Registrar and qcore.hookspec is plugins_mod.hookspec
    assert hookimpl is qcore.hookimpl
