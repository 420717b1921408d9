"""Hook implementations of the backtest plugin: strategies, the simulator executor and ``qcore backtest``.

Factories import their modules only when a component is built, so loading the plugin stays cheap.
"""

from __future__ import annotations

from typing import Any

from qcore import hookimpl


def _topk_equal_weight(**kwargs: Any) -> Any:
    """Equal weights on the top-k scores."""
    from qbacktest.topk import TopkEqualWeight

    return TopkEqualWeight(**kwargs)


def _topk_dropout(**kwargs: Any) -> Any:
    """Qlib's TopkDropout: hold topk names, swap up to n_drop per bar (strict_topk fixes Qlib #809)."""
    from qbacktest.strategies.topk_dropout import TopkDropout

    return TopkDropout(**kwargs)


def _target_weight(**kwargs: Any) -> Any:
    """Trade to target weights given per date (Qlib's WeightStrategyBase)."""
    from qbacktest.strategies.weight import TargetWeight

    return TargetWeight(**kwargs)


def _soft_topk(**kwargs: Any) -> Any:
    """Qlib's SoftTopkStrategy: move weight from names leaving the top k to those entering it."""
    from qbacktest.strategies.weight import SoftTopk

    return SoftTopk(**kwargs)


def _order_replay(**kwargs: Any) -> Any:
    """Replay orders from a file (datetime, instrument, amount, direction), like Qlib's FileOrderStrategy."""
    from qbacktest.strategies.replay import OrderReplay

    return OrderReplay(**kwargs)


def _simulator(**kwargs: Any) -> Any:
    """Daily simulator executor (serial or parallel order execution), Qlib's SimulatorExecutor."""
    from qbacktest.executor import SimulatorExecutor

    return SimulatorExecutor(**kwargs)


@hookimpl
def qcore_register_strategies(register: Any) -> None:
    register("topk_equal_weight", _topk_equal_weight)
    register("TopkDropout", _topk_dropout, aliases=("topk_dropout", "TopkDropoutStrategy"))
    register("TargetWeight", _target_weight, aliases=("target_weight", "WeightStrategy", "WeightStrategyBase"))
    register("SoftTopk", _soft_topk, aliases=("soft_topk", "SoftTopkStrategy"))
    register("OrderReplay", _order_replay, aliases=("order_replay", "FileOrderStrategy"))


@hookimpl
def qcore_register_executors(register: Any) -> None:
    register("simulator", _simulator, aliases=("SimulatorExecutor",))


@hookimpl
def qcore_register_commands(cli: Any, kernel: Any) -> None:
    from qbacktest.cli import backtest_command

    cli.add_command(backtest_command)


def _port_analysis(**kwargs: Any) -> Any:
    """Backtest the run's predictions and store Qlib's reports, risk analysis and an HTML report."""
    from qbacktest.records import PortAnaRecord

    return PortAnaRecord(**kwargs)


@hookimpl
def qcore_register_records(register: Any) -> None:
    register("port_analysis", _port_analysis, aliases=("PortAnaRecord",))
