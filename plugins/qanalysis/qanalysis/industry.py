"""Industry exposure of a backtest's positions, with the industry codes (and benchmark weights) read from the store.

Fields read (through the run's expression engine or provider, never another plugin):

- the **industry**: ``$industry`` (a numeric industry code per instrument and date, as ``qportfolio``'s fundamental
  risk model reads it); ``industry="auto"`` uses it when the store has it and skips the analysis otherwise (one
  debug log line); another field name can be given and is then required;
- the **benchmark weights**, for the active exposure: Qlib's ``$<market>_weight`` (``$csi300_weight`` for the
  universe ``csi300``, what Qlib's ``EnhancedIndexingStrategy`` reads) when the store has it, or a field given.
"""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd

from qanalysis import portfolio
from qcore.errors import ConfigError

log = logging.getLogger(__name__)

#: The field (without ``$``, lower case) ``industry="auto"`` looks for.
INDUSTRY_FIELD = "industry"


def _field(fields: set[str], requested: str | None, auto: str | None, what: str) -> str | None:
    """The stored field to read: ``requested`` (required), or ``auto`` when the store has it, else None."""
    if requested is None:
        return None
    if requested != "auto":
        name = requested.lstrip("$").lower()
        if name not in fields:
            raise ConfigError(f"the store has no field ${name} for the {what}", path=what.replace(" ", "_"))
        return name
    return auto if auto is not None and auto in fields else None


def industry_analysis(engine: Any, positions: pd.DataFrame, *, industry: str | None = "auto",
                      bench_weight: str | None = "auto",
                      market: str | None = None) -> dict[str, pd.DataFrame]:  # fmt: skip
    """``{"industry": dates × industries, "industry_active": ...}`` for ``positions`` (``weight`` indexed
    ``(datetime, instrument)``), the codes read with ``engine`` (an expression engine over the store); empty when
    the store has no industry field. ``industry_active`` only when a benchmark weight field is read
    (``bench_weight="auto"``: ``$<market>_weight`` when the store has it)."""
    if positions.empty or industry is None:
        return {}
    fields = {f.lower() for f in engine.provider.fields("day")}
    code_field = _field(fields, industry, INDUSTRY_FIELD, "industry field")
    if code_field is None:
        log.debug("industry exposure skipped: the store has no $%s field", INDUSTRY_FIELD)
        return {}
    weight_field = _field(fields, bench_weight, f"{market.lower()}_weight" if market else None,
                          "benchmark weight field")  # fmt: skip
    dates = positions.index.get_level_values(portfolio.DATE)
    first, last = dates.min(), dates.max()
    if weight_field is None:
        names = sorted(set(positions.index.get_level_values(portfolio.INSTRUMENT)))
        codes = engine.evaluate({"industry": f"${code_field}"}, names, first, last)["industry"].astype(float)
        return {"industry": portfolio.industry_weights(positions, codes)}
    data = engine.evaluate({"industry": f"${code_field}", "weight": f"${weight_field}"}, "all", first, last)
    codes = data["industry"].astype(float)
    held = portfolio.industry_weights(positions, codes)
    bench = portfolio.benchmark_industry_weights(data["weight"], codes)
    return {"industry": held, "industry_active": portfolio.active_industry_exposure(held, bench)}
