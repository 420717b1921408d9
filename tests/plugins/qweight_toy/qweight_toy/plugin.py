"""Hook implementations of the toy weight-strategy plugin (``lazy`` keeps loading it free of numpy and pandas)."""

from __future__ import annotations

from qcore import Registrar, hookimpl, lazy


@hookimpl
def qcore_register_strategies(register: Registrar) -> None:
    register("inverse_volatility", lazy("qweight_toy.inverse_volatility:InverseVolatility",
                                        description="Top-k names by momentum, weighted by 1/volatility (tests only)."))
