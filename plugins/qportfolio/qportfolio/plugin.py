"""Hook implementations of the portfolio plugin: the ``risk_model`` and ``portfolio_optimizer`` kinds, the
enhanced-indexing and optimised-weights strategies, the ``risk_data`` record and ``qcore risk``.

Factories import their modules only when a component is built (:func:`qcore.lazy`): cvxpy is never imported by
loading the plugin.
"""

from __future__ import annotations

from typing import Any

from qcore import KindSpec, Registrar, hookimpl, lazy
from qcore.registry import KindRegistrar
from qportfolio.risk.registry import ALIASES, QLIB_FACTORIES, QLIB_NAMES, RISK_MODELS

#: The component kinds the plugin declares (the kernel adds their registration hooks).
KINDS: tuple[KindSpec, ...] = (
    KindSpec("risk_model", "qportfolio_register_risk_models",
             "Risk models: covariance estimators on returns, factor models on a store.", ("risk_models",),
             "qportfolio.risk.base:ReturnsRiskModel|qportfolio.risk.base:StoreRiskModel"),
    KindSpec("portfolio_optimizer", "qportfolio_register_optimizers",
             "Portfolio optimisers: weights from a covariance (or factor risk) and expected returns.",
             ("portfolio_optimizers", "optimizers")),
)  # fmt: skip


@hookimpl
def qcore_register_kinds(register_kind: KindRegistrar) -> None:
    for spec in KINDS:
        register_kind(spec)


@hookimpl
def qportfolio_register_risk_models(register: Registrar) -> None:
    qlib_by_ours = {ours: qlib for qlib, ours in QLIB_NAMES.items()}
    for name, (target, description) in RISK_MODELS.items():
        register(name, lazy(target, description=description), aliases=ALIASES.get(name, ()))
        if name in qlib_by_ours:
            qlib = qlib_by_ours[name]
            register(qlib, lazy(QLIB_FACTORIES[qlib], description=f"Qlib's {qlib}: {name} in percent units."))


@hookimpl
def qportfolio_register_optimizers(register: Registrar) -> None:
    register("portfolio", lazy("qportfolio.optimizer.portfolio:PortfolioOptimizer",
                               description="inv, gmv, mvo, rp, max_sharpe (long only, cvxpy)."),
             aliases=("PortfolioOptimizer",))  # fmt: skip
    register("enhanced_indexing", lazy("qportfolio.optimizer.enhanced:EnhancedIndexingOptimizer",
                                       description="Qlib's enhanced-indexing problem plus cash, industry neutrality, "
                                                   "a tracking-error cap, costs and long-short."),
             aliases=("EnhancedIndexingOptimizer",))  # fmt: skip


def _strategy(target: str, description: str) -> Any:
    """A lazy strategy factory with the kernel's ``check_kwargs`` convention (arguments checked at validate)."""
    factory = lazy(target, description=description)

    def check_kwargs(kwargs: dict[str, Any]) -> None:
        from qportfolio.strategies.base import check_strategy_kwargs

        check_strategy_kwargs(target, kwargs)

    factory.check_kwargs = check_kwargs  # type: ignore[attr-defined]
    return factory


_enhanced_indexing = _strategy("qportfolio.strategies.enhanced:EnhancedIndexing",
                               "Qlib's enhanced indexing: track a benchmark under a factor risk model with the signal "
                               "as the active view.")  # fmt: skip
_optimized_weights = _strategy("qportfolio.strategies.optimized:OptimizedWeights",
                               "Signal -> risk model -> portfolio optimiser -> target weights.")


@hookimpl
def qcore_register_strategies(register: Registrar) -> None:
    register("EnhancedIndexing", _enhanced_indexing, aliases=("enhanced_indexing", "EnhancedIndexingStrategy"))
    register("OptimizedWeights", _optimized_weights, aliases=("optimized_weights",))


@hookimpl
def qcore_register_records(register: Registrar) -> None:
    register("risk_data", lazy("qportfolio.records:RiskDataRecord",
                               description="Build the daily risk data (Qlib's riskdata_root) a backtest reads."),
             aliases=("RiskDataRecord",))  # fmt: skip
    register("tracking", lazy("qportfolio.records:TrackingRecord",
                              description="Realised tracking error and information ratio of the run's backtest."),
             aliases=("TrackingRecord",))  # fmt: skip


#: the run's metrics ``qcore run`` prints, with their labels.
SUMMARY = (("portfolio.tracking_error", "Tracking error (realised, annualised)"),
           ("portfolio.information_ratio", "Information ratio (active, without cost)"),
           ("portfolio.information_ratio_with_cost", "Information ratio (active, with cost)"),
           ("portfolio.ex_ante_te", "Tracking error (ex ante, mean, annualised)"),
           ("portfolio.ex_ante_factor_share", "Factor share of the ex-ante active variance"))  # fmt: skip


@hookimpl
def qcore_run_summary(config: Any, result: Any) -> list[tuple[str, str]]:
    """Tracking error and information ratio against the benchmark, when the tracking record ran."""
    rows = [(label, f"{result.metrics[key]:.4f}") for key, label in SUMMARY if key in result.metrics]
    if "risk.days_written" in result.metrics:
        written, kept = result.metrics["risk.days_written"], result.metrics.get("risk.days_kept", 0.0)
        rows.append(("Risk data days (written / kept)", f"{written:.0f} / {kept:.0f}"))
    return rows


@hookimpl
def qcore_before_run(context: Any) -> None:
    """Before any step: a long–short strategy needs the backtest's ``short`` option (refused before training);
    with a ``tracking`` record listed, register the builder of its HTML report sections (``port_analysis`` renders
    the page before the record runs, and calls the builders once the backtest has traded)."""
    from qportfolio.records import TRACKING_NAMES, check_long_short_backtest

    check_long_short_backtest(context.config)
    specs = [s for s in context.config.records if s.name in TRACKING_NAMES]
    if not specs or "backtest" not in context.config.sections:
        return

    def build(state: Any) -> list[Any]:
        from qportfolio.records import TrackingRecord

        return TrackingRecord(**dict(specs[0].kwargs or {})).sections(context)

    context.state.report_sections.append(build)


@hookimpl
def qcore_register_commands(cli: Any, kernel: Any) -> None:
    from qportfolio.cli import risk_command

    cli.add_command(risk_command)
