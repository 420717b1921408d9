"""Workflow records of the portfolio plugin.

- ``risk_data``: build the risk data an enhanced-indexing backtest reads, before it runs. Place it before
  ``port_analysis`` in ``records``. Its options are :class:`~qportfolio.risk.build.RiskBuildSpec`'s; ``universe``
  defaults to ``data.universe``, ``start`` to the information date of the backtest's first bar (the day before
  it) and ``end`` to the backtest's end. Days already built with the same settings are kept.
- ``tracking``: after ``port_analysis``, the realised tracking error (annualised standard deviation of the daily
  active return, portfolio minus benchmark) and the information ratio (annualised mean active return over it),
  without and with costs, as the run's ``portfolio.*`` metrics.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from qcore.errors import ConfigError, RunError

#: days per year for annualising.
YEAR = 252


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


def tracking_metrics(report: pd.DataFrame) -> dict[str, float]:
    """Realised tracking error and information ratio of a backtest report (``return``, ``bench``, ``cost``)."""
    missing = [c for c in ("return", "bench") if c not in report.columns]
    if missing:
        raise RunError(f"the backtest report has no {' or '.join(missing)} column")
    out: dict[str, float] = {}
    cost = report["cost"] if "cost" in report.columns else 0.0
    for suffix, active in (("", report["return"] - report["bench"]),
                           ("_with_cost", report["return"] - cost - report["bench"])):  # fmt: skip
        values = active.to_numpy(np.float64)
        values = values[np.isfinite(values)]
        if len(values) < 2:
            continue
        te = float(values.std(ddof=1) * math.sqrt(YEAR))
        out[f"portfolio.tracking_error{suffix}"] = te
        out[f"portfolio.active_return{suffix}"] = float(values.mean() * YEAR)
        if te > 0:
            out[f"portfolio.information_ratio{suffix}"] = float(values.mean() * YEAR / te)
    return out


class TrackingRecord:
    """Realised tracking error and information ratio of the run's backtest (see the module doc)."""

    def check(self, context: Any) -> None:
        """The record needs a backtest that runs before it."""
        names = [s.name for s in context.config.records]
        own = next((i for i, n in enumerate(names) if n in ("tracking", "TrackingRecord")), len(names))
        if not any(n in ("port_analysis", "PortAnaRecord") for n in names[:own]):
            raise context.config.error("the tracking record reads the backtest: put port_analysis before it",
                                       f"records.{own}")  # fmt: skip

    def generate(self, context: Any) -> Any:
        """Metrics from the traded result's ``report`` (``context.state.trading``)."""
        from qcore.context import RecordOutput

        result = _traded(context.state)
        report = getattr(result, "report", None)
        if not isinstance(report, pd.DataFrame):
            raise RunError("the tracking record needs the backtest's report: run port_analysis before it")
        return RecordOutput(metrics=tracking_metrics(report))
