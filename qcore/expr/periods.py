"""Point-in-time syntax: which calls collapse period expressions into daily series, and walking around them.

``P(expr)`` and ``PRef(expr, period)`` are the kernel's own forms, like fields rather than operators: their argument
is an expression over *report periods* (``$$eps_q``, ``Mean($$roe_q, 4)``), evaluated by :mod:`qcore.expr.pit`, and
the call itself is a leaf of the daily graph. Inside them the registered operators apply to periods instead of days.
"""

from __future__ import annotations

from collections.abc import Iterator

from qcore.expr.ast import Call, Node, PeriodField

#: The collapsing forms and their argument counts.
COLLAPSES = {"P": 1, "PRef": 2}


def is_collapse(node: Node) -> bool:
    """Whether ``node`` is a ``P(...)`` or ``PRef(...)`` call over a period expression (one reading a ``$$field``).

    A call of that name over daily data is an ordinary operator call: a plugin may register its own ``P``.
    """
    return isinstance(node, Call) and node.op in COLLAPSES and bool(node.args) and bool(period_fields(node.args[0]))


def daily_walk(node: Node) -> Iterator[Node]:
    """Post-order walk like :func:`qcore.expr.ast.walk`, but a ``P``/``PRef`` call is a leaf: its period expression
    is not part of the daily graph."""
    stack: list[tuple[Node, bool]] = [(node, False)]
    while stack:
        current, expanded = stack.pop()
        if expanded or not isinstance(current, Call) or is_collapse(current):
            yield current
            continue
        stack.append((current, True))
        stack.extend((arg, False) for arg in reversed(current.args))


def period_fields(node: Node) -> list[str]:
    """The period fields (lower case, without ``$$``) that ``node`` reads, sorted."""
    found: set[str] = set()
    stack = [node]
    while stack:
        current = stack.pop()
        if isinstance(current, PeriodField):
            found.add(current.name.lower())
        elif isinstance(current, Call):
            stack.extend(current.args)
    return sorted(found)
