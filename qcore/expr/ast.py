"""Immutable syntax tree of a factor expression.

Three node classes cover the language: :class:`Field` (``$close``), :class:`Const` (``5``, ``0.5``,
``'SH000300'``) and :class:`Call` (``Mean($close,5)``; infix operators become calls too, ``$a+$b`` is
``Call('Add', ($a, $b))``); a fourth, :class:`PeriodField` (``$$roewa_q``), names point-in-time period data.

Nodes are frozen and hashable, and equality ignores where a node was written, so a batch evaluator can use
them as dictionary keys to share common subexpressions: ``Ref($close, 1)`` parsed from two different
expressions gives two equal nodes with equal hashes. The source position lives in ``span``, which takes no
part in equality, hashing or ``repr``.

``str(node)`` is the canonical form: Qlib's own string style (``Mean($close,5)``, no spaces, every operator
written as a call) except that string constants are quoted, so that the canonical form parses back to an
equal tree.
"""

from __future__ import annotations

from collections.abc import Iterator

import attrs

Span = tuple[int, int]
"""A ``(start, end)`` range of character offsets into the source expression, ``end`` exclusive."""


def _const_key(value: object) -> tuple[type, str]:
    # ``1``, ``1.0`` and ``True`` compare equal in Python but mean different things to the operators
    # (``Mean(x, 1)`` is a window, ``Mean(x, 1.0)`` is not), and ``-0.0`` prints differently from ``0.0``.
    # Comparing on (type, repr) keeps them apart, and keeps ``str`` equal for equal constants.
    return (type(value), repr(value))


@attrs.frozen(cache_hash=True)
class Field:
    """A raw data field such as ``$close``; ``name`` is stored without the ``$``, case as written."""

    name: str
    span: Span | None = attrs.field(default=None, eq=False, repr=False, kw_only=True)

    def __str__(self) -> str:
        return f"${self.name}"


@attrs.frozen(cache_hash=True)
class Const:
    """A literal: an ``int`` (written without ``.`` or exponent), a ``float`` or a ``str``."""

    value: int | float | str = attrs.field(eq=_const_key)
    span: Span | None = attrs.field(default=None, eq=False, repr=False, kw_only=True)

    def __str__(self) -> str:
        value = self.value
        if isinstance(value, str):
            if "'" not in value:
                return f"'{value}'"
            if '"' not in value:
                return f'"{value}"'
            return repr(value)
        # repr gives the shortest text that reads back to the same float (``1e-12``, ``0.5``).
        return repr(value)


@attrs.frozen(cache_hash=True)
class Call:
    """An operator applied to arguments, e.g. ``Call('Mean', (Field('close'), Const(5)))``.

    The parser does not know which operators exist; see :func:`qcore.expr.check_names`.
    """

    op: str
    args: tuple[Node, ...] = attrs.field(converter=tuple)
    span: Span | None = attrs.field(default=None, eq=False, repr=False, kw_only=True)

    def __str__(self) -> str:
        return f"{self.op}({','.join(str(arg) for arg in self.args)})"


@attrs.frozen(cache_hash=True)
class PeriodField:
    """A point-in-time period field such as ``$$roewa_q`` (quarterly) or ``$$roewa_a`` (annual).

    Its values are indexed by report period, not by trading day; it is only meaningful inside ``P(...)`` or
    ``PRef(...)``, which collapse a period expression into a daily series (see :mod:`qcore.expr.pit`).
    ``name`` is stored without the ``$$``, case as written.
    """

    name: str
    span: Span | None = attrs.field(default=None, eq=False, repr=False, kw_only=True)

    def __str__(self) -> str:
        return f"$${self.name}"


Node = Field | Const | Call | PeriodField
"""Any expression node."""


def walk(node: Node) -> Iterator[Node]:
    """Yield every node of the tree in post-order (arguments left to right, then the call).

    Shared subtrees are yielded once per occurrence. The walk is iterative, so depth is no concern.
    """
    stack: list[tuple[Node, bool]] = [(node, False)]
    while stack:
        current, expanded = stack.pop()
        if expanded or not isinstance(current, Call):
            yield current
            continue
        stack.append((current, True))
        stack.extend((arg, False) for arg in reversed(current.args))


def fields(node: Node) -> set[str]:
    """The names (without ``$``, case as written) of every field the expression reads."""
    return {n.name for n in walk(node) if isinstance(n, Field)}


def calls(node: Node) -> set[str]:
    """The names of every operator the expression calls, infix operators included (``Add``, ``Gt``...)."""
    return {n.op for n in walk(node) if isinstance(n, Call)}
