from __future__ import annotations

import pytest

from qcore.errors import DuplicateComponentError, UnknownComponentError
from qcore.registry import Registrar, Registry


def make() -> Registry:
    return Registry("model")


def test_add_get_create_and_owner() -> None:
    reg = make()
    Registrar(reg, "zoo")("linear", lambda scale=1: ("linear", scale), aliases=("LinearModel",))
    assert reg.get("LinearModel") is reg.get("linear")
    assert reg.create("linear", scale=3) == ("linear", 3)
    assert reg.entry("linear").plugin == "zoo"
    assert "linear" in reg and "LinearModel" in reg and "other" not in reg
    assert reg.names() == ["linear"]
    assert reg.names(include_aliases=True) == ["LinearModel", "linear"]


def test_duplicate_names_both_plugins() -> None:
    reg = make()
    Registrar(reg, "zoo")("lgb", object)
    with pytest.raises(DuplicateComponentError) as info:
        Registrar(reg, "thirdparty")("lgb", object)
    assert str(info.value) == (
        "model 'lgb' is registered by both plugin 'zoo' and plugin 'thirdparty'; "
        "pass override=True in 'thirdparty' to replace it"
    )


def test_alias_collision_is_a_duplicate() -> None:
    reg = make()
    Registrar(reg, "zoo")("lgb", object, aliases=("LGBModel",))
    with pytest.raises(DuplicateComponentError, match="'LGBModel'"):
        Registrar(reg, "other")("LGBModel", object)


def test_override_replaces_and_warns(caplog: pytest.LogCaptureFixture) -> None:
    reg = make()
    Registrar(reg, "zoo")("lgb", int, aliases=("LGBModel",))
    Registrar(reg, "fast")("lgb", float, override=True)
    assert reg.get("lgb") is float
    assert reg.entry("lgb").plugin == "fast"
    assert "LGBModel" not in reg
    assert "overrides the one from plugin 'zoo'" in caplog.text


def test_unknown_name_lists_available_and_closest() -> None:
    reg = make()
    for name in ("lightgbm", "linear", "mlp"):
        Registrar(reg, "zoo")(name, object)
    with pytest.raises(UnknownComponentError) as info:
        reg.get("lightgmb")
    assert str(info.value) == "unknown model 'lightgmb'; did you mean 'lightgbm'? (available: lightgbm, linear, mlp)"
    assert info.value.available == ["lightgbm", "linear", "mlp"]


def test_unknown_name_in_empty_registry() -> None:
    with pytest.raises(UnknownComponentError, match=r"\(available: none registered\)"):
        make().get("x")


def test_description_defaults_to_first_docstring_line() -> None:
    def factory() -> None:
        """Builds a thing.

        More text.
        """

    reg = make()
    Registrar(reg, "p")("thing", factory)
    assert reg.entry("thing").description == "Builds a thing."


def test_empty_name_rejected() -> None:
    with pytest.raises(ValueError, match="non-empty"):
        Registrar(make(), "p")("", object)


def test_lazy_imports_its_target_on_first_call(tmp_path, monkeypatch) -> None:
    import sys

    from qcore import lazy

    (tmp_path / "lazy_target_mod.py").write_text("class Thing:\n    '''A thing.'''\n    def __init__(self, n=1):\n"
                                                 "        self.n = n\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    factory = lazy("lazy_target_mod:Thing", description="Builds a thing.")
    reg = make()
    Registrar(reg, "zoo")("thing", factory)
    assert "lazy_target_mod" not in sys.modules
    assert reg.entry("thing").description == "Builds a thing."
    assert (factory.target, factory.__name__, repr(factory)) == ("lazy_target_mod:Thing", "Thing",
                                                                  "lazy('lazy_target_mod:Thing')")
    assert reg.create("thing", n=4).n == 4
    assert "lazy_target_mod" in sys.modules and factory.load() is sys.modules["lazy_target_mod"].Thing
    assert lazy("lazy_target_mod:Thing").__doc__ == "lazy_target_mod:Thing"
    monkeypatch.delitem(sys.modules, "lazy_target_mod")


@pytest.mark.parametrize("target", ["no_colon", "mod:", ":Name", "mod:Na-me", "", "a b:C"])
def test_lazy_refuses_malformed_targets(target: str) -> None:
    from qcore import lazy

    with pytest.raises(ValueError, match=r"package\.module:Name"):
        lazy(target)


def test_lazy_missing_target_fails_when_built() -> None:
    from qcore import lazy

    factory = lazy("json:no_such_function")
    with pytest.raises(AttributeError):
        factory()


def test_plugin_modules_import_no_heavy_package() -> None:
    import subprocess
    import sys

    code = (
        "import sys\n"
        "import qdata_cn.plugin, qops.plugin, qmodel_zoo.plugin, qbacktest.plugin, qrl.plugin\n"
        "import qrecorder_mlflow.plugin\n"
        "heavy = {'torch', 'mlflow', 'lightgbm', 'tianshou', 'gymnasium', 'pandas'}\n"
        "print(','.join(sorted(m for m in sys.modules if m.split('.')[0] in heavy)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_lazy_factories_show_their_targets_signature_to_argument_checks() -> None:
    """Argument checks (``qcore validate``) read a lazy factory's real parameters, importing the target only then."""
    import inspect

    from qcore.registry import lazy

    factory = lazy("qcore.tables:write_table")
    assert list(inspect.signature(factory).parameters) == ["frame", "path", "fmt"]
    missing = lazy("qcore_no_such_module:Thing")
    kinds = [p.kind for p in inspect.signature(missing).parameters.values()]
    assert kinds == [inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD]
