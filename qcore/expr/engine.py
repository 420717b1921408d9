"""Evaluating expressions on whole panels: the engine that ties planning, scheduling and evaluation together.

A batch of expressions is planned into one graph in which equal subexpressions are a single node
(:mod:`qcore.expr.planning`), scheduled on the query's rows plus the warm-up its deepest window needs
(:mod:`qcore.expr.schedule`), then evaluated once per node on arrays of shape ``(dates, instruments)``, each
intermediate freed as soon as its last consumer has run (:mod:`qcore.expr.evaluation`). Results do not depend on the
query start; only the query rows of each instrument's universe membership are kept.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from qcore.expr.cache import ExpressionCache
from qcore.expr.evaluation import FrameGather, GraphEvaluator
from qcore.expr.planning import MISSING_FIELDS, OPT_IN_HINT, Plan, Planner, check_missing_fields, subset
from qcore.expr.schedule import Grid, load_window, query_grid, run_symbols, select_universe
from qcore.operators import Operator
from qcore.protocols import DataProvider, ExpressionEvaluator
from qcore.types import Panel, Universe, membership_mask

__all__ = ["MISSING_FIELDS", "OPT_IN_HINT", "ExpressionEngine", "Plan"]

logger = logging.getLogger(__name__)


class ExpressionEngine:
    """Evaluate expressions over a data provider with operators from a registry.

    :param provider: where raw fields come from.
    :param operators: operator name → :class:`~qcore.operators.Operator` (a kernel's ``operator`` registry, or a
        plain mapping).
    :param freq: bar frequency.
    :param num_threads: threads evaluating the graph (0: one per usable core). With more than one, independent
        nodes run at the same time and each kernel on one thread; with 1, nodes run in order on one thread.
    :param cache: an on-disk cache of evaluated expressions (None: no caching).
    :param missing_fields: a field the store lacks is an error naming it (``"error"``, with a did-you-mean), or
        is read as all NaN (``"nan"``, as Qlib reads it) with one warning per field naming the columns it touches.
        Feature sets opt in to ``"nan"`` (many real stores have no ``$vwap``); a user's own expressions do not.
    """

    def __init__(
        self,
        provider: DataProvider,
        operators: Mapping[str, Operator] | Any,
        *,
        freq: str = "day",
        num_threads: int = 0,
        cache: ExpressionCache | None = None,
        missing_fields: str = "error",
    ) -> None:
        check_missing_fields(missing_fields)
        if hasattr(operators, "names") and hasattr(operators, "get"):  # a Registry
            operators = {name: operators.get(name) for name in operators.names(include_aliases=True)}
        else:
            operators = dict(operators)
        self._operators: dict[str, Operator] = operators
        fields = {f.lower() for f in provider.fields(freq)}
        self._planner = Planner(provider, operators, fields, missing_fields, freq)
        self._warned: set[str] = set()
        self.provider = provider
        self.freq = freq
        self.cache = cache
        self._evaluator = GraphEvaluator(provider, operators, freq, fields, num_threads)

    @property
    def num_threads(self) -> int:
        """Threads evaluating the graph (0: one per usable core)."""
        return self._evaluator.num_threads

    @property
    def missing_fields(self) -> str:
        """What planning does with a field the store lacks: ``"error"`` or ``"nan"``."""
        return self._planner.missing_fields

    def at_freq(self, freq: str) -> ExpressionEngine:
        """An engine like this one (same provider, operators, threads, cache, missing-field policy) reading the
        store's ``freq`` bars; this engine itself when ``freq`` is its own."""
        if freq == self.freq:
            return self
        return ExpressionEngine(self.provider, self._operators, freq=freq, num_threads=self.num_threads,
                                cache=self.cache, missing_fields=self.missing_fields)  # fmt: skip

    # -- planning ----------------------------------------------------------------------------------------------

    def plan(self, expressions: Sequence[str] | Mapping[str, str]) -> Plan:
        """Parse and check ``expressions`` (a list, or names → expressions) into one shared graph."""
        plan, absent = self._planner.plan(expressions)
        self._warn_absent(absent)
        return plan

    def _warn_absent(self, absent: Mapping[str, Sequence[str]]) -> None:
        """One warning per missing field, naming the columns that read it (once per engine and message)."""
        for field, columns in absent.items():
            shown = ", ".join(columns[:10]) + (f" and {len(columns) - 10} more" if len(columns) > 10 else "")
            message = (f"the store has no field '${field}': it is read as NaN, so {len(columns)} column(s) "
                       f"are NaN where they use it: {shown}")  # fmt: skip
            if message not in self._warned:
                self._warned.add(message)
                logger.warning(message)

    # -- evaluating --------------------------------------------------------------------------------------------

    def evaluate(
        self,
        expressions: Sequence[str] | Mapping[str, str] | Plan,
        instruments: str | Sequence[str] = "all",
        start: object = None,
        end: object = None,
        index: str = "datetime",
    ) -> pd.DataFrame:
        """Evaluate into a float32 frame indexed ``(datetime, instrument)``, one column per expression.

        With ``index="instrument"`` the frame is indexed ``(instrument, datetime)`` and sorted that way instead (what
        files written for Qlib's readers use), gathered straight into that order rather than reordered afterwards.

        Rows are the dates between ``start`` and ``end`` on which each instrument is a member of the universe
        (``instruments`` is a market name such as ``csi300``, or a list of symbols, each taken over its data
        range). Each expression's member cells are copied into one preallocated block as soon as it is computed,
        and its panel is freed, so peak memory stays close to the frame's own size.

        A provider that satisfies :class:`~qcore.protocols.ExpressionEvaluator` (a remote store) may answer
        instead; when it returns None the engine evaluates as usual. ``expressions`` may also be a :class:`Plan`
        this engine's :meth:`plan` made (or one made for the same store and operators, as shards receive it).
        """
        if isinstance(expressions, Plan):
            plan = expressions
        elif isinstance(self.provider, ExpressionEvaluator):
            named = dict(expressions) if isinstance(expressions, Mapping) else {e: e for e in expressions}
            remote = self.provider.evaluate_expressions(named, instruments, start, end, freq=self.freq,
                                                        missing_fields=self.missing_fields, index=index)
            if remote is not None:
                return remote
            plan = self.plan(expressions)
        else:
            plan = self.plan(expressions)
        grid = query_grid(self.provider, self.freq, instruments, start, end)
        gather = FrameGather(grid, plan.names, index)
        self._compute(plan, instruments, grid, gather.emit, np.float32)
        return gather.frame()

    def universe(self, instruments: str | Sequence[str], start: object, end: object) -> Universe:
        """Membership spans of a market name or an explicit list of symbols, cut to ``[start, end]``."""
        return select_universe(self.provider, instruments, start, end)

    def evaluate_panel(
        self,
        plan: Plan,
        instruments: str | Sequence[str] = "all",
        start: object = None,
        end: object = None,
        dtype: Any = np.float32,
    ) -> tuple[Panel, np.ndarray]:
        """Evaluate on the query rows; returns panels (one field per expression, float32 unless ``dtype`` says
        otherwise; None keeps each expression's computed dtype) and the membership mask."""
        grid = query_grid(self.provider, self.freq, instruments, start, end)
        results: dict[int, np.ndarray] = {}

        def emit(i: int, value: np.ndarray) -> None:
            results[i] = np.ascontiguousarray(value, dtype=value.dtype if dtype is None else dtype)

        self._compute(plan, instruments, grid, emit, dtype)
        data = {f"e{i}": results[i] for i in range(len(plan.roots))}
        return Panel(grid.dates, grid.symbols, data), membership_mask(grid.universe, grid.dates, grid.symbols)

    def _compute(
        self,
        plan: Plan,
        instruments: str | Sequence[str],
        grid: Grid,
        emit: Callable[[int, np.ndarray], None],
        out_dtype: Any = None,
    ) -> None:
        """Evaluate ``plan`` on ``grid``, calling ``emit(i, query_rows)`` once per root (from the cache if it can);
        ``emit`` stores roots in ``out_dtype`` (None: as computed)."""
        dates, symbols = grid.dates, grid.symbols
        calendar = self.provider.calendar(self.freq)
        missing = list(range(len(plan.roots)))
        keys: list[str] = []
        if self.cache is not None:
            version = self.provider.version
            rows = (str(dates[0]), str(dates[-1]))
            keys = [self.cache.key(str(root), self.freq, symbols, rows) for root in plan.roots]
            missing = []
            for i, key in enumerate(keys):
                cached = self.cache.get(version, key)
                if cached is None or cached.shape != (len(dates), len(symbols)):  # absent, or not this grid's
                    missing.append(i)
                else:
                    emit(i, cached)
        if not missing:
            return
        todo = plan if len(missing) == len(plan.roots) else subset(plan, missing)
        window = load_window(todo, grid, len(calendar))
        load_start, load_end = calendar[window.load_lo], calendar[window.load_hi]
        columns_run = run_symbols(todo, self._operators, self.provider, instruments, symbols, load_start, load_end)
        columns = None if columns_run == symbols else np.searchsorted(np.array(columns_run), np.array(symbols))
        keep = window.keep

        def emit_rows(j: int, value: np.ndarray) -> None:
            i = missing[j]
            rows_value = value[keep] if columns is None else value[keep][:, columns]
            if self.cache is not None:
                self.cache.put(self.provider.version, keys[i], rows_value)
            emit(i, rows_value)

        dates_run = calendar[window.load_lo : window.load_hi + 1]
        self._evaluator.run(todo, columns_run, dates_run, instruments, emit_rows, out_dtype)
