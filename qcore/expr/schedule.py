"""Scheduling a plan: which calendar rows and instruments it runs on, and in which order its nodes run.

Warm-up is automatic: a plan runs on as many rows before the query start as its deepest window needs (all history
for expanding windows, EMA and ``Ref(x, 0)``) and as many after the end as it reads ahead, so results do not depend
on the query start. When a cross-sectional operator reads those extra rows, it runs over every member of the market
on them, also stocks that left before the query start, as it would in a query that starts earlier. Nodes run in the
plan's topological order, on one thread or on several at a time.
"""

from __future__ import annotations

import difflib
import heapq
import math
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any

import attrs
import numpy as np
import pandas as pd

from qcore.dates import parse_optional_date
from qcore.errors import DataError, QcoreError, UnknownComponentError
from qcore.expr.ast import Call
from qcore.expr.planning import Plan
from qcore.operators import Operator
from qcore.protocols import DataProvider
from qcore.types import Universe, clip_universe


@attrs.frozen(eq=False)
class Grid:
    """The query's calendar rows ``lo..hi`` (inclusive), their dates, the member symbols and their spans."""

    lo: int
    hi: int
    dates: pd.DatetimeIndex
    symbols: tuple[str, ...]
    universe: Universe


@attrs.frozen
class Window:
    """The calendar rows ``load_lo..load_hi`` (inclusive) a plan runs on, and the query's rows among them."""

    load_lo: int
    load_hi: int
    keep: slice


def select_universe(
    provider: DataProvider, instruments: str | Sequence[str], start: object, end: object
) -> Universe:
    """Membership spans of a market name or an explicit list of symbols, cut to ``[start, end]``."""
    if isinstance(instruments, str):
        markets = provider.markets()
        if instruments not in markets:
            raise UnknownComponentError("market", instruments, markets)
        universe = provider.universe(instruments)
    else:
        everything = provider.universe("all")
        missing = [s for s in instruments if s not in everything]
        if missing:
            raise QcoreError(f"unknown instruments: {_unknown_symbols(missing, everything)}")
        universe = {s: everything[s] for s in instruments}
    return clip_universe(universe, start, end)


def _unknown_symbols(missing: Sequence[str], known: Mapping[str, Any]) -> str:
    """The first unknown symbols, each with the closest known one (``'sh600000' (did you mean 'SH600000'?)``)."""
    names = sorted(known)
    upper = {name.upper(): name for name in names}
    parts = []
    for symbol in missing[:10]:
        text = str(symbol)
        close = [upper[text.upper()]] if text.upper() in upper else difflib.get_close_matches(text, names, n=1)
        parts.append(f"{text} (did you mean {close[0]!r}?)" if close else text)
    more = f" and {len(missing) - 10} more" if len(missing) > 10 else ""
    return ", ".join(parts) + more


def query_grid(provider: DataProvider, freq: str, instruments: str | Sequence[str], start: object, end: object) -> Grid:
    """The query's calendar rows and its members."""
    first = parse_optional_date(start, "start")
    last = parse_optional_date(end, "end")
    if first is not None and last is not None and last < first:
        raise QcoreError(f"start {first.date()} is after end {last.date()}")
    calendar = provider.calendar(freq)
    if len(calendar) == 0:
        raise DataError(f"the {freq} calendar is empty")
    lo = 0 if first is None else int(calendar.searchsorted(first, "left"))
    hi = len(calendar) - 1 if last is None else int(calendar.searchsorted(last, "right")) - 1
    if hi < lo:
        since = "the beginning" if first is None else first.date()
        asked = f"{since} .. {'the end' if last is None else last.date()}"
        raise QcoreError(
            f"no trading day in {asked}: the {freq} calendar runs from {calendar[0].date()} to {calendar[-1].date()}"
        )
    universe = select_universe(provider, instruments, calendar[lo], calendar[hi])
    symbols = tuple(sorted(universe))
    if not symbols:
        raise QcoreError(f"no instrument of {instruments!r} is a member between {calendar[lo]} and {calendar[hi]}")
    return Grid(lo, hi, calendar[lo : hi + 1], symbols, universe)


def load_window(plan: Plan, grid: Grid, calendar_length: int) -> Window:
    """The rows ``plan`` runs on for ``grid``: its warm-up before the query, its look-ahead after, within the
    calendar (an infinite extent takes every row on that side)."""
    lo, hi = grid.lo, grid.hi
    load_lo = 0 if math.isinf(plan.left) else max(0, lo - int(plan.left))
    load_hi = calendar_length - 1 if math.isinf(plan.right) else min(calendar_length - 1, hi + int(plan.right))
    return Window(load_lo, load_hi, slice(lo - load_lo, hi - load_lo + 1))


def run_symbols(
    plan: Plan,
    operators: Mapping[str, Operator],
    provider: DataProvider,
    instruments: str | Sequence[str],
    symbols: tuple[str, ...],
    load_start: pd.Timestamp,
    load_end: pd.Timestamp,
) -> tuple[str, ...]:
    """The columns to evaluate on: the query's members, plus, when a cross-sectional operator reads the history
    rows, every member of the market on the loaded rows (a stock that left before the query start still counts
    in a rank of those rows, as it would in a query that starts earlier)."""
    if not isinstance(instruments, str) or not any(operators[n.op].cross_sectional for n in plan.order):
        return symbols
    loaded = clip_universe(provider.universe(instruments), load_start, load_end)
    return tuple(sorted(set(symbols).union(loaded)))


def data_rows(data_range: Universe, dates: pd.DatetimeIndex, symbols: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Per symbol, the first and last row of ``dates`` inside its data range (an empty range gives first > last)."""
    first = np.zeros(len(symbols), dtype=np.int64)
    last = np.full(len(symbols), len(dates) - 1, dtype=np.int64)
    values = dates.values
    for j, symbol in enumerate(symbols):
        spans = data_range.get(symbol, ())
        if not spans:
            first[j], last[j] = len(dates), -1
            continue
        start = min(s.start for s in spans).to_datetime64()
        end = max(s.end for s in spans).to_datetime64()
        first[j] = np.searchsorted(values, start, side="left")
        last[j] = np.searchsorted(values, end, side="right") - 1
    return first, last


def usable_workers(num_threads: int) -> int:
    """Threads evaluating nodes at the same time: ``num_threads``, or the usable cores when 0."""
    if num_threads > 0:
        return num_threads
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def grouped_order(
    order: Sequence[Call], roots: Sequence[Any], groups: Mapping[Call, tuple[Call, ...]]
) -> tuple[Call, ...]:
    """``order`` re-sequenced so that the expressions reading one sibling group (nodes one batched call computes,
    see :func:`qcore.expr.evaluation.sibling_groups`) run one after another: the batch's other results are then
    consumed, and freed, right after it instead of waiting for their own expression's turn (Alpha158's QTLD
    columns come five columns after the QTLU ones that batch them).

    Still topological: each expression's nodes keep their relative order and come after what they read.
    """
    if not groups:
        return tuple(order)
    rank = {node: k for k, node in enumerate(order)}
    subtrees: list[set[Call]] = []
    for root in roots:
        nodes: set[Call] = set()
        stack = [root]
        while stack:
            node = stack.pop()
            if node in rank and node not in nodes:
                nodes.add(node)
                stack.extend(node.args)
        subtrees.append(nodes)
    touches = [sorted({groups[n] for n in nodes if n in groups}, key=lambda g: rank[g[0]]) for nodes in subtrees]
    readers: dict[tuple[Call, ...], list[int]] = {}
    for i, touched in enumerate(touches):
        for group in touched:
            readers.setdefault(group, []).append(i)
    sequence: list[int] = []
    placed: set[int] = set()
    for i in range(len(roots)):
        if i in placed:
            continue
        placed.add(i)
        sequence.append(i)
        for group in touches[i]:
            for j in readers[group]:
                if j not in placed:
                    placed.add(j)
                    sequence.append(j)
    out: list[Call] = []
    seen: set[Call] = set()
    for i in sequence:
        for node in sorted(subtrees[i] - seen, key=rank.__getitem__):
            out.append(node)
            seen.add(node)
    out.extend(node for node in order if node not in seen)  # read by no expression: nothing waits for them
    return tuple(out)


def run_concurrently(
    order: Sequence[Call],
    compute: Callable[[Call], np.ndarray],
    finish: Callable[[Call, np.ndarray], None],
    workers: int,
) -> Iterator[Call]:
    """Run ``compute`` on every node of a topological ``order`` with ``workers`` threads; yield each finished node.

    A node starts once every node it reads has finished; among the ready ones the earliest in ``order`` goes
    first, and no more than ``workers`` run at a time, so intermediates are freed about as early as in order.
    ``finish`` runs on this thread before any dependent node starts. The first error is raised here.
    """
    rank = {node: k for k, node in enumerate(order)}
    waiting: dict[Call, int] = {}
    dependents: dict[Call, list[Call]] = {}
    ready: list[tuple[int, Call]] = []
    for node in order:
        inputs = {a for a in node.args if isinstance(a, Call) and a in rank}  # P/PRef leaves are no graph nodes
        waiting[node] = len(inputs)
        for arg in inputs:
            dependents.setdefault(arg, []).append(node)
        if not inputs:
            ready.append((rank[node], node))
    heapq.heapify(ready)
    running: dict[Future[np.ndarray], Call] = {}
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="qcore-expr") as pool:
        try:
            while ready or running:
                while ready and len(running) < workers:
                    _, node = heapq.heappop(ready)
                    running[pool.submit(compute, node)] = node
                finished, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in sorted(finished, key=lambda f: rank[running[f]]):
                    node = running.pop(future)
                    finish(node, future.result())
                    for dependent in dependents.get(node, ()):
                        waiting[dependent] -= 1
                        if waiting[dependent] == 0:
                            heapq.heappush(ready, (rank[dependent], dependent))
                    yield node
        finally:
            for future in running:
                future.cancel()
