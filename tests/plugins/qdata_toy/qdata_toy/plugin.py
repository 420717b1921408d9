"""Hook implementations of the toy market adapter (``lazy`` keeps importing it free of pandas)."""

from __future__ import annotations

from typing import Any

from qcore import hookimpl
from qcore.registry import lazy


@hookimpl
def qcore_register_data_providers(register: Any) -> None:
    register("toy", lazy("qdata_toy.market:ToyProvider", description="Toy in-memory market (tests only)"))


@hookimpl
def qcore_register_market_rules(register: Any) -> None:
    register("toy", lazy("qdata_toy.market:ToyRules", description="Toy rules: lot 1, T+0, no limits"))
