"""Evaluating expressions on whole panels.

A batch of expressions is plan into one graph in which equal subexpressions are a single node (Alpha158
repeats ``Ref($close, 1)`` dozens of times), then evaluated once per node on arrays of shape
``(dates, instruments)``. Each intermediate array is freed as soon as its last consumer has run, so peak memory
stays near the size of the output.

Warm-up is automatic: the engine loads as many rows before the query start as the deepest window needs (all
history for expanding windows, EMA and ``Ref(x, 0)``), so results do not depend on the query start, then keeps
only the query rows of each instrument's universe membership.
"""

from __future__ import annotations

import difflib
import heapq
import logging
import math
import os
import sys
import threading
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any

import attrs
import numpy as np
import pandas as pd

from qcore.dates import parse_optional_date
from qcore.errors import DataError, ExpressionError, QcoreError, UnknownComponentError
from qcore.expr.ast import Call, Const, Field, Node, walk
from qcore.expr.cache import ExpressionCache
from qcore.expr.parser import check_names, parse
from qcore.operators import OpContext, Operator
from qcore.progress import progress
from qcore.protocols import DataProvider
from qcore.types import Panel, Universe, clip_universe, membership_mask

logger = logging.getLogger(__name__)

#: What the engine does with a field the store lacks: ``error`` (an error naming it) or ``nan`` (read as NaN).
MISSING_FIELDS = ("error", "nan")
#: What an unknown-field error adds when the engine refuses missing fields.
OPT_IN_HINT = " (a missing field is read as NaN only when asked: missing_fields='nan', --missing-fields nan)"


@attrs.frozen
class Plan:
    """A checked batch: the root node of each expression, its output name, and the evaluation order."""

    names: tuple[str, ...]
    roots: tuple[Node, ...]
    order: tuple[Call, ...]
    fields: tuple[str, ...]
    extents: tuple[tuple[float, float], ...]
    #: Nodes whose rows outside an instrument's data range must be blanked even if their operator keeps NaN as
    #: NaN: nodes that read the future, and nodes a future read looks at (their values past a delisting would
    #: otherwise flow back into rows that exist).
    blank_outside: frozenset[Node] = frozenset()
    #: Fields the batch reads that the store lacks (only with ``missing_fields="nan"``): read as all-NaN panels.
    missing: tuple[str, ...] = ()

    @property
    def left(self) -> float:
        """Rows of history the batch needs before the query start."""
        return max((e[0] for e in self.extents), default=0.0)

    @property
    def right(self) -> float:
        """Rows of future the batch reads after the query end."""
        return max((e[1] for e in self.extents), default=0.0)


@attrs.frozen(eq=False)
class _Grid:
    """The query's calendar rows ``lo..hi`` (inclusive), their dates, the member symbols and their spans."""

    lo: int
    hi: int
    dates: pd.DatetimeIndex
    symbols: tuple[str, ...]
    universe: Universe


def _span_start(node: Node) -> int:
    return node.span[0] if node.span is not None else 0


def _short(value: object, limit: int = 40) -> str:
    """``repr`` of a constant, cut to ``limit`` characters (an integer may have a thousand digits)."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}..."


def _check_constant(node: Const, text: str) -> None:
    """A number the panels cannot hold (an integer beyond float64's range) is refused where it was written."""
    value = node.value
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > sys.float_info.max:
        raise ExpressionError(
            f"number {_short(value)} is out of range (beyond {sys.float_info.max:.4g})", text, _span_start(node)
        )


def _check_root(root: Node, text: str) -> None:
    """A whole expression must denote numbers: a string literal only ever names something inside a call."""
    if isinstance(root, Const) and isinstance(root.value, str):
        raise ExpressionError(
            f"a string literal ({root}) is not an expression; strings are only arguments of calls such as "
            f"ChangeInstrument('SH000300', $close), and fields are written $close",
            text,
            _span_start(root),
        )


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
        if missing_fields not in MISSING_FIELDS:
            raise QcoreError(f"missing_fields must be one of {', '.join(MISSING_FIELDS)}, got {missing_fields!r}")
        self.missing_fields = missing_fields
        self._warned: set[str] = set()
        self.provider = provider
        self.freq = freq
        self.num_threads = num_threads
        self.cache = cache
        if hasattr(operators, "names") and hasattr(operators, "get"):  # a Registry
            self._operators = {name: operators.get(name) for name in operators.names(include_aliases=True)}
        else:
            self._operators = dict(operators)
        self._fields = {f.lower() for f in provider.fields(freq)}

    # -- compiling ---------------------------------------------------------------------------------------------

    def plan(self, expressions: Sequence[str] | Mapping[str, str]) -> Plan:
        """Parse and check ``expressions`` (a list, or names → expressions) into one shared graph."""
        if isinstance(expressions, Mapping):
            names, texts = list(expressions.keys()), list(expressions.values())
        else:
            texts = list(expressions)
            names = list(texts)
        if not texts:
            raise QcoreError("no expression to evaluate")
        roots: list[Node] = []
        order: dict[Call, None] = {}
        extents: dict[Node, tuple[float, float]] = {}
        blank: set[Node] = set()
        if not self._fields:  # a folder that is no store (or lacks this frequency) says so, not "unknown field"
            self.provider.calendar(self.freq)
        absent: dict[str, list[str]] = {}  # missing field -> the columns that read it (only with "nan")
        for name, text in zip(names, texts):
            root = parse(text)
            _check_root(root, text)
            known = self._fields
            if self.missing_fields == "nan":
                lacking = {n.name.lower() for n in walk(root) if isinstance(n, Field)} - self._fields
                for field in sorted(lacking):
                    absent.setdefault(field, []).append(str(name))
                known = self._fields | lacking
            try:
                check_names(root, operators=self._operators, fields=known, expression=text)
            except ExpressionError as exc:
                if not exc.message.startswith("unknown field") or "did you mean" in exc.message:
                    raise  # a typo's suggestion says enough
                raise ExpressionError(f"{exc.message}{OPT_IN_HINT}", text, exc.position) from None
            for node in walk(root):
                if node in extents:
                    continue
                if isinstance(node, Const):
                    _check_constant(node, text)
                if isinstance(node, Call):
                    extents[node] = self._check_call(node, text, extents)
                    order[node] = None
                    own_right = extents[node][1] - max((extents[a][1] for a in node.args), default=0.0)
                    if own_right > 0:
                        blank.add(node)
                        blank.update(n for a in node.args for n in walk(a))
                else:
                    extents[node] = (0.0, 0.0)
            roots.append(root)
        fields = sorted({n.name.lower() for n in extents if isinstance(n, Field)})
        self._warn_absent(absent)
        return Plan(tuple(names), tuple(roots), tuple(order), tuple(fields), tuple(extents[r] for r in roots),
                    frozenset(blank), tuple(sorted(absent)))

    def _warn_absent(self, absent: Mapping[str, Sequence[str]]) -> None:
        """One warning per missing field, naming the columns that read it (once per engine and message)."""
        for field, columns in absent.items():
            shown = ", ".join(columns[:10]) + (f" and {len(columns) - 10} more" if len(columns) > 10 else "")
            message = (f"the store has no field '${field}': it is read as NaN, so {len(columns)} column(s) "
                       f"are NaN where they use it: {shown}")  # fmt: skip
            if message not in self._warned:
                self._warned.add(message)
                logger.warning(message)

    def _check_call(self, node: Call, text: str, extents: Mapping[Node, tuple[float, float]]) -> tuple[float, float]:
        op = self._operators[node.op]
        try:
            op.bind(node.args)
        except TypeError as exc:
            raise ExpressionError(str(exc), text, _span_start(node)) from None
        constants: list[Any] = []
        for param, arg in zip(op.params, node.args):
            if param.kind == "expr":
                if isinstance(arg, Const) and isinstance(arg.value, str):
                    raise ExpressionError(
                        f"{op.name} argument {param.name!r} must be an expression", text, _span_start(arg)
                    )
                if isinstance(arg, Const) and not param.accepts_constant:
                    raise ExpressionError(
                        f"{op.name} argument {param.name!r} must be a series (a field such as $close, or an "
                        f"expression of fields), not the constant {_short(arg.value)}",
                        text,
                        _span_start(arg),
                    )
                constants.append(arg.value if isinstance(arg, Const) else None)
                continue
            if not isinstance(arg, Const):
                raise ExpressionError(
                    f"{op.name} argument {param.name!r} must be a constant {param.kind}, not an expression",
                    text,
                    _span_start(arg),
                )
            value = arg.value
            ok = {
                "int": isinstance(value, int),
                "number": isinstance(value, (int, float)) and not isinstance(value, bool),
                "str": isinstance(value, str),
            }[param.kind]
            if not ok:
                raise ExpressionError(
                    f"{op.name} argument {param.name!r} must be a {param.kind}, got {value!r}", text, _span_start(arg)
                )
            constants.append(value)
        if op.instrument_param is not None:
            self._check_instrument(op, node.args[op.instrument_param], text)
        try:
            own_left, own_right = op.lookback(*constants)
        except (TypeError, ValueError, ArithmeticError) as exc:
            raise ExpressionError(f"{op.name}: {exc}", text, _span_start(node)) from None
        children = [extents[a] for a in node.args if not isinstance(a, Const)]
        child_left = max((c[0] for c in children), default=0.0)
        child_right = max((c[1] for c in children), default=0.0)
        return (own_left + child_left, own_right + child_right)

    def _check_instrument(self, op: Operator, arg: Node, text: str) -> None:
        """The instrument a ``ChangeInstrument``-style call names exists (its upper-case form counts, as in
        evaluation); otherwise an error at the argument, before any data is read."""
        if not isinstance(arg, Const) or not isinstance(arg.value, str):
            return  # the parameter's kind check has refused it already
        every = self.provider.universe("all")
        symbol = arg.value
        if symbol in every or symbol.upper() in every:
            return
        close = difflib.get_close_matches(symbol.upper(), sorted(every), n=3)
        hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
        raise ExpressionError(f"{op.name}: unknown instrument {symbol!r}{hint}", text, _span_start(arg))

    # -- evaluating --------------------------------------------------------------------------------------------

    def evaluate(
        self,
        expressions: Sequence[str] | Mapping[str, str],
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
        """
        plan = self.plan(expressions)
        grid = self._grid(instruments, start, end)
        dates, symbols = grid.dates, grid.symbols
        if index not in ("datetime", "instrument"):
            raise ValueError(f"index must be 'datetime' or 'instrument', got {index!r}")
        mask = membership_mask(grid.universe, dates, symbols)
        if index == "instrument":
            cols, rows = np.nonzero(mask.T)
        else:
            rows, cols = np.nonzero(mask)
        flat = rows * len(symbols) + cols
        block = np.empty((len(rows), len(plan.roots)), dtype=np.float32, order="F")

        def emit(i: int, value: np.ndarray) -> None:
            # float32 first (the same rounding as casting after), then gather straight into the block's column;
            # every position in ``flat`` is valid, so "clip" never clips: it only skips numpy's slower raise path
            cells = np.ascontiguousarray(value, dtype=np.float32).reshape(-1)
            np.take(cells, flat, mode="clip", out=block[:, i])

        self._compute(plan, instruments, grid, emit)
        levels, codes, names = [dates, pd.Index(symbols, dtype=object)], [rows, cols], ["datetime", "instrument"]
        if index == "instrument":
            levels, codes, names = levels[::-1], codes[::-1], names[::-1]
        frame_index = pd.MultiIndex(levels=levels, codes=codes, names=names, verify_integrity=False)
        return pd.DataFrame(block, index=frame_index, columns=list(plan.names), copy=False)

    def universe(self, instruments: str | Sequence[str], start: object, end: object) -> Universe:
        """Membership spans of a market name or an explicit list of symbols, cut to ``[start, end]``."""
        if isinstance(instruments, str):
            markets = self.provider.markets()
            if instruments not in markets:
                raise UnknownComponentError("market", instruments, markets)
            universe = self.provider.universe(instruments)
        else:
            everything = self.provider.universe("all")
            missing = [s for s in instruments if s not in everything]
            if missing:
                raise QcoreError(f"unknown instruments: {_unknown_symbols(missing, everything)}")
            universe = {s: everything[s] for s in instruments}
        return clip_universe(universe, start, end)

    def _grid(self, instruments: str | Sequence[str], start: object, end: object) -> _Grid:
        """The query's calendar rows and its members."""
        first = parse_optional_date(start, "start")
        last = parse_optional_date(end, "end")
        if first is not None and last is not None and last < first:
            raise QcoreError(f"start {first.date()} is after end {last.date()}")
        calendar = self.provider.calendar(self.freq)
        if len(calendar) == 0:
            raise DataError(f"the {self.freq} calendar is empty")
        lo = 0 if first is None else int(calendar.searchsorted(first, "left"))
        hi = len(calendar) - 1 if last is None else int(calendar.searchsorted(last, "right")) - 1
        if hi < lo:
            since = "the beginning" if first is None else first.date()
            asked = f"{since} .. {'the end' if last is None else last.date()}"
            raise QcoreError(
                f"no trading day in {asked}: the {self.freq} calendar runs from {calendar[0].date()} "
                f"to {calendar[-1].date()}"
            )
        universe = self.universe(instruments, calendar[lo], calendar[hi])
        symbols = tuple(sorted(universe))
        if not symbols:
            raise QcoreError(f"no instrument of {instruments!r} is a member between {calendar[lo]} and {calendar[hi]}")
        return _Grid(lo, hi, calendar[lo : hi + 1], symbols, universe)

    def evaluate_panel(
        self,
        plan: Plan,
        instruments: str | Sequence[str] = "all",
        start: object = None,
        end: object = None,
    ) -> tuple[Panel, np.ndarray]:
        """Evaluate on the query rows; returns float32 panels (one field per expression) and the membership mask."""
        grid = self._grid(instruments, start, end)
        results: dict[int, np.ndarray] = {}

        def emit(i: int, value: np.ndarray) -> None:
            results[i] = np.ascontiguousarray(value, dtype=np.float32)

        self._compute(plan, instruments, grid, emit)
        data = {f"e{i}": results[i] for i in range(len(plan.roots))}
        return Panel(grid.dates, grid.symbols, data), membership_mask(grid.universe, grid.dates, grid.symbols)

    def _compute(
        self,
        plan: Plan,
        instruments: str | Sequence[str],
        grid: _Grid,
        emit: Callable[[int, np.ndarray], None],
    ) -> None:
        """Evaluate ``plan`` on ``grid``, calling ``emit(i, query_rows)`` once per root (from the cache if it can)."""
        lo, hi, dates, symbols = grid.lo, grid.hi, grid.dates, grid.symbols
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
        todo = plan if len(missing) == len(plan.roots) else _subset(plan, missing)
        load_lo = 0 if math.isinf(todo.left) else max(0, lo - int(todo.left))
        load_hi = len(calendar) - 1 if math.isinf(todo.right) else min(len(calendar) - 1, hi + int(todo.right))
        keep = slice(lo - load_lo, hi - load_lo + 1)
        run_symbols = self._run_symbols(todo, instruments, symbols, calendar[load_lo], calendar[load_hi])
        columns = None if run_symbols == symbols else np.searchsorted(np.array(run_symbols), np.array(symbols))

        def emit_rows(j: int, value: np.ndarray) -> None:
            i = missing[j]
            rows_value = value[keep] if columns is None else value[keep][:, columns]
            if self.cache is not None:
                self.cache.put(self.provider.version, keys[i], rows_value)
            emit(i, rows_value)

        self._run(todo, run_symbols, calendar, load_lo, load_hi, instruments, emit_rows)

    def _run_symbols(self, plan: Plan, instruments: str | Sequence[str], symbols: tuple[str, ...],
                     load_start: pd.Timestamp, load_end: pd.Timestamp) -> tuple[str, ...]:
        """The columns to evaluate on: the query's members, plus, when a cross-sectional operator reads the history
        rows, every member of the market on the loaded rows (a stock that left before the query start still counts
        in a rank of those rows, as it would in a query that starts earlier)."""
        if not isinstance(instruments, str) or not any(self._operators[n.op].cross_sectional for n in plan.order):
            return symbols
        loaded = clip_universe(self.provider.universe(instruments), load_start, load_end)
        return tuple(sorted(set(symbols).union(loaded)))

    def _run(
        self,
        plan: Plan,
        symbols: tuple[str, ...],
        calendar: pd.DatetimeIndex,
        load_lo: int,
        load_hi: int,
        instruments: str | Sequence[str],
        emit: Callable[[int, np.ndarray], None],
    ) -> None:
        dates = calendar[load_lo : load_hi + 1]
        raw = _FieldsOnDemand(self.provider, symbols, dates, self.freq, self._fields)
        data_range = clip_universe({s: sp for s, sp in self.provider.universe("all").items() if s in symbols})
        first_rows, last_rows = _data_rows(data_range, dates, symbols)
        market = instruments if isinstance(instruments, str) else None
        member = membership_mask(self.provider.universe(market) if market else data_range, dates, symbols)
        context = OpContext(dates, symbols, member, first_rows, self.num_threads)
        self._evaluate_graph(plan, raw, context, first_rows, last_rows, emit)

    def _evaluate_graph(
        self,
        plan: Plan,
        raw: Panel | _FieldsOnDemand,
        context: OpContext,
        first_rows: np.ndarray,
        last_rows: np.ndarray,
        emit: Callable[[int, np.ndarray], None],
        workers: int | None = None,
    ) -> None:
        """Compute every node once; emit each root as soon as it exists and free what is no longer needed.

        With more than one worker, independent nodes run at the same time on a thread pool (the kernels and
        numpy release the GIL); each kernel then runs on one thread, since the nodes already fill the cores.
        """
        consumers: dict[Node, int] = {}
        for node in plan.order:
            for arg in node.args:
                consumers[arg] = consumers.get(arg, 0) + 1
        root_slots: dict[Node, list[int]] = {}
        for i, root in enumerate(plan.roots):
            root_slots.setdefault(root, []).append(i)
        shape = (len(context.dates), len(context.instruments))
        row_numbers = np.arange(shape[0])[:, None]
        outside = (row_numbers < first_rows[None, :]) | (row_numbers > last_rows[None, :])
        any_outside = bool(outside.any())
        values: dict[Node, Any] = {}
        converted: dict[Node, dict[str, np.ndarray]] = {}  # node -> dtype -> its value in that dtype
        workers = self._workers() if workers is None else workers
        if workers > 1:
            context = attrs.evolve(context, num_threads=1)

        def value_of(node: Node) -> Any:
            if isinstance(node, Const):
                return node.value
            if isinstance(node, Field):
                return raw[node.name.lower()]
            return values[node]

        def argument(node: Node, dtype: str | None) -> Any:
            """A node's value for an operator computing in ``dtype``, converted once and shared."""
            value = value_of(node)
            if dtype is None or not isinstance(value, np.ndarray):
                return value
            if value.dtype == dtype and value.flags.c_contiguous:
                return value
            copies = converted.setdefault(node, {})
            if dtype not in copies:  # two threads may both convert: the same bits, one copy is kept
                copies[dtype] = np.ascontiguousarray(value, dtype=dtype)
            return copies[dtype]

        def handed(node: Node, op: Operator) -> Any:
            """An argument as ``op`` receives it: writable only if ``op`` may overwrite it and nothing else needs it."""
            value = argument(node, op.input_dtype)
            if not op.overwrites_input or not isinstance(value, np.ndarray):
                return value
            # this node is the last reader of an intermediate (the count is only ever lowered, on this node's
            # own completion or another reader's) that is not an output (emit may have kept it): hand it over;
            # anything else goes read-only
            if (
                isinstance(node, Call)
                and consumers[node] == 1
                and node not in root_slots
                and value is values.get(node)
            ):
                return value
            view = value.view()
            view.flags.writeable = False
            return view

        def widened(bound: Sequence[Any], args: list[Any]) -> list[Any]:
            """Element-wise arithmetic mixing float64 with float32 casts the float32 side first: take the float64
            copy a kernel's input already made of it instead (exact, and the loop runs without casting)."""
            if not any(isinstance(a, np.ndarray) and a.dtype == np.float64 for a in args):
                return args
            out = list(args)
            for k, (node, value) in enumerate(zip(bound, args)):
                if isinstance(value, np.ndarray) and value.dtype == np.float32 and isinstance(node, Node):
                    wide = converted.get(node, {}).get("float64")
                    if wide is not None:
                        view = wide.view()
                        view.flags.writeable = False
                        out[k] = view
            return out

        def compute(node: Call) -> np.ndarray:
            op = self._operators[node.op]
            bound = op.bind(node.args)
            if op.instrument_param is not None:
                result = self._on_instrument(node, op, bound, context)
            else:
                args = [handed(a, op) if isinstance(a, Node) else a for a in bound]
                if op.overwrites_input:
                    args = widened(bound, args)
                result = _as_panel_array(op.compute(context, *args), context)
                # Rows before listing or after delisting do not exist for the instrument: blank them where a value
                # could appear there (or flow back from there) at all.
                if any_outside and (op.fills_missing or node in plan.blank_outside):
                    result[outside] = np.nan
            for i in root_slots.get(node, ()):
                emit(i, result)
            return result

        def finish(node: Call, result: np.ndarray) -> None:
            if consumers.get(node, 0) > 0:
                values[node] = result
            for arg in node.args:
                if isinstance(arg, Call):
                    consumers[arg] -= 1
                    if consumers[arg] == 0:
                        values.pop(arg, None)
                        converted.pop(arg, None)

        for root, slots in root_slots.items():  # roots that need no computation: fields and constants
            if not isinstance(root, Call):
                value = value_of(root)
                if isinstance(value, np.ndarray):
                    array = value
                else:
                    with np.errstate(over="ignore"):  # a constant beyond float32's range is ±inf, as a cast gives
                        array = np.full(shape, value, dtype=np.float32)
                for i in slots:
                    emit(i, array)
        if workers <= 1 or len(plan.order) <= 1:
            for node in progress(plan.order, "expressions"):
                finish(node, compute(node))
            return
        done = _run_concurrently(plan.order, compute, finish, workers)
        for _ in progress(done, "expressions", total=len(plan.order)):
            pass

    def _workers(self) -> int:
        """Threads evaluating nodes at the same time: ``num_threads``, or the usable cores when 0."""
        if self.num_threads > 0:
            return self.num_threads
        try:
            return max(1, len(os.sched_getaffinity(0)))
        except AttributeError:  # not on Linux
            return max(1, os.cpu_count() or 1)

    def _on_instrument(self, node: Call, op: Operator, bound: tuple[Any, ...], context: OpContext) -> np.ndarray:
        symbol_arg = bound[op.instrument_param]
        symbol = symbol_arg.value if isinstance(symbol_arg, Const) else symbol_arg
        every = self.provider.universe("all")
        if symbol not in every:
            upper = str(symbol).upper()
            if upper not in every:
                raise QcoreError(f"{op.name}: unknown instrument {symbol!r}")
            symbol = upper
        sub_roots = tuple(a for a in node.args if isinstance(a, Node) and not isinstance(a, Const))
        sub_order: dict[Call, None] = {}
        for sub in sub_roots:
            for n in walk(sub):
                if isinstance(n, Call):
                    sub_order[n] = None
        fields = tuple(sorted({n.name.lower() for s in sub_roots for n in walk(s) if isinstance(n, Field)}))
        extents = tuple((0.0, 0.0) for _ in sub_roots)
        every_node = frozenset(n for sub in sub_roots for n in walk(sub))  # one column: blanking all is cheap
        plan = Plan(tuple(str(s) for s in sub_roots), sub_roots, tuple(sub_order), fields, extents, every_node)
        dates = context.dates
        sub_raw = _FieldsOnDemand(self.provider, (symbol,), dates, self.freq, self._fields)
        sub_range = clip_universe({symbol: every[symbol]})
        first_rows, last_rows = _data_rows(sub_range, dates, (symbol,))
        sub_context = OpContext(
            dates, (symbol,), membership_mask(sub_range, dates, (symbol,)), first_rows, context.num_threads
        )
        computed: dict[int, np.ndarray] = {}
        self._evaluate_graph(plan, sub_raw, sub_context, first_rows, last_rows, computed.__setitem__, workers=1)
        sub_values = iter(computed[i] for i in range(len(sub_roots)))
        args = [
            np.broadcast_to(next(sub_values), (len(dates), len(context.instruments)))
            if isinstance(a, Node) and not isinstance(a, Const)
            else (a.value if isinstance(a, Const) else a)
            for a in bound
        ]
        return np.array(_as_panel_array(op.compute(context, *args), context))


class _FieldsOnDemand:
    """Raw fields loaded one at a time, on first use, one load at a time (providers need not be thread-safe).

    The first nodes start computing on the first field while the next ones load, instead of every worker
    waiting for the whole batch of fields. A field outside ``stored`` (a plan admits one only with
    ``missing_fields="nan"``) is an all-NaN panel, as Qlib reads a field file that is not there.
    """

    def __init__(self, provider: DataProvider, symbols: tuple[str, ...], dates: pd.DatetimeIndex, freq: str,
                 stored: Collection[str] | None = None) -> None:
        self._stored = stored
        self._provider = provider
        self._symbols = symbols
        self._dates = dates
        self._freq = freq
        self._loaded: dict[str, np.ndarray] = {}
        self._lock = threading.Lock()

    def __getitem__(self, field: str) -> np.ndarray:
        with self._lock:
            if field not in self._loaded:
                if self._stored is not None and field not in self._stored:
                    self._loaded[field] = np.full((len(self._dates), len(self._symbols)), np.nan, dtype=np.float32)
                else:
                    panel = self._provider.load([field], self._symbols, self._dates[0], self._dates[-1], self._freq)
                    self._loaded[field] = panel[field]
            return self._loaded[field]


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


def _run_concurrently(
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
        inputs = {a for a in node.args if isinstance(a, Call)}
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


def _subset(plan: Plan, indices: Sequence[int]) -> Plan:
    """The part of a plan batch needed for the roots at ``indices``."""
    roots = tuple(plan.roots[i] for i in indices)
    needed: set[Node] = {n for root in roots for n in walk(root)}
    order = tuple(node for node in plan.order if node in needed)
    fields = tuple(sorted({n.name.lower() for n in needed if isinstance(n, Field)}))
    extents = tuple(plan.extents[i] for i in indices)
    return Plan(tuple(plan.names[i] for i in indices), roots, order, fields, extents, plan.blank_outside)


def _data_rows(data_range: Universe, dates: pd.DatetimeIndex, symbols: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
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


def _as_panel_array(result: Any, context: OpContext) -> np.ndarray:
    """Operator output as a writable float array of the panel's shape (bools become 1.0/0.0)."""
    shape = (len(context.dates), len(context.instruments))
    array = np.asarray(result)
    if array.dtype == bool:
        array = array.astype(np.float32)
    elif array.dtype.kind in "iu":
        array = array.astype(np.float64)
    if array.shape != shape:
        array = np.broadcast_to(array, shape)
    if not array.flags.writeable or not array.flags.c_contiguous:
        array = np.array(array, order="C")
    return array
