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
