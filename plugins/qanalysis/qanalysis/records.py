"""The workflow's ``analysis`` record: signal analysis of the run's predictions, position analysis of its backtest,
stored as artifacts and as sections of the run's HTML report."""

from __future__ import annotations

from typing import Any

from qcore.context import RecordOutput, RunContext
from qcore.errors import RunError

#: The metrics the record logs.
METRICS = {"IC": "analysis.IC", "ICIR": "analysis.ICIR", "Rank IC": "analysis.Rank_IC",
           "Rank ICIR": "analysis.Rank_ICIR"}  # fmt: skip


def _trading_frames(trading: Any) -> tuple[Any, Any] | None:
    """The report and positions frames of a trading result (any object with ``report`` and ``positions`` frames)."""
    report, positions = getattr(trading, "report", None), getattr(trading, "positions", None)
    if report is None or positions is None or "weight" not in getattr(positions, "columns", ()):
        return None
    return report, positions


class AnalysisRecord:
    """Signal analysis (quantile groups, IC by date and month, IC decay, auto-correlation, turnover, coverage) and,
    once the run has traded, position analysis, as artifacts named ``analysis_*`` and report sections.

    :param n_groups: quantile groups of the score.
    :param lag: lag of the auto-correlation and turnover.
    :param ic_decay: label horizons of the IC decay (0: none), labels computed by the run's expression engine.
    :param html: write ``analysis.html`` (the sections alone) even when a backtest report shows them.
    :param industry: the store's industry-code field for the industry exposure (``auto``: ``$industry`` when the
        store has it; None: none); see :mod:`qanalysis.industry`.
    :param bench_weight: the benchmark weight field for the active industry exposure (``auto``:
        ``$<universe>_weight`` when the store has it; None: none).
    """

    def __init__(self, n_groups: int = 5, lag: int = 1, ic_decay: int = 20, html: bool = False,
                 industry: str | None = "auto", bench_weight: str | None = "auto") -> None:  # fmt: skip
        if n_groups < 1 or lag < 1 or ic_decay < 0:
            raise ValueError("analysis: n_groups and lag must be at least 1, ic_decay at least 0")
        for key, value in (("industry", industry), ("bench_weight", bench_weight)):
            if value is not None and not isinstance(value, str):
                raise ValueError(f"analysis: {key} must be a field name, 'auto' or null, got {value!r}")
        self.n_groups, self.lag, self.ic_decay, self.html = n_groups, lag, ic_decay, html
        self.industry, self.bench_weight = industry, bench_weight

    def _industry(self, context: RunContext, positions: Any) -> dict[str, Any]:
        """The industry exposure of ``positions`` read through the run's engine (or its provider); {} without a
        store or an industry field."""
        from qanalysis.industry import industry_analysis

        engine = context.state.engine
        if engine is None and getattr(context, "provider", None) is not None:
            from qcore.expr.engine import ExpressionEngine

            engine = ExpressionEngine(context.provider, context.kernel.registry("operator"))
        if engine is None or self.industry is None:
            return {}
        data = getattr(context.config, "data", None)
        market = getattr(data, "universe", None)
        return industry_analysis(engine, positions, industry=self.industry, bench_weight=self.bench_weight,
                                 market=market if isinstance(market, str) else None)  # fmt: skip

    def generate(self, context: RunContext) -> RecordOutput:
        """Analyse ``context.state.pred`` against ``context.state.label`` (reusing the per-date IC an earlier
        ``sig_analysis`` left in ``context.state.ic``); append the report sections (a builder for the position
        ones when the backtest has not run yet)."""
        from qanalysis.analyse import (
            industry_sections,
            position_analysis,
            position_sections,
            signal_analysis,
            signal_sections,
        )
        from qanalysis.signal import horizon_labels
        from qcore.reporting import ReportSection, render_page

        state = context.state
        if state.pred is None or state.label is None:
            raise RunError("the analysis record needs predictions and a label: add a model and a dataset label")
        decay = None
        if self.ic_decay and state.engine is not None and context.config.data is not None:
            dates = state.pred.index.get_level_values("datetime")
            names = sorted(set(state.pred.index.get_level_values("instrument")))
            decay = horizon_labels(state.engine, names, dates.min(), dates.max(), range(1, self.ic_decay + 1))
        ic = state.ic if state.ic is not None and {"IC", "RankIC"} <= set(state.ic.columns) else None
        result = signal_analysis(state.pred, state.label, n_groups=self.n_groups, lag=self.lag, decay_labels=decay,
                                 ic=ic)  # fmt: skip
        sections = signal_sections(result)
        state.report_sections.extend(sections)
        artifacts: dict[str, Any] = {f"analysis_{k}": v for k, v in result.items()}
        frames = _trading_frames(state.trading)
        if frames is not None:  # listed after the backtest: analyse its positions now
            positions = position_analysis(*frames, state.label)
            industry = self._industry(context, frames[1])
            positions.update(industry)
            artifacts.update({f"analysis_{k}": v for k, v in positions.items()})
            state.report_sections.extend(position_sections(positions) + industry_sections(industry))
        elif "backtest" in context.config.sections:
            label = state.label

            def later(run_state: Any) -> list[Any]:
                traded = _trading_frames(run_state.trading)
                if not traded:
                    return []
                industry = self._industry(context, traded[1])
                run = getattr(context, "run", None)
                if run is not None:  # the backtest ran after this record: store its artifacts now
                    for key, value in industry.items():
                        run.log_artifact(f"analysis_{key}", value)
                return position_sections(position_analysis(*traded, label)) + industry_sections(industry)

            state.report_sections.append(later)
        if self.html or "backtest" not in context.config.sections:
            shown = [s for s in state.report_sections if isinstance(s, ReportSection)]
            artifacts["analysis.html"] = render_page(f"qcore analysis: {context.config.experiment}", shown)
        metrics = {METRICS[k]: v for k, v in result["summary"].items()}
        return RecordOutput(metrics=metrics, artifacts=artifacts)
