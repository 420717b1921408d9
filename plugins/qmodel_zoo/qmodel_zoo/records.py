"""The workflow's signal-analysis record (Qlib's ``SigAnaRecord``): IC of the predictions against the label."""

from __future__ import annotations

from typing import Any

from qcore.context import RecordOutput, RunContext
from qcore.errors import RunError

#: The metrics :class:`SigAnaRecord` logs and the labels ``qcore run`` prints them with, in print order (the
#: long-short ones only with ``ana_long_short``).
SUMMARY = (("signal.IC", "IC"), ("signal.ICIR", "ICIR"), ("signal.Rank_IC", "Rank IC"),
           ("signal.Rank_ICIR", "Rank ICIR"), ("signal.Long_Short_Ann_Return", "Long-short annualised return"),
           ("signal.Long_Short_Ann_Sharpe", "Long-short annualised Sharpe"),
           ("signal.Long_Avg_Ann_Return", "Long-average annualised return"),
           ("signal.Long_Avg_Ann_Sharpe", "Long-average annualised Sharpe"))  # fmt: skip

_QLIB_ONLY = ("label_col", "skip_existing")


class SigAnaRecord:
    """Per-date IC and Rank IC of the run's predictions, their means and IRs, and optionally long-short returns.

    :param ana_long_short: also compute the long-short and long-average returns of the top/bottom quintiles.
    :param ann_scaler: annualisation factor of those returns (252 for daily bars).
    """

    def __init__(self, ana_long_short: bool = False, ann_scaler: int = 252, **kwargs: Any) -> None:
        unknown = [k for k in kwargs if k not in _QLIB_ONLY]
        if unknown:
            raise TypeError(f"SigAnaRecord got unknown option(s): {', '.join(unknown)}")
        self.ana_long_short = ana_long_short
        self.ann_scaler = ann_scaler

    def generate(self, context: RunContext) -> RecordOutput:
        """IC of ``context.state.pred`` against ``context.state.label``; leaves the per-date IC in
        ``context.state.ic`` for the records after it."""
        from qmodel_zoo.analysis import calc_ic, ic_summary, long_short_returns, long_short_summary

        pred, label = context.state.pred, context.state.label
        if pred is None or label is None:
            raise RunError("the sig_analysis record needs predictions and a label: add a model and a dataset label")
        ic = calc_ic(pred, label)
        context.state.ic = ic
        summary = ic_summary(ic)
        metrics = {f"signal.{key.replace(' ', '_')}": value for key, value in summary.items()}
        artifacts: dict[str, Any] = {"ic": ic}
        if self.ana_long_short:
            returns = long_short_returns(pred, label)
            artifacts["long_short"] = returns
            for key, value in long_short_summary(returns, self.ann_scaler).items():
                metrics[f"signal.{key.replace(' ', '_').replace('-', '_')}"] = value
        return RecordOutput(metrics=metrics, artifacts=artifacts)
