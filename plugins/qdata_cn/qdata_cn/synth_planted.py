"""A synthetic market with a planted factor: a known expression that predicts the next day's return.

The market is generated as usual and written once; the planted expression is evaluated on that store with the
kernel's engine, and each stock's next-day return gains ``strength`` times its daily volatility times the
expression's cross-sectional z-score. Every price field is rescaled from that day on, so the store stays
consistent (``change`` is recomputed); the market is then written again in place.

The expression must read only fields the planting leaves unchanged (``$volume``): otherwise planting would move
the very values it was computed from. Tests of factor search use it as ground truth.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from typing import Any

import numpy as np

from qcore.errors import DataError
from qcore.expr import fields as expr_fields
from qcore.expr import parse
from qdata_cn.synth import INDEX_SYMBOL, SynthParams, _change, _zscores, generate, write_market

#: The fields planting leaves unchanged, which a planted expression may read.
UNCHANGED = frozenset({"volume"})
_PRICES = ("open", "high", "low", "close", "vwap")


def synthesize_planted(
    out: str | os.PathLike[str],
    expression: str,
    operators: Mapping[str, Any] | Any,
    *,
    strength: float = 0.1,
    instruments: int = 100,
    days: int = 600,
    seed: int = 0,
    start: str = "2016-01-04",
    overwrite: bool = False,
    fundamentals: bool = False,
) -> dict[str, Any]:
    """Write a synthetic market to ``out`` whose next-day returns carry ``expression``'s z-score.

    :param operators: the operator registry (``kernel.registry("operator")``) the expression is evaluated with.
    :param strength: the planted effect in units of each stock's daily volatility per cross-sectional standard
        deviation of the expression (a number in (0, 5]).
    :param overwrite: replace an existing store at ``out``.
    :param fundamentals: also write the point-in-time reports (off by default: they play no part in planting).
    :returns: ``write_market``'s summary plus the planted ``expression`` and ``strength``.
    """
    from qcore.expr.engine import ExpressionEngine
    from qdata_cn.binstore import QlibBinProvider

    if isinstance(strength, bool) or not isinstance(strength, (int, float)) or not 0.0 < strength <= 5.0:
        raise DataError(f"the planted strength must be a number in (0, 5], got {strength!r}")
    read = {f.lower() for f in expr_fields(parse(expression))}
    if not read or not read <= UNCHANGED:
        raise DataError(f"a planted expression may read only {', '.join(sorted(UNCHANGED))}, not "
                        f"{', '.join(sorted(read - UNCHANGED)) or 'nothing'}")  # fmt: skip
    began = time.perf_counter()
    market = generate(SynthParams(instruments=instruments, days=days, seed=seed, start=start))
    write_market(market, out, overwrite=overwrite, fundamentals=False)
    engine = ExpressionEngine(QlibBinProvider(out), operators)
    panel, _ = engine.evaluate_panel(engine.plan([expression]), list(market.symbols))
    if len(panel.dates) != len(market.dates) or set(panel.instruments) != set(market.symbols):
        raise DataError("the planted expression's panel does not match the market", path=str(out))
    column = {s: j for j, s in enumerate(panel.instruments)}
    signal = panel.data["e0"].astype(np.float64)[:, [column[s] for s in market.symbols]]
    stocks = np.array([s != INDEX_SYMBOL for s in market.symbols])
    live = np.isfinite(signal) & stocks[None, :]
    z = _zscores(np.where(live, signal, 0.0), live)
    close = market.fields["close"]
    with np.errstate(invalid="ignore", divide="ignore"):
        returns = close[1:] / close[:-1] - 1.0
    vol = np.nanstd(returns, axis=0)
    vol = np.where(np.isfinite(vol), vol, 0.0)
    step = np.ones_like(close)
    step[1:] = 1.0 + strength * vol[None, :] * z[:-1]
    scale = np.cumprod(np.clip(step, 0.5, 1.5), axis=0)
    for name in _PRICES:
        market.fields[name] = (market.fields[name] * scale).astype(market.fields[name].dtype)
    market.fields["amount"] = (market.fields["amount"] * scale).astype(market.fields["amount"].dtype)
    market.fields["change"] = _change(market.fields["close"], market.first)
    market.info = {**market.info, "planted": {"expression": expression, "strength": strength}}
    summary = write_market(market, out, overwrite=True, fundamentals=fundamentals)
    return {**summary, "planted": expression, "strength": strength, "seconds": round(time.perf_counter() - began, 3)}
