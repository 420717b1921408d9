"""Factor expressions: a tokenizer and parser (no ``eval``) producing immutable, hashable trees.

>>> from qcore.expr import parse
>>> str(parse("Mean($close, 5)/Ref($close, 1) - 1"))
'Sub(Div(Mean($close,5),Ref($close,1)),1)'
"""

from qcore.expr.ast import Call, Const, Field, Node, PeriodField, Span, calls, fields, walk
from qcore.expr.lexer import Token, tokenize
from qcore.expr.parser import INFIX_OPERATORS, MAX_DEPTH, MAX_LENGTH, check_names, parse, parse_many

__all__ = [
    "INFIX_OPERATORS",
    "MAX_DEPTH",
    "MAX_LENGTH",
    "Call",
    "Const",
    "Field",
    "Node",
    "PeriodField",
    "Span",
    "Token",
    "calls",
    "check_names",
    "fields",
    "parse",
    "parse_many",
    "tokenize",
    "walk",
]
