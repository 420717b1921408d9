"""Typed expression trees for the search: which operators a candidate may call, with what argument kinds, and the
random generation, mutation and crossover that keep every tree well-typed and inside its limits.

Trees are the kernel's own immutable syntax nodes (:mod:`qcore.expr.ast`). An operator enters the grammar when its
parameters are expressions optionally followed by one window (a parameter named ``N`` of kind ``int``/``number``);
windows are drawn from a fixed set of positive integers, so no generated ``Ref`` looks into the future. Expression
positions only ever hold fields or calls, never numbers: no subtree is constant-only.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import attrs
import numpy as np

from qcore.errors import ConfigError
from qcore.expr import Call, Const, Field, Node, parse
from qcore.operators import Operator

#: Operators left out unless named: boolean logic and comparisons (step functions), ``Power`` (overflows) and
#: ``If``; cross-sectional operators are kept.
DEFAULT_EXCLUDED = frozenset({"And", "Or", "Not", "Eq", "Ne", "Gt", "Ge", "Lt", "Le", "If", "Power", "Count"})

Path = tuple[int, ...]


@attrs.frozen
class Signature:
    """How a candidate calls one operator: ``arity`` expression arguments, then a window when ``windowed``."""

    name: str
    arity: int
    windowed: bool


def signature_of(op: Operator) -> Signature | None:
    """The operator's signature in the grammar, or None when it does not fit (strings, extra numbers)."""
    params = list(op.params)
    windowed = bool(params) and params[-1].kind in ("int", "number") and params[-1].name == "N"
    exprs = params[:-1] if windowed else params
    if not exprs or any(p.kind != "expr" for p in exprs) or op.instrument_param is not None:
        return None
    return Signature(op.name, len(exprs), windowed)


@attrs.frozen
class Grammar:
    """What candidates are made of, and their limits.

    :ivar signatures: operator name → signature.
    :ivar fields: field names without ``$``.
    :ivar windows: the window set (positive integers).
    :ivar max_depth: deepest call nesting (a lone field has depth 1).
    :ivar max_size: most fields and calls in one tree (windows not counted).
    """

    signatures: Mapping[str, Signature]
    fields: tuple[str, ...]
    windows: tuple[int, ...]
    max_depth: int = 4
    max_size: int = 12

    @classmethod
    def build(cls, operators: Mapping[str, Operator] | Any, fields: Iterable[str], windows: Iterable[int], *,
              names: Sequence[str] | None = None, max_depth: int = 4, max_size: int = 12) -> Grammar:
        """A grammar over ``operators`` (a registry or a mapping); ``names`` picks operators (default: every one
        that fits, less :data:`DEFAULT_EXCLUDED`). Raises :class:`ConfigError` on a name that does not fit."""
        if hasattr(operators, "names") and hasattr(operators, "get"):
            operators = {n: operators.get(n) for n in operators.names()}
        signatures: dict[str, Signature] = {}
        for name in (names if names is not None else sorted(operators)):
            if name not in operators:
                raise ConfigError(f"unknown operator {name!r}", path="search.operators")
            sig = signature_of(operators[name])
            if sig is None:
                if names is not None:
                    raise ConfigError(f"operator {name!r} takes arguments the search cannot generate "
                                      f"({operators[name].signature()})", path="search.operators")  # fmt: skip
                continue
            if names is None and name in DEFAULT_EXCLUDED:
                continue
            signatures[name] = sig
        windows_t = tuple(sorted({int(w) for w in windows}))
        if not signatures or not tuple(fields) or not windows_t or min(windows_t) < 1:
            raise ConfigError("the search needs operators, fields and positive windows", path="search")
        if max_depth < 1 or max_size < 1:
            raise ConfigError("max_depth and max_size must be positive", path="search")
        return cls(signatures, tuple(fields), windows_t, max_depth, max_size)

    # -- measuring and checking ------------------------------------------------------------------------------

    def check(self, node: Node) -> str | None:
        """Why ``node`` is not a candidate of this grammar (None when it is)."""
        if isinstance(node, Field):
            return None if node.name.lower() in self.fields else f"unknown field ${node.name}"
        if not isinstance(node, Call):
            return "a constant where an expression is expected"
        sig = self.signatures.get(node.op)
        if sig is None:
            return f"operator {node.op} is not in the search's grammar"
        if len(node.args) != sig.arity + sig.windowed:
            return f"{node.op} takes {sig.arity + sig.windowed} arguments"
        if sig.windowed:
            window = node.args[-1]
            if not isinstance(window, Const) or not isinstance(window.value, int) or window.value < 1:
                return f"{node.op}'s window must be a positive integer"
        for arg in node.args[: sig.arity]:
            reason = self.check(arg)
            if reason:
                return reason
        if depth(node) > self.max_depth or size(node) > self.max_size:
            return f"over the limits (depth {self.max_depth}, size {self.max_size})"
        return None

    def parse(self, text: str) -> Node:
        """Parse a proposed expression safely (the kernel's parser, never ``eval``) and check it is a candidate;
        raises ``ValueError`` (a :class:`ConfigError`) naming the reason."""
        node = parse(text)
        reason = self.check(node)
        if reason:
            raise ConfigError(f"{text!r}: {reason}")
        return node

    # -- generating ------------------------------------------------------------------------------------------

    def random_tree(self, rng: np.random.Generator, max_depth: int | None = None) -> Node:
        """A random tree ("grow" method) no deeper than ``max_depth`` and inside the size limit."""
        limit = self.max_depth if max_depth is None else max_depth
        for _ in range(50):
            tree = self._grow(rng, max(1, limit))
            if size(tree) <= self.max_size:
                return tree
        return Field(self.fields[int(rng.integers(len(self.fields)))])

    def _grow(self, rng: np.random.Generator, limit: int) -> Node:
        if limit <= 1 or (limit < self.max_depth and rng.random() < 0.3):
            return Field(self.fields[int(rng.integers(len(self.fields)))])
        names = sorted(self.signatures)
        sig = self.signatures[names[int(rng.integers(len(names)))]]
        args: list[Node] = [self._grow(rng, limit - 1) for _ in range(sig.arity)]
        if sig.windowed:
            args.append(Const(self.windows[int(rng.integers(len(self.windows)))]))
        return Call(sig.name, tuple(args))

    # -- variation -------------------------------------------------------------------------------------------

    def mutate(self, tree: Node, rng: np.random.Generator, kind: str) -> Node:
        """One mutation (``subtree``, ``point``, ``window`` or ``hoist``); the tree itself when none applies or the
        result would break a limit."""
        paths = list(expr_paths(tree))
        if kind == "subtree":
            path = paths[int(rng.integers(len(paths)))]
            room = self.max_depth - len(path)
            new = replace(tree, path, self.random_tree(rng, max(1, room)))
        elif kind == "point":
            path = paths[int(rng.integers(len(paths)))]
            new = replace(tree, path, self._point(at(tree, path), rng))
        elif kind == "window":
            spots = [p for p in paths if self._windowed(at(tree, p))]
            if not spots:
                return tree
            path = spots[int(rng.integers(len(spots)))]
            call = at(tree, path)
            assert isinstance(call, Call)
            window = Const(self.windows[int(rng.integers(len(self.windows)))])
            new = replace(tree, path, Call(call.op, (*call.args[:-1], window)))
        elif kind == "hoist":
            inner = [p for p in paths if p]
            if not inner:
                return tree
            new = at(tree, inner[int(rng.integers(len(inner)))])
        else:
            raise ValueError(f"unknown mutation {kind!r}")
        return new if self.check(new) is None else tree

    def crossover(self, a: Node, b: Node, rng: np.random.Generator) -> Node:
        """``a`` with one of its subtrees replaced by one of ``b``'s; ``a`` itself when the child breaks a limit."""
        pa, pb = list(expr_paths(a)), list(expr_paths(b))
        child = replace(a, pa[int(rng.integers(len(pa)))], at(b, pb[int(rng.integers(len(pb)))]))
        return child if self.check(child) is None else a

    def _windowed(self, node: Node) -> bool:
        return isinstance(node, Call) and node.op in self.signatures and self.signatures[node.op].windowed

    def _point(self, node: Node, rng: np.random.Generator) -> Node:
        if isinstance(node, Field):
            return Field(self.fields[int(rng.integers(len(self.fields)))])
        assert isinstance(node, Call)
        sig = self.signatures[node.op]
        same = sorted(n for n, s in self.signatures.items() if (s.arity, s.windowed) == (sig.arity, sig.windowed))
        return Call(same[int(rng.integers(len(same)))], node.args)


def expr_paths(node: Node, path: Path = ()) -> Iterator[Path]:
    """Paths (argument indices from the root) of every expression position: fields and calls, not windows."""
    if isinstance(node, Const):
        return
    yield path
    if isinstance(node, Call):
        for i, arg in enumerate(node.args):
            yield from expr_paths(arg, (*path, i))


def at(node: Node, path: Path) -> Node:
    """The subtree at ``path``."""
    for i in path:
        assert isinstance(node, Call)
        node = node.args[i]
    return node


def replace(node: Node, path: Path, new: Node) -> Node:
    """``node`` with the subtree at ``path`` replaced by ``new``."""
    if not path:
        return new
    assert isinstance(node, Call)
    args = list(node.args)
    args[path[0]] = replace(args[path[0]], path[1:], new)
    return Call(node.op, tuple(args))


def depth(node: Node) -> int:
    """Call nesting depth: a field is 1, ``Mean($close,5)`` is 2."""
    if isinstance(node, Call):
        return 1 + max((depth(a) for a in node.args if not isinstance(a, Const)), default=0)
    return 1


def size(node: Node) -> int:
    """Fields and calls in the tree (windows and other numbers not counted)."""
    if isinstance(node, Call):
        return 1 + sum(size(a) for a in node.args)
    return 0 if isinstance(node, Const) else 1
