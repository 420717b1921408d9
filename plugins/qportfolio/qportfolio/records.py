"""Workflow records of the portfolio plugin.

- ``risk_data``: build the risk data an enhanced-indexing backtest reads, before it runs. Place it before
  ``port_analysis`` in ``records``. Its options are :class:`~qportfolio.risk.build.RiskBuildSpec`'s; ``universe``
  defaults to ``data.universe``, ``start`` to the information date of the backtest's first bar (the day before
  it) and ``end`` to the backtest's end. Days already built with the same settings are kept.
- ``tracking``: after ``port_analysis``, the realised tracking error (annualised standard deviation of the daily
  active return, portfolio minus benchmark) and the information ratio (annualised mean active return over it),
  without and with costs; with risk data (the strategy's ``riskmodel_root`` or the ``risk_data`` record's folder)
  and benchmark weights (the strategy's), the ex-ante tracking error of the holdings at each bar end with its
  factor and specific parts, and the active factor exposures (:mod:`qportfolio.tracking`). Means as the run's
  ``portfolio.*`` metrics, per-bar frames as artifacts (``portfolio_ex_ante``, ``portfolio_exposures``), and two
  sections of the run's HTML report (``Tracking error``, ``Active factor exposures``: the plugin registers their
  builder before the run, so ``port_analysis`` places them in its page).
"""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd

from qcore.errors import ConfigError, DataError, RunError

logger = logging.getLogger("qportfolio.records")


def backtest_window(config: Any) -> tuple[Any, Any]:
    """``(start, end)`` of the workflow's ``backtest:`` section (None where not given or where there is none).

    The section belongs to the backtest plugin; it is read here as data (its ``start``/``end`` attributes)."""
    section = config.sections.get("backtest")
    if section is None:
        return None, None
    return getattr(section, "start", None), getattr(section, "end", None)


class RiskDataRecord:
    """Build daily risk data into ``root`` (see the module doc)."""

    def __init__(self, **kwargs: Any) -> None:
        from qportfolio.risk.build import spec_from_mapping

        self.kwargs = dict(kwargs)
        if "root" not in self.kwargs:
            raise ConfigError("the risk_data record needs root (the risk-data folder)", path="root")
        spec_from_mapping(self.kwargs)  # every option is checked now

    def _spec(self, context: Any) -> Any:
        from qportfolio.risk.build import spec_from_mapping

        values = dict(self.kwargs)
        config = context.config
        values.setdefault("universe", config.data.universe)
        start, end = backtest_window(config)
        provider = context.provider
        if "start" not in values and start is not None and provider is not None:
            calendar = provider.calendar("day")
            pos = int(calendar.searchsorted(pd.Timestamp(start), "left"))
            values["start"] = calendar[max(pos - 1, 0)]
        if "end" not in values and end is not None:
            values["end"] = end
        return spec_from_mapping(values)

    def check(self, context: Any) -> None:
        """The options, and the universe against the store when it is open."""
        try:
            spec = self._spec(context)
            provider = context.provider
            if provider is not None and spec.universe not in provider.markets():
                raise ConfigError(f"the store has no market {spec.universe!r}", path="universe")
        except ConfigError as exc:
            names = ("risk_data", "RiskDataRecord")
            index = next((i for i, s in enumerate(context.config.records) if s.name in names), 0)
            raise context.config.error(exc.message, f"records.{index}.kwargs.{exc.path}".rstrip(".")) from None

    def generate(self, context: Any) -> Any:
        """Build the risk data; log the days written and kept."""
        from qcore.context import RecordOutput
        from qportfolio.risk.build import build_risk_data
        from qportfolio.risk.riskdata import read_meta

        spec = self._spec(context)
        result = build_risk_data(context.provider, context.kernel.registry("operator"), spec)
        context.state.extra["qportfolio.riskdata_root"] = str(result.root)
        metrics = {"risk.days_written": float(result.written), "risk.days_kept": float(result.skipped)}
        if result.written:
            metrics["risk.factors"] = float(result.factors)
        return RecordOutput(metrics=metrics, artifacts={"riskdata": read_meta(result.root)})


def _traded(state: Any) -> Any:
    """The result of the record that traded the predictions (``state.trading``), or None."""
    return state.trading


#: where the tracking figures of a run are kept for the records after the HTML report's builder.
STATE_KEY = "qportfolio.tracking"
#: the names the tracking record is listed under.
TRACKING_NAMES = ("tracking", "TrackingRecord")


def tracking_metrics(report: pd.DataFrame) -> dict[str, float]:
    """Realised tracking error and information ratio of a backtest report (see
    :func:`qportfolio.tracking.realised_tracking`)."""
    from qportfolio.tracking import realised_tracking

    return realised_tracking(report)


def _strategy_kwargs(config: Any) -> tuple[str, dict[str, Any]]:
    """The name and keyword arguments of the workflow's backtest strategy, read as data ('' and {} without one)."""
    section = config.sections.get("backtest")
    strategy = getattr(section, "strategy", None)
    if strategy is None:
        return "", {}
    return str(getattr(strategy, "name", "")), dict(getattr(strategy, "kwargs", None) or {})


#: the strategies of this plugin, under every name they are registered with.
STRATEGY_NAMES = ("EnhancedIndexing", "EnhancedIndexingStrategy", "enhanced_indexing", "OptimizedWeights",
                  "optimized_weights")  # fmt: skip


def check_long_short_backtest(config: Any) -> None:
    """A workflow whose strategy (one of this plugin's) has ``optimizer_kwargs.long_short`` needs ``backtest.short``
    enabled: refused before the run's first step (the strategy checks it again when the backtest starts)."""
    name, kwargs = _strategy_kwargs(config)
    optimizer = kwargs.get("optimizer_kwargs") or {}
    if name not in STRATEGY_NAMES or not hasattr(optimizer, "get") or optimizer.get("long_short") in (None, False):
        return
    short = getattr(config.sections.get("backtest"), "short", None)
    enabled = short is True or (hasattr(short, "get") and short.get("enabled", True) is True)
    if not enabled:
        raise config.error("optimizer_kwargs.long_short gives negative weights, but the backtest holds no short "
                           "positions: set backtest.short: {enabled: true, ...} (or drop long_short)",
                           "backtest.strategy.kwargs.optimizer_kwargs.long_short")  # fmt: skip


class TrackingRecord:
    """Realised and ex-ante tracking error of the run's backtest (see the module doc).

    :param riskmodel_root: the risk data for the ex-ante figures (default: the strategy's ``riskmodel_root``, else
        the folder the ``risk_data`` record built); none: realised figures only.
    :param benchmark: the benchmark weights (:mod:`qportfolio.benchmark`; default: the strategy's ``benchmark`` and
        ``market``).
    :param market: the benchmark's market when ``benchmark`` is not given (``$<market>_weight``).
    :param window: bars of the rolling realised tracking error drawn in the report.
    """

    def __init__(self, riskmodel_root: str | None = None, benchmark: Any = None, market: str | None = None,
                 window: int = 20) -> None:  # fmt: skip
        from qportfolio.benchmark import BenchmarkWeights

        if riskmodel_root is not None and (not isinstance(riskmodel_root, str) or not riskmodel_root):
            raise ConfigError("expected the risk-data folder", path="riskmodel_root")
        if not isinstance(window, int) or isinstance(window, bool) or window < 2:
            raise ConfigError(f"expected an integer >= 2, got {window!r}", path="window")
        if benchmark is not None or market is not None:
            BenchmarkWeights.from_spec(benchmark, market)  # checked now
        self.riskmodel_root = riskmodel_root
        self.benchmark = benchmark
        self.market = market
        self.window = window

    def check(self, context: Any) -> None:
        """The record needs a backtest that runs before it."""
        names = [s.name for s in context.config.records]
        own = next((i for i, n in enumerate(names) if n in TRACKING_NAMES), len(names))
        if not any(n in ("port_analysis", "PortAnaRecord") for n in names[:own]):
            raise context.config.error("the tracking record reads the backtest: put port_analysis before it",
                                       f"records.{own}")  # fmt: skip

    def figures(self, context: Any) -> dict[str, Any]:
        """Metrics and frames of the run's tracking (computed once a run, kept in ``state.extra``)."""
        state = context.state
        if STATE_KEY in state.extra:
            return state.extra[STATE_KEY]
        from qportfolio.tracking import ex_ante_metrics, ex_ante_tracking, realised_tracking, rolling_realised_te

        result = _traded(state)
        report = getattr(result, "report", None)
        if not isinstance(report, pd.DataFrame):
            raise RunError("the tracking record needs the backtest's report: run port_analysis before it")
        metrics = realised_tracking(report)
        out: dict[str, Any] = {"metrics": metrics, "risk": None, "exposures": None, "scale": 1.0,
                               "rolling": rolling_realised_te(report, self.window)}  # fmt: skip
        sources = self._sources(context)
        if sources is not None:
            from qportfolio.tracking import annualiser

            riskdata, benchmark = sources
            from qportfolio.risk.riskdata import read_meta

            benchmark.prepare(list(report.index))
            risk, exposures = ex_ante_tracking(getattr(result, "positions", None), report.index, riskdata, benchmark)
            out["scale"] = annualiser(read_meta(riskdata.root).get("units", "percent"))
            out.update(risk=risk, exposures=exposures)
            metrics.update(ex_ante_metrics(risk, out["scale"]))
        state.extra[STATE_KEY] = out
        return out

    def _sources(self, context: Any) -> tuple[Any, Any] | None:
        """The risk data and bound benchmark weights for the ex-ante figures, or None when there is no risk data."""
        from qportfolio.benchmark import BenchmarkWeights
        from qportfolio.risk.riskdata import RiskData

        name, kwargs = _strategy_kwargs(context.config)
        root = self.riskmodel_root or kwargs.get("riskmodel_root") or context.state.extra.get(
            "qportfolio.riskdata_root")  # fmt: skip
        if not root:
            logger.info("the tracking record has no risk data (riskmodel_root): realised figures only")
            return None
        riskdata = RiskData(str(root), kwargs.get("name_mapping"))
        if riskdata.days.empty:
            raise DataError("the risk-data folder holds no day", path=str(root))
        if self.benchmark is not None or self.market is not None:
            benchmark = BenchmarkWeights.from_spec(self.benchmark, self.market)
        elif kwargs.get("benchmark") is not None or kwargs.get("market") is not None:
            benchmark = BenchmarkWeights.from_spec(kwargs.get("benchmark"), kwargs.get("market"))
        elif name in ("EnhancedIndexing", "EnhancedIndexingStrategy", "enhanced_indexing"):
            benchmark = BenchmarkWeights.from_spec(None, "csi500")  # the strategy's (Qlib's) default market
        else:
            logger.info("the tracking record has no benchmark weights (benchmark, market): realised figures only")
            return None
        benchmark.bind(context.provider, context.kernel.registry("operator"))
        return riskdata, benchmark

    def sections(self, context: Any) -> list[Any]:
        """The HTML report's sections (a builder the plugin registers before the run calls it)."""
        from qportfolio.report_html import tracking_sections

        if getattr(context.state.trading, "report", None) is None:
            return []
        figures = self.figures(context)
        return tracking_sections(figures["metrics"], figures["risk"], figures["exposures"], figures["rolling"],
                                 figures["scale"])  # fmt: skip

    def generate(self, context: Any) -> Any:
        """Metrics (realised TE/IR; ex-ante TE and its parts with risk data) and the per-bar frames."""
        from qcore.context import RecordOutput

        figures = self.figures(context)
        artifacts: dict[str, Any] = {}
        if figures["risk"] is not None:
            artifacts["portfolio_ex_ante"] = figures["risk"]
            artifacts["portfolio_exposures"] = figures["exposures"]
        return RecordOutput(metrics=dict(figures["metrics"]), artifacts=artifacts)
