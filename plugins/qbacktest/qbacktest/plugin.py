"""Hook implementations of the backtest plugin: strategies, the simulator executor and ``qcore backtest``.

Factories import their modules only when a component is built (:func:`qcore.lazy`), so loading the plugin stays
cheap.
"""

from __future__ import annotations

from typing import Any

from qcore import Registrar, hookimpl, lazy

_topk_dropout = lazy("qbacktest.strategies.topk_dropout:TopkDropout",
                     description="Qlib's TopkDropout: hold topk names, swap up to n_drop per bar (strict_topk fixes "
                                 "Qlib #809).")  # fmt: skip
_target_weight = lazy("qbacktest.strategies.weight:TargetWeight",
                      description="Trade to target weights given per date (Qlib's WeightStrategyBase).")
_soft_topk = lazy("qbacktest.strategies.weight:SoftTopk",
                  description="Qlib's SoftTopkStrategy: move weight from names leaving the top k to those entering "
                              "it.")  # fmt: skip
_order_replay = lazy("qbacktest.strategies.replay:OrderReplay",
                     description="Replay orders from a file (datetime, instrument, amount, direction), like Qlib's "
                                 "FileOrderStrategy.")  # fmt: skip
_simulator = lazy("qbacktest.executor:SimulatorExecutor",
                  description="Daily simulator executor (serial or parallel order execution), Qlib's "
                              "SimulatorExecutor.")  # fmt: skip
_port_analysis = lazy("qbacktest.records:PortAnaRecord",
                      description="Backtest the run's predictions and store Qlib's reports, risk analysis and an HTML "
                                  "report.")  # fmt: skip


@hookimpl
def qcore_register_strategies(register: Registrar) -> None:
    register("TopkDropout", _topk_dropout, aliases=("topk_dropout", "TopkDropoutStrategy"))
    register("TargetWeight", _target_weight, aliases=("target_weight", "WeightStrategy", "WeightStrategyBase"))
    register("SoftTopk", _soft_topk, aliases=("soft_topk", "SoftTopkStrategy"))
    register("OrderReplay", _order_replay, aliases=("order_replay", "FileOrderStrategy"))


@hookimpl
def qcore_register_executors(register: Registrar) -> None:
    register("simulator", _simulator, aliases=("SimulatorExecutor",))


@hookimpl
def qcore_register_commands(cli: Any, kernel: Any) -> None:
    from qbacktest.cli import backtest_command

    cli.add_command(backtest_command)


@hookimpl
def qcore_register_records(register: Registrar) -> None:
    register("port_analysis", _port_analysis, aliases=("PortAnaRecord",))
