"""Tokenizer for factor expressions.

The token set is the part of Python's expression syntax that Qlib's operator overloading understands:
fields (``$close``), numbers, quoted strings, names, parentheses, commas and the operators
``+ - * / ** > >= < <= == != & |``. Anything else is an :class:`~qcore.errors.ExpressionError` at the
exact offending character, with a hint for the usual Python operators that Qlib does not support.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import NamedTuple

from qcore.errors import ExpressionError

NUMBER = "number"
STRING = "string"
FIELD = "field"
PERIOD_FIELD = "period field"
NAME = "name"
OP = "operator"
LPAREN = "("
RPAREN = ")"
COMMA = ","
END = "end"

OPERATORS = ("**", "<=", ">=", "==", "!=", "+", "-", "*", "/", "<", ">", "&", "|")
"""Operator spellings, longest first so that ``**`` wins over ``*``."""

_UNSUPPORTED = {
    "//": "unsupported operator '//'; use '/'",
    "<<": "unsupported operator '<<'",
    ">>": "unsupported operator '>>'",
    "%": "unsupported operator '%'",
    "@": "unsupported operator '@'",
    "^": "unsupported operator '^'; use '!=' or Ne(...) for exclusive or",
    "~": "unsupported operator '~'; use Not(...)",
    "=": "unexpected '='; use '==' to compare (keyword arguments are not supported)",
    "!": "unexpected '!'; use '!=' or Not(...)",
}

_SPACE = " \t\n\r\f\v"
_DIGITS = "0123456789"


class Token(NamedTuple):
    """One lexical token: ``kind`` (a module constant), the source ``text`` and its ``[start, end)`` range.

    ``value`` holds the parsed literal for numbers and strings and the bare name for fields (``$close`` and
    ``$$roewa_q`` alike), else ``None``.
    """

    kind: str
    text: str
    start: int
    end: int
    value: int | float | str | None = None

    def describe(self) -> str:
        """How an error message names this token: ``'*'``, ``'$close'`` or ``end of expression``."""
        return "end of expression" if self.kind == END else repr(self.text)


def _is_name_char(char: str) -> bool:
    return char.isalnum() or char == "_"


def _is_name_start(char: str) -> bool:
    return char.isalpha() or char == "_"


def tokenize(expression: str) -> list[Token]:
    """Split ``expression`` into tokens, ending with one ``END`` token.

    :raises ExpressionError: at the first character that cannot start or continue a token.
    """
    return list(iter_tokens(expression))


def iter_tokens(expression: str) -> Iterator[Token]:
    """Yield the tokens of ``expression`` lazily, ending with one ``END`` token.

    The parser pulls tokens one at a time, so a syntax error left of a bad character is reported first.
    """
    i = 0
    n = len(expression)
    while i < n:
        char = expression[i]
        if char in _SPACE:
            i += 1
        elif char in _DIGITS or (char == "." and i + 1 < n and expression[i + 1] in _DIGITS):
            token = _number(expression, i)
            yield token
            i = token.end
        elif char == "$":
            token = _field(expression, i)
            yield token
            i = token.end
        elif char in "'\"":
            token = _string(expression, i)
            yield token
            i = token.end
        elif _is_name_start(char):
            j = i + 1
            while j < n and _is_name_char(expression[j]):
                j += 1
            yield Token(NAME, expression[i:j], i, j)
            i = j
        elif char in "(),":
            yield Token(char, char, i, i + 1)
            i += 1
        else:
            token = _operator(expression, i)
            yield token
            i = token.end
    yield Token(END, "", n, n)


def _operator(expression: str, i: int) -> Token:
    for text in ("//", "<<", ">>"):
        if expression.startswith(text, i):
            raise ExpressionError(_UNSUPPORTED[text], expression, i)
    for text in OPERATORS:
        if expression.startswith(text, i):
            return Token(OP, text, i, i + len(text))
    char = expression[i]
    if char in _UNSUPPORTED:
        raise ExpressionError(_UNSUPPORTED[char], expression, i)
    raise ExpressionError(f"unexpected character {char!r}", expression, i)


def _field(expression: str, i: int) -> Token:
    n = len(expression)
    j = i + 1
    kind = FIELD
    if j < n and expression[j] == "$":  # ``$$roewa_q``: a point-in-time period field
        kind = PERIOD_FIELD
        j += 1
    begin = j
    while j < n and _is_name_char(expression[j]):
        j += 1
    if j == begin:
        raise ExpressionError(f"expected a field name after {expression[i:begin]!r}", expression, j)
    return Token(kind, expression[i:j], i, j, expression[begin:j])


def _string(expression: str, i: int) -> Token:
    quote = expression[i]
    j = i + 1
    n = len(expression)
    while j < n and expression[j] != quote:
        if expression[j] == "\\":
            raise ExpressionError("backslash escapes are not supported in string literals", expression, j)
        if expression[j] in "\r\n":
            break
        j += 1
    if j >= n or expression[j] != quote:
        raise ExpressionError("unterminated string literal", expression, i)
    return Token(STRING, expression[i : j + 1], i, j + 1, expression[i + 1 : j])


def _digits(expression: str, j: int) -> int:
    while j < len(expression) and expression[j] in _DIGITS:
        j += 1
    return j


def _number(expression: str, i: int) -> Token:
    """Scan a Python-style decimal literal: ``5``, ``5.``, ``.5``, ``1e-12``, ``1E3``."""
    n = len(expression)
    j = _digits(expression, i)
    is_float = False
    if j < n and expression[j] == ".":
        is_float = True
        j = _digits(expression, j + 1)
    if j < n and expression[j] in "eE":
        k = j + 1
        if k < n and expression[k] in "+-":
            k += 1
        end = _digits(expression, k)
        if end == k:
            raise ExpressionError(
                f"invalid number literal {expression[i:k]!r}: expected digits after the exponent",
                expression,
                k,
            )
        is_float = True
        j = end
    if j < n and (_is_name_char(expression[j]) or expression[j] == "."):
        raise ExpressionError(f"invalid number literal starting {expression[i : j + 1]!r}", expression, j)
    text = expression[i:j]
    if not is_float:
        if len(text) > 1 and text[0] == "0" and text.strip("0"):
            raise ExpressionError(
                f"invalid number literal {text!r}: leading zeros are not allowed in integers", expression, i
            )
        try:
            value: int | float = int(text)
        except ValueError:  # more digits than Python's int() accepts
            raise ExpressionError(f"integer literal with {len(text)} digits is too long", expression, i) from None
    else:
        value = float(text)
        if value in (float("inf"), float("-inf")):
            raise ExpressionError(f"number literal {text!r} is out of range", expression, i)
    return Token(NUMBER, text, i, j, value)
