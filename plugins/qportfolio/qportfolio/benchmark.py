"""Benchmark weights by date: from a file, from Qlib's ``$<market>_weight`` field, or derived in the store.

Sources (the ``benchmark`` argument of the strategies):

- a **file** (``{file: PATH}`` or a path): CSV or Parquet with ``date`` (or ``datetime``), ``instrument`` and
  ``weight`` columns. A day's weights apply until the next day in the file (index weights are often published
  monthly). Negative or non-finite weights and duplicated ``(date, instrument)`` rows are
  :class:`~qcore.errors.DataError` s naming the file;
- a **field** (``{field: "$csi300_weight"}`` or ``"$csi300_weight"``): read for every instrument of the store on
  each day (Qlib's ``EnhancedIndexingStrategy`` reads ``$<market>_weight``; NaN counts as 0);
- **membership** (``{market: csi300, cap: EXPR}``): the market's members of the day weighted by the expression
  ``cap`` (a market cap field, or a proxy such as ``Mean($amount, 20)``), or equally when ``cap`` is null.

Each day's weights are scaled to sum to 1 (a file in percent works as it is); a day with no positive weight is an
error. The weights of day ``T`` are those known at ``T``'s close.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from qcore.errors import ConfigError, DataError


def _normalised(weights: pd.Series, what: str) -> pd.Series:
    total = float(weights.sum())
    if not total > 0:
        raise DataError(f"{what}: no positive benchmark weight")
    return weights / total


class BenchmarkWeights:
    """Benchmark weights per day; build with :meth:`from_spec`, bind to a store with :meth:`bind` when needed."""

    def __init__(self, kind: str, *, path: str | None = None, field: str | None = None, market: str | None = None,
                 cap: str | None = None) -> None:  # fmt: skip
        self.kind = kind
        self.path = path
        self.field = field
        self.market = market
        self.cap = cap
        self._table: pd.DataFrame | None = None  # dates × instruments (file), or evaluated panels
        self._engine: Any = None

    # -- building ----------------------------------------------------------------------------------------------

    @classmethod
    def from_spec(cls, spec: Any, market: str | None = None, key: str = "benchmark") -> BenchmarkWeights:
        """From a strategy argument (see the module doc); None means ``$<market>_weight``."""
        if spec is None:
            if not market:
                raise ConfigError("give benchmark weights (a file, a field or a market)", path=key)
            return cls("field", field=f"${market}_weight", market=market)
        if isinstance(spec, str | os.PathLike):
            text = os.fspath(spec)
            return cls("field", field=text) if text.startswith("$") else cls.from_file(text)
        if not isinstance(spec, Mapping):
            raise ConfigError(f"expected a file path, a $field or a mapping, got {spec!r}", path=key)
        keys = set(spec)
        if keys == {"file"}:
            return cls.from_file(spec["file"])
        if keys == {"field"}:
            field = str(spec["field"])
            return cls("field", field=field if field.startswith("$") else f"${field}")
        if "market" in keys and keys <= {"market", "cap"}:
            cap = spec.get("cap")
            if cap is not None and not isinstance(cap, str):
                raise ConfigError(f"expected an expression or null, got {cap!r}", path=f"{key}.cap")
            return cls("membership", market=str(spec["market"]), cap=cap)
        raise ConfigError(f"expected one of {{file}}, {{field}} or {{market, cap}}, got keys {sorted(keys)}", path=key)

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> BenchmarkWeights:
        """Read a weights file now (errors surface before any backtest)."""
        out = cls("file", path=os.fspath(path))
        out._table = read_weights_file(path)
        return out

    @classmethod
    def from_frame(cls, frame: pd.DataFrame, source: str = "weights") -> BenchmarkWeights:
        """From a frame with ``date``, ``instrument`` and ``weight`` columns."""
        out = cls("file", path=source)
        out._table = _pivot(frame, source)
        return out

    def bind(self, provider: Any, operators: Any) -> None:
        """Attach a store (fields and membership need one; files do not)."""
        if self.kind == "file":
            return
        if provider is None or operators is None:
            raise ConfigError(f"benchmark weights from {self.describe()} need the run's store", path="benchmark")
        from qcore.expr.engine import ExpressionEngine

        fields = {f.lower() for f in provider.fields("day")}
        if self.kind == "field" and self.field is not None and self.field.lstrip("$").lower() not in fields:
            raise ConfigError(f"the store has no field {self.field} for the benchmark weights; give a weights "
                              "file ({file: PATH}) or derive them ({market: NAME, cap: EXPR})",
                              path="benchmark")  # fmt: skip
        if self.kind == "membership" and self.market not in provider.markets():
            raise ConfigError(f"the store has no market {self.market!r} (markets: {', '.join(provider.markets())})",
                              path="benchmark.market")  # fmt: skip
        self._engine = ExpressionEngine(provider, operators)
        if self.cap is not None:
            self._engine.plan([self.cap])  # an invalid expression fails now

    def describe(self) -> str:
        """Where the weights come from, in words."""
        if self.kind == "file":
            return f"the file {self.path}"
        if self.kind == "field":
            return f"the field {self.field}"
        return f"the members of {self.market}" + (f" weighted by {self.cap}" if self.cap else " equally weighted")

    # -- reading -----------------------------------------------------------------------------------------------

    def prepare(self, dates: Sequence[pd.Timestamp]) -> None:
        """Evaluate a field or membership weights for ``dates`` at once (the strategy calls it at reset)."""
        if self.kind == "file" or not len(dates):
            return
        first, last = min(dates), max(dates)
        if self.kind == "membership" and self.cap is None:
            from qcore.types import membership_mask

            provider = self._engine.provider
            calendar = provider.calendar("day")
            days = calendar[(calendar >= first) & (calendar <= last)]
            universe = provider.universe(self.market)
            symbols = sorted(universe)
            mask = membership_mask(universe, days, symbols)
            self._table = pd.DataFrame(np.where(mask, 1.0, np.nan), index=days, columns=symbols)
            return
        if self.kind == "field":
            frame = self._engine.evaluate({"w": self.field}, "all", first, last)
        else:
            frame = self._engine.evaluate({"w": self.cap}, self.market, first, last)
        table = frame["w"].astype(np.float64).unstack("instrument")
        self._table = table.where(table > 0)

    def at(self, date: Any) -> pd.Series:
        """The weights (summing to 1) in force at ``date``'s close."""
        day = pd.Timestamp(date)
        table = self._table
        if table is None or table.empty:
            raise DataError(f"no benchmark weights prepared for {day.date()} ({self.describe()})")
        pos = int(table.index.searchsorted(day, "right")) - 1
        if pos < 0 or (self.kind != "file" and table.index[pos] != day):
            raise DataError(f"no benchmark weights on or before {day.date()} in {self.describe()}")
        row = table.iloc[pos].dropna()
        row = row[row > 0]
        return _normalised(row, f"{self.describe()} on {table.index[pos].date()}")

    @property
    def instruments(self) -> list[str]:
        """Names with a weight in a file (empty for fields and membership, which the store lists)."""
        return [str(c) for c in self._table.columns] if self.kind == "file" and self._table is not None else []


def read_weights_file(path: str | os.PathLike[str]) -> pd.DataFrame:
    """A weights file as a dates × instruments table (NaN where a name has no weight)."""
    file = Path(path)
    source = os.fspath(path)
    if not file.is_file():
        raise DataError("benchmark weights file not found", path=source)
    name = file.name.lower()
    try:
        if name.endswith((".parquet", ".pq")):
            frame = pd.read_parquet(file)
        elif ".csv" in name:
            frame = pd.read_csv(file, dtype={"instrument": str})
        else:
            raise DataError("unsupported weights file type; give CSV or Parquet", path=source)
    except DataError:
        raise
    except Exception as exc:  # the readers' own errors
        raise DataError(f"cannot read: {type(exc).__name__}: {exc}", path=source) from None
    return _pivot(frame.reset_index() if isinstance(frame.index, pd.MultiIndex) else frame, source)


def _pivot(frame: pd.DataFrame, source: str) -> pd.DataFrame:
    cols = {str(c).lower(): c for c in frame.columns}
    date_col = cols.get("date", cols.get("datetime"))
    needed = (("date", date_col), ("instrument", cols.get("instrument")), ("weight", cols.get("weight")))
    missing = [n for n, c in needed if c is None]
    if missing:
        raise DataError(f"a weights file needs date, instrument and weight columns; missing {', '.join(missing)}",
                        path=source)  # fmt: skip
    try:
        dates = pd.to_datetime(frame[date_col], format="ISO8601")
    except (ValueError, TypeError) as exc:
        raise DataError(f"dates must be ISO dates (2020-01-31): {exc}", path=source) from None
    weights = pd.to_numeric(frame[cols["weight"]], errors="coerce").to_numpy(np.float64)
    bad = ~np.isfinite(weights) | (weights < 0)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise DataError(f"weight {frame[cols['weight']].iloc[row]!r} of row {row + 1} is not a non-negative number",
                        path=source)  # fmt: skip
    table = pd.DataFrame({"date": dates.to_numpy(), "instrument": frame[cols["instrument"]].astype(str).to_numpy(),
                          "weight": weights})  # fmt: skip
    dup = table.duplicated(["date", "instrument"])
    if dup.any():
        row = table[dup].iloc[0]
        raise DataError(f"({row['date'].date()}, {row['instrument']}) appears twice", path=source)
    if table.empty:
        raise DataError("the weights file has no row", path=source)
    return table.pivot(index="date", columns="instrument", values="weight").sort_index()
