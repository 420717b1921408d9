"""Planning a batch of expressions: parse, check, and share equal subexpressions in one graph.

A batch becomes one :class:`Plan` in which equal subexpressions are a single node (Alpha158 repeats
``Ref($close, 1)`` dozens of times). Planning checks everything that can be checked without reading data: operator
and field names, argument kinds and constants, the instruments ``ChangeInstrument``-style calls name; and it records
how many rows of history and future each expression reads, which the scheduler turns into a warm-up window.
"""

from __future__ import annotations

import difflib
import sys
from collections.abc import Collection, Mapping, Sequence
from typing import Any

import attrs

from qcore.errors import ExpressionError, QcoreError
from qcore.expr.ast import Call, Const, Field, Node, walk
from qcore.expr.parser import check_names, parse
from qcore.operators import Operator
from qcore.protocols import DataProvider

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
        for name, text in zip(names, texts):
            root = parse(text)
            _check_root(root, text)
            known: Collection[str] = self.fields
            if self.missing_fields == "nan":
                lacking = {n.name.lower() for n in walk(root) if isinstance(n, Field)} - self.fields
                for field in sorted(lacking):
                    absent.setdefault(field, []).append(str(name))
                known = self.fields | lacking
            try:
                check_names(root, operators=self.operators, fields=known, expression=text)
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
        plan = Plan(tuple(names), tuple(roots), tuple(order), tuple(fields), tuple(extents[r] for r in roots),
                    frozenset(blank), tuple(sorted(absent)))  # fmt: skip
        return plan, absent

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
    needed: set[Node] = {n for root in roots for n in walk(root)}
    order = tuple(node for node in plan.order if node in needed)
    fields = tuple(sorted({n.name.lower() for n in needed if isinstance(n, Field)}))
    extents = tuple(plan.extents[i] for i in indices)
    return Plan(tuple(plan.names[i] for i in indices), roots, order, fields, extents, plan.blank_outside)


def sub_plan(sub_roots: tuple[Node, ...]) -> Plan:
    """A plan of already checked subexpressions (the series arguments of a ``ChangeInstrument``-style call), run
    on one instrument's column: no warm-up of its own, and every node blanked outside the data range."""
    order: dict[Call, None] = {}
    for sub in sub_roots:
        for n in walk(sub):
            if isinstance(n, Call):
                order[n] = None
    fields = tuple(sorted({n.name.lower() for s in sub_roots for n in walk(s) if isinstance(n, Field)}))
    extents = tuple((0.0, 0.0) for _ in sub_roots)
    every_node = frozenset(n for sub in sub_roots for n in walk(sub))  # one column: blanking all is cheap
    return Plan(tuple(str(s) for s in sub_roots), sub_roots, tuple(order), fields, extents, every_node)
