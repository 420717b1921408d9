"""Parse factor expressions into :mod:`qcore.expr.ast` trees, without ``eval``.

Qlib turns ``Mean($close, 5)/Ref($close, 1) - 1`` into Python source with regular expressions and calls
``eval``; the resulting tree is whatever Python's operator overloading on ``qlib.data.base.Expression``
builds. This module reproduces that tree with a tokenizer and a precedence-climbing parser:

* **Precedence is Python's**, lowest first: comparisons (``> >= < <= == !=``), ``|``, ``&``, ``+ -``,
  ``* /``, unary ``- +``, ``**``. ``**`` is right-associative and binds tighter than a unary minus on its
  left (``-2**2`` is ``-4``) but accepts one on its right (``2**-1``). Infix operators become calls named
  as Qlib names them: ``Add Sub Mul Div Power Gt Ge Lt Le Eq Ne And Or``.
* **Chained comparisons are rejected.** Python reads ``a < b < c`` as ``(a < b) and (b < c)``, which fails
  on series in Qlib. Note that ``$a > 1 & $b < 2`` is such a chain (``&`` binds tighter), and the error
  says so.
* **Operand order mirrors Qlib's reflected methods** when a number stands on the left of an expression:
  ``Expression.__rmul__`` swaps its operands, so ``2*$close`` is ``Mul($close,2)``; ``__radd__``,
  ``__rsub__``, ``__rtruediv__``, ``__rpow__``, ``__rand__`` and ``__ror__`` keep the written order
  (``1-$close`` is ``Sub(1,$close)``); a comparison with a number on the left is reflected by Python
  itself, so ``1<$close`` is ``Gt($close,1)``. Values are the same either way; the canonical string (and
  so Qlib's cache key) is what this preserves.
* **Constant folding**: arithmetic (``+ - * / **`` and unary ``- +``) on two numbers is computed here, as
  Python computes it when Qlib evaluates the expression: ``1+2`` is ``Const(3)``, ``-5`` is ``Const(-5)``,
  ``1/2`` is ``Const(0.5)``, ``2**-1`` is ``Const(0.5)``. A division by zero in such a constant part is an
  :class:`~qcore.errors.ExpressionError` (Qlib raises ``ZeroDivisionError``). Results that are not finite
  floats or reasonably sized ints (``1e200*1e200``, ``(-8)**0.5``, ``9**9**9``) stay unfolded and are left
  to the evaluator. Comparisons and ``& |`` between two numbers are not folded (Python would make a
  ``bool``); they stay calls, which evaluate to the same numbers.
* **Unary minus** on an expression has no Qlib equivalent (``Expression`` defines no ``__neg__``, so
  ``-$close`` raises ``TypeError`` there). qcore accepts it as ``Mul(x,-1)``, which is exactly the tree Qlib
  builds for ``-1*$close`` and gives the same numbers. Unary plus is a no-op.
* **String literals** (``'SH000300'``) may only be call arguments; an infix or unary operator on a string
  is an error. Backslash escapes are not supported.
* **Nesting is limited** to :data:`MAX_DEPTH` levels (parentheses, call arguments, unary operators and
  the depth of the resulting tree), so hostile input gives an ``ExpressionError`` instead of a
  ``RecursionError``; the text to :data:`MAX_LENGTH` characters.
* Names not followed by ``(`` (``close``, ``True``, ``and``) are errors: fields are written ``$close``,
  point-in-time period fields ``$$roewa_q`` (:class:`~qcore.expr.ast.PeriodField`); keyword arguments are not
  supported.

Every node's ``span`` is the ``(start, end)`` source range of the token that introduced it: the field,
the literal (the whole folded range for a folded constant), the operator name of a call, or the infix or
unary operator symbol.
"""

from __future__ import annotations

import difflib
import math
import operator
from collections.abc import Callable, Collection, Iterable, Mapping
from typing import NamedTuple

from qcore.errors import ExpressionError
from qcore.expr.ast import Call, Const, Field, Node, PeriodField, walk
from qcore.expr.lexer import (
    COMMA,
    END,
    FIELD,
    LPAREN,
    NAME,
    NUMBER,
    OP,
    PERIOD_FIELD,
    RPAREN,
    STRING,
    Token,
    iter_tokens,
)

MAX_DEPTH = 100
"""Deepest nesting accepted, both in the source (parentheses, calls, unary operators) and in the tree."""

MAX_LENGTH = 100_000
"""Longest expression accepted, in characters (Alpha158's longest is under 200); longer text is refused unread."""

INFIX_OPERATORS: dict[str, str] = {
    "+": "Add",
    "-": "Sub",
    "*": "Mul",
    "/": "Div",
    "**": "Power",
    ">": "Gt",
    ">=": "Ge",
    "<": "Lt",
    "<=": "Le",
    "==": "Eq",
    "!=": "Ne",
    "&": "And",
    "|": "Or",
}
"""Infix operator symbol -> Qlib operator name."""

_COMPARISONS = frozenset({">", ">=", "<", "<=", "==", "!="})
# Python's reflection of a comparison, used when a number is on the left (``1 < x`` runs ``x > 1``).
_REFLECTED = {">": "<", ">=": "<=", "<": ">", "<=": ">=", "==": "==", "!=": "!="}
# Binding levels of the binary operators handled by precedence climbing (``**`` is handled apart).
_COMPARISON_LEVEL = 0
_LEVELS = {"|": 1, "&": 2, "+": 3, "-": 3, "*": 4, "/": 4}
_ARITHMETIC: dict[str, Callable[[object, object], object]] = {
    "+": operator.add,
    "-": operator.sub,
    "*": operator.mul,
    "/": operator.truediv,
    "**": operator.pow,
}
_MAX_FOLDED_INT_BITS = 4096
_WORD_HINTS = {"and": "use '&' or And(...)", "or": "use '|' or Or(...)", "not": "use Not(...)"}


class _Parsed(NamedTuple):
    """A parsed subexpression with its source extent and tree depth."""

    node: Node
    start: int
    end: int
    depth: int


def _is_string(node: Node) -> bool:
    return isinstance(node, Const) and isinstance(node.value, str)


def _is_number(node: Node) -> bool:
    return isinstance(node, Const) and not isinstance(node.value, str)


class _Parser:
    def __init__(self, expression: str) -> None:
        self.text = expression
        self.tokens = iter_tokens(expression)
        self.current = next(self.tokens)
        self.previous: Token | None = None

    # -- token helpers ------------------------------------------------------------------------------

    def peek(self) -> Token:
        return self.current

    def advance(self) -> Token:
        token = self.current
        if token.kind != END:
            self.previous = token
            self.current = next(self.tokens)
        return token

    @staticmethod
    def found(token: Token) -> str:
        """Describe an unexpected token, with a hint for Python's word operators."""
        hint = _WORD_HINTS.get(token.text) if token.kind == NAME else None
        return f"{token.describe()} ({hint})" if hint else token.describe()

    def error(self, message: str, position: int) -> ExpressionError:
        return ExpressionError(message, self.text, position)

    def check_nesting(self, depth: int, token: Token) -> None:
        if depth > MAX_DEPTH:
            raise self.error(f"expression nested too deeply (more than {MAX_DEPTH} levels)", token.start)

    def make_call(self, op: str, args: tuple[_Parsed, ...], token: Token, start: int, end: int) -> _Parsed:
        depth = 1 + max((arg.depth for arg in args), default=0)
        if depth > MAX_DEPTH:
            raise self.error(f"expression nested too deeply (more than {MAX_DEPTH} levels)", token.start)
        node = Call(op, tuple(arg.node for arg in args), span=(token.start, token.end))
        return _Parsed(node, start, end, depth)

    # -- grammar ------------------------------------------------------------------------------------

    def parse(self) -> Node:
        first = self.peek()
        if first.kind == END:
            raise self.error("empty expression", 0)
        result = self.binary(_COMPARISON_LEVEL, 0)
        token = self.peek()
        if token.kind == RPAREN:
            raise self.error("unmatched ')'", token.start)
        if token.kind != END:
            raise self.error(
                f"expected an operator or the end of the expression, found {self.found(token)}", token.start
            )
        return result.node

    def binary(self, min_level: int, depth: int) -> _Parsed:
        """Precedence climbing over the binary operators of level >= ``min_level``.

        Levels: comparisons (non-associative, never chained) < ``|`` < ``&`` < ``+ -`` < ``* /``, all
        left-associative; ``**`` and unary operators are handled by :meth:`unary`. Each nesting level of the
        source costs four stack frames at most (binary, binary, unary, primary).
        """
        left = self.unary(depth)
        compared: tuple[Token, _Parsed] | None = None
        while True:
            token = self.peek()
            if token.kind != OP:
                return left
            level = _COMPARISON_LEVEL if token.text in _COMPARISONS else _LEVELS.get(token.text)
            if level is None or level < min_level:
                return left
            if compared is not None:  # only comparisons can follow a comparison at this level
                raise self.error(self.chain_message(compared[0], compared[1], token), token.start)
            self.advance()
            right = self.binary(level + 1, depth)
            if level == _COMPARISON_LEVEL:
                compared = (token, right)
            left = self.infix(token, left, right)

    def chain_message(self, first: Token, middle: _Parsed, second: Token) -> str:
        op1, op2 = first.text, second.text
        node = middle.node
        if isinstance(node, Call) and node.span is not None and self.text[node.span[0] : node.span[1]] in ("&", "|"):
            symbol = self.text[node.span[0] : node.span[1]]
            return (
                f"chained comparison ({op1!r} ... {op2!r}): {symbol!r} binds tighter than comparisons, "
                f"so put each comparison in parentheses, e.g. '(a {op1} b) {symbol} (c {op2} d)'"
            )
        return (
            f"chained comparison ({op1!r} ... {op2!r}) is not supported; "
            f"use parentheses, e.g. '(a {op1} b) & (b {op2} c)'"
        )

    def unary(self, depth: int) -> _Parsed:
        """unary := ('-' | '+') unary | primary ['**' unary].

        ``**`` binds tighter than a unary operator on its left and takes one on its right, which makes it
        right-associative: ``-2**2`` is ``-(2**2)``, ``2**-1`` works and ``a**b**c`` is ``a**(b**c)``.
        """
        token = self.peek()
        if token.kind == OP and token.text in ("+", "-"):
            self.check_nesting(depth + 1, token)
            self.advance()
            operand = self.unary(depth + 1)
            if _is_string(operand.node):
                raise self.error(f"a string literal cannot be an operand of unary {token.text!r}", operand.start)
            if token.text == "+":
                return operand._replace(start=token.start)
            return self.negate(token, operand)
        base = self.primary(depth)
        token = self.peek()
        if token.kind == OP and token.text == "**":
            self.check_nesting(depth + 1, token)
            self.advance()
            exponent = self.unary(depth + 1)
            return self.infix(token, base, exponent)
        return base

    def primary(self, depth: int) -> _Parsed:
        token = self.peek()
        span = (token.start, token.end)
        if token.kind == NUMBER or token.kind == STRING:
            self.advance()
            assert token.value is not None
            return _Parsed(Const(token.value, span=span), token.start, token.end, 1)
        if token.kind == FIELD:
            self.advance()
            return _Parsed(Field(str(token.value), span=span), token.start, token.end, 1)
        if token.kind == PERIOD_FIELD:
            self.advance()
            return _Parsed(PeriodField(str(token.value), span=span), token.start, token.end, 1)
        if token.kind == NAME:
            return self.call(depth)
        if token.kind == LPAREN:
            self.check_nesting(depth + 1, token)
            self.advance()
            if self.peek().kind == RPAREN:
                raise self.error("expected an expression inside '()'", self.peek().start)
            inner = self.binary(_COMPARISON_LEVEL, depth + 1)
            closing = self.peek()
            if closing.kind != RPAREN:
                raise self.error(
                    f"expected ')' to close the '(' at position {token.start}, found {self.found(closing)}",
                    closing.start,
                )
            self.advance()
            return inner._replace(start=token.start, end=closing.end)
        raise self.error(self.operand_message(token), token.start)

    def operand_message(self, token: Token) -> str:
        found = self.found(token)
        previous = self.previous
        if previous is None:
            return f"expected a field, number, call or '(' at the start, found {found}"
        if previous.kind == OP:
            return f"expected an operand after {previous.text!r}, found {found}"
        return f"expected a field, number, call or '(', found {found}"

    def call(self, depth: int) -> _Parsed:
        name = self.advance()
        opening = self.peek()
        if opening.kind != LPAREN:
            raise self.error(self.bare_name_message(name.text), name.start)
        self.check_nesting(depth + 1, opening)
        self.advance()
        args: list[_Parsed] = []
        if self.peek().kind == RPAREN:
            closing = self.advance()
            return self.make_call(name.text, (), name, name.start, closing.end)
        while True:
            number = len(args) + 1
            token = self.peek()
            if token.kind in (COMMA, RPAREN, END):
                raise self.error(f"expected argument {number} of {name.text}, found {token.describe()}", token.start)
            args.append(self.binary(_COMPARISON_LEVEL, depth + 1))
            token = self.peek()
            if token.kind == COMMA:
                self.advance()
                continue
            if token.kind == RPAREN:
                closing = self.advance()
                return self.make_call(name.text, tuple(args), name, name.start, closing.end)
            raise self.error(
                f"expected ',' or ')' after argument {number} of {name.text}, found {self.found(token)}",
                token.start,
            )

    @staticmethod
    def bare_name_message(name: str) -> str:
        if name in _WORD_HINTS:
            return f"unexpected name {name!r}; {_WORD_HINTS[name]}"
        if name[:1].isupper():
            return f"unexpected name {name!r}; operators are called with parentheses, e.g. {name}(...)"
        return f"unexpected name {name!r}; fields start with '$', e.g. '${name}'"

    # -- tree building ------------------------------------------------------------------------------

    def negate(self, token: Token, operand: _Parsed) -> _Parsed:
        node = operand.node
        if _is_number(node):
            assert isinstance(node, Const)
            value = -node.value  # type: ignore[operator]
            return _Parsed(Const(value, span=(token.start, operand.end)), token.start, operand.end, 1)
        minus_one = _Parsed(Const(-1, span=(token.start, token.end)), token.start, token.end, 1)
        return self.make_call("Mul", (operand, minus_one), token, token.start, operand.end)

    def infix(self, token: Token, left: _Parsed, right: _Parsed) -> _Parsed:
        symbol = token.text
        for side in (left, right):
            if _is_string(side.node):
                raise self.error(f"a string literal cannot be an operand of {symbol!r}", side.start)
        start, end = left.start, right.end
        left_number, right_number = _is_number(left.node), _is_number(right.node)
        if left_number and right_number and symbol in _ARITHMETIC:
            folded = self.fold(token, left.node, right.node)  # type: ignore[arg-type]
            if folded is not None:
                return _Parsed(Const(folded, span=(start, end)), start, end, 1)
        if left_number and not right_number:
            # Python asks the expression on the right: ``__rmul__`` swaps, comparisons reflect.
            if symbol == "*":
                return self.make_call("Mul", (right, left), token, start, end)
            if symbol in _COMPARISONS:
                return self.make_call(INFIX_OPERATORS[_REFLECTED[symbol]], (right, left), token, start, end)
        return self.make_call(INFIX_OPERATORS[symbol], (left, right), token, start, end)

    def fold(self, token: Token, left: Const, right: Const) -> int | float | None:
        x, y = left.value, right.value
        if (
            token.text == "**"
            and isinstance(x, int)
            and isinstance(y, int)
            and y > 0
            and abs(x) > 1
            and abs(x).bit_length() * y > _MAX_FOLDED_INT_BITS + 64
        ):
            return None
        try:
            value = _ARITHMETIC[token.text](x, y)
        except ZeroDivisionError:
            raise self.error(
                f"division by zero in the constant expression '{left} {token.text} {right}'", token.start
            ) from None
        except OverflowError:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None
        if isinstance(value, float) and not math.isfinite(value):
            return None
        if isinstance(value, int) and value.bit_length() > _MAX_FOLDED_INT_BITS:
            return None
        return value


def parse(expression: str) -> Node:
    """Parse one factor expression into a tree.

    >>> str(parse("Mean($close, 5)/Ref($close, 1) - 1"))
    'Sub(Div(Mean($close,5),Ref($close,1)),1)'

    :raises ExpressionError: with the exact position of the first problem.
    """
    if not isinstance(expression, str):
        raise TypeError(f"expression must be a str, not {type(expression).__name__}")
    if len(expression) > MAX_LENGTH:
        excerpt = f"{expression[:60]}..."
        raise ExpressionError(
            f"expression is {len(expression)} characters long; at most {MAX_LENGTH} are accepted", excerpt, 0
        )
    return _Parser(expression).parse()


def parse_many(expressions: Iterable[str]) -> list[Node]:
    """Parse several expressions; the first malformed one raises its :class:`ExpressionError`."""
    return [parse(expression) for expression in expressions]


def _did_you_mean(candidates: list[str]) -> str:
    if not candidates:
        return ""
    quoted = [repr(c) for c in candidates]
    listing = quoted[0] if len(quoted) == 1 else f"{', '.join(quoted[:-1])} or {quoted[-1]}"
    return f"; did you mean {listing}?"


def _operator_suggestions(name: str, known: list[str]) -> list[str]:
    same_case = [k for k in known if k.lower() == name.lower()]
    close = difflib.get_close_matches(name, known, n=3)
    return list(dict.fromkeys(same_case + close))[:3]


def check_names(
    node: Node,
    *,
    operators: Mapping[str, object] | Collection[str],
    fields: Collection[str] | None,
    expression: str,
) -> None:
    """Check that every operator and field in ``node`` is known.

    Operator names are case-sensitive. Field names compare case-insensitively (Qlib lower-cases field file
    names) and may be given with or without ``$``; ``fields=None`` skips the field check.

    :param expression: the source ``node`` was parsed from, for the error's caret line.
    :raises ExpressionError: at the first unknown name in source order, suggesting the closest known names,
        e.g. ``unknown operator 'Maen'; did you mean 'Mean'?``.
    """
    known_ops = set(operators)
    known_fields: dict[str, str] | None = None
    if fields is not None:
        known_fields = {}
        for name in fields:
            bare = name[1:] if name.startswith("$") else name
            known_fields.setdefault(bare.lower(), bare)
    problems: list[tuple[int, int, str]] = []
    for order, current in enumerate(walk(node)):
        position = current.span[0] if current.span is not None else 0
        if isinstance(current, Call) and current.op not in known_ops:
            hint = _did_you_mean(_operator_suggestions(current.op, sorted(known_ops)))
            problems.append((position, order, f"unknown operator {current.op!r}{hint}"))
        elif isinstance(current, Field) and known_fields is not None and current.name.lower() not in known_fields:
            close = difflib.get_close_matches(current.name.lower(), sorted(known_fields), n=3)
            hint = _did_you_mean([f"${known_fields[c]}" for c in close]) if known_fields else " (no field is known)"
            problems.append((position, order, f"unknown field '${current.name}'{hint}"))
    if problems:
        position, _, message = min(problems)
        raise ExpressionError(message, expression, position)
