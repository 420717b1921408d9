"""The operator contract: what a plugin registers through ``qcore_register_operators``.

An :class:`Operator` names its parameters, says how much history it needs beyond the rows it outputs
(:meth:`Operator.lookback`), and computes on whole panels: every expression argument arrives as a 2-D array of
shape ``(dates, instruments)``, every constant as a Python value. The kernel knows no operator by name.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import attrs
import numpy as np

#: Parameter kinds: an expression (array), an integer window, any number, or a string.
PARAM_KINDS = ("expr", "int", "number", "str")

class _Required:
    """Marks a parameter without default."""

    def __repr__(self) -> str:
        return "REQUIRED"


#: The default of a parameter that must be given.
REQUIRED: Any = _Required()

#: ``lookback`` value meaning "all available history" (expanding windows, EMA, ``Ref(x, 0)``).
UNBOUNDED = math.inf


@attrs.frozen
class Param:
    """One operator parameter.

    :ivar name: shown in error messages (``N``, ``q``...).
    :ivar kind: one of :data:`PARAM_KINDS`; ``number`` accepts ints and floats, ``expr`` also accepts a number
        (broadcast to the panel) unless ``accepts_constant`` is False.
    :ivar default: value when omitted; :data:`REQUIRED` (the default) makes it required.
    :ivar accepts_constant: for an ``expr`` parameter, whether a number written in its place is accepted (and
        handed to ``compute`` as that number, which must then broadcast it). Time-series and cross-sectional
        operators say False: Qlib rejects ``Ref(2, 5)`` or ``Mean(3, 5)``, and a rolling window over a single
        number is not the window over a constant series. The engine then refuses such a call, naming the argument.
    """

    name: str
    kind: str = attrs.field(validator=attrs.validators.in_(PARAM_KINDS))
    default: Any = REQUIRED
    accepts_constant: bool = True

    @property
    def required(self) -> bool:
        """Whether a call must pass this parameter."""
        return self.default is REQUIRED


@attrs.frozen(eq=False)
class OpContext:
    """What an operator sees besides its arguments.

    :ivar dates: the loaded rows (query range plus warm-up).
    :ivar instruments: the columns.
    :ivar mask: universe membership on those rows (cross-sectional operators rank only members).
    :ivar first_rows: per column, the first row holding data (the instrument's listing inside the loaded range,
        0 if it listed earlier). Rows above it do not exist for that instrument: operators whose result depends on
        positions inside a window (``IdxMax``, ``Ref(x, 0)``) start there.
    :ivar num_threads: threads a kernel may use (0: its default).
    :ivar out_dtype: the dtype this call's result is stored in, when it goes straight to the output (an
        expression's root that no other node reads) and the output is narrower than a kernel's float64: an
        operator may then return its result already rounded into this dtype (computed at its own precision and
        rounded once, the same bits as rounding afterwards), sparing a wide temporary. None: return what it
        computes.
    """

    dates: Any
    instruments: tuple[str, ...]
    mask: np.ndarray | None = None
    first_rows: np.ndarray | None = None
    num_threads: int = 0
    out_dtype: Any = None


def no_lookback(*_args: Any) -> tuple[float, float]:
    """Element-wise operators need no extra rows."""
    return (0.0, 0.0)


@attrs.frozen
class Operator:
    """An expression operator.

    :ivar name: the name used in expressions (``Mean``).
    :ivar params: parameters in call order.
    :ivar compute: ``compute(ctx, *args) -> ndarray`` with arrays for ``expr`` params and values for constants; it
        returns a new array (never one of its inputs), of the panel's shape or broadcastable to it.
    :ivar lookback: ``lookback(*constants) -> (left, right)``: rows of history (left) and future (right) the
        output at one row depends on; :data:`UNBOUNDED` on the left for expanding windows. It receives the constant
        arguments in call order, with ``None`` in place of expression arguments.
    :ivar description: one line for ``qcore list operators``.
    :ivar instrument_param: index of a ``str`` parameter naming an instrument; when set, the call's expression
        arguments are evaluated on that instrument alone and broadcast to every column (``ChangeInstrument``).
    :ivar fills_missing: the operator can give a value where all its inputs are missing (comparisons, logic,
        ``If``, ``Count``, ``Power(x, 0)``); the engine then blanks its output on rows an instrument has no data.
    :ivar input_dtype: the dtype the operator computes in (``"float64"`` for compiled kernels), or None to take
        arrays as they come. The engine then hands every array argument as a C-contiguous array of that dtype,
        converting each subexpression's value at most once per evaluation however many operators read it.
    :ivar cross_sectional: ``compute`` reads other instruments' values on the same date (ranks, z-scores over the
        universe's members). The engine then evaluates the history rows before the query start on every member of
        those rows, not only on the query's members, so results do not depend on the query start.
    :ivar overwrites_input: ``compute`` may write its result into an array argument that arrives writable and
        return it (element-wise arithmetic). The engine hands writable only an intermediate that no other node
        reads; every other array argument of such an operator arrives read-only.
    :ivar batch: optional ``batch(ctx, series, constants) -> sequence of arrays``: several calls of this operator
        on the same expression arguments that differ only in their constants (sibling nodes: ``Quantile(x, 20,
        0.8)`` and ``Quantile(x, 20, 0.2)``), computed in one go that can share work (one walk of the panel, one
        sorted window). ``series`` holds the expression arguments (as ``compute`` gets them), ``constants`` one
        tuple per sibling with its other arguments in call order; it returns one array per sibling, each exactly
        what ``compute`` would return for it. When set, the engine dispatches every group of two or more
        siblings of one evaluation as one call (operators with ``instrument_param`` are never batched).
    :ivar batch_shared: names of constant parameters that siblings batched together must share (``("N",)``:
        one batch per window). Smaller groups run side by side on the engine's threads; use it where calls with
        different values share no work.
    """

    name: str
    params: tuple[Param, ...]
    compute: Callable[..., np.ndarray]
    lookback: Callable[..., tuple[float, float]] = no_lookback
    description: str = ""
    instrument_param: int | None = None
    fills_missing: bool = False
    input_dtype: str | None = None
    overwrites_input: bool = False
    cross_sectional: bool = False
    batch: Callable[..., Sequence[np.ndarray]] | None = None
    batch_shared: tuple[str, ...] = ()

    def bind(self, args: Sequence[Any]) -> tuple[Any, ...]:
        """Complete ``args`` with defaults; raise ``TypeError`` with a readable message on a wrong count."""
        if len(args) > len(self.params):
            raise TypeError(
                f"{self.name} takes at most {len(self.params)} arguments ({self.signature()}), got {len(args)}"
            )
        bound = list(args)
        for param in self.params[len(args) :]:
            if param.required:
                raise TypeError(f"{self.name} is missing argument {param.name!r} ({self.signature()})")
            bound.append(param.default)
        return tuple(bound)

    def split(self, bound: Sequence[Any]) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
        """Bound arguments split into (expression arguments, other arguments), each in call order: what
        :attr:`batch` receives as one sibling's ``series`` and ``constants``."""
        series = tuple(a for p, a in zip(self.params, bound) if p.kind == "expr")
        constants = tuple(a for p, a in zip(self.params, bound) if p.kind != "expr")
        return series, constants

    def signature(self) -> str:
        """``Mean(x: expr, N: int)``-style text."""
        parts = []
        for p in self.params:
            default = "" if p.required else f"={p.default!r}"
            parts.append(f"{p.name}: {p.kind}{default}")
        return f"{self.name}({', '.join(parts)})"
