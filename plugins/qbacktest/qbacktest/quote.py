"""Market data of a backtest, loaded once as whole ``(bars, instruments)`` arrays.

Plain fields (``$close``, ``close``) are read from the data provider directly; anything else is evaluated by the
expression engine. Instruments the store does not know get all-NaN columns (they are never tradable).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from qcore.errors import ConfigError

_FIELD = re.compile(r"^\$?([A-Za-z_][A-Za-z0-9_]*)$")


def field_name(expression: str) -> str | None:
    """The stored field an expression names (``$close`` or ``close`` → ``close``), or None for a real expression."""
    match = _FIELD.match(expression.strip())
    return match.group(1).lower() if match else None


def normalise_price(expression: str) -> str:
    """``close`` → ``$close``; expressions are kept as written."""
    name = field_name(expression)
    return f"${name}" if name is not None else expression.strip()


def load_arrays(
    provider: Any,
    operators: Any,
    expressions: Sequence[str],
    instruments: Sequence[str],
    dates: pd.DatetimeIndex,
    quoted: set[str] | None = None,
    freq: str = "day",
) -> dict[str, np.ndarray]:
    """Evaluate ``expressions`` on ``dates`` × ``instruments``; float32 arrays keyed by expression text.

    :param operators: the kernel's ``operator`` registry (needed only for real expressions).
    :param quoted: instruments that get data (default: all); the others, and those the store does not know, are
        all NaN.
    :param freq: the store frequency ``dates`` belong to (``day``, ``1min``).
    """
    out: dict[str, np.ndarray] = {}
    shape = (len(dates), len(instruments))
    if not expressions:
        return out
    stored = {f.lower() for f in provider.fields(freq)}
    known_all = provider.universe("all")
    known = [s for s in instruments if s in known_all and (quoted is None or s in quoted)]
    columns = {s: j for j, s in enumerate(instruments)}
    known_cols = np.array([columns[s] for s in known], dtype=np.intp)
    plain = {e: field_name(e) for e in expressions if field_name(e) is not None}
    missing = sorted({f for f in plain.values() if f not in stored})
    if missing:
        at = "" if freq == "day" else f" at {freq}"
        raise ConfigError(f"the store has no field {', '.join('$' + f for f in missing)}{at} "
                          f"(fields: {', '.join(sorted(stored))})")  # fmt: skip
    if plain and known:
        panel = provider.load(sorted(set(plain.values())), known, dates[0], dates[-1], freq)
        for expr, name in plain.items():
            full = np.full(shape, np.nan, dtype=np.float32)
            full[:, known_cols] = panel[name]
            out[expr] = full
    else:
        for expr in plain:
            out[expr] = np.full(shape, np.nan, dtype=np.float32)
    rest = [e for e in expressions if e not in plain]
    if rest:
        if operators is None:
            raise ConfigError(f"expressions need the operator registry: {', '.join(rest)}")
        from qcore.expr.engine import ExpressionEngine

        engine = ExpressionEngine(provider, operators, freq=freq)
        plan = engine.plan(list(rest))
        if known:
            panel, _ = engine.evaluate_panel(plan, known, dates[0], dates[-1])
            sym_cols = np.array([columns[s] for s in panel.instruments], dtype=np.intp)
        for i, expr in enumerate(rest):
            full = np.full(shape, np.nan, dtype=np.float32)
            if known:
                full[:, sym_cols] = panel[f"e{i}"]
            out[expr] = full
    return out


def benchmark_returns(
    provider: Any,
    operators: Any,
    benchmark: str | Sequence[str] | pd.Series | None,
    dates: pd.DatetimeIndex,
) -> np.ndarray | None:
    """Per-bar benchmark returns (Qlib's rule), or None without a benchmark.

    A code gives its daily ``$close/Ref($close,1)-1`` (float32, as Qlib computes it); a list gives the mean over
    the codes with data; a Series (index: dates) is used as given. Missing values are 0.
    """
    if benchmark is None:
        return None
    if isinstance(benchmark, pd.Series):
        series = benchmark.copy()
        series.index = pd.DatetimeIndex(series.index)
        return series.reindex(dates).fillna(0.0).to_numpy(dtype=np.float64)
    codes = [benchmark] if isinstance(benchmark, str) else list(benchmark)
    known = provider.universe("all")
    unknown = [c for c in codes if c not in known]
    if unknown:
        raise ConfigError(f"the benchmark {', '.join(unknown)} does not exist in the store", path="backtest.benchmark")
    from qcore.expr.engine import ExpressionEngine

    engine = ExpressionEngine(provider, operators)
    plan = engine.plan(["$close/Ref($close,1)-1"])
    panel, _ = engine.evaluate_panel(plan, codes, dates[0], dates[-1])
    values = panel["e0"]  # float32 (T, len(codes))
    if values.shape[1] == 1:
        daily = values[:, 0]
    else:
        has_rows = _data_rows(provider, list(panel.instruments), dates)
        masked = np.where(has_rows, values, np.nan)
        with np.errstate(invalid="ignore"):
            count = np.sum(~np.isnan(masked), axis=1)
            daily = (np.nansum(masked, axis=1, dtype=np.float64) / np.where(count, count, 1)).astype(np.float32)
            daily[count == 0] = np.nan
    daily = np.where(np.isnan(daily), np.float32(0.0), daily).astype(np.float32)
    # the per-bar change: prod(1 + r) - 1 over the bar, computed in float32 like Qlib
    return ((daily + np.float32(1.0)) - np.float32(1.0)).astype(np.float64)


def _data_rows(provider: Any, codes: Sequence[str], dates: pd.DatetimeIndex) -> np.ndarray:
    from qcore.types import membership_mask

    universe = provider.universe("all")
    return membership_mask({c: universe[c] for c in codes}, dates, codes)

