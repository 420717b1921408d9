"""The workflow's backtest record (Qlib's ``PortAnaRecord``): trade the run's predictions, store the reports."""

from __future__ import annotations

import json
import math
from typing import Any

from qcore.context import RecordOutput, RunContext
from qcore.errors import ConfigError, RunError

#: PortAnaRecord kwargs of Qlib that only tune its own reporting frequencies: accepted, the day bar is used.
_QLIB_ONLY = ("risk_analysis_freq", "indicator_analysis_freq", "indicator_analysis_method", "skip_existing")

#: The metrics :class:`PortAnaRecord` logs and the labels ``qcore run`` prints them with, in print order.
SUMMARY = (
    ("backtest.excess.annualized_return", "Annualised excess return (without cost)"),
    ("backtest.excess_cost.annualized_return", "Annualised excess return (with cost)"),
    ("backtest.excess.information_ratio", "Information ratio (without cost)"),
    ("backtest.excess_cost.information_ratio", "Information ratio (with cost)"),
    ("backtest.excess_cost.max_drawdown", "Max drawdown (with cost)"),
)
#: The artifact name of the self-contained HTML report.
HTML_REPORT = "report.html"


def _finite(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, float) and value != value:
        return None
    return value


class PortAnaRecord:
    """Run the workflow's ``backtest`` section on the predictions; store ``report_normal_1day``, positions,
    indicators, ``risk.json`` and a self-contained ``report.html``."""

    def __init__(self, **kwargs: Any) -> None:
        unknown = [k for k in kwargs if k not in _QLIB_ONLY]
        if unknown:
            raise ConfigError(f"PortAnaRecord: unsupported option(s) {', '.join(unknown)}")
        #: how a nested run's indicator_analysis_{freq} weighs its bars (mean, amount_weighted, value_weighted)
        self.indicator_method = kwargs.get("indicator_analysis_method") or "mean"

    def check(self, context: RunContext) -> None:
        """Before the run (and at ``qcore validate``): the workflow's backtest section, against the store if open."""
        from qbacktest.api import check_workflow

        check_workflow(context)

    def generate(self, context: RunContext) -> RecordOutput:
        """Backtest ``context.state.pred``; leaves the result in ``context.state.trading`` and shows
        ``context.state.ic`` in the HTML report when a signal analysis ran before, then the sections other records left
        in ``context.state.report_sections``."""
        from qbacktest.api import backtest_from_spec, spec_from_workflow
        from qbacktest.config import SECTION
        from qbacktest.html_report import render_html
        from qbacktest.signal import Signal
        from qcore.reporting import collect_sections

        config = context.config
        if SECTION not in config.sections:
            raise RunError("the port_analysis record needs a backtest section")
        pred = context.state.pred
        if pred is None:
            raise RunError("the port_analysis record needs a model's predictions: add a model section")
        spec = spec_from_workflow(config)
        provider_uri = config.data.provider.kwargs.get("provider_uri")
        signal = Signal(pred, source=f"the predictions of model {config.model.name!r}" if config.model else None)
        result = backtest_from_spec(spec, context.provider, context.kernel, signal=signal, provider_uri=provider_uri)
        risk = result.risk()
        context.state.trading = result
        metrics: dict[str, float] = {}
        for series, key in (("excess_return_without_cost", "excess"), ("excess_return_with_cost", "excess_cost")):
            stats = risk[series]["sum"]
            for stat in ("annualized_return", "information_ratio", "max_drawdown"):
                value = stats.get(stat)
                if value is not None and math.isfinite(value):
                    metrics[f"backtest.{key}.{stat}"] = float(value)
        html = render_html(result.report, risk, ic=context.state.ic, title=f"qcore: {config.experiment}",
                           meta={"strategy": spec.strategy.name, "exchange": result.exchange.description},
                           levels={freq: level.indicators for freq, level in result.levels.items()},
                           sections=collect_sections(context.state))
        artifacts = {
            "report_normal_1day": result.report,
            "positions_normal_1day": result.positions,
            "indicators_normal_1day": result.indicators,
            "risk": json.loads(json.dumps(_finite(risk), default=str)),  # JSON has no NaN: null
            HTML_REPORT: html,
        }
        for freq, level in result.levels.items():  # a nested run: every level's report at its own frequency
            artifacts[f"report_normal_{freq}"] = level.report
            artifacts[f"positions_normal_{freq}"] = level.positions
            artifacts[f"indicators_normal_{freq}"] = level.indicators
            artifacts[f"indicator_analysis_{freq}"] = level.indicator_analysis(self.indicator_method)
        return RecordOutput(metrics=metrics, artifacts=artifacts)
