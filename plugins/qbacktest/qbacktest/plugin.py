"""Hook implementations of the backtest plugin: strategies, the simulator executor, the workflow's ``backtest:``
section and ``port_analysis`` record (with the rows and report path ``qcore run`` prints), and ``qcore backtest``.

Factories import their modules only when a component is built (:func:`qcore.lazy`), so loading the plugin stays
cheap.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from qcore import Registrar, hookimpl, lazy

if TYPE_CHECKING:
    from qcore.config import WorkflowConfig
    from qcore.context import RunResult

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
                  description="Simulator executor (daily bars, or minute bars inside a nested executor; serial or "
                              "parallel order execution), Qlib's SimulatorExecutor.")  # fmt: skip
_nested = lazy("qbacktest.nested:NestedExecutor",
               description="Carries each decision out over finer bars with an inner strategy and executor (Qlib's "
                           "NestedExecutor, any depth).")  # fmt: skip
_twap = lazy("qbacktest.strategies.execution:TWAP",
             description="Execution: even split over the inner bars with shortfall re-targeting (Qlib's TWAPStrategy).")
_vwap = lazy("qbacktest.strategies.execution:VWAP",
             description="Execution: split along the intraday volume profile of the previous days, re-targeting "
                         "shortfalls.")  # fmt: skip
_sbb_ema = lazy("qbacktest.strategies.execution:SBBEMA",
                description="Execution: the better bar of each pair by the EMA trend (Qlib's SBBStrategyEMA).")
_almgren_chriss = lazy("qbacktest.strategies.execution:AlmgrenChriss",
                       description="Execution: Almgren-Chriss schedule from the volatility (Qlib's ACStrategy).")
_exchange = lazy("qbacktest.exchange_factory:build_exchange",
                 description="The backtest's exchange (A-share rules or Qlib's exchange_kwargs) on a grid of bars, "
                             "for decisions outside a backtest (online orders).")  # fmt: skip
_port_analysis = lazy("qbacktest.records:PortAnaRecord",
                      description="Backtest the run's predictions and store Qlib's reports, risk analysis and an HTML "
                                  "report.")  # fmt: skip
_backtest_section = lazy("qbacktest.config:BacktestSection",
                         description="How a workflow trades its predictions: strategy, executor, window, account, "
                                     "benchmark, exchange (Qlib's port_analysis_config backtest).")  # fmt: skip


@hookimpl
def qcore_register_strategies(register: Registrar) -> None:
    register("TopkDropout", _topk_dropout, aliases=("topk_dropout", "TopkDropoutStrategy"))
    register("TargetWeight", _target_weight, aliases=("target_weight", "WeightStrategyBase"))
    register("SoftTopk", _soft_topk, aliases=("soft_topk", "SoftTopkStrategy"))
    register("OrderReplay", _order_replay, aliases=("order_replay", "FileOrderStrategy"))
    register("TWAP", _twap, aliases=("twap", "TWAPStrategy"))
    register("VWAP", _vwap, aliases=("vwap", "VWAPStrategy"))
    register("SBBEMA", _sbb_ema, aliases=("sbb_ema", "SBBStrategyEMA"))
    register("AlmgrenChriss", _almgren_chriss, aliases=("almgren_chriss", "ACStrategy"))


@hookimpl
def qcore_register_executors(register: Registrar) -> None:
    register("simulator", _simulator, aliases=("SimulatorExecutor",))
    register("NestedExecutor", _nested, aliases=("nested",))


@hookimpl
def qcore_register_exchanges(register: Registrar) -> None:
    register("backtest", _exchange)


@hookimpl
def qcore_register_commands(cli: Any, kernel: Any) -> None:
    from qbacktest.cli import backtest_command

    cli.add_command(backtest_command)


@hookimpl
def qcore_register_records(register: Registrar) -> None:
    register("port_analysis", _port_analysis, aliases=("PortAnaRecord",))
    register("multi_pass_port_analysis", lazy("qbacktest.records:MultiPassPortAnaRecord",
                                              description="The backtest run several times from shuffled first-day "
                                                          "scores; mean and std of return and IR (Qlib's "
                                                          "MultiPassPortAnaRecord)."),
             aliases=("MultiPassPortAnaRecord",))  # fmt: skip


@hookimpl
def qcore_register_config_sections(register: Registrar) -> None:
    register("backtest", _backtest_section)


@hookimpl(trylast=True)
def qcore_default_records(config: WorkflowConfig) -> Sequence[str]:
    """A workflow with a model and a ``backtest:`` section trades its predictions, after the other default records
    (trylast: the HTML report shows the signal analysis when one ran before)."""
    return ["port_analysis"] if config.model is not None and "backtest" in config.sections else []


@hookimpl
def qcore_run_summary(config: WorkflowConfig, result: RunResult) -> Sequence[tuple[str, str]]:
    """Annualised excess return, information ratio (without and with cost) and max drawdown of the backtest."""
    from qbacktest.records import SUMMARY

    return [(label, f"{result.metrics[key]:.4f}") for key, label in SUMMARY if key in result.metrics]


@hookimpl
def qcore_run_hints(config: WorkflowConfig, result: RunResult) -> Sequence[str]:
    """Where the backtest's HTML report is."""
    from qbacktest.records import HTML_REPORT

    report = result.artifacts.get(HTML_REPORT)
    return [f"report: {report} (open it in a browser; it works offline)"] if report else []
