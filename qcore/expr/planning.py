"""Planning a batch of expressions: parse, check, and share equal subexpressions in one graph.

A batch becomes one :class:`Plan` in which equal subexpressions are a single node (Alpha158 repeats
``Ref($close, 1)`` dozens of times). Planning checks everything that can be checked without reading data: operator
and field names, argument kinds and constants, the instruments ``ChangeInstrument``-style calls name; and it records
how many rows of history and future each expression reads, which the scheduler turns into a warm-up window.
"""

from __future__ import annotations

import difflib
import math
import sys
from collections.abc import Collection, Mapping, Sequence
from typing import Any

import attrs

from qcore.errors import ExpressionError, QcoreError
from qcore.expr.ast import Call, Const, Field, Node, PeriodField, walk
from qcore.expr.parser import check_names, parse
from qcore.expr.periods import COLLAPSES, daily_walk, is_collapse, period_fields
from qcore.operators import Operator
from qcore.protocols import DataProvider, PointInTimeProvider

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
    #: ``P``/``PRef`` calls (leaves of the daily graph) with the plan of their period expression and the period
    #: fields it reads (see :mod:`qcore.expr.pit`).
    collapses: tuple[tuple[Call, Plan, tuple[str, ...]], ...] = ()

    @property
    def collapse_plans(self) -> dict[Call, tuple[Plan, tuple[str, ...]]]:
        """Each ``P``/``PRef`` call → (the plan of its period expression, the period fields it reads)."""
        return {node: (plan, fields) for node, plan, fields in self.collapses}

    @property
    def left(self) -> float:
        """Rows of history the batch needs before the query start."""
        return max((e[0] for e in self.extents), default=0.0)

    @property
    def right(self) -> float:
        """Rows of future the batch reads after the query end."""
        return max((e[1] for e in self.extents), default=0.0)


def check_missing_fields(value: str) -> None:
    """Refuse a ``missing_fields`` setting outside :data:`MISSING_FIELDS`."""
    if value not in MISSING_FIELDS:
        raise QcoreError(f"missing_fields must be one of {', '.join(MISSING_FIELDS)}, got {value!r}")


def span_start(node: Node) -> int:
    """Where ``node`` was written in its expression (0 when unknown)."""
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
            f"number {_short(value)} is out of range (beyond {sys.float_info.max:.4g})", text, span_start(node)
        )


def _check_root(root: Node, text: str) -> None:
    """A whole expression must denote numbers: a string literal only ever names something inside a call."""
    if isinstance(root, Const) and isinstance(root.value, str):
        raise ExpressionError(
            f"a string literal ({root}) is not an expression; strings are only arguments of calls such as "
            f"ChangeInstrument('SH000300', $close), and fields are written $close",
            text,
            span_start(root),
        )


class Planner:
    """Turns batches of expressions into checked :class:`Plan` objects for one store and operator set.

    :param provider: the store; its instrument list is read only to check instruments that calls name.
    :param operators: operator name → :class:`~qcore.operators.Operator`.
    :param fields: the (lower-case) fields the store holds.
    :param missing_fields: ``"error"`` refuses a field outside ``fields``; ``"nan"`` admits it (read as NaN).
    :param freq: the bar frequency ``fields`` belong to.
    """

    def __init__(
        self,
        provider: DataProvider,
        operators: Mapping[str, Operator],
        fields: Collection[str],
        missing_fields: str = "error",
        freq: str = "day",
    ) -> None:
        check_missing_fields(missing_fields)
        self.freq = freq
        self.provider = provider
        self.operators = operators
        self.fields = frozenset(fields)
        self.missing_fields = missing_fields

    def plan(self, expressions: Sequence[str] | Mapping[str, str]) -> tuple[Plan, dict[str, list[str]]]:
        """Parse and check ``expressions`` (a list, or names → expressions) into one shared graph.

        :returns: the plan, and each field the store lacks (only with ``missing_fields="nan"``) with the names of
            the expressions that read it.
        """
        if isinstance(expressions, Mapping):
            names, texts = list(expressions.keys()), list(expressions.values())
        else:
            texts = list(expressions)
            names = list(texts)
        if not texts:
            raise QcoreError("no expression to evaluate")
        if not self.fields:  # a folder that is no store (or lacks this frequency) says so, not "unknown field"
            self.provider.calendar(self.freq)
        roots: list[Node] = []
        order: dict[Call, None] = {}
        extents: dict[Node, tuple[float, float]] = {}
        blank: set[Node] = set()
        absent: dict[str, list[str]] = {}  # missing field -> the columns that read it (only with "nan")
        collapses: dict[Call, tuple[Plan, tuple[str, ...]]] = {}
        for name, text in zip(names, texts):
            root = parse(text)
            _check_root(root, text)
            known: Collection[str] = self.fields
            if self.missing_fields == "nan":
                lacking = {n.name.lower() for n in daily_walk(root) if isinstance(n, Field)} - self.fields
                for field in sorted(lacking):
                    absent.setdefault(field, []).append(str(name))
                known = self.fields | lacking
            try:
                check_names(root, operators=set(self.operators) | set(COLLAPSES), fields=known, expression=text)
            except ExpressionError as exc:
                if not exc.message.startswith("unknown field") or "did you mean" in exc.message:
                    raise  # a typo's suggestion says enough
                raise ExpressionError(f"{exc.message}{OPT_IN_HINT}", text, exc.position) from None
            for node in daily_walk(root):
                if node in extents:
                    continue
                if isinstance(node, Const):
                    _check_constant(node, text)
                if isinstance(node, PeriodField):
                    raise ExpressionError(
                        f"{node} is a point-in-time period field: read it on trading days through P({node}) or "
                        f"PRef({node}, period)",
                        text,
                        span_start(node),
                    )
                if is_collapse(node):
                    assert isinstance(node, Call)
                    collapses[node] = self._check_collapse(node, text)
                    extents[node] = (0.0, 0.0)
                elif isinstance(node, Call):
                    if node.op in COLLAPSES and node.op not in self.operators:
                        where = node.args[0] if node.args else node
                        raise ExpressionError(f"{node.op} collapses a period expression: its argument must read a "
                                              f"period field such as $$eps_q", text, span_start(where))  # fmt: skip
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
        plan = Plan(tuple(names), tuple(roots), tuple(order), tuple(fields), tuple(extents[r] for r in roots),
                    frozenset(blank), tuple(sorted(absent)),
                    tuple((node, *value) for node, value in collapses.items()))  # fmt: skip
        return plan, absent

    def _check_collapse(self, node: Call, text: str) -> tuple[Plan, tuple[str, ...]]:
        """Check a ``P(expr)``/``PRef(expr, period)`` call; return the plan of ``expr`` over periods and its fields.

        Refused, each at the offending part: a wrong argument count, a period expression without a period field or
        with a daily field, another ``P`` inside, quarterly and annual fields together, a store without period
        data or without the field, a cross-sectional or instrument-switching operator, an expanding window, and
        any look-ahead (``Ref($$x_q, -1)``): a period's later periods are not known on the day it is read.
        """
        want = COLLAPSES[node.op]
        usage = "P(expr)" if node.op == "P" else "PRef(expr, period)"
        if len(node.args) != want:
            raise ExpressionError(f"{node.op} takes {want} argument(s), {usage}; got {len(node.args)}", text,
                                  span_start(node))  # fmt: skip
        inner = node.args[0]
        wanted = period_fields(inner)
        if not wanted:
            raise ExpressionError(f"{node.op} collapses a period expression: its argument must read a period field "
                                  f"such as $$eps_q", text, span_start(inner))  # fmt: skip
        kinds = {f[-2:] for f in wanted}
        bad_kind = [f for f in wanted if f[-2:] not in ("_q", "_a")]
        if bad_kind:
            raise ExpressionError(f"period field '$${bad_kind[0]}' must end with '_q' (quarterly) or '_a' (annual)",
                                  text, span_start(inner))  # fmt: skip
        if len(kinds) > 1:
            raise ExpressionError(f"{node.op} mixes quarterly and annual period fields ({', '.join(wanted)}); "
                                  f"collapse each with its own P(...)", text, span_start(node))  # fmt: skip
        if not isinstance(self.provider, PointInTimeProvider):
            raise ExpressionError(f"{node.op}: this store has no point-in-time period data", text, span_start(node))
        stored = {f.lower() for f in self.provider.pit_fields()}
        for n in walk(inner):
            if isinstance(n, PeriodField) and n.name.lower() not in stored:
                close = difflib.get_close_matches(n.name.lower(), sorted(stored), n=3)
                hint = f"; did you mean {' or '.join(f'$${c}' for c in close)}?" if close else (
                    "" if stored else " (the store has no period field)")
                raise ExpressionError(f"unknown period field '{n}'{hint}", text, span_start(n))
            if isinstance(n, Field):
                raise ExpressionError(f"{node.op} evaluates over report periods: the daily field '{n}' cannot be "
                                      f"read inside it; combine outside, e.g. {node.op}(...)/{n}", text,
                                      span_start(n))  # fmt: skip
            if is_collapse(n) and n is not node:
                raise ExpressionError(f"{n.op}(...) cannot be nested inside {node.op}(...)", text, span_start(n))
        if node.op == "PRef":
            period = node.args[1]
            quarterly = wanted[0].endswith("_q")
            form = "a quarter YYYYQQ (e.g. 201903)" if quarterly else "a year YYYY (e.g. 2019)"
            ok = isinstance(period, Const) and isinstance(period.value, int) and not isinstance(period.value, bool)
            if ok:
                value = int(period.value)  # type: ignore[arg-type]
                year, quarter = divmod(value, 100) if quarterly else (value, 1)
                ok = 1900 <= year <= 2099 and 1 <= quarter <= 4
            if not ok:
                raise ExpressionError(f"PRef period must be {form}, got {period}", text, span_start(period))
        extents: dict[Node, tuple[float, float]] = {}
        order: dict[Call, None] = {}
        for n in walk(inner):
            if n in extents:
                continue
            if isinstance(n, Call):
                op = self.operators[n.op]
                if op.cross_sectional or op.instrument_param is not None:
                    raise ExpressionError(f"{n.op} reads other instruments and cannot run over one instrument's "
                                          f"report periods inside {node.op}(...)", text, span_start(n))  # fmt: skip
                extents[n] = self._check_call(n, text, extents)
                order[n] = None
            else:
                if isinstance(n, Const):
                    _check_constant(n, text)
                extents[n] = (0.0, 0.0)
        left, right = extents[inner]
        if right > 0:
            raise ExpressionError(f"{node.op}: point-in-time data cannot refer to future periods (as in "
                                  f"Ref($$x_q, -1)): a later period is not known on the day it is read", text,
                                  span_start(node))  # fmt: skip
        if math.isinf(left):
            raise ExpressionError(f"{node.op}: windows over all periods (expanding windows, EMA, Ref(x, 0)) are not "
                                  f"supported over report periods; give a window length", text,
                                  span_start(node))  # fmt: skip
        every = frozenset(walk(inner))  # rows outside a state's visible periods do not exist: blank at every node
        plan = Plan((str(inner),), (inner,), tuple(order), (), ((left, right),), every)
        return plan, tuple(wanted)

    def _check_call(self, node: Call, text: str, extents: Mapping[Node, tuple[float, float]]) -> tuple[float, float]:
        """Check a call's arguments against its operator; return its (history, future) extent in rows."""
        op = self.operators[node.op]
        try:
            op.bind(node.args)
        except TypeError as exc:
            raise ExpressionError(str(exc), text, span_start(node)) from None
        constants: list[Any] = []
        for param, arg in zip(op.params, node.args):
            if param.kind == "expr":
                if isinstance(arg, Const) and isinstance(arg.value, str):
                    raise ExpressionError(
                        f"{op.name} argument {param.name!r} must be an expression", text, span_start(arg)
                    )
                if isinstance(arg, Const) and not param.accepts_constant:
                    raise ExpressionError(
                        f"{op.name} argument {param.name!r} must be a series (a field such as $close, or an "
                        f"expression of fields), not the constant {_short(arg.value)}",
                        text,
                        span_start(arg),
                    )
                constants.append(arg.value if isinstance(arg, Const) else None)
                continue
            if not isinstance(arg, Const):
                raise ExpressionError(
                    f"{op.name} argument {param.name!r} must be a constant {param.kind}, not an expression",
                    text,
                    span_start(arg),
                )
            value = arg.value
            ok = {
                "int": isinstance(value, int),
                "number": isinstance(value, (int, float)) and not isinstance(value, bool),
                "str": isinstance(value, str),
            }[param.kind]
            if not ok:
                raise ExpressionError(
                    f"{op.name} argument {param.name!r} must be a {param.kind}, got {value!r}", text, span_start(arg)
                )
            constants.append(value)
        if op.instrument_param is not None:
            self._check_instrument(op, node.args[op.instrument_param], text)
        try:
            own_left, own_right = op.lookback(*constants)
        except (TypeError, ValueError, ArithmeticError) as exc:
            raise ExpressionError(f"{op.name}: {exc}", text, span_start(node)) from None
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
        raise ExpressionError(f"{op.name}: unknown instrument {symbol!r}{hint}", text, span_start(arg))


def subset(plan: Plan, indices: Sequence[int]) -> Plan:
    """The part of a planned batch needed for the roots at ``indices``."""
    roots = tuple(plan.roots[i] for i in indices)
    needed: set[Node] = {n for root in roots for n in daily_walk(root)}
    order = tuple(node for node in plan.order if node in needed)
    fields = tuple(sorted({n.name.lower() for n in needed if isinstance(n, Field)}))
    extents = tuple(plan.extents[i] for i in indices)
    collapses = tuple(c for c in plan.collapses if c[0] in needed)
    return Plan(tuple(plan.names[i] for i in indices), roots, order, fields, extents, plan.blank_outside,
                collapses=collapses)  # fmt: skip


def sub_plan(sub_roots: tuple[Node, ...], collapses: Sequence[tuple[Call, Plan, tuple[str, ...]]] = ()) -> Plan:
    """A plan of already checked subexpressions (the series arguments of a ``ChangeInstrument``-style call), run
    on one instrument's column: no warm-up of its own, and every node blanked outside the data range.

    :param collapses: the parent plan's ``P``/``PRef`` calls (those the subexpressions read are kept).
    """
    order: dict[Call, None] = {}
    for sub in sub_roots:
        for n in daily_walk(sub):
            if isinstance(n, Call) and not is_collapse(n):
                order[n] = None
    fields = tuple(sorted({n.name.lower() for s in sub_roots for n in daily_walk(s) if isinstance(n, Field)}))
    extents = tuple((0.0, 0.0) for _ in sub_roots)
    every_node = frozenset(n for sub in sub_roots for n in daily_walk(sub))  # one column: blanking all is cheap
    kept = tuple(c for c in collapses if c[0] in every_node)
    return Plan(tuple(str(s) for s in sub_roots), sub_roots, tuple(order), fields, extents, every_node,
                collapses=kept)  # fmt: skip
