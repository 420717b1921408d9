"""A fundamental-style factor risk model computed from a store's fields with the expression engine.

Exposures (each an expression evaluated on the whole ``dates × instruments`` panel by
:class:`qcore.expr.engine.ExpressionEngine`):

- **industry** dummies, one per code of the store's ``$industry`` field, when the store has one (``industry``
  names another field; ``None`` turns them off); without industries an all-ones **market** factor takes their
  place (with them the dummies already sum to one);
- **styles**, by default: ``size`` (``Log($market_cap)`` when the store has a ``market_cap`` field, else the log of
  the 250-day mean traded value ``$amount``, a documented proxy), ``beta`` (250-day covariance with the market
  return over its variance; the market is ``market_index`` — an index instrument such as ``SH000300`` read with
  ``ChangeInstrument`` — or the cross-sectional mean return), ``momentum`` (12-1 month return), ``volatility``
  (60-day standard deviation of daily returns), ``liquidity`` (log of the 20-day over the 250-day mean traded
  value) and ``value`` (``1/$pb`` when the store has a ``pb`` field). ``styles`` replaces the set.

Each style is winsorised at ``winsorize`` cross-sectional standard deviations and z-scored over the day's members;
a member whose style is missing gets 0 (the mean). Returns of day ``t`` are regressed (OLS) on the exposures of day
``t − 1`` over the members present on both days, which gives factor returns and residuals.

On each requested date ``T`` (using data up to ``T`` only):

- factor covariance: the exponentially weighted covariance (``half_life`` days) of the last ``window`` factor
  returns, plus a Newey–West correction with ``newey_west_lags`` Bartlett-weighted lags when asked;
- specific risk: the square root of the exponentially weighted mean squared residual (``specific_half_life``)
  over the window; an instrument with fewer than ``min_observations`` residuals gets the largest specific risk
  of the day (Qlib's convention for missing risk);
- exposures: those of ``T`` for ``T``'s members.

Returns are in percent when ``scale_return`` (Qlib's risk-data convention, the default here).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from qcore.errors import ConfigError, DataError
from qportfolio.risk.base import FactorRisk

logger = logging.getLogger(__name__)

RETURN = "$close / Ref($close, 1) - 1"
#: extra calendar rows evaluated before the first window, so the styles' own windows are filled.
_STYLE_LOOKBACK = 260


def default_styles(fields: Sequence[str], market_index: str | None) -> dict[str, str]:
    """The default style expressions for a store with ``fields`` (lower-case names)."""
    have = set(fields)
    market = f"ChangeInstrument('{market_index}', {RETURN})" if market_index else f"CSMean({RETURN})"
    styles = {
        "size": "Log($market_cap)" if "market_cap" in have else "Log(Mean($amount, 250))",
        "beta": f"Cov({RETURN}, {market}, 250) / Var({market}, 250)",
        "momentum": "Ref($close, 21) / Ref($close, 252) - 1",
        "volatility": f"Std({RETURN}, 60)",
        "liquidity": "Log(Mean($amount, 20) / Mean($amount, 250))",
    }
    if "pb" in have:
        styles["value"] = "1 / $pb"
    return styles


def _positive_int(value: Any, name: str, low: int = 1) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise ConfigError(f"expected an integer >= {low}, got {value!r}", path=name)
    return value


def _positive_number(value: Any, name: str) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool) or not value > 0:
        raise ConfigError(f"expected a positive number, got {value!r}", path=name)
    return float(value)


def ewma_weights(n: int, half_life: float) -> np.ndarray:
    """Weights of ``n`` observations, oldest first, halving every ``half_life`` observations (unnormalised)."""
    return 0.5 ** (np.arange(n - 1, -1, -1, dtype=np.float64) / half_life)


def ewma_covariance(returns: np.ndarray, half_life: float, newey_west_lags: int = 0) -> np.ndarray:
    """Exponentially weighted covariance of ``returns`` (rows oldest first), with Newey–West lags if asked."""
    w = ewma_weights(len(returns), half_life)
    w /= w.sum()
    mean = w @ returns
    x = returns - mean
    cov = (x * w[:, None]).T @ x
    for lag in range(1, newey_west_lags + 1):
        if lag >= len(x):
            break
        wl = w[lag:] / w[lag:].sum()
        gamma = (x[lag:] * wl[:, None]).T @ x[:-lag]
        cov += (1.0 - lag / (newey_west_lags + 1.0)) * (gamma + gamma.T)
    return cov


class FundamentalRiskModel:
    """Industry and style factors from expressions, EWMA factor covariance and specific risk.

    :param styles: style name → expression (None: :func:`default_styles` for the store).
    :param industry: the field holding industry codes (``"auto"``: ``industry`` when the store has it; None: no
        industry factors).
    :param market_index: an index instrument whose return defines ``beta`` (None: the cross-sectional mean).
    :param window: factor returns (days) in each covariance.
    :param half_life: half-life of the factor covariance, in days.
    :param specific_half_life: half-life of the specific variance, in days.
    :param newey_west_lags: Newey–West lags of the factor covariance (0: none).
    :param min_observations: residuals an instrument needs for its own specific risk.
    :param winsorize: clip styles at this many cross-sectional standard deviations.
    :param scale_return: returns in percent (Qlib's risk-data units).
    """

    def __init__(
        self,
        styles: Mapping[str, str] | None = None,
        industry: str | None = "auto",
        market_index: str | None = None,
        window: int = 252,
        half_life: float = 90.0,
        specific_half_life: float = 60.0,
        newey_west_lags: int = 0,
        min_observations: int = 60,
        winsorize: float = 3.0,
        scale_return: bool = True,
    ) -> None:
        if styles is not None:
            if not isinstance(styles, Mapping) or not styles:
                raise ConfigError("expected a mapping of style names to expressions", path="styles")
            for name, expr in styles.items():
                if not isinstance(name, str) or not isinstance(expr, str) or not expr.strip():
                    raise ConfigError(f"style {name!r}: expected a non-empty expression", path=f"styles.{name}")
        if industry is not None and not isinstance(industry, str):
            raise ConfigError(f"expected a field name, 'auto' or null, got {industry!r}", path="industry")
        self.styles = dict(styles) if styles is not None else None
        self.industry = industry
        self.market_index = market_index
        self.window = _positive_int(window, "window", 2)
        self.half_life = _positive_number(half_life, "half_life")
        self.specific_half_life = _positive_number(specific_half_life, "specific_half_life")
        self.newey_west_lags = _positive_int(newey_west_lags, "newey_west_lags", 0)
        self.min_observations = _positive_int(min_observations, "min_observations", 1)
        self.winsorize = _positive_number(winsorize, "winsorize")
        self.scale_return = bool(scale_return)

    def _industry_field(self, fields: Sequence[str]) -> str | None:
        if self.industry is None:
            return None
        name = self.industry.lstrip("$").lower()
        if self.industry == "auto":
            return "industry" if "industry" in fields else None
        if name not in fields:
            raise ConfigError(f"the store has no field ${name}", path="industry")
        return name

    def estimate(self, engine: Any, universe: str | Sequence[str],
                 dates: Sequence[Any]) -> dict[pd.Timestamp, FactorRisk]:  # fmt: skip
        """``{date: FactorRisk}`` for each of ``dates`` (trading days of the store), from data up to that date."""
        provider = engine.provider
        fields = [f.lower() for f in provider.fields("day")]
        calendar = provider.calendar("day")
        wanted = pd.DatetimeIndex(sorted({pd.Timestamp(d) for d in dates}))
        if wanted.empty:
            return {}
        missing = wanted.difference(calendar)
        if len(missing):
            raise DataError(f"{len(missing)} requested date(s) are not trading days of the store, e.g. "
                            f"{missing[0].date()}")  # fmt: skip
        styles = self.styles if self.styles is not None else default_styles(fields, self.market_index)
        industry = self._industry_field(fields)
        exprs = {"__ret": RETURN, **{f"s:{k}": v for k, v in styles.items()}}
        if industry is not None:
            exprs["__industry"] = f"${industry}"
        first = int(calendar.get_loc(wanted[0]))
        start = calendar[max(0, first - self.window - 1)]
        plan = engine.plan(exprs)
        panel, member = engine.evaluate_panel(plan, universe, start, wanted[-1])
        names = list(plan.names)
        data = {name: panel[f"e{i}"].astype(np.float64) for i, name in enumerate(names)}
        ret = data.pop("__ret") * (100.0 if self.scale_return else 1.0)
        codes = data.pop("__industry", None)
        style_names = [k[2:] for k in data]
        raw_styles = np.stack([data[f"s:{k}"] for k in style_names], axis=-1)  # T × N × S
        exposures = self._standardise(raw_styles, member)
        factor_names, full = self._with_industry(exposures, codes, member, style_names)
        f_ret, resid = self._regress(ret, full, member)
        out: dict[pd.Timestamp, FactorRisk] = {}
        symbols = pd.Index(panel.instruments, name="instrument")
        for date in wanted:
            t = int(panel.dates.get_loc(date))
            out[date] = self._day(t, f_ret, resid, full, member, factor_names, symbols, date)
        return out

    def _standardise(self, raw: np.ndarray, member: np.ndarray) -> np.ndarray:
        x = np.where(member[:, :, None], raw, np.nan)
        x[~np.isfinite(x)] = np.nan
        with np.errstate(invalid="ignore", divide="ignore"), _quiet():
            mean = np.nanmean(x, axis=1, keepdims=True)
            std = np.nanstd(x, axis=1, keepdims=True)
            x = np.clip(x, mean - self.winsorize * std, mean + self.winsorize * std)
            mean = np.nanmean(x, axis=1, keepdims=True)
            std = np.nanstd(x, axis=1, keepdims=True)
            z = (x - mean) / np.where(std > 0, std, np.nan)
        return np.where(np.isfinite(z), z, 0.0)

    def _with_industry(self, styles: np.ndarray, codes: np.ndarray | None, member: np.ndarray,
                       style_names: list[str]) -> tuple[list[str], np.ndarray]:  # fmt: skip
        t, n, _ = styles.shape
        if codes is None:
            return ["market", *style_names], np.concatenate([np.ones((t, n, 1)), styles], axis=-1)
        valid = np.isfinite(codes) & member
        values = np.unique(codes[valid])
        if len(values) == 0:
            raise DataError("the industry field has no value for the universe's members")
        dummies = np.stack([(codes == v) & valid for v in values], axis=-1).astype(np.float64)
        labels = [f"industry_{int(v) if float(v).is_integer() else v}" for v in values]
        return [*labels, *style_names], np.concatenate([dummies, styles], axis=-1)

    def _regress(self, ret: np.ndarray, x: np.ndarray, member: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        t, n, k = x.shape
        f_ret = np.full((t, k), np.nan)
        resid = np.full((t, n), np.nan)
        for i in range(1, t):
            rows = member[i] & member[i - 1] & np.isfinite(ret[i])
            if rows.sum() <= k:
                continue
            a = x[i - 1][rows]
            used = np.abs(a).sum(axis=0) > 0  # an industry with no member that day has no return
            coef, *_ = np.linalg.lstsq(a[:, used], ret[i][rows], rcond=None)
            f = np.zeros(k)
            f[used] = coef
            f_ret[i] = f
            resid[i, rows] = ret[i][rows] - a @ f
        return f_ret, resid

    def _day(self, t: int, f_ret: np.ndarray, resid: np.ndarray, x: np.ndarray, member: np.ndarray,
             factor_names: list[str], symbols: pd.Index, date: pd.Timestamp) -> FactorRisk:  # fmt: skip
        lo = max(1, t - self.window + 1)
        fr = f_ret[lo : t + 1]
        fr = fr[np.isfinite(fr).all(axis=1)]
        if len(fr) < 2:
            raise DataError(f"{date.date()}: fewer than 2 days of factor returns before it; start the risk data "
                            "later or give the store more history")  # fmt: skip
        cov = ewma_covariance(fr, self.half_life, self.newey_west_lags)
        res = resid[lo : t + 1]
        ok = np.isfinite(res)
        w = ewma_weights(len(res), self.specific_half_life)[:, None] * ok
        with np.errstate(invalid="ignore", divide="ignore"):
            var = np.where(ok, res, 0.0) ** 2
            spec = np.sqrt((w * var).sum(axis=0) / w.sum(axis=0))
        spec[ok.sum(axis=0) < self.min_observations] = np.nan
        today = member[t]
        if not today.any():
            raise DataError(f"{date.date()}: the universe has no member")
        sr = spec[today]
        if np.isnan(sr).all():
            raise DataError(f"{date.date()}: no member has {self.min_observations} residuals for its specific risk; "
                            "lower min_observations or start later")  # fmt: skip
        sr = np.where(np.isnan(sr), np.nanmax(sr), sr)
        index = symbols[today]
        return FactorRisk(
            pd.DataFrame(x[t][today], index=index, columns=factor_names),
            pd.DataFrame(cov, index=factor_names, columns=factor_names),
            pd.Series(sr, index=index, name="specific_risk"),
        )


class _quiet:
    """Silence numpy's all-NaN slice warnings inside a block."""

    def __enter__(self) -> None:
        import warnings

        self._ctx = warnings.catch_warnings()
        self._ctx.__enter__()
        warnings.simplefilter("ignore", category=RuntimeWarning)

    def __exit__(self, *exc: object) -> None:
        self._ctx.__exit__(*exc)
