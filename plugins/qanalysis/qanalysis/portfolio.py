"""Portfolio and position analysis from a backtest's outputs, read as data.

Inputs are frames as a backtest writes them: the report (by date: ``return``, ``cost``, ``bench``, ``turnover``...)
and positions (indexed ``(datetime, instrument)`` with ``weight``), plus a label (the next bars' return of every
name, indexed ``(datetime, instrument)``). Semantics of the bought/sold/held figures follow Qlib's
``qlib.contrib.report.analysis_position`` (``parse_position``, ``cumulative_return_graph``, ``rank_label_graph``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

DATE, INSTRUMENT = "datetime", "instrument"
STATUS = {1: "buy", 0: "hold", -1: "sell"}


def position_status(positions: pd.DataFrame) -> pd.DataFrame:
    """Each date's held names with ``status`` 1 (bought: not held the date before) or 0 (held before too), plus the
    names held the date before and not any more, with status -1 and their previous weight (Qlib's
    ``parse_position``). Columns ``weight`` and ``status``, indexed ``(datetime, instrument)``.

    Vectorised: each holding is a key ``date position * names + name code``; a holding is new when the key one
    date earlier is absent, and sold on the next date when the key one date later is absent."""
    weights = positions["weight"].astype(float)
    if weights.empty:
        return pd.DataFrame(columns=["weight", "status"])
    day_codes, dates = pd.factorize(weights.index.get_level_values(DATE), sort=True)
    name_codes, names = pd.factorize(weights.index.get_level_values(INSTRUMENT), sort=True)
    width = len(names)
    keys = day_codes.astype(np.int64) * width + name_codes
    ordered = np.sort(keys)
    held_before = (day_codes > 0) & _contains(ordered, keys - width)
    sold = (day_codes < len(dates) - 1) & ~_contains(ordered, keys + width)
    day = np.concatenate([day_codes, day_codes[sold] + 1])
    name = np.concatenate([name_codes, name_codes[sold]])
    values = weights.to_numpy()
    frame = pd.DataFrame({"weight": np.concatenate([values, values[sold]]),
                          "status": np.concatenate([np.where(held_before, 0, 1), np.full(int(sold.sum()), -1)])},
                         index=pd.MultiIndex(levels=[pd.DatetimeIndex(dates), pd.Index(names)], codes=[day, name],
                                             names=[DATE, INSTRUMENT]))  # fmt: skip
    return frame.sort_index()


def _contains(ordered: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """Whether each of ``keys`` is in the sorted array ``ordered``."""
    at = np.searchsorted(ordered, keys)
    return ordered[np.minimum(at, len(ordered) - 1)] == keys


def _with_label(positions: pd.DataFrame, label: pd.Series) -> pd.DataFrame:
    """Every labelled name of the positions' dates, with its status (NaN when neither held nor sold)."""
    status = position_status(positions)
    dates = status.index.get_level_values(DATE)
    label = label.rename("label")
    when = label.index.get_level_values(DATE)
    label = label[(when >= dates.min()) & (when <= dates.max())]
    return pd.concat([status, label], axis=1).reindex(label.index)


def cumulative_return_by_status(positions: pd.DataFrame, report: pd.DataFrame, label: pd.Series) -> pd.DataFrame:
    """Per date, the weight-averaged excess label (label − the next bar's benchmark return) of the names bought,
    sold and held, and their cumulative sums (``cum_buy``, ``cum_sell``, ``cum_hold``, ``cum_buy_minus_sell``) —
    Qlib's ``cumulative_return_graph`` data."""
    frame = _with_label(positions, label)
    bench = report["bench"].shift(-1)
    frame["label"] = frame["label"] - bench.reindex(frame.index.get_level_values(DATE)).to_numpy()
    frame = frame.dropna()
    out = {}
    for code, name in STATUS.items():
        part = frame[frame["status"] == code]
        value = (part["label"] * part["weight"]).groupby(level=DATE).sum()
        weight = part["weight"].groupby(level=DATE).sum()
        out[f"{name}_mean"] = (value / weight.where(weight != 0)).fillna(0.0)
        out[f"{name}_weight"] = weight
    dates = frame.index.get_level_values(DATE).unique().sort_values()
    table = pd.DataFrame(out).reindex(dates)
    table[[c for c in table.columns if c.endswith("_mean")]] = table.filter(like="_mean").fillna(0.0)
    table = table.fillna(0.0)
    table["buy_minus_sell_mean"] = table["buy_mean"] - table["sell_mean"]
    for name in ("hold", "buy", "sell", "buy_minus_sell"):
        table[f"cum_{name}"] = table[f"{name}_mean"].cumsum()
    return table


def rank_label(positions: pd.DataFrame, label: pd.Series) -> pd.DataFrame:
    """Per date, the mean rank (percent, 1 = best label of all labelled names) of the names bought, sold and held
    — Qlib's ``rank_label_graph`` data (0 where a date has no such name)."""
    frame = _with_label(positions, label)
    counts = frame.groupby(level=DATE)["label"].transform("size")
    frame["rank_ratio"] = frame.groupby(level=DATE)["label"].rank(ascending=False) / counts * 100
    out = {}
    for code, name in {0: "Hold", 1: "Buy", -1: "Sell"}.items():
        out[name] = frame["rank_ratio"].where(frame["status"] == code).groupby(level=DATE).mean()
    dates = frame.loc[frame["status"].notna()].index.get_level_values(DATE).unique().sort_values()
    return pd.DataFrame(out).reindex(dates).fillna(0.0)


def monthly_risk(report: pd.DataFrame) -> pd.DataFrame:
    """Per month: return, benchmark, excess return with cost (sums of daily values), the daily excess's
    volatility (annualised, √252) and its max drawdown (of the cumulative sum), and the cost."""
    excess = report["return"] - report["bench"] - report["cost"]
    month = pd.DatetimeIndex(report.index).to_period("M")

    def drawdown(values: pd.Series) -> float:
        cum = values.cumsum()
        return float((cum - cum.cummax()).min())

    grouped = excess.groupby(month)
    sums = report[["return", "bench", "cost"]].groupby(month).sum()
    return pd.DataFrame({"return": sums["return"], "bench": sums["bench"], "excess_with_cost": grouped.sum(),
                         "volatility": grouped.std() * np.sqrt(252), "max_drawdown": grouped.apply(drawdown),
                         "cost": sums["cost"]})  # fmt: skip


def rolling_risk(report: pd.DataFrame, window: int = 63) -> pd.DataFrame:
    """Rolling annualised Sharpe and volatility of the daily excess return with cost over ``window`` bars."""
    excess = report["return"] - report["bench"] - report["cost"]
    mean, std = excess.rolling(window).mean(), excess.rolling(window).std()
    return pd.DataFrame({"sharpe": mean / std.where(std > 0) * np.sqrt(252), "volatility": std * np.sqrt(252)})


def holdings(positions: pd.DataFrame) -> pd.DataFrame:
    """Per date: names held (``count``), the largest weight (``max_weight``), the Herfindahl index of the
    normalised weights (``hhi``) and its inverse, the effective number of names (``effective_n``)."""
    weight = positions["weight"].astype(float)
    by_date = weight.groupby(level=DATE)
    share = weight / by_date.transform("sum")
    hhi = (share**2).groupby(level=DATE).sum()
    return pd.DataFrame({"count": by_date.size(), "max_weight": by_date.max(), "hhi": hhi,
                         "effective_n": 1 / hhi.where(hhi > 0)})  # fmt: skip


def cost_attribution(report: pd.DataFrame) -> dict[str, float]:
    """Totals of the backtest: gross and net return (sums), cost, cost as a share of the gross return, mean daily
    turnover and cost per unit of turnover."""
    gross, cost, turnover = float(report["return"].sum()), float(report["cost"].sum()), report["turnover"]
    return {"gross return (sum)": gross, "cost (sum)": cost, "net return (sum)": gross - cost,
            "cost / gross return": cost / gross if gross else float("nan"),
            "mean daily turnover": float(turnover.mean()),
            "cost per unit turnover": cost / float(turnover.sum()) if turnover.sum() else float("nan")}  # fmt: skip


def industry_weights(positions: pd.DataFrame, industry: pd.Series) -> pd.DataFrame:
    """Per date (rows) and industry code (columns), the summed ``weight`` of the names held in that industry on that
    date; ``industry`` is indexed ``(datetime, instrument)``. A held name with no code that date counts under
    ``unknown`` (a column only when needed), so each row sums to the date's invested share."""
    weights = positions["weight"].astype(float)
    codes = industry.reindex(weights.index)
    labels = codes.map(_industry_label, na_action="ignore").fillna("unknown")
    table = weights.groupby([weights.index.get_level_values(DATE), labels.to_numpy()]).sum().unstack(fill_value=0.0)
    table.index.name, table.columns.name = DATE, "industry"
    return table[sorted(table.columns, key=_industry_order)]


def benchmark_industry_weights(bench_weight: pd.Series, industry: pd.Series) -> pd.DataFrame:
    """Per date and industry code, the benchmark's weight (each date's weights scaled to sum to 1; NaN counts as 0;
    names without a code under ``unknown``). Both series are indexed ``(datetime, instrument)``."""
    weight = bench_weight.astype(float).fillna(0.0)
    weight = weight[weight > 0]
    total = weight.groupby(level=DATE).transform("sum")
    return industry_weights((weight / total).to_frame("weight"), industry)


def active_industry_exposure(portfolio: pd.DataFrame, benchmark: pd.DataFrame) -> pd.DataFrame:
    """The portfolio's industry weights as shares of its invested part (each row scaled to sum to 1) minus the
    benchmark's, on the portfolio's dates and the union of both tables' industries (a missing one counts as 0)."""
    columns = sorted(set(portfolio.columns) | set(benchmark.columns), key=_industry_order)
    own = portfolio.reindex(columns=columns, fill_value=0.0)
    invested = own.sum(axis=1)
    own = own.div(invested.where(invested > 0), axis=0)
    bench = benchmark.reindex(index=own.index, columns=columns).fillna(0.0)
    return own - bench


def _industry_label(code: float) -> str:
    return str(int(code)) if float(code).is_integer() else str(code)


def _industry_order(label: str) -> tuple[int, float, str]:
    try:
        return 0, float(label), label
    except ValueError:
        return 1, 0.0, label
