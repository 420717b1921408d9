"""Active risk against a benchmark: ex ante under a factor risk model, and realised from a backtest's report.

With ``d = w − wb`` (active weights), ``F`` the factor exposures, ``Σ_b`` the factor covariance and ``σ_u²`` the
specific variances of one day's risk data:

- active factor exposures ``v = F'd``;
- factor part of the active variance ``v'Σ_b v``, specific part ``Σ σ_u² d²``;
- ex-ante tracking error ``√(v'Σ_b v + Σ σ_u² d²)`` — the same as ``√(d'Vd)`` with ``V = FΣ_bF' + diag(σ_u²)``.

These are in the risk data's units (``qcore risk build`` writes daily percent); :func:`annualiser` turns a daily
volatility in those units into an annual decimal (``× √252``, ``/ 100`` for percent).

:func:`ex_ante_tracking` applies them to a backtest's holdings: the weights held at each bar end (of the account
value; cash is a zero-risk asset outside the benchmark) against the risk data and benchmark weights of that day —
what the strategy reads when it trades the next bar. Names held outside the day's risk universe cannot be priced by
the model: their weight is reported as ``uncovered`` and left out.

:func:`realised_tracking` gives the realised tracking error (annualised standard deviation of the daily active
return, portfolio minus benchmark, ``ddof=1``), the annualised active return and the information ratio (their
quotient), without and with costs.
"""

from __future__ import annotations

import math
from typing import Any

import attrs
import numpy as np
import pandas as pd

from qcore.errors import DataError, RunError

#: days per year for annualising.
YEAR = 252


@attrs.frozen
class ActiveRisk:
    """One portfolio's active risk against its benchmark (risk data units).

    :ivar te: ex-ante tracking error ``√(factor_var + specific_var)``.
    :ivar factor_te: ``√(v'Σ_b v)``, the factor part as a volatility.
    :ivar specific_te: ``√(Σ σ_u² d²)``, the specific part as a volatility.
    :ivar exposures: active factor exposures ``v = F'd``.
    """

    te: float
    factor_te: float
    specific_te: float
    exposures: np.ndarray = attrs.field(eq=False)

    @property
    def factor_share(self) -> float:
        """The factor part's share of the active variance (NaN when the active variance is 0)."""
        total = self.te**2
        return self.factor_te**2 / total if total > 0 else float("nan")


def active_risk(w: Any, wb: Any, F: Any, cov_b: Any, var_u: Any) -> ActiveRisk:
    """The active risk of weights ``w`` against ``wb`` (``var_u`` are specific *variances*)."""
    d = np.asarray(w, dtype=np.float64) - np.asarray(wb, dtype=np.float64)
    F = np.atleast_2d(np.asarray(F, dtype=np.float64))
    v = d @ F
    factor_var = max(float(v @ np.asarray(cov_b, dtype=np.float64) @ v), 0.0)
    specific_var = max(float(np.asarray(var_u, dtype=np.float64) @ (d * d)), 0.0)
    return ActiveRisk(math.sqrt(factor_var + specific_var), math.sqrt(factor_var), math.sqrt(specific_var), v)


def annualiser(units: str | None) -> float:
    """The factor that turns a daily volatility in ``units`` (``percent`` or ``decimal``) into an annual decimal."""
    scale = 0.01 if units == "percent" else 1.0
    return scale * math.sqrt(YEAR)


def holdings_weights(positions: pd.DataFrame, dates: pd.DatetimeIndex) -> dict[pd.Timestamp, pd.Series]:
    """Each date's held weights (``weight`` column of a backtest's positions; empty where nothing is held)."""
    out: dict[pd.Timestamp, pd.Series] = {pd.Timestamp(d): pd.Series(dtype=np.float64) for d in dates}
    if positions is None or positions.empty:
        return out
    if "weight" not in positions.columns:
        raise RunError("the backtest's positions have no weight column")
    for date, frame in positions["weight"].groupby(level=0):
        out[pd.Timestamp(date)] = frame.droplevel(0).astype(np.float64)
    return out


def ex_ante_tracking(positions: pd.DataFrame, dates: pd.DatetimeIndex, riskdata: Any,
                     benchmark: Any) -> tuple[pd.DataFrame, pd.DataFrame]:  # fmt: skip
    """Ex-ante active risk of the holdings at each of ``dates`` that has risk data (see the module doc).

    :param positions: a backtest's positions (index ``(datetime, instrument)``, a ``weight`` column).
    :param dates: the bar ends to look at (the report's index).
    :param riskdata: a :class:`~qportfolio.risk.riskdata.RiskData`.
    :param benchmark: a prepared :class:`~qportfolio.benchmark.BenchmarkWeights`.
    :returns: ``(risk, exposures)``: per date ``te``, ``factor_te``, ``specific_te`` (risk data units),
        ``factor_share``, ``te_annual`` (annual decimal) and ``uncovered`` (held weight outside the risk universe);
        and the active factor exposures (dates × factors).
    """
    from qportfolio.risk.riskdata import read_meta

    scale = annualiser(read_meta(riskdata.root).get("units", "percent"))
    held = holdings_weights(positions, dates)
    days = set(riskdata.days)
    rows: list[dict[str, Any]] = []
    exposures: list[pd.Series] = []
    for date in pd.DatetimeIndex(dates):
        if date not in days:
            continue
        found = riskdata.get(date)
        if found is None:
            continue
        risk = found[0]
        names = list(risk.instruments)
        weights = held[pd.Timestamp(date)]
        w = weights.reindex(names).fillna(0.0).to_numpy(np.float64)
        wb = benchmark.at(date).reindex(names).fillna(0.0).to_numpy(np.float64)
        result = active_risk(w, wb, risk.exposures.to_numpy(np.float64), risk.factor_cov.to_numpy(np.float64),
                             risk.specific_risk.to_numpy(np.float64) ** 2)  # fmt: skip
        rows.append({"datetime": date, "te": result.te, "factor_te": result.factor_te,
                     "specific_te": result.specific_te, "factor_share": result.factor_share,
                     "te_annual": result.te * scale,
                     "uncovered": float(weights.drop(names, errors="ignore").abs().sum())})  # fmt: skip
        exposures.append(pd.Series(result.exposures, index=list(risk.exposures.columns), name=date))
    if not rows:
        raise DataError(f"no risk data for any of the {len(dates)} bar ends", path=str(riskdata.root))
    frame = pd.DataFrame(rows).set_index("datetime")
    expo = pd.DataFrame(exposures)
    expo.index.name = "datetime"
    return frame, expo


def realised_tracking(report: pd.DataFrame) -> dict[str, float]:
    """Realised tracking error, active return and information ratio (annualised) of a backtest report's
    ``return``, ``bench`` and ``cost`` columns, as ``portfolio.*`` metrics (``_with_cost`` after costs)."""
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


def ex_ante_metrics(risk: pd.DataFrame, scale: float) -> dict[str, float]:
    """Means over the bars of the ex-ante figures, annualised: ``portfolio.ex_ante_te``,
    ``portfolio.ex_ante_factor_te``, ``portfolio.ex_ante_specific_te`` and ``portfolio.ex_ante_factor_share``."""
    if risk.empty:
        return {}
    return {"portfolio.ex_ante_te": float(risk["te"].mean() * scale),
            "portfolio.ex_ante_factor_te": float(risk["factor_te"].mean() * scale),
            "portfolio.ex_ante_specific_te": float(risk["specific_te"].mean() * scale),
            "portfolio.ex_ante_factor_share": float(risk["factor_share"].mean())}  # fmt: skip


def rolling_realised_te(report: pd.DataFrame, window: int = 20) -> pd.Series:
    """The realised tracking error over a trailing ``window`` of bars, annualised (NaN for the first bars)."""
    active = (report["return"] - report["bench"]).astype(np.float64)
    return active.rolling(window, min_periods=window).std(ddof=1) * math.sqrt(YEAR)
