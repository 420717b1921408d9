"""Collapsing a period expression into a daily panel: ``P(expr)`` and ``PRef(expr, period)``, vectorised.

Qlib evaluates ``P`` with a Python loop over every day and instrument, re-reading the store's linked revisions each
time. Here, per instrument, the days on which anything was published are the only *states* the data can be in. For
each state the table "period → latest revision published on or before that day" is built at once for every
instrument by one scatter of record numbers onto a ``(periods, states)`` grid and a running maximum along the states
(records are numbered in publication order, so the largest number is the latest revision). Each state is then one
column of a panel whose rows are periods, and the period expression runs on that panel with the registered
operators, as they run on days: ``Mean($$roe_q, 4)`` is a rolling mean down the rows. A state reads the row of its
latest visible period (``P``) or of the named period (``PRef``), and each trading day takes the state of its
instrument's last publication on or before it (``searchsorted``, one call per instrument).

Semantics are Qlib's (``qlib/data/pit.py``, ``LocalPITProvider``): a report published on day ``d`` is known on ``d``;
the periods a state sees run from the earliest to the latest period published so far, periods in between without a
report are NaN, periods before the earliest do not exist (NaN, and operators that start at an instrument's first
row start there); ``PRef`` is NaN on days its period lies outside that range. Two documented differences: a window
inside ``PRef`` reads the periods before the named one (Qlib evaluates the expression on that period alone, so
``PRef(Mean($$x_q, 4), p)`` is ``$$x_q`` at ``p`` there), and expressions mixing two fields whose latest periods
differ by more than the window align on periods (Qlib aligns its truncated series on their union).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

from qcore.expr.ast import Call, Const
from qcore.protocols import PointInTimeProvider

#: ``evaluate(plan, panels, first_rows, last_rows) -> result``: runs a period expression's plan on period panels.
PeriodEvaluate = Callable[[object, dict[str, np.ndarray], np.ndarray, np.ndarray], np.ndarray]


def period_ordinal(periods: np.ndarray, quarterly: bool) -> np.ndarray:
    """Consecutive integers for consecutive periods: ``year * 4 + quarter - 1`` (``YYYYQQ``), or the year."""
    periods = np.asarray(periods, dtype=np.int64)
    return (periods // 100) * 4 + periods % 100 - 1 if quarterly else periods


def day_numbers(dates: pd.DatetimeIndex) -> np.ndarray:
    """Trading days as ``YYYYMMDD`` integers, the form publication dates are stored in."""
    dates = pd.DatetimeIndex(dates)
    return np.asarray(dates.year * 10000 + dates.month * 100 + dates.day, dtype=np.int64)


def collapse(
    node: Call,
    plan: object,
    fields: Sequence[str],
    provider: PointInTimeProvider,
    symbols: Sequence[str],
    dates: pd.DatetimeIndex,
    evaluate: PeriodEvaluate,
) -> np.ndarray:
    """The daily ``(dates, symbols)`` float32 panel of a ``P``/``PRef`` call whose period expression is ``plan``.

    :param fields: the period fields (lower case) the expression reads, all of one kind (``_q`` or ``_a``).
    :param evaluate: runs ``plan`` on ``{"$$field": (periods, states) panel}`` with each state's first and last
        visible period row; returns the root's ``(periods, states)`` values.
    """
    quarterly = fields[0].endswith("_q")
    out = np.full((len(dates), len(symbols)), np.nan, dtype=np.float32)
    records = {f: provider.load_pit(f, list(symbols)) for f in fields}
    # each instrument's states: the distinct days anything it reads was published
    states: list[np.ndarray] = []
    for symbol in symbols:
        published = [np.asarray(records[f][symbol]["date"], dtype=np.int64) for f in fields if symbol in records[f]]
        states.append(np.unique(np.concatenate(published)) if published else np.empty(0, dtype=np.int64))
    offsets = np.concatenate([[0], np.cumsum([len(s) for s in states])]).astype(np.int64)
    n_states = int(offsets[-1])
    if n_states == 0:
        return out
    ordinals = [period_ordinal(r["period"], quarterly) for f in fields for r in records[f].values()]
    lo = int(min(o.min() for o in ordinals))
    n_rows = int(max(o.max() for o in ordinals)) - lo + 1
    panels: dict[str, np.ndarray] = {}
    visible = np.zeros((n_rows, n_states), dtype=bool)
    for field in fields:
        latest, values = _latest_revisions(records[field], symbols, states, offsets, quarterly, lo, n_rows)
        visible |= latest >= 0
        if len(values) == 0:  # no instrument of the query has this field
            panels[f"$${field}"] = np.full((n_rows, n_states), np.nan)
        else:
            panels[f"$${field}"] = np.where(latest >= 0, values[np.maximum(latest, 0)], np.nan)
    # every state sees at least the record that made it a state
    first_rows = np.argmax(visible, axis=0).astype(np.int64)
    last_rows = (n_rows - 1 - np.argmax(visible[::-1], axis=0)).astype(np.int64)
    result = evaluate(plan, panels, first_rows, last_rows)
    columns = np.arange(n_states)
    if node.op == "PRef":
        period = node.args[1]
        assert isinstance(period, Const)
        row = int(period_ordinal(np.array([period.value]), quarterly)[0]) - lo
        inside = (first_rows <= row) & (row <= last_rows)
        picked = result[min(max(row, 0), n_rows - 1), columns] if 0 <= row < n_rows else np.full(n_states, np.nan)
        by_state = np.where(inside, picked, np.nan)
    else:
        by_state = result[last_rows, columns]
    days = day_numbers(dates)
    for j, published in enumerate(states):
        if len(published) == 0:
            continue
        k = np.searchsorted(published, days, side="right") - 1
        known = k >= 0
        out[known, j] = by_state[offsets[j] + k[known]]
    return out


def _latest_revisions(
    by_symbol: dict[str, np.ndarray],
    symbols: Sequence[str],
    states: Sequence[np.ndarray],
    offsets: np.ndarray,
    quarterly: bool,
    lo: int,
    n_rows: int,
) -> tuple[np.ndarray, np.ndarray]:
    """For one field: the number of the latest record of each period known in each state (-1: none yet), shape
    ``(periods, states)``, and the records' values by number."""
    n_states = int(offsets[-1])
    latest = np.full((n_rows, n_states), -1, dtype=np.int64)
    first_number = np.zeros(n_states, dtype=np.int64)  # per state column: its instrument's first record number
    values: list[np.ndarray] = []
    base = 0
    for j, symbol in enumerate(symbols):
        rec = by_symbol.get(symbol)
        first_number[offsets[j] : offsets[j + 1]] = base
        if rec is None or len(rec) == 0:
            continue
        column = offsets[j] + np.searchsorted(states[j], np.asarray(rec["date"], dtype=np.int64))
        row = period_ordinal(rec["period"], quarterly) - lo
        # records are in publication order, so numbers grow with it: the maximum is the latest revision
        np.maximum.at(latest, (row, column), base + np.arange(len(rec)))
        values.append(np.asarray(rec["value"], dtype=np.float64))
        base += len(rec)
    np.maximum.accumulate(latest, axis=1, out=latest)
    # numbers grow across instruments too: a state seeing only an earlier instrument's records saw none of its own
    latest[latest < first_number[None, :]] = -1
    return latest, np.concatenate(values) if values else np.empty(0)
