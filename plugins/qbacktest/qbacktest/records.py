"""The workflow's backtest record (Qlib's ``PortAnaRecord``): trade the run's predictions, store the reports."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pandas as pd

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
    ("backtest.multi_pass.excess_cost.annualized_return.mean", "Multi-pass annualised excess return (with cost), mean"),
    ("backtest.multi_pass.excess_cost.annualized_return.std", "Multi-pass annualised excess return (with cost), std"),
    ("backtest.multi_pass.excess_cost.information_ratio.mean", "Multi-pass information ratio (with cost), mean"),
    ("backtest.multi_pass.excess_cost.information_ratio.std", "Multi-pass information ratio (with cost), std"),
)
#: The artifact name of the self-contained HTML report.
HTML_REPORT = "report.html"


#: the excess-return series of the risk analysis and the metric names they are logged under.
_SERIES = (("excess_return_without_cost", "excess"), ("excess_return_with_cost", "excess_cost"))


def risk_stats(risk: dict[str, Any],
               stats: tuple[str, ...] = ("annualized_return", "information_ratio", "max_drawdown"),
               ) -> dict[tuple[str, str], float]:
    """``(series key, statistic) → value`` of a backtest's risk analysis (``sum`` mode), finite values only."""
    out: dict[tuple[str, str], float] = {}
    for series, key in _SERIES:
        found = risk[series]["sum"]
        for stat in stats:
            value = found.get(stat)
            if value is not None and math.isfinite(value):
                out[(key, stat)] = float(value)
    return out


def _finite(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, float) and value != value:
        return None
    return value


def _backtest_inputs(context: RunContext, record: str) -> tuple[Any, Any, str | None]:
    """What a backtest record runs on: the predictions, the workflow's backtest spec and the store's folder; an
    error naming ``record`` when the workflow has no backtest section or no predictions."""
    from qbacktest.api import spec_from_workflow
    from qbacktest.config import SECTION

    config = context.config
    if SECTION not in config.sections:
        raise RunError(f"the {record} record needs a backtest section")
    pred = context.state.pred
    if pred is None:
        raise RunError(f"the {record} record needs a model's predictions: add a model section")
    return pred, spec_from_workflow(config), config.data.provider.kwargs.get("provider_uri")


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
        from qbacktest.api import backtest_from_spec
        from qbacktest.html_report import render_html
        from qbacktest.signal import Signal
        from qcore.reporting import collect_sections

        config = context.config
        pred, spec, provider_uri = _backtest_inputs(context, "port_analysis")
        signal = Signal(pred, source=f"the predictions of model {config.model.name!r}" if config.model else None)
        result = backtest_from_spec(spec, context.provider, context.kernel, signal=signal, provider_uri=provider_uri)
        risk = result.risk()
        context.state.trading = result
        metrics = {f"backtest.{key}.{stat}": value for (key, stat), value in risk_stats(risk).items()}
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


#: the statistics Qlib's MultiPassPortAnaRecord aggregates over its passes.
MULTI_PASS_STATS = ("annualized_return", "information_ratio")


def shuffled_first_date(pred: pd.Series | pd.DataFrame, start: pd.Timestamp | None,
                        rng: np.random.Generator) -> pd.Series | pd.DataFrame:
    """A copy of ``pred`` whose scores on the first prediction date on or after ``start`` (the backtest's start;
    None: the first date) are permuted across instruments, so the first portfolio is random."""
    dates = pred.index.get_level_values("datetime")
    candidates = dates[dates >= start] if start is not None else dates
    if len(candidates) == 0:
        raise RunError(f"no prediction on or after the backtest start {start:%Y-%m-%d}: nothing to shuffle")
    rows = np.flatnonzero(dates == candidates.min())
    out = pred.copy()
    values = out.to_numpy(copy=True)
    values[rows] = values[rng.permutation(rows)]
    if isinstance(out, pd.Series):
        return pd.Series(values, index=out.index, name=out.name)
    return pd.DataFrame(values, index=out.index, columns=out.columns)


class MultiPassPortAnaRecord:
    """Qlib's ``MultiPassPortAnaRecord``: the workflow's ``backtest`` run ``pass_num`` times, the annualised return
    and information ratio of the excess returns (without and with cost) averaged over the passes.

    With ``shuffle_init_score`` (Qlib's default) each pass permutes the scores of the first prediction date on or
    after the backtest's start, so the passes start from different random portfolios and the spread measures how
    much the result depends on the starting point. Unlike Qlib (unseeded ``np.random``), pass ``i`` draws from a
    generator seeded with ``(seed, i)`` (``seed``: the workflow's ``seed`` unless given), so a run is reproducible.

    Logs ``backtest.multi_pass.{excess|excess_cost}.{annualized_return|information_ratio}.{mean|std|mean_std}``
    (``std`` with one degree of freedom, as pandas; ``mean_std`` = mean / std) and stores
    ``multi_pass_port_analysis_1day`` (Qlib's table: rows ``(series, statistic)``, columns ``mean``, ``std``,
    ``mean_std``) and ``multi_pass_runs_1day`` (every pass's values).
    """

    def __init__(self, pass_num: int = 10, shuffle_init_score: bool = True, seed: int | None = None,
                 **kwargs: Any) -> None:
        unknown = [k for k in kwargs if k not in _QLIB_ONLY]
        if unknown:
            raise ConfigError(f"MultiPassPortAnaRecord: unsupported option(s) {', '.join(unknown)}", path=unknown[0])
        if isinstance(pass_num, bool) or not isinstance(pass_num, int) or pass_num < 1:
            raise ConfigError(f"pass_num must be a whole number >= 1, got {pass_num!r}", path="pass_num")
        if not isinstance(shuffle_init_score, bool):
            raise ConfigError(f"shuffle_init_score must be true or false, got {shuffle_init_score!r}",
                              path="shuffle_init_score")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
            raise ConfigError(f"seed must be a whole number >= 0, got {seed!r}", path="seed")
        self.pass_num = pass_num
        self.shuffle_init_score = shuffle_init_score
        self.seed = seed

    def check(self, context: RunContext) -> None:
        """Before the run (and at ``qcore validate``): the workflow's backtest section, against the store if open."""
        from qbacktest.api import check_workflow

        check_workflow(context)

    def generate(self, context: RunContext) -> RecordOutput:
        """Backtest ``context.state.pred`` ``pass_num`` times; the passes' statistics, their mean, std and ratio."""
        from qbacktest.api import backtest_from_spec
        from qbacktest.signal import Signal

        config = context.config
        pred, spec, provider_uri = _backtest_inputs(context, "MultiPassPortAnaRecord")
        seed = config.seed if self.seed is None else self.seed
        rows = []
        for i in range(self.pass_num):
            scores = (shuffled_first_date(pred, spec.start, np.random.default_rng([seed, i]))
                      if self.shuffle_init_score else pred)  # fmt: skip
            signal = Signal(scores, source=f"the predictions (pass {i + 1} of {self.pass_num})")
            result = backtest_from_spec(spec, context.provider, context.kernel, signal=signal,
                                        provider_uri=provider_uri)
            for (key, stat), value in risk_stats(result.risk(), MULTI_PASS_STATS).items():
                rows.append({"pass": i, "series": key, "statistic": stat, "value": value})
        runs = pd.DataFrame(rows, columns=["pass", "series", "statistic", "value"])
        grouped = runs.groupby(["series", "statistic"], sort=True)["value"]
        table = pd.DataFrame({"mean": grouped.mean(), "std": grouped.std(ddof=1)})
        with np.errstate(divide="ignore", invalid="ignore"):
            table["mean_std"] = table["mean"] / table["std"]
        metrics = {f"backtest.multi_pass.{key}.{stat}.{column}": float(table.loc[(key, stat), column])
                   for key, stat in table.index for column in table.columns
                   if math.isfinite(table.loc[(key, stat), column])}  # fmt: skip
        metrics["backtest.multi_pass.passes"] = float(self.pass_num)
        return RecordOutput(metrics=metrics, artifacts={"multi_pass_port_analysis_1day": table,
                                                        "multi_pass_runs_1day": runs})
