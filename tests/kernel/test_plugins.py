from __future__ import annotations

import subprocess
import sys
import types
from typing import Any

import pytest

from qcore import hookimpl
from qcore import plugins as plugins_mod
from qcore.errors import PluginLoadError, PluginSelectionError
from qcore.kernel import Kernel
from qcore.plugins import PluginSelection, load_plugins

SIX = {"qdata_cn", "qops", "qmodel_zoo", "qbacktest", "qrl", "qrecorder_mlflow"}


class FakeDist:
    def __init__(self, name: str) -> None:
        self.metadata = {"Name": name}
        self.version = "9.9"


class FakeEntryPoint:
    def __init__(self, name: str, loader: Any, dist: str = "fake-dist") -> None:
        self.name = name
        self.value = f"{name}.plugin"
        self.dist = FakeDist(dist)
        self._loader = loader

    def load(self) -> Any:
        return self._loader()


def module(name: str, **hooks: Any) -> types.ModuleType:
    mod = types.ModuleType(name)
    for key, fn in hooks.items():
        setattr(mod, key, hookimpl(fn))
    return mod


@pytest.fixture
def fake_eps(monkeypatch: pytest.MonkeyPatch):
    def install(**eps: FakeEntryPoint) -> None:
        monkeypatch.setattr(plugins_mod, "installed_entry_points", lambda: dict(sorted(eps.items())))

    return install


class ConstantModel:
    """Predicts one value (a minimal :class:`qcore.protocols.Model`)."""

    def __init__(self, value: float = 0.0) -> None:
        self.value = value

    def fit(self, dataset: Any) -> ConstantModel:
        return self

    def predict(self, dataset: Any, segment: str = "test") -> Any:
        return self.value

    def save(self, folder: Any) -> None:
        pass

    def restore(self, folder: Any) -> None:
        pass


def good_plugin() -> types.ModuleType:
    def qcore_register_models(register: Any) -> None:
        register("constant", ConstantModel)

    return module("good", qcore_register_models=qcore_register_models)


def test_installed_plugins_are_all_listed(kernel: Kernel) -> None:
    infos = {i.name: i for i in kernel.plugins()}
    assert SIX <= set(infos)
    assert infos["core"].builtin and infos["core"].components["recorder"] == ("local",)
    for name in SIX:
        info = infos[name]
        assert not info.builtin
        assert info.distribution and info.version, name
        assert info.hooks, f"{name} implements no hook"
        assert info.components, f"{name} registers no component"


def test_entry_point_plugin_registers_components(fake_eps) -> None:
    fake_eps(good=FakeEntryPoint("good", good_plugin, "good-dist"))
    kernel = Kernel(load_plugins(PluginSelection()))
    assert kernel.create("model", "constant", value=2.5).value == 2.5
    assert kernel.registry("models").entry("constant").plugin == "good"
    info = next(i for i in kernel.plugins() if i.name == "good")
    assert (info.distribution, info.version, info.hooks) == ("good-dist", "9.9", ("qcore_register_models",))


def test_import_failure_names_plugin_distribution_and_cause(fake_eps) -> None:
    def broken() -> Any:
        raise ModuleNotFoundError("No module named 'missing_dep'")

    fake_eps(broken=FakeEntryPoint("broken", broken, "broken-dist"), good=FakeEntryPoint("good", good_plugin))
    with pytest.raises(PluginLoadError) as info:
        load_plugins(PluginSelection())
    assert str(info.value) == (
        "plugin 'broken' (distribution broken-dist) failed to load: ModuleNotFoundError: No module named 'missing_dep'"
    )


def test_non_strict_skips_broken_plugin_with_warning(fake_eps) -> None:
    def broken() -> Any:
        raise RuntimeError("boom")

    fake_eps(broken=FakeEntryPoint("broken", broken), good=FakeEntryPoint("good", good_plugin))
    with pytest.warns(RuntimeWarning, match="plugin 'broken'.*RuntimeError: boom"):
        loaded = load_plugins(PluginSelection(), strict=False)
    assert "good" in loaded.infos and "broken" not in loaded.infos
    assert set(loaded.failures) == {"broken"}


def test_misspelled_hook_fails_loudly(fake_eps) -> None:
    def typo() -> types.ModuleType:
        return module("typo", qcore_regster_models=lambda register: None)

    fake_eps(typo=FakeEntryPoint("typo", typo, "typo-dist"))
    with pytest.raises(PluginLoadError) as info:
        load_plugins(PluginSelection())
    assert str(info.value) == (
        "plugin 'typo' (distribution typo-dist) failed to load: PluginValidationError: unknown hook "
        "'qcore_regster_models' in plugin 'typo'; did you mean 'qcore_register_models'?"
    )


def test_misspelled_hook_non_strict_unregisters(fake_eps) -> None:
    fake_eps(typo=FakeEntryPoint("typo", lambda: module("typo", qcore_regster_models=lambda register: None)))
    with pytest.warns(RuntimeWarning, match="unknown hook"):
        loaded = load_plugins(PluginSelection(), strict=False)
    assert "typo" not in loaded.infos and loaded.pm.get_plugin("typo") is None


def test_hook_argument_not_in_spec(fake_eps) -> None:
    fake_eps(bad=FakeEntryPoint("bad", lambda: module("bad", qcore_register_models=lambda registry: None)))
    with pytest.raises(PluginLoadError, match=r"plugin 'bad'.*registry"):
        load_plugins(PluginSelection())


def test_factory_registration_error_names_plugin(fake_eps) -> None:
    def explode(register: Any) -> None:
        raise KeyError("oops")

    fake_eps(ex=FakeEntryPoint("ex", lambda: module("ex", qcore_register_strategies=explode), "ex-dist"))
    kernel = Kernel(load_plugins(PluginSelection()))
    with pytest.raises(PluginLoadError, match=r"plugin 'ex' \(distribution ex-dist\) failed to load: KeyError"):
        kernel.registry("strategy")


def test_block_with_no_prefix(fake_eps) -> None:
    fake_eps(good=FakeEntryPoint("good", good_plugin), other=FakeEntryPoint("other", good_plugin))
    loaded = load_plugins(PluginSelection.parse(["no:other"]))
    assert "good" in loaded.infos and "other" not in loaded.infos


def test_no_autoload_loads_only_named(fake_eps) -> None:
    called: list[str] = []

    def loader(name: str):
        def load() -> types.ModuleType:
            called.append(name)
            return good_plugin() if name == "good" else module(name)

        return load

    fake_eps(good=FakeEntryPoint("good", loader("good")), other=FakeEntryPoint("other", loader("other")))
    loaded = load_plugins(PluginSelection.parse(["good"], autoload=False))
    assert set(loaded.infos) == {"core", "qlib_workflow", "good"}
    assert called == ["good"]


def test_enable_unknown_plugin_suggests_closest(fake_eps) -> None:
    fake_eps(qdata_cn=FakeEntryPoint("qdata_cn", good_plugin))
    with pytest.raises(PluginSelectionError) as info:
        load_plugins(PluginSelection.parse(["qdata_nc"], autoload=False))
    assert (
        str(info.value) == "no installed plugin named 'qdata_nc'; did you mean 'qdata_cn'? "
        "(installed: core, qdata_cn, qlib_workflow)"
    )


def test_essential_plugin_cannot_be_disabled() -> None:
    with pytest.raises(PluginSelectionError, match="'core' is essential"):
        load_plugins(PluginSelection.parse(["no:core"]))


def test_enable_by_module_path(fake_eps, tmp_path, monkeypatch) -> None:
    fake_eps()
    (tmp_path / "my_local_plugin.py").write_text(
        "from qcore import hookimpl\n\n"
        "@hookimpl\n"
        "def qcore_register_strategies(register):\n"
        "    register('hold', dict)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    kernel = Kernel(load_plugins(PluginSelection.parse(["my_local_plugin"], autoload=False)))
    assert kernel.registry("strategy").entry("hold").plugin == "my_local_plugin"


def test_env_selection(fake_eps, monkeypatch) -> None:
    fake_eps(good=FakeEntryPoint("good", good_plugin), other=FakeEntryPoint("other", good_plugin))
    monkeypatch.setenv("QCORE_PLUGINS", "no:other")
    assert set(Kernel.load().plugin_names()) == {"core", "qlib_workflow", "good"}
    monkeypatch.setenv("QCORE_PLUGINS", "other")
    monkeypatch.setenv("QCORE_DISABLE_PLUGIN_AUTOLOAD", "1")
    assert set(Kernel.load().plugin_names()) == {"core", "qlib_workflow", "other"}


def test_selection_merge_later_source_wins() -> None:
    env = PluginSelection.parse(["a", "no:b"])
    config = PluginSelection.parse(["b", "no:c"], autoload=False)
    cli = PluginSelection.parse(["c", "no:a"])
    merged = env.then(config).then(cli)
    assert set(merged.enable) == {"b", "c"}
    assert set(merged.disable) == {"a"}
    assert merged.autoload is False


def test_selection_parse_rejects_bare_no() -> None:
    with pytest.raises(PluginSelectionError, match="names no plugin"):
        PluginSelection.parse(["no:"])


def test_extra_plugin_objects(fake_eps) -> None:
    fake_eps()
    kernel = Kernel.load(extra={"inline": good_plugin()}, use_env=False)
    assert kernel.registry("model").entry("constant").plugin == "inline"


def test_importing_qcore_loads_no_plugin() -> None:
    code = (
        "import sys, qcore, qcore.cli, qcore.kernel, qcore.config\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'qdata_cn','qops','qmodel_zoo','qbacktest','qrl','qrecorder_mlflow','torch','mlflow','lightgbm','tianshou'})\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_loading_every_plugin_imports_no_heavy_library() -> None:
    code = (
        "import sys\n"
        "from qcore.kernel import Kernel\n"
        "k = Kernel.load(use_env=False)\n"
        "k.plugins()\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in {'torch','mlflow','lightgbm','tianshou','cvxpy'})\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_addhooks_lets_a_plugin_add_its_own_hook_kind(fake_eps) -> None:
    import pluggy

    spec = pluggy.HookspecMarker("qcore")

    class Specs:
        @spec
        def myplug_register_widgets(self, register: Any) -> None:
            """Widgets."""

    seen: list[str] = []

    def provider() -> types.ModuleType:
        def qcore_addhooks(pluginmanager: Any) -> None:
            pluginmanager.add_hookspecs(Specs)

        return module("provider", qcore_addhooks=qcore_addhooks)

    def user() -> types.ModuleType:
        return module("user", myplug_register_widgets=lambda register: register("gear"))

    fake_eps(a_provider=FakeEntryPoint("a_provider", provider), b_user=FakeEntryPoint("b_user", user))
    loaded = load_plugins(PluginSelection())
    assert loaded.pm.hook.myplug_register_widgets.spec is not None
    loaded.pm.hook.myplug_register_widgets(register=seen.append)
    assert seen == ["gear"]
