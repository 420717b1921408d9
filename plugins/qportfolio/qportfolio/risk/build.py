"""Building daily risk data from a store: what ``qcore risk build`` and the ``risk_data`` record run.

For each trading day ``T`` from ``start`` to ``end``:

- a factor model on returns (``structured``, or any estimator with a factor decomposition) sees the universe's
  members of ``T`` over the ``window`` days ending at ``T``: daily returns of ``$close``, each instrument's clipped
  at its own ``clip`` / ``1 − clip`` quantiles (Qlib's ``prepare_riskdata.py``: 240 days, 2.5%), NaN returns as 0;
- a store model (``fundamental``) is evaluated once over the whole span and gives each day's data.

Units are percent by default (``units: decimal`` for plain returns), recorded in ``ROOT/riskdata.json`` with the
model and universe. Days already in the folder are skipped when they were built with the same settings (the
description matches), and rebuilt otherwise; ``force`` rebuilds all. ``blacklist_market`` (a market of the store,
such as ``st``) writes its members of each day as that day's blacklist.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import pandas as pd

from qcore.errors import ConfigError, DataError
from qportfolio._threads import single_blas
from qportfolio.risk.base import FactorRisk, StoreRiskModel
from qportfolio.risk.registry import make_risk_model, parse_spec
from qportfolio.risk.riskdata import day_folder, read_meta, write_day, write_meta

logger = logging.getLogger("qportfolio.risk")

UNITS = ("percent", "decimal")


@attrs.frozen
class RiskBuildSpec:
    """What to build.

    :ivar root: the output folder.
    :ivar universe: the market whose members each day covers.
    :ivar start: first day (None: as early as the window allows).
    :ivar end: last day (None: the store's last day).
    :ivar model: a risk model name or ``{name, kwargs}`` (default: ``structured`` with 10 PCA factors, Qlib's).
    :ivar window: days of returns a returns model sees.
    :ivar clip: per-instrument quantile clipping of returns (0: none).
    :ivar units: ``percent`` or ``decimal``.
    :ivar blacklist_market: a market whose members are blacklisted each day.
    :ivar force: rebuild days already present.
    """

    root: str
    universe: str = "csi300"
    start: pd.Timestamp | None = None
    end: pd.Timestamp | None = None
    model: Any = attrs.field(factory=lambda: {"name": "structured", "kwargs": {"num_factors": 10}})
    window: int = 240
    clip: float = 0.025
    units: str = "percent"
    blacklist_market: str | None = None
    force: bool = False

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.window, int) or isinstance(self.window, bool) or self.window < 3:
            raise ConfigError(f"expected an integer >= 3, got {self.window!r}", path="window")
        if not isinstance(self.clip, int | float) or isinstance(self.clip, bool) or not 0 <= self.clip < 0.5:
            raise ConfigError(f"expected a number in [0, 0.5), got {self.clip!r}", path="clip")
        if self.units not in UNITS:
            raise ConfigError(f"expected one of {', '.join(UNITS)}, got {self.units!r}", path="units")
        if self.start is not None and self.end is not None and self.start > self.end:
            raise ConfigError(f"start {self.start.date()} is after end {self.end.date()}", path="start")

    def make_model(self) -> Any:
        """The risk model, with the units applied."""
        name, kwargs = parse_spec(self.model, "model")
        kwargs.setdefault("scale_return", self.units == "percent")
        model = make_risk_model({"name": name, "kwargs": kwargs}, key="model")
        if not isinstance(model, StoreRiskModel) and not hasattr(model, "_decompose"):
            raise ConfigError(f"risk model {name!r} gives a full covariance, not factor risk data; use structured or "
                              "fundamental", path="model")  # fmt: skip
        return model

    def description(self) -> dict[str, Any]:
        """What ``riskdata.json`` records (and what decides whether existing days are reused)."""
        name, kwargs = parse_spec(self.model, "model")
        return {"model": name, "model_kwargs": kwargs, "universe": self.universe, "window": self.window,
                "clip": self.clip, "units": self.units, "blacklist_market": self.blacklist_market,
                "layout": "qlib riskdata_root: YYYYMMDD/{factor_exp,factor_cov,specific_risk,blacklist}.parquet; "
                          "specific_risk is a volatility"}  # fmt: skip

    def fingerprint(self) -> str:
        """A hash of :meth:`description`."""
        text = json.dumps(self.description(), sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


@attrs.frozen
class RiskBuildResult:
    """What a build did."""

    root: Path
    written: int
    skipped: int
    factors: int
    first: pd.Timestamp | None
    last: pd.Timestamp | None


def build_risk_data(provider: Any, operators: Any, spec: RiskBuildSpec,
                    progress: Callable[[int, int], None] | None = None) -> RiskBuildResult:  # fmt: skip
    """Build the days of ``spec`` into ``spec.root``; see the module doc."""
    model = spec.make_model()
    if spec.universe not in provider.markets():
        raise ConfigError(f"the store has no market {spec.universe!r} (markets: {', '.join(provider.markets())})",
                          path="universe")  # fmt: skip
    if spec.blacklist_market is not None and spec.blacklist_market not in provider.markets():
        raise ConfigError(f"the store has no market {spec.blacklist_market!r}", path="blacklist_market")
    calendar = provider.calendar("day")
    days = _days(calendar, spec)
    root = Path(spec.root)
    meta = read_meta(root)
    reuse = not spec.force and meta.get("fingerprint") == spec.fingerprint()
    if meta and not reuse and not spec.force:
        logger.warning("%s was built with other settings; rebuilding every requested day", root)
    todo = [d for d in days if not (reuse and day_folder(root, d).is_dir())]
    skipped = len(days) - len(todo)
    root.mkdir(parents=True, exist_ok=True)
    write_meta(root, {**spec.description(), "fingerprint": spec.fingerprint()})
    factors = 0
    if todo:
        blacklist = _blacklists(provider, spec.blacklist_market, todo)
        with single_blas():
            _build_days(provider, operators, model, spec, todo, calendar, root, blacklist, progress)
        factors = read_day_factors(root, todo[-1])
    return RiskBuildResult(root, len(todo), skipped, factors, days[0] if len(days) else None,
                           days[-1] if len(days) else None)  # fmt: skip


def read_day_factors(root: Path, day: pd.Timestamp) -> int:
    """The number of factors of a written day."""
    import pyarrow.parquet as pq

    return len(pq.read_schema(day_folder(root, day) / "factor_exp.parquet").names) - 1


def _build_days(provider: Any, operators: Any, model: Any, spec: RiskBuildSpec, todo: list[pd.Timestamp],
                calendar: pd.DatetimeIndex, root: Path, blacklist: dict[pd.Timestamp, list[str]],
                progress: Callable[[int, int], None] | None) -> None:  # fmt: skip
    from qcore.expr.engine import ExpressionEngine

    if isinstance(model, StoreRiskModel):
        risks = model.estimate(ExpressionEngine(provider, operators), spec.universe, todo)
        days: Any = ((day, risks[day]) for day in todo)
    else:
        days = _returns_model_days(provider, model, spec, todo, calendar)
    for i, (day, risk) in enumerate(days):
        write_day(root, day, risk, blacklist.get(day))
        if progress:
            progress(i + 1, len(todo))


def _days(calendar: pd.DatetimeIndex, spec: RiskBuildSpec) -> pd.DatetimeIndex:
    if len(calendar) <= spec.window:
        raise DataError(f"the store has {len(calendar)} days, not enough for a {spec.window}-day window")
    earliest = calendar[spec.window - 1]
    start = spec.start if spec.start is not None else earliest
    if start < earliest:
        raise ConfigError(f"start {start.date()} leaves fewer than {spec.window} days of history before it (the "
                          f"earliest start is {earliest.date()})", path="start")  # fmt: skip
    end = spec.end if spec.end is not None else calendar[-1]
    days = calendar[(calendar >= start) & (calendar <= end)]
    if days.empty:
        raise ConfigError(f"no trading day between {start.date()} and {end.date()}", path="start")
    return days


def _blacklists(provider: Any, market: str | None, days: list[pd.Timestamp]) -> dict[pd.Timestamp, list[str]]:
    if market is None:
        return {}
    from qcore.types import membership_mask

    universe = provider.universe(market)
    names = sorted(universe)
    mask = membership_mask(universe, pd.DatetimeIndex(days), names)
    return {d: [n for n, m in zip(names, mask[i], strict=True) if m] for i, d in enumerate(days)}


def _returns_model_days(provider: Any, model: Any, spec: RiskBuildSpec, days: list[pd.Timestamp],
                        calendar: pd.DatetimeIndex) -> Any:  # fmt: skip
    """``(day, FactorRisk)`` for each day, from a model with a factor decomposition."""
    from qcore.types import clip_universe, membership_mask

    first = int(calendar.get_loc(days[0])) - spec.window + 1
    span = calendar[first : int(calendar.get_loc(days[-1])) + 1]
    universe = clip_universe(provider.universe(spec.universe), span[0], span[-1])
    names = sorted(universe)
    if not names:
        raise DataError(f"the market {spec.universe!r} has no member between {span[0].date()} and {span[-1].date()}")
    panel = provider.load(["close"], names, span[0], span[-1])
    close = np.asarray(panel["close"], dtype=np.float64)
    members = membership_mask(universe, pd.DatetimeIndex(days), names)
    rows = {d: i for i, d in enumerate(panel.dates)}
    for k, day in enumerate(days):
        cols = np.flatnonzero(members[k])
        if len(cols) == 0:
            raise DataError(f"{day.date()}: the market {spec.universe!r} has no member")
        end = rows[day]
        prices = close[end - spec.window + 1 : end + 1][:, cols]
        with np.errstate(divide="ignore", invalid="ignore"):
            ret = np.full_like(prices, np.nan)
            ret[1:] = prices[1:] / prices[:-1] - 1.0
        ret[~np.isfinite(ret)] = np.nan
        if spec.clip > 0:
            low, high = column_quantiles(ret, spec.clip), column_quantiles(ret, 1 - spec.clip)
            ret = np.clip(ret, low, high)
        f, cov_b, var_u = model.predict(ret, is_price=False, return_decomposed_components=True)
        labels = [f"f{i}" for i in range(f.shape[1])]
        index = pd.Index([names[c] for c in cols], name="instrument")
        yield day, FactorRisk(pd.DataFrame(f, index=index, columns=labels),
                              pd.DataFrame(np.atleast_2d(cov_b), index=labels, columns=labels),
                              pd.Series(np.sqrt(var_u), index=index, name="specific_risk"))  # fmt: skip


def spec_from_mapping(values: Mapping[str, Any], key: str = "") -> RiskBuildSpec:
    """A :class:`RiskBuildSpec` from config values (dates parsed strictly); errors name ``key.<field>``."""
    from qcore.dates import parse_optional_date

    allowed = {f.name for f in attrs.fields(RiskBuildSpec)}
    unknown = [k for k in values if k not in allowed]
    prefix = f"{key}." if key else ""
    if unknown:
        raise ConfigError(f"unknown option {unknown[0]!r} (options: {', '.join(sorted(allowed))})",
                          path=f"{prefix}{unknown[0]}")  # fmt: skip
    kwargs = dict(values)
    try:
        for name in ("start", "end"):
            if name in kwargs:
                kwargs[name] = parse_optional_date(kwargs[name], name)
        if "root" not in kwargs:
            raise ConfigError("the risk-data folder is required", path="root")
        kwargs["root"] = str(kwargs["root"])
        spec = RiskBuildSpec(**kwargs)
        spec.make_model()
    except ConfigError as exc:
        raise ConfigError(exc.message, path=f"{prefix}{exc.path}".rstrip(".")) from None
    return spec


def column_quantiles(x: np.ndarray, q: float) -> np.ndarray:
    """Each column's ``q`` quantile over its non-NaN values, linearly interpolated (pandas' ``quantile``); NaN for
    an all-NaN column."""
    ordered = np.sort(x, axis=0)  # NaN sort last
    count = np.isfinite(x).sum(axis=0)
    pos = (np.maximum(count, 1) - 1) * q
    lo = np.floor(pos).astype(int)
    hi = np.minimum(lo + 1, np.maximum(count - 1, 0))
    cols = np.arange(x.shape[1])
    frac = pos - lo
    out = ordered[lo, cols] * (1 - frac) + ordered[hi, cols] * frac
    out[frac == 0] = ordered[lo, cols][frac == 0]
    out[count == 0] = np.nan
    return out
