"""Element-wise, logical and conditional operators with Qlib's numpy semantics.

Arithmetic keeps numpy's dtype rules (float32 fields stay float32, as in Qlib); comparisons give 1.0/0.0 with NaN
comparing False (``Ne`` True); ``Greater``/``Less`` propagate NaN; division by zero gives ±inf or NaN unguarded;
``If`` treats a NaN condition as true. The engine stores boolean results as 0.0/1.0 floats, so the logical
operators read any non-zero value as true. An integer constant is taken as the float it denotes (numpy's scalar
rules keep a float32 field float32 either way), so ``Power(9, 387420489)`` is ``inf`` as in float arithmetic,
not a wrapped-around int64.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from qcore.operators import OpContext, Operator, Param

X = Param("x", "expr")
Y = Param("y", "expr")


def _real(value: Any) -> Any:
    """A Python ``int`` constant as a float (±inf beyond float64's range); anything else as it is."""
    if isinstance(value, int) and not isinstance(value, bool):
        try:
            return float(value)
        except OverflowError:
            return math.copysign(math.inf, value)
    return value


def _target(*args: Any) -> np.ndarray | None:
    """A writable array argument that can hold the ufunc's result (its dtype and the result's shape), if any.

    The engine hands an argument writable only when no other node reads it (``overwrites_input``), so writing
    the result there saves allocating (and faulting in) a fresh panel.
    """
    dtype = np.result_type(*args)
    shape = np.broadcast_shapes(*(np.shape(a) for a in args))
    for a in args:
        if isinstance(a, np.ndarray) and a.flags.writeable and a.dtype == dtype and a.shape == shape:
            return a
    return None


def _narrowed(ctx: OpContext, *args: Any) -> np.ndarray | None:
    """A fresh array of the context's ``out_dtype`` for a ufunc result that is wider (a float64 root stored as
    float32): the ufunc computes in its own precision and rounds once into it, as rounding afterwards would."""
    if ctx.out_dtype is None:
        return None
    dtype, stored = np.result_type(*args), np.dtype(ctx.out_dtype)
    if dtype.kind != "f" or stored.kind != "f" or dtype.itemsize <= stored.itemsize:
        return None
    return np.empty(np.broadcast_shapes(*(np.shape(a) for a in args)), dtype=stored)


def _unary(name: str, fn: Any, description: str, fills_missing: bool = False, ufunc: bool = False) -> Operator:
    def compute(ctx: OpContext, x: Any) -> np.ndarray:
        x = _real(x)
        with np.errstate(all="ignore"):
            out = (_narrowed(ctx, x) if ufunc else None)
            if out is None and ufunc:
                out = _target(x)
            return fn(x, out=out) if out is not None else np.asarray(fn(x))

    return Operator(name, (X,), compute, description=description, fills_missing=fills_missing, overwrites_input=ufunc)


def _binary(name: str, fn: Any, description: str, fills_missing: bool = False, ufunc: bool = False) -> Operator:
    def compute(ctx: OpContext, x: Any, y: Any) -> np.ndarray:
        x, y = _real(x), _real(y)
        with np.errstate(all="ignore"):
            out = _narrowed(ctx, x, y) if ufunc else None
            if out is None and ufunc:
                out = _target(x, y)
            return fn(x, y, out=out) if out is not None else np.asarray(fn(x, y))

    return Operator(
        name, (X, Y), compute, description=description, fills_missing=fills_missing, overwrites_input=ufunc
    )


def _sign(x: Any) -> np.ndarray:
    return np.sign(np.asarray(x, dtype=np.float32) if np.asarray(x).dtype == bool else x)


def _truth(x: Any) -> np.ndarray:
    """Truth of a 0/1 (or any numeric) array; NaN counts as true, as numpy's bool cast does."""
    return np.asarray(x) != 0


def _not(x: Any) -> np.ndarray:
    return ~_truth(x)


def _and(x: Any, y: Any) -> np.ndarray:
    return _truth(x) & _truth(y)


def _or(x: Any, y: Any) -> np.ndarray:
    return _truth(x) | _truth(y)


def _if(ctx: OpContext, cond: Any, a: Any, b: Any) -> np.ndarray:
    return np.where(_truth(_real(cond)), _real(a), _real(b))


OPERATORS: tuple[Operator, ...] = (
    _unary("Abs", np.abs, "Absolute value.", ufunc=True),
    _unary("Sign", _sign, "Sign (-1, 0, 1; NaN stays NaN)."),
    _unary("Log", np.log, "Natural logarithm (0 gives -inf, negatives NaN).", ufunc=True),
    _unary("Not", _not, "Logical not (a non-zero value is true).", fills_missing=True),
    _binary("Add", np.add, "x + y.", ufunc=True),
    _binary("Sub", np.subtract, "x - y.", ufunc=True),
    _binary("Mul", np.multiply, "x * y.", ufunc=True),
    _binary("Div", np.divide, "x / y (no guard against division by zero).", ufunc=True),
    _binary("Power", np.power, "x ** y.", fills_missing=True),
    _binary("Greater", np.maximum, "Element-wise maximum; NaN propagates.", ufunc=True),
    _binary("Less", np.minimum, "Element-wise minimum; NaN propagates.", ufunc=True),
    _binary("Gt", np.greater, "x > y as 1.0/0.0 (NaN compares false).", fills_missing=True),
    _binary("Ge", np.greater_equal, "x >= y as 1.0/0.0.", fills_missing=True),
    _binary("Lt", np.less, "x < y as 1.0/0.0.", fills_missing=True),
    _binary("Le", np.less_equal, "x <= y as 1.0/0.0.", fills_missing=True),
    _binary("Eq", np.equal, "x == y as 1.0/0.0.", fills_missing=True),
    _binary("Ne", np.not_equal, "x != y as 1.0/0.0 (NaN is unequal to everything).", fills_missing=True),
    _binary("And", _and, "Logical and.", fills_missing=True),
    _binary("Or", _or, "Logical or.", fills_missing=True),
    Operator("If", (Param("cond", "expr"), X, Y), _if, description="x where cond is true (or NaN), else y.",
             fills_missing=True),
)
