"""Hook implementations of the toy market adapter."""

from __future__ import annotations

from typing import Any

from qcore import hookimpl


@hookimpl
def qcore_register_data_providers(register: Any) -> None:
    from qdata_toy.market import ToyProvider

    register("toy", ToyProvider, description="Toy in-memory market (tests only)")


@hookimpl
def qcore_register_market_rules(register: Any) -> None:
    from qdata_toy.market import ToyRules

    register("toy", ToyRules, description="Toy rules: lot 1, T+0, no limits")
