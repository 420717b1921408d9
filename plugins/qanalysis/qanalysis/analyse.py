"""Run the whole signal and position analysis and turn it into artifacts and report sections."""

from __future__ import annotations

from typing import Any

import pandas as pd

from qanalysis import charts, portfolio, signal
from qcore.reporting import ReportSection


def signal_analysis(pred: pd.Series, label: pd.Series, *, n_groups: int = 5, lag: int = 1,
                    decay_labels: pd.DataFrame | None = None,
                    ic: pd.DataFrame | None = None) -> dict[str, Any]:  # fmt: skip
    """Every signal figure as artifacts (frames by name, ``summary`` a mapping).

    :param ic: the per-date ``IC``/``RankIC`` of these ``pred`` and ``label`` when an earlier step computed it
        (the ``sig_analysis`` record's ``context.state.ic``); computed here otherwise.
    """
    if ic is None:
        ic = signal.calc_ic(pred, label)
    elif not {"IC", "RankIC"} <= set(ic.columns):
        raise ValueError(f"an IC frame needs columns IC and RankIC, got {list(ic.columns)}")
    else:
        ic = ic[["IC", "RankIC"]]
    out: dict[str, Any] = {
        "ic": ic,
        "group_returns": signal.group_returns(pred, label, n_groups),
        "long_short": signal.calc_long_short_return(pred, label),
        "monthly_ic": signal.monthly_ic(ic["IC"]),
        "ic_histogram": signal.ic_histogram(ic["IC"]),
        "ic_qq": signal.normal_qq(ic["IC"]),
        "autocorr": signal.rank_autocorr(pred, lag).to_frame(),
        "turnover": signal.top_bottom_turnover(pred, n_groups, lag),
        "coverage": signal.coverage(pred, label),
        "summary": signal.ic_summary(ic),
    }
    if decay_labels is not None:
        out["ic_decay"] = signal.ic_decay(pred, decay_labels)
    return out


def signal_sections(result: dict[str, Any]) -> list[ReportSection]:
    """The signal analysis as report sections (Qlib's ``model_performance_graph`` and alphalens' IC decay)."""
    sections = [
        ReportSection("Signal: IC summary", charts.value_table("qa-ic-summary", result["summary"]), "qa-summary"),
        ReportSection("Signal: cumulative return of score groups",
                      charts.line_chart("qa-group-returns", result["group_returns"].cumsum()), "qa-groups"),
        ReportSection("Signal: IC and Rank IC by date", charts.line_chart("qa-ic", result["ic"]), "qa-ic-dates"),
        ReportSection("Signal: monthly IC", charts.heatmap_table("qa-monthly-ic", result["monthly_ic"]),
                      "qa-monthly"),
    ]
    hist = result["ic_histogram"]
    qq = result["ic_qq"]
    body = charts.bar_chart("qa-ic-hist", pd.Series(hist["count"].to_numpy(float),
                                                      index=[f"{v:.3f}" for v in hist["left"]]))  # fmt: skip
    body += charts.scatter_chart("qa-ic-qq", qq["theoretical"].to_numpy(), qq["sample"].to_numpy())
    sections.append(ReportSection("Signal: IC distribution and normal Q-Q", body, "qa-ic-dist"))
    if "ic_decay" in result:
        sections.append(ReportSection("Signal: IC decay by label horizon (days)",
                                      charts.line_chart("qa-ic-decay", result["ic_decay"][["IC", "RankIC"]]),
                                      "qa-decay"))  # fmt: skip
    sections += [
        ReportSection("Signal: score auto-correlation", charts.line_chart("qa-autocorr", result["autocorr"]),
                      "qa-autocorr"),
        ReportSection("Signal: top and bottom group turnover", charts.line_chart("qa-turnover", result["turnover"]),
                      "qa-turnover"),
        ReportSection("Signal: coverage (names per date)", charts.line_chart("qa-coverage", result["coverage"]),
                      "qa-coverage"),
    ]
    return sections


def position_analysis(report: pd.DataFrame, positions: pd.DataFrame, label: pd.Series | None) -> dict[str, Any]:
    """Every portfolio and position figure as artifacts (the bought/sold/held ones need the label)."""
    out: dict[str, Any] = {
        "monthly_risk": portfolio.monthly_risk(report),
        "rolling_risk": portfolio.rolling_risk(report),
        "holdings": portfolio.holdings(positions),
        "cost_attribution": portfolio.cost_attribution(report),
    }
    if label is not None:
        out["cumulative_return_by_status"] = portfolio.cumulative_return_by_status(positions, report, label)
        out["rank_label"] = portfolio.rank_label(positions, label)
    return out


def position_sections(result: dict[str, Any]) -> list[ReportSection]:
    """The position analysis as report sections (Qlib's ``cumulative_return_graph``, ``rank_label_graph``,
    ``risk_analysis_graph``)."""
    sections = []
    if "cumulative_return_by_status" in result:
        cum = result["cumulative_return_by_status"][["cum_buy", "cum_sell", "cum_hold", "cum_buy_minus_sell"]]
        sections += [
            ReportSection("Positions: cumulative excess return of bought, sold and held names",
                          charts.line_chart("qa-cum-status", cum), "qa-cum-status"),
            ReportSection("Positions: next-bar label rank of traded names (%)",
                          charts.line_chart("qa-rank-label", result["rank_label"]), "qa-rank-label"),
        ]
    monthly = result["monthly_risk"].copy()
    monthly.index = monthly.index.astype(str)
    sections += [
        ReportSection("Portfolio: monthly risk", charts.heatmap_table("qa-monthly-risk", monthly), "qa-monthly-risk"),
        ReportSection("Portfolio: rolling Sharpe and volatility (63 bars)",
                      charts.line_chart("qa-rolling", result["rolling_risk"]), "qa-rolling"),
        ReportSection("Portfolio: holdings count and concentration",
                      charts.line_chart("qa-holdings", result["holdings"][["count", "effective_n"]]), "qa-holdings"),
        ReportSection("Portfolio: cost and turnover",
                      charts.value_table("qa-costs", result["cost_attribution"]), "qa-costs"),
    ]
    return sections


def industry_sections(result: dict[str, Any]) -> list[ReportSection]:
    """The industry exposure as report sections (none when the store had no industry field)."""
    if "industry" not in result:
        return []
    sections = [ReportSection("Portfolio: weight per industry",
                              charts.stacked_area_chart("qa-industry", result["industry"]), "qa-industry")]
    if "industry_active" in result:
        monthly = result["industry_active"].groupby(pd.DatetimeIndex(result["industry_active"].index).to_period("M"))
        table = monthly.mean()
        table.index = table.index.astype(str)
        sections.append(ReportSection("Portfolio: active industry exposure (monthly mean, invested part − benchmark)",
                                      charts.heatmap_table("qa-industry-active", table), "qa-industry-active"))
    return sections
