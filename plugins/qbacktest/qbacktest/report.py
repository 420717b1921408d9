"""Frames of a finished run: the daily report, the positions, the trade indicators and the fills."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from qbacktest.account import INDICATOR_COLUMNS, REPORT_COLUMNS, Account


def report_frame(account: Account, bars: pd.DatetimeIndex) -> pd.DataFrame:
    """Qlib's daily report: ``account return total_turnover turnover total_cost cost value cash bench``."""
    frame = pd.DataFrame(account.records, columns=list(REPORT_COLUMNS), index=bars[: len(account.records)])
    frame.index.name = "datetime"
    return frame.astype(np.float64)


def positions_frame(account: Account, bars: pd.DatetimeIndex) -> pd.DataFrame:
    """Holdings at every bar end: index ``(datetime, instrument)``; ``amount price weight count_day``.

    ``amount`` is in adjusted shares and ``price`` the adjusted close it is valued at.
    """
    history = account.history
    dates = pd.DatetimeIndex(bars[: len(history.per_bar)]).repeat(np.asarray(history.per_bar, dtype=np.intp))
    index = pd.MultiIndex.from_arrays([dates, pd.Index(history.names, dtype=object)], names=["datetime", "instrument"])
    columns = {
        "amount": np.asarray(history.amount, dtype=np.float64),
        "price": np.asarray(history.price, dtype=np.float64),
        "weight": np.asarray(history.weight, dtype=np.float64),
        "count_day": np.asarray(history.count, dtype=np.int64),
    }
    return pd.DataFrame(columns, index=index).sort_index()


def indicators_frame(account: Account, bars: pd.DatetimeIndex) -> pd.DataFrame:
    """Qlib's trade indicators per bar: ``ffr`` (fill rate), ``pa`` (price advantage), ``pos`` (share of orders
    with a positive price advantage), ``deal_amount``, ``value``, ``count`` (orders)."""
    frame = pd.DataFrame(account.indicators, columns=list(INDICATOR_COLUMNS), index=bars[: len(account.indicators)])
    frame.index.name = "datetime"
    return frame


def level_report_frame(account: Account) -> pd.DataFrame:
    """A nested run's report of one level: one row per bar the level ran (:attr:`Account.times`)."""
    frame = pd.DataFrame(account.records, columns=list(REPORT_COLUMNS), index=pd.DatetimeIndex(account.times))
    frame.index.name = "datetime"
    return frame.astype(np.float64)


def level_positions_frame(account: Account, count_column: str = "count_day") -> pd.DataFrame:
    """A nested run's holdings of one level at each of its bar ends; the bar count column is the level's
    (``count_day``, ``count_30min``...)."""
    frame = positions_frame(account, pd.DatetimeIndex(account.times))
    return frame.rename(columns={"count_day": count_column})


def level_indicators_frame(account: Account) -> pd.DataFrame:
    """A nested run's trade indicators of one level, one row per bar it ran."""
    frame = pd.DataFrame(account.indicators, columns=list(INDICATOR_COLUMNS), index=pd.DatetimeIndex(account.times))
    frame.index.name = "datetime"
    return frame.astype({"count": np.int64}) if len(frame) else frame


def fills_frame(account: Account, bars: pd.DatetimeIndex) -> pd.DataFrame:
    """Every order of the run with what it dealt, in execution order."""
    fills = account.fills
    steps = np.fromiter((bar for bar, _ in fills), dtype=np.intp, count=len(fills))
    orders = [f.order for _, f in fills]
    return pd.DataFrame({
        "datetime": pd.DatetimeIndex(bars)[steps],
        "instrument": pd.Series([o.instrument for o in orders], dtype=object),
        "direction": pd.Series(["buy" if o.direction == 1 else "sell" for o in orders], dtype=object),
        "amount": np.fromiter((o.amount for o in orders), dtype=np.float64, count=len(orders)),
        "deal_amount": np.fromiter((f.deal_amount for _, f in fills), dtype=np.float64, count=len(fills)),
        "price": np.fromiter((f.price for _, f in fills), dtype=np.float64, count=len(fills)),
        "value": np.fromiter((f.value for _, f in fills), dtype=np.float64, count=len(fills)),
        "cost": np.fromiter((f.cost for _, f in fills), dtype=np.float64, count=len(fills)),
        "pa": np.asarray(account.pa, dtype=np.float64) if len(account.pa) == len(fills) else np.nan,
    })  # fmt: skip


def trade_summary(fills: pd.DataFrame) -> dict[str, float]:
    """Run-level trade indicators: orders, fill rate (amount-weighted and mean), traded value, cost and the
    value-weighted price advantage."""
    if fills.empty:
        return {"orders": 0, "filled_orders": 0, "fill_rate": float("nan"), "fill_rate_mean": float("nan"),
                "traded_value": 0.0, "cost": 0.0, "price_advantage": float("nan")}  # fmt: skip
    amount = fills["amount"].to_numpy()
    deal = fills["deal_amount"].to_numpy()
    with np.errstate(invalid="ignore", divide="ignore"):
        per_order = deal / amount
    pa = fills["pa"].to_numpy() if "pa" in fills else np.array([])
    value = fills["value"].to_numpy()
    has_pa = np.isfinite(pa) & (value > 0) if len(pa) else np.array([], dtype=bool)
    return {
        "orders": len(fills),
        "filled_orders": int((fills["value"] > 0).sum()),
        "fill_rate": float(deal.sum() / amount.sum()) if amount.sum() > 0 else float("nan"),
        "fill_rate_mean": float(np.nanmean(per_order)) if np.isfinite(per_order).any() else float("nan"),
        "traded_value": float(fills["value"].sum()),
        "cost": float(fills["cost"].sum()),
        "price_advantage": float(np.sum(pa[has_pa] * value[has_pa]) / np.sum(value[has_pa])) if has_pa.any()
        else float("nan"),
    }


def ic_frame(scores: pd.Series, label: pd.Series) -> pd.DataFrame:
    """Per-date ``IC`` (Pearson) and ``RankIC`` (Spearman) of scores against a label (Qlib's ``calc_ic``).

    Both Series are indexed ``(datetime, instrument)``; rows missing from either side are left out. A date where
    either side is constant or has fewer than two rows has a NaN IC (quietly: no numpy warning per date).
    """
    frame = pd.DataFrame({"pred": scores, "label": label}).dropna(how="all")
    frame = frame[frame["pred"].notna()]
    if frame.empty:
        return pd.DataFrame({"IC": [], "RankIC": []}, index=pd.DatetimeIndex([], name="datetime"), dtype=np.float64)
    grouped = frame.groupby(level="datetime")
    with warnings.catch_warnings(), np.errstate(invalid="ignore", divide="ignore"):
        warnings.simplefilter("ignore")
        ic = grouped.apply(lambda g: g["pred"].corr(g["label"]))
        rank_ic = grouped.apply(lambda g: g["pred"].corr(g["label"], method="spearman"))
    out = pd.DataFrame({"IC": ic, "RankIC": rank_ic})
    out.index.name = "datetime"
    return out
