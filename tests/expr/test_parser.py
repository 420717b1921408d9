"""Tests of the expression tokenizer, parser and tree (qcore.expr)."""

from __future__ import annotations

import ast as pyast
import csv
import inspect
import math
import operator
import pathlib
import pickle
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qcore.errors import ExpressionError
from qcore.expr import (
    MAX_DEPTH,
    Call,
    Const,
    Field,
    Node,
    PeriodField,
    calls,
    check_names,
    fields,
    parse,
    parse_many,
    tokenize,
    walk,
)

DATA = pathlib.Path(__file__).resolve().parent.parent / "data" / "expressions.csv"
EXPR_PACKAGE = pathlib.Path(__file__).resolve().parents[2] / "qcore" / "expr"


def _golden() -> list[tuple[str, str]]:
    with DATA.open(newline="") as handle:
        return [(row["name"], row["expression"]) for row in csv.DictReader(handle)]


GOLDEN = _golden()


# -- golden expressions ------------------------------------------------------------------------------


def test_golden_file_has_all_expressions():
    assert len(GOLDEN) == 285


@pytest.mark.parametrize(("name", "expression"), GOLDEN, ids=[name for name, _ in GOLDEN])
def test_golden_expression_parses_and_round_trips(name, expression):
    node = parse(expression)
    canonical = str(node)
    assert " " not in canonical.replace("' '", "")
    again = parse(canonical)
    assert again == node
    assert hash(again) == hash(node)
    assert str(again) == canonical


def test_parse_many_matches_parse():
    expressions = [e for _, e in GOLDEN]
    assert parse_many(expressions) == [parse(e) for e in expressions]


# -- canonical form and Qlib's operand order ---------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "canonical"),
    [
        ("$close", "$close"),
        ("$VWAP", "$VWAP"),
        ("Mean($close, 5)/Ref($close, 1) - 1", "Sub(Div(Mean($close,5),Ref($close,1)),1)"),
        ("Mean($close, 0.5)", "Mean($close,0.5)"),
        ("Ref($close, -1)", "Ref($close,-1)"),
        ("$close*15.874507866387544", "Mul($close,15.874507866387544)"),
        ("$x+1e-12", "Add($x,1e-12)"),
        ("Mask($close, 'SH000300')", "Mask($close,'SH000300')"),
        ('Mask($close, "sh000300")', "Mask($close,'sh000300')"),
        ("ChangeInstrument('SH000300', $close)", "ChangeInstrument('SH000300',$close)"),
        # reflected methods: only __rmul__ swaps; comparisons are reflected by Python itself
        ("2*$close", "Mul($close,2)"),
        ("$close*2", "Mul($close,2)"),
        ("1-$close", "Sub(1,$close)"),
        ("1+$close", "Add(1,$close)"),
        ("1/$volume", "Div(1,$volume)"),
        ("2**$change", "Power(2,$change)"),
        ("1&$a", "And(1,$a)"),
        ("1|$a", "Or(1,$a)"),
        ("1<$close", "Gt($close,1)"),
        ("1<=$close", "Ge($close,1)"),
        ("1>$close", "Lt($close,1)"),
        ("1>=$close", "Le($close,1)"),
        ("1==$close", "Eq($close,1)"),
        ("1!=$close", "Ne($close,1)"),
        ("$close!=$open", "Ne($close,$open)"),
        ("(1+2)*$close", "Mul($close,3)"),
        # unary minus
        ("-$close", "Mul($close,-1)"),
        ("-1*$close", "Mul($close,-1)"),
        ("-$a**2", "Mul(Power($a,2),-1)"),
        ("+$close", "$close"),
        ("- -$a", "Mul(Mul($a,-1),-1)"),
        # constant folding
        ("-5", "-5"),
        ("1+2", "3"),
        ("1/2", "0.5"),
        ("4/2", "2.0"),
        ("2**-1", "0.5"),
        ("-2**2", "-4"),
        ("(-2)**2", "4"),
        ("2**3**2", "512"),
        ("--5", "5"),
        ("-0.0", "-0.0"),
        ("$a*(2+3)", "Mul($a,5)"),
        ("1<2", "Lt(1,2)"),
        ("1&2", "And(1,2)"),
        ("1e200*1e200", "Mul(1e+200,1e+200)"),
        ("(-8)**0.5", "Power(-8,0.5)"),
        ("9**9**9", "Power(9,387420489)"),
        ("Foo()", "Foo()"),
        ("Abs ( $x )", "Abs($x)"),
        ("\t$a\n+\r\n$b ", "Add($a,$b)"),
    ],
)
def test_canonical_form(expression, canonical):
    node = parse(expression)
    assert str(node) == canonical
    assert parse(canonical) == node


@pytest.mark.parametrize(
    ("expression", "value"),
    [
        ("5", 5),
        ("5.", 5.0),
        (".5", 0.5),
        ("1e-12", 1e-12),
        ("1E3", 1000.0),
        ("0", 0),
        ("00", 0),
        ("0.50", 0.5),
        ("01.5", 1.5),
        ("1.e5", 1e5),
        ("10**400", 10**400),
        ("'x'", "x"),
        ('""', ""),
    ],
)
def test_literal_values_and_types(expression, value):
    node = parse(expression)
    assert isinstance(node, Const)
    assert node.value == value
    assert type(node.value) is type(value)


# -- precedence ---------------------------------------------------------------------------------------

A, B, C, D = Field("a"), Field("b"), Field("c"), Field("d")


def _c(op: str, *args: Node) -> Call:
    return Call(op, args)


@pytest.mark.parametrize(
    ("expression", "tree"),
    [
        ("$a+$b*$c", _c("Add", A, _c("Mul", B, C))),
        ("$a*$b+$c", _c("Add", _c("Mul", A, B), C)),
        ("$a-$b-$c", _c("Sub", _c("Sub", A, B), C)),
        ("$a/$b/$c", _c("Div", _c("Div", A, B), C)),
        ("$a-($b-$c)", _c("Sub", A, _c("Sub", B, C))),
        ("$a**$b**$c", _c("Power", A, _c("Power", B, C))),
        ("($a**$b)**$c", _c("Power", _c("Power", A, B), C)),
        ("-$a**2", _c("Mul", _c("Power", A, Const(2)), Const(-1))),
        ("$a**-$b", _c("Power", A, _c("Mul", B, Const(-1)))),
        ("($a>$b)&($c<$d)", _c("And", _c("Gt", A, B), _c("Lt", C, D))),
        ("$a>$b|$c", _c("Gt", A, _c("Or", B, C))),
        ("$a|$b&$c", _c("Or", A, _c("And", B, C))),
        ("$a&$b|$c", _c("Or", _c("And", A, B), C)),
        ("$a&$b+$c", _c("And", A, _c("Add", B, C))),
        ("$a+$b>$c*$d", _c("Gt", _c("Add", A, B), _c("Mul", C, D))),
        ("($a<$b)<$c", _c("Lt", _c("Lt", A, B), C)),
        ("$a<($b<$c)", _c("Lt", A, _c("Lt", B, C))),
        ("$a==$b", _c("Eq", A, B)),
        ("-$a*$b", _c("Mul", _c("Mul", A, Const(-1)), B)),
        ("Mean($a+$b, 5)*2", _c("Mul", _c("Mean", _c("Add", A, B), Const(5)), Const(2))),
    ],
)
def test_precedence(expression, tree):
    assert parse(expression) == tree


# -- Python's own parser as the oracle ----------------------------------------------------------------
#
# ``_Qlib`` mirrors the operator overloading of Qlib's ``Expression`` (qlib/data/base.py): every method
# builds the call with its operands in the written order, except ``__rmul__``, which swaps them; Python
# itself reflects comparisons. ``__neg__``/``__pos__`` are qcore's extensions. Walking Python's ``ast`` with
# real Python operators therefore builds the tree Qlib would build, with Python's precedence.

_PY_BINOPS = {
    pyast.Add: operator.add,
    pyast.Sub: operator.sub,
    pyast.Mult: operator.mul,
    pyast.Div: operator.truediv,
    pyast.Pow: operator.pow,
    pyast.BitAnd: operator.and_,
    pyast.BitOr: operator.or_,
}
_PY_COMPARE = {
    pyast.Gt: operator.gt,
    pyast.GtE: operator.ge,
    pyast.Lt: operator.lt,
    pyast.LtE: operator.le,
    pyast.Eq: operator.eq,
    pyast.NotEq: operator.ne,
}
_QLIB_NAMES = {
    operator.add: "Add",
    operator.sub: "Sub",
    operator.mul: "Mul",
    operator.truediv: "Div",
    operator.pow: "Power",
    operator.and_: "And",
    operator.or_: "Or",
    operator.gt: "Gt",
    operator.ge: "Ge",
    operator.lt: "Lt",
    operator.le: "Le",
    operator.eq: "Eq",
    operator.ne: "Ne",
}


class _ChainedComparison(Exception):
    pass


def _node(value: object) -> Node:
    return value.node if isinstance(value, _Qlib) else Const(value)  # type: ignore[arg-type]


class _Qlib:
    """A stand-in for ``qlib.data.base.Expression``."""

    __hash__ = None  # type: ignore[assignment]

    def __init__(self, node: Node) -> None:
        self.node = node

    def _make(self, op: str, left: object, right: object) -> _Qlib:
        return _Qlib(Call(op, (_node(left), _node(right))))

    def __add__(self, other):
        return self._make("Add", self, other)

    def __radd__(self, other):
        return self._make("Add", other, self)

    def __sub__(self, other):
        return self._make("Sub", self, other)

    def __rsub__(self, other):
        return self._make("Sub", other, self)

    def __mul__(self, other):
        return self._make("Mul", self, other)

    def __rmul__(self, other):
        return self._make("Mul", self, other)  # Qlib's swap

    def __truediv__(self, other):
        return self._make("Div", self, other)

    def __rtruediv__(self, other):
        return self._make("Div", other, self)

    def __pow__(self, other):
        return self._make("Power", self, other)

    def __rpow__(self, other):
        return self._make("Power", other, self)

    def __and__(self, other):
        return self._make("And", self, other)

    def __rand__(self, other):
        return self._make("And", other, self)

    def __or__(self, other):
        return self._make("Or", self, other)

    def __ror__(self, other):
        return self._make("Or", other, self)

    def __gt__(self, other):
        return self._make("Gt", self, other)

    def __ge__(self, other):
        return self._make("Ge", self, other)

    def __lt__(self, other):
        return self._make("Lt", self, other)

    def __le__(self, other):
        return self._make("Le", self, other)

    def __eq__(self, other):
        return self._make("Eq", self, other)  # type: ignore[override]

    def __ne__(self, other):
        return self._make("Ne", self, other)  # type: ignore[override]

    def __neg__(self):
        return self._make("Mul", self, -1)

    def __pos__(self):
        return self


def _fold(func, left, right):
    """Python's arithmetic on two numbers, with qcore's rule for results it leaves to the evaluator."""
    if func is operator.pow and isinstance(left, int) and isinstance(right, int) and right > 0 and abs(left) > 1:
        if abs(left).bit_length() * right > 4096 + 64:
            return _Qlib(Call("Power", (Const(left), Const(right))))
    try:
        value = func(left, right)
    except OverflowError:
        value = None
    if (
        not isinstance(value, int | float)
        or (isinstance(value, float) and not math.isfinite(value))
        or (isinstance(value, int) and value.bit_length() > 4096)
    ):
        return _Qlib(Call(_QLIB_NAMES[func], (Const(left), Const(right))))
    return value


def _simulate(tree: pyast.AST) -> object:
    if isinstance(tree, pyast.Expression):
        return _simulate(tree.body)
    if isinstance(tree, pyast.Constant):
        return tree.value
    if isinstance(tree, pyast.Name):
        assert tree.id.startswith(_FIELD_PREFIX)
        if tree.id.startswith(_PERIOD_PREFIX):  # Qlib's ``$$name``: PFeature
            return _Qlib(PeriodField(tree.id[len(_PERIOD_PREFIX) :]))
        return _Qlib(Field(tree.id[len(_FIELD_PREFIX) :]))
    if isinstance(tree, pyast.Call):
        assert isinstance(tree.func, pyast.Name)
        return _Qlib(Call(tree.func.id, tuple(_node(_simulate(arg)) for arg in tree.args)))
    if isinstance(tree, pyast.UnaryOp):
        value = _simulate(tree.operand)
        return -value if isinstance(tree.op, pyast.USub) else +value  # type: ignore[operator]
    if isinstance(tree, pyast.BinOp | pyast.Compare):
        if isinstance(tree, pyast.Compare):
            if len(tree.ops) > 1:
                raise _ChainedComparison
            func, left, right = _PY_COMPARE[type(tree.ops[0])], tree.left, tree.comparators[0]
        else:
            func, left, right = _PY_BINOPS[type(tree.op)], tree.left, tree.right
        x, y = _simulate(left), _simulate(right)
        if isinstance(x, _Qlib) or isinstance(y, _Qlib):
            return func(x, y)
        if func in (operator.add, operator.sub, operator.mul, operator.truediv, operator.pow):
            return _fold(func, x, y)
        return _Qlib(Call(_QLIB_NAMES[func], (Const(x), Const(y))))
    raise AssertionError(f"unexpected Python syntax {pyast.dump(tree)}")


_FIELD_PREFIX = "field_"
_PERIOD_PREFIX = "field_period_"


def _python_syntax(expression: str) -> pyast.Expression:
    """Python's parse of ``expression`` with ``$name`` spelled ``field_name`` (eval strips leading space)."""
    spelled = expression.replace("$$", _PERIOD_PREFIX).replace("$", _FIELD_PREFIX)
    return pyast.parse(spelled.strip(), mode="eval")


def _python_tree(expression: str) -> Node:
    return _node(_simulate(_python_syntax(expression)))


_WS = st.sampled_from(["", "", "", " ", "  ", "\t"])
_LEAVES = st.sampled_from(
    ["$a", "$b", "$close", "$VWAP", "$x1", "0", "1", "2", "3", "10", "0.5", "2.5", ".5", "3.", "1e-3", "1E2"]
)
_BINARY = st.sampled_from(["+", "-", "*", "/", "**", ">", ">=", "<", "<=", "==", "!=", "&", "|"])
_CALLS = st.sampled_from(["Mean", "Ref", "Greater", "If", "Abs", "Mask"])


def _extend(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    binary = st.builds(lambda a, w1, op, w2, b: f"{a}{w1}{op}{w2}{b}", children, _WS, _BINARY, _WS, children)
    unary = st.builds(lambda op, w, a: f"{op}{w}{a}", st.sampled_from(["-", "+"]), _WS, children)
    paren = st.builds(lambda w1, a, w2: f"({w1}{a}{w2})", _WS, children, _WS)
    argument = st.one_of(children, st.just("'SH000300'"))
    call = st.builds(
        lambda name, w, args: f"{name}{w}({', '.join(args)})", _CALLS, _WS, st.lists(argument, min_size=1, max_size=3)
    )
    return st.one_of(binary, unary, paren, call)


EXPRESSIONS = st.recursive(_LEAVES, _extend, max_leaves=12)


def _expected_problems(expression: str) -> set[str]:
    """The errors qcore may report for an expression Python parses: chains, string operands, x/0."""
    problems = set()
    for item in pyast.walk(_python_syntax(expression)):
        operands: list[pyast.AST] = []
        if isinstance(item, pyast.BinOp):
            operands = [item.left, item.right]
        elif isinstance(item, pyast.UnaryOp):
            operands = [item.operand]
        elif isinstance(item, pyast.Compare):
            operands = [item.left, *item.comparators]
            if len(item.ops) > 1:
                problems.add("chained comparison")
        if any(isinstance(o, pyast.Constant) and isinstance(o.value, str) for o in operands):
            problems.add("string literal cannot be an operand")
    try:
        _python_tree(expression)
    except ZeroDivisionError:
        problems.add("division by zero")
    except (_ChainedComparison, TypeError):
        assert problems
    return problems


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(EXPRESSIONS)
def test_tree_matches_python_operator_overloading(expression):
    problems = _expected_problems(expression)
    if problems:
        with pytest.raises(ExpressionError) as caught:
            parse(expression)
        assert any(problem in caught.value.message for problem in problems), (caught.value.message, problems)
        return
    node = parse(expression)
    expected = _python_tree(expression)
    assert node == expected, (str(node), str(expected))
    assert str(node) == str(expected)
    assert parse(str(node)) == node


# -- malformed input ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "message", "position"),
    [
        # unexpected character
        ("Mean($close # 5)", "unexpected character '#'", 12),
        ("$close\u3000+1", "unexpected character '\\u3000'", 6),
        ("$close[0]", "unexpected character '['", 6),
        ("$a % 2", "unsupported operator '%'", 3),
        ("$a // 2", "unsupported operator '//'; use '/'", 3),
        ("~$a", "unsupported operator '~'; use Not(...)", 0),
        ("$a ^ $b", "unsupported operator '^'", 3),
        ("Mean($close, n=5)", "keyword arguments are not supported", 14),
        ("$a = 1", "unexpected '='; use '=='", 3),
        ("!$a", "unexpected '!'", 0),
        # unterminated string
        ("Mask($close, 'SH000300)", "unterminated string literal", 13),
        ('Mask($close, "SH\n")', "unterminated string literal", 13),
        ("Mask($close, 'SH\\'')", "backslash escapes are not supported", 16),
        # missing ')'
        ("Mean($close, 5", "expected ',' or ')' after argument 2 of Mean, found end of expression", 14),
        ("($close + 1", "expected ')' to close the '(' at position 0, found end of expression", 11),
        ("(1, 2)", "expected ')' to close the '(' at position 0, found ','", 2),
        ("Mean($close 5)", "expected ',' or ')' after argument 1 of Mean, found '5'", 12),
        # missing argument
        ("Mean($close, )", "expected argument 2 of Mean, found ')'", 13),
        ("Mean($close,)", "expected argument 2 of Mean, found ')'", 12),
        ("Mean(, 5)", "expected argument 1 of Mean, found ','", 5),
        ("Mean($close,", "expected argument 2 of Mean, found end of expression", 12),
        ("()", "expected an expression inside '()'", 1),
        # unexpected token
        ("$close + * 2", "expected an operand after '+', found '*'", 9),
        ("$a >= ", "expected an operand after '>=', found end of expression", 6),
        ("* 2", "expected a field, number, call or '(' at the start, found '*'", 0),
        ("Mean($a, ,)", "expected argument 2 of Mean, found ','", 9),
        ("close + 1", "unexpected name 'close'; fields start with '$', e.g. '$close'", 0),
        ("Mean", "unexpected name 'Mean'; operators are called with parentheses, e.g. Mean(...)", 0),
        ("True", "unexpected name 'True'", 0),
        ("not $a", "unexpected name 'not'; use Not(...)", 0),
        ("$a and $b", "found 'and' (use '&' or And(...))", 3),
        ("'SH' + $a", "a string literal cannot be an operand of '+'", 0),
        ("$a * 'x'", "a string literal cannot be an operand of '*'", 5),
        ("-'x'", "a string literal cannot be an operand of unary '-'", 1),
        # empty expression
        ("", "empty expression", 0),
        ("   ", "empty expression", 0),
        # trailing junk
        ("$close $open", "expected an operator or the end of the expression, found '$open'", 7),
        ("$close)", "unmatched ')'", 6),
        ("Mean($a, 5)(1)", "expected an operator or the end of the expression, found '('", 11),
        ("$close, 1", "expected an operator or the end of the expression, found ','", 6),
        # '$' without a name
        ("$ + 1", "expected a field name after '$'", 1),
        ("Ref($, 1)", "expected a field name after '$'", 5),
        ("$", "expected a field name after '$'", 1),
        ("$$ + 1", "expected a field name after '$$'", 2),
        # chained comparison
        ("$close > 1 > 0", "chained comparison ('>' ... '>') is not supported; use parentheses", 11),
        ("0 < $a <= 1", "e.g. '(a < b) & (b <= c)'", 7),
        ("$a > 1 & $b < 2", "'&' binds tighter than comparisons", 12),
        ("$a > 1 | $b < 2", "'|' binds tighter than comparisons", 12),
        ("If($a == $b == $c, 1, 0)", "chained comparison ('==' ... '==')", 12),
        # number format
        ("1e+", "invalid number literal '1e+': expected digits after the exponent", 3),
        ("$a * 1e", "invalid number literal '1e': expected digits after the exponent", 7),
        ("1.2.3", "invalid number literal starting '1.2.'", 3),
        ("5abc", "invalid number literal starting '5a'", 1),
        ("1_000", "invalid number literal starting '1_'", 1),
        ("0x1F", "invalid number literal starting '0x'", 1),
        ("0123", "leading zeros are not allowed", 0),
        ("1e999", "number literal '1e999' is out of range", 0),
        ("1" * 5000, "integer literal with 5000 digits is too long", 0),
        # constant arithmetic that Python cannot do
        ("$a + 1/0", "division by zero in the constant expression '1 / 0'", 6),
        ("0**-1", "division by zero", 1),
    ],
)
def test_malformed_expression(expression, message, position):
    with pytest.raises(ExpressionError) as caught:
        parse(expression)
    error = caught.value
    assert message in error.message
    assert error.position == position
    assert error.expression == expression
    assert isinstance(error, ValueError)


def test_error_text_has_caret_under_position():
    with pytest.raises(ExpressionError) as caught:
        parse("Mean($close 5)")
    lines = str(caught.value).split("\n")
    assert lines[0] == "expected ',' or ')' after argument 1 of Mean, found '5' at position 12"
    assert lines[1] == "  Mean($close 5)"
    assert lines[2] == "  " + " " * 12 + "^"
    assert lines[1][lines[2].index("^")] == "5"


def test_error_left_of_bad_character_is_reported_first():
    # the parser pulls tokens lazily, so the missing operand is found before the '%'
    with pytest.raises(ExpressionError, match="unexpected name 'close'"):
        parse("close + $a % 2")


def test_parse_many_reports_the_bad_expression():
    with pytest.raises(ExpressionError) as caught:
        parse_many(["$close", "Mean($close,", "$open"])
    assert caught.value.expression == "Mean($close,"


def test_non_string_input_is_a_type_error():
    with pytest.raises(TypeError):
        parse(5)  # type: ignore[arg-type]


# -- nesting limits -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "expression",
    [
        "(" * 500 + "$a" + ")" * 500,
        "Abs(" * 500 + "$a" + ")" * 500,
        "-" * 500 + "1",
        "$a**" * 500 + "$a",
        "$a" + "+$a" * 500,
        "$a|(" * 500 + "$a" + ")" * 500,
        "Mean($a, " * 500 + "1" + ")" * 500,
        "(" * 100_000,
        "-" * 100_000,
    ],
    ids=["parens", "calls", "unary", "power", "long-chain", "or-parens", "call-args", "open-parens", "minus"],
)
def test_deep_nesting_is_a_clean_error(expression):
    with pytest.raises(ExpressionError, match="expression nested too deeply"):
        parse(expression)


def test_nesting_up_to_the_limit_parses_and_round_trips():
    inner = "Ref($a,-1)"  # tree depth 2, and the -1 is a unary minus at the deepest level
    expression = "Abs(" * (MAX_DEPTH - 2) + inner + ")" * (MAX_DEPTH - 2)
    node = parse(expression)
    assert parse(str(node)) == node
    chain = "$a" + "+$a" * (MAX_DEPTH - 1)
    assert parse(str(parse(chain))) == parse(chain)
    parens = "(" * MAX_DEPTH + "$a" + ")" * MAX_DEPTH
    assert parse(parens) == A
    with pytest.raises(ExpressionError, match="nested too deeply"):
        parse("Abs(" + expression + ")")


@pytest.mark.parametrize(
    "expression",
    [
        "$a|(" * (MAX_DEPTH - 1) + "$a" + ")" * (MAX_DEPTH - 1),
        "Mean($a," * (MAX_DEPTH - 1) + "$a" + ")" * (MAX_DEPTH - 1),
        "$a" + "+$a" * (MAX_DEPTH - 1),
        "$a**" * (MAX_DEPTH - 1) + "$a",
    ],
    ids=["or-parens", "calls", "chain", "power"],
)
def test_worst_case_nesting_needs_few_stack_frames(expression):
    # at most four parser frames per nesting level, so the limit is far from Python's default of 1000
    limit = sys.getrecursionlimit()
    here = len(inspect.stack(0))
    try:
        sys.setrecursionlimit(here + 4 * MAX_DEPTH + 25)
        node = parse(expression)
    finally:
        sys.setrecursionlimit(limit)
    assert parse(str(node)) == node


# -- fuzz -----------------------------------------------------------------------------------------------


@settings(max_examples=1000, deadline=None)
@given(st.text())
def test_random_text_only_raises_expression_error(text):
    try:
        node = parse(text)
    except ExpressionError as error:
        assert 0 <= error.position <= len(text)
        str(error)
    else:
        assert parse(str(node)) == node


_SOUP = st.lists(
    st.sampled_from(
        [
            "$a",
            "$b",
            "1",
            "2.5",
            "0",
            "(",
            ")",
            ",",
            "+",
            "-",
            "*",
            "/",
            "**",
            "<",
            "==",
            "&",
            "|",
            "Mean",
            "Ref(",
            " ",
            "'x'",
            "e",
            ".",
            "$",
            "1e",
            "5.",
        ]
    ),
    max_size=30,
).map("".join)


@settings(max_examples=1500, deadline=None)
@given(_SOUP)
def test_token_soup_accepts_only_python_syntax(text):
    try:
        node = parse(text)
    except ExpressionError as error:
        assert 0 <= error.position <= len(text)
        return
    # whatever qcore accepts is valid Python and builds the tree Qlib's operators would build
    expected = _python_tree(text)
    assert node == expected
    assert parse(str(node)) == node


# -- the tree --------------------------------------------------------------------------------------------


def test_nodes_are_hashable_keys_independent_of_position():
    first = parse("Ref($close, 1) + 1")
    second = parse("Mean(Ref($close,1), 5)")
    ref_a = first.args[0]  # type: ignore[union-attr]
    ref_b = second.args[0]  # type: ignore[union-attr]
    assert ref_a.span != ref_b.span
    assert ref_a == ref_b and hash(ref_a) == hash(ref_b)
    assert {ref_a: 1}[ref_b] == 1
    assert "span" not in repr(ref_a)


def test_constants_of_different_types_are_different_keys():
    assert parse("Mean($a, 1)") != parse("Mean($a, 1.0)")
    assert Const(1) != Const(1.0) and Const(1) != Const(True)
    assert Const(0.0) != Const(-0.0)
    assert Const("1") != Const(1)
    assert Const(0.5) == Const(0.5)


def test_nodes_are_frozen_and_picklable():
    node = parse("Mean($close, 5)")
    with pytest.raises(AttributeError):
        node.op = "Sum"  # type: ignore[misc]
    assert pickle.loads(pickle.dumps(node)) == node
    assert Call("Add", [A, B]).args == (A, B)


def test_spans_point_at_the_introducing_token():
    text = "Mean($close, -5) * 2 - Ref($open, 1)"
    node = parse(text)
    spans = {str(n): text[n.span[0] : n.span[1]] for n in walk(node)}
    assert spans["$close"] == "$close"
    assert spans["-5"] == "-5"
    assert spans["Mean($close,-5)"] == "Mean"
    assert spans["Mul(Mean($close,-5),2)"] == "*"
    assert spans["Sub(Mul(Mean($close,-5),2),Ref($open,1))"] == "-"


def test_walk_is_post_order_and_helpers():
    node = parse("Mean($close, 5) / Ref($open, 1)")
    assert [str(n) for n in walk(node)] == [
        "$close",
        "5",
        "Mean($close,5)",
        "$open",
        "1",
        "Ref($open,1)",
        "Div(Mean($close,5),Ref($open,1))",
    ]
    assert fields(node) == {"close", "open"}
    assert calls(node) == {"Mean", "Ref", "Div"}
    assert fields(parse("1")) == set() and calls(parse("$a")) == set()


def test_tokenize():
    tokens = tokenize("Mean($close, 1e-3)")
    assert [t.kind for t in tokens] == ["name", "(", "field", ",", "number", ")", "end"]
    assert tokens[2].value == "close" and tokens[4].value == 1e-3
    assert (tokens[4].start, tokens[4].end) == (13, 17)


# -- name checks -----------------------------------------------------------------------------------------

OPERATORS = {"Mean": object(), "Med": object(), "Ref": object(), "Add": object(), "Div": object(), "Gt": object()}
FIELDS = ["close", "open", "high", "low", "volume"]


def _check(expression: str, *, operators=OPERATORS, fields=FIELDS) -> None:
    check_names(parse(expression), operators=operators, fields=fields, expression=expression)


def test_known_names_pass():
    _check("Mean($close, 5) / Ref($open, 1) + $HIGH")
    _check("Mean($close, 5)", operators=["Mean"], fields=None)
    _check("Mean($anything, 5)", fields=None)
    _check("$Close", fields=["$close"])


@pytest.mark.parametrize(
    ("expression", "message", "position"),
    [
        ("Maen($close, 5)", "unknown operator 'Maen'; did you mean 'Mean'?", 0),
        ("Ref(mean($close, 5), 1)", "unknown operator 'mean'; did you mean 'Mean'", 4),
        ("Mean($clse, 5)", "unknown field '$clse'; did you mean '$close'?", 5),
        ("Ref($close, 1) + Foo($zzz)", "unknown operator 'Foo'", 17),
        ("Zzz($close) - $open", "unknown operator 'Zzz'", 0),
        ("$close - $open", "unknown operator 'Sub'", 7),
        ("Ref($close, 1) * Mean($vol, 5)", "unknown operator 'Mul'", 15),
        ("Mean($vol, 5)", "unknown field '$vol'; did you mean '$volume'?", 5),
    ],
)
def test_unknown_names(expression, message, position):
    with pytest.raises(ExpressionError) as caught:
        _check(expression)
    assert caught.value.message == message or caught.value.message.startswith(message)
    assert caught.value.position == position


def test_unknown_name_lists_several_close_matches():
    with pytest.raises(ExpressionError) as caught:
        _check("Mex($close, 5)", operators=["Mean", "Med", "Max", "Min"])
    assert caught.value.message.startswith("unknown operator 'Mex'; did you mean ")
    assert "'Max'" in caught.value.message and " or " in caught.value.message


def test_operator_names_are_case_sensitive():
    with pytest.raises(ExpressionError, match="unknown operator 'MEAN'; did you mean 'Mean'"):
        _check("MEAN($close, 5)")


# -- no eval ---------------------------------------------------------------------------------------------


def test_no_dynamic_code_execution_in_the_package():
    forbidden = {"eval", "exec", "compile", "__import__"}
    for path in sorted(EXPR_PACKAGE.glob("*.py")):
        tree = pyast.parse(path.read_text(), filename=str(path))
        for item in pyast.walk(tree):
            if isinstance(item, pyast.Name):
                assert item.id not in forbidden, f"{path.name}:{item.lineno} uses {item.id}"
            if isinstance(item, pyast.Attribute):
                assert item.attr not in forbidden, f"{path.name}:{item.lineno} uses .{item.attr}"
            if isinstance(item, pyast.Import | pyast.ImportFrom):
                names = {alias.name for alias in item.names} | {getattr(item, "module", None) or ""}
                assert not names & {"builtins", "importlib"}, f"{path.name} imports {names}"
