"""Hook implementations of the toy RL algorithm plugin: imports neither qrl nor tianshou (``qcore.lazy``)."""

from __future__ import annotations

from qcore import Registrar, hookimpl, lazy


@hookimpl
def qrl_register_algorithms(register: Registrar) -> None:
    register("toy_reinforce", lazy("qrl_toy_algo.reinforce:build_reinforce",
                                   description="REINFORCE with a categorical actor (discrete actions; tests only)."))
