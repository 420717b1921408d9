"""Sharded expression evaluation: a big batch of expressions evaluated as independent tasks on an execution backend.

Two ways to cut a batch (:func:`evaluate_sharded`), both giving the frame :meth:`ExpressionEngine.evaluate` gives,
bit for bit:

- ``by="expressions"``: the batch's roots are grouped by the shared graph (roots that share a computed
  subexpression stay together, so it is computed once) and the groups are balanced over the shards by node count;
  each shard evaluates its expressions over every instrument, so a cross-sectional operator sees the whole
  cross-section and needs no shuffle. Memory per task: the whole panel for a part of the expressions.
- ``by="instruments"``: the instruments are cut into contiguous groups. Each shard evaluates, for its instruments
  only, every expression without a cross-sectional operator (reading each instrument's full warm-up history, as
  the engine does for a whole panel), and the *inputs* of the cross-sectional operators: the largest subtrees
  below them that have none, on every row the second stage needs, in their computed dtype. The second stage (in
  this process) joins those inputs into one panel and evaluates the cross-sectional remainder over it, with the
  store's calendar, universes and data ranges, so ranks run over the same members as in one process. Memory per
  task: a part of the instruments for every expression; what comes back is the task's share of the output.

Task results travel through the backend (``serial``, ``processes``, ``ray``...). Every task opens the store and
the kernel's operators in its own process once (cached per process); a failure after its retries names the shard
(``shard 2/7 (SH600004..SH600019, 7 instruments)``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import attrs
import numpy as np
import pandas as pd

from qcore.errors import ConfigError, QcoreError, RunError
from qcore.expr.ast import Call, Const, Field, Node, walk
from qcore.protocols import DataProvider, PointInTimeProvider
from qcore.types import Panel, Universe

__all__ = ["SHARD_MODES", "ShardedResult", "evaluate_sharded", "expression_groups", "instrument_groups",
           "split_cross_sectional"]  # fmt: skip

#: How a batch can be cut into shards.
SHARD_MODES = ("instruments", "expressions")

#: The market name under which a shard's store view exposes the shard's members of the queried market.
_SHARD_MARKET = "__qcore_shard__"
#: Prefix of the fields that carry cross-sectional inputs from the shards to the second stage.
_INPUT_PREFIX = "qshardin"


# -- the store as a shard sees it ---------------------------------------------------------------------------------


class ShardStore:
    """A store seen by one shard: everything as in ``store``, plus a market (``__qcore_shard__``) that is the
    queried market's members restricted to the shard's instruments. Other markets (``all`` included) are left
    whole, so ``ChangeInstrument`` calls still find any instrument."""

    def __init__(self, store: DataProvider, market: str, symbols: Iterable[str]) -> None:
        self.store, self.market, self.symbols = store, market, frozenset(symbols)

    def calendar(self, freq: str = "day") -> pd.DatetimeIndex:
        """The store's calendar."""
        return self.store.calendar(freq)

    def markets(self) -> list[str]:
        """The store's markets and the shard's own."""
        return [*self.store.markets(), _SHARD_MARKET]

    def universe(self, market: str = "all") -> Universe:
        """The store's universe, or the shard's members of the queried market."""
        if market == _SHARD_MARKET:
            return {s: spans for s, spans in self.store.universe(self.market).items() if s in self.symbols}
        return self.store.universe(market)

    def fields(self, freq: str = "day") -> list[str]:
        """The store's fields."""
        return self.store.fields(freq)

    def load(self, fields: Sequence[str], instruments: Sequence[str], start: object = None, end: object = None,
             freq: str = "day") -> Panel:  # fmt: skip
        """The store's bars."""
        return self.store.load(fields, instruments, start, end, freq)

    @property
    def version(self) -> str:
        """The store's version."""
        return self.store.version


class _ShardStorePIT(ShardStore):
    """A :class:`ShardStore` over a store with point-in-time data (passed through)."""

    def pit_fields(self) -> list[str]:
        """The store's period fields."""
        return self.store.pit_fields()  # type: ignore[attr-defined]

    def load_pit(self, field: str, instruments: Sequence[str]) -> Mapping[str, np.ndarray]:
        """The store's period records."""
        return self.store.load_pit(field, instruments)  # type: ignore[attr-defined]


def shard_store(store: DataProvider, market: str, symbols: Iterable[str]) -> ShardStore:
    """The view of ``store`` a shard of ``market`` with ``symbols`` evaluates on."""
    cls = _ShardStorePIT if isinstance(store, PointInTimeProvider) else ShardStore
    return cls(store, market, symbols)


class JoinedInputs:
    """The second stage's store: the store's calendar, markets and universes, and as its only fields the
    cross-sectional inputs the shards computed, joined into whole panels (in their computed dtype)."""

    def __init__(self, store: DataProvider, names: Sequence[str]) -> None:
        self.store = store
        self.names = tuple(names)
        self.dates: pd.DatetimeIndex | None = None
        self.symbols: tuple[str, ...] = ()
        self.data: dict[str, np.ndarray] = {}

    def fill(self, dates: pd.DatetimeIndex, parts: Sequence[Panel]) -> None:
        """Join the shards' panels (each over ``dates`` and its own instruments) column-wise."""
        symbols = [s for part in parts for s in part.instruments]
        order = np.argsort(np.array(symbols, dtype=object), kind="stable")
        self.dates, self.symbols = dates, tuple(symbols[k] for k in order)
        for name in self.names:
            self.data[name] = np.ascontiguousarray(np.concatenate([p.data[name] for p in parts], axis=1)[:, order])

    def calendar(self, freq: str = "day") -> pd.DatetimeIndex:
        """The store's calendar."""
        return self.store.calendar(freq)

    def markets(self) -> list[str]:
        """The store's markets."""
        return self.store.markets()

    def universe(self, market: str = "all") -> Universe:
        """The store's universe."""
        return self.store.universe(market)

    def fields(self, freq: str = "day") -> list[str]:
        """The joined inputs."""
        return list(self.names)

    def load(self, fields: Sequence[str], instruments: Sequence[str], start: object = None, end: object = None,
             freq: str = "day") -> Panel:  # fmt: skip
        """Rows ``start..end`` and columns ``instruments`` of the joined inputs."""
        if self.dates is None:
            raise RunError("the cross-sectional inputs were read before the shards computed them")
        lo = int(self.dates.searchsorted(pd.Timestamp(start), "left")) if start is not None else 0
        hi = int(self.dates.searchsorted(pd.Timestamp(end), "right")) if end is not None else len(self.dates)
        position = {s: k for k, s in enumerate(self.symbols)}
        absent = [s for s in instruments if s not in position]
        wanted = self.store.calendar(freq)
        want_lo = int(wanted.searchsorted(pd.Timestamp(start), "left")) if start is not None else 0
        want_hi = int(wanted.searchsorted(pd.Timestamp(end), "right")) if end is not None else len(wanted)
        if absent or (want_hi - want_lo) != (hi - lo):
            raise RunError(f"the second stage asked for rows or instruments the shards did not compute "
                           f"({absent[:3] or 'rows'}): a sharding bug")  # fmt: skip
        columns = np.array([position[s] for s in instruments], dtype=np.int64)
        data = {f: self.data[f][lo:hi][:, columns] for f in fields}
        return Panel(self.dates[lo:hi], tuple(instruments), data)

    @property
    def version(self) -> str:
        """The store's version, marked as derived."""
        return f"{self.store.version}+shards"


# -- cutting a batch ----------------------------------------------------------------------------------------------


@attrs.frozen
class CrossSectionalSplit:
    """A batch cut for instrument shards.

    :ivar pure: output name → expression without a cross-sectional operator (evaluated in the shards).
    :ivar inputs: input field name → the largest subtree without one below a cross-sectional call (in the shards).
    :ivar rest: output name → the expression over those input fields (the second stage).
    """

    pure: dict[str, str]
    inputs: dict[str, str]
    rest: dict[str, str]


def split_cross_sectional(names: Sequence[str], roots: Sequence[Node],
                          operators: Mapping[str, Any]) -> CrossSectionalSplit:  # fmt: skip
    """Cut planned ``roots`` into what instrument shards compute and what the second stage computes."""
    impure: dict[Node, bool] = {}

    def is_impure(node: Node) -> bool:
        if node not in impure:
            for sub in walk(node):  # post-order: arguments are decided first
                if sub not in impure:
                    impure[sub] = isinstance(sub, Call) and (
                        bool(operators[sub.op].cross_sectional) or any(impure[a] for a in sub.args))
        return impure[node]

    inputs: dict[Node, str] = {}

    def rewrite(node: Node) -> Node:
        if not is_impure(node):
            if isinstance(node, Const):
                return node
            if node not in inputs:
                inputs[node] = f"{_INPUT_PREFIX}{len(inputs)}"
            return Field(inputs[node])
        assert isinstance(node, Call)
        if operators[node.op].instrument_param is not None:
            raise QcoreError(f"{node.op} over a cross-sectional operator cannot be sharded by instruments "
                             f"({node}); shard by expressions instead")  # fmt: skip
        return Call(node.op, tuple(rewrite(a) for a in node.args))

    pure: dict[str, str] = {}
    rest: dict[str, str] = {}
    for name, root in zip(names, roots):
        if is_impure(root):
            rest[name] = str(rewrite(root))
        else:
            pure[name] = str(root)
    return CrossSectionalSplit(pure, {field: str(node) for node, field in inputs.items()}, rest)


def expression_groups(roots: Sequence[Node], shards: int) -> list[list[int]]:
    """Root positions in at most ``shards`` groups: roots that share a computed subexpression go together
    (connected parts of the shared graph), parts are placed largest first on the lightest group (by node count);
    when there are fewer parts than shards, the largest parts are split by their roots."""
    parent = list(range(len(roots)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    owner: dict[Node, int] = {}
    nodes: list[set[Node]] = []
    for i, root in enumerate(roots):
        calls = {n for n in walk(root) if isinstance(n, Call)}
        nodes.append(calls)
        for node in calls:
            if node in owner:
                parent[find(i)] = find(owner[node])
            else:
                owner[node] = i
    parts: dict[int, list[int]] = {}
    for i in range(len(roots)):
        parts.setdefault(find(i), []).append(i)
    groups = sorted(parts.values(), key=lambda g: (-len(g), g[0]))
    while len(groups) < shards and any(len(g) > 1 for g in groups):
        biggest = max(range(len(groups)), key=lambda k: len(groups[k]))
        g = groups.pop(biggest)
        groups += [g[: len(g) // 2], g[len(g) // 2 :]]
    weights = [len(set().union(*(nodes[i] for i in g))) or 1 for g in groups]
    bins: list[list[int]] = [[] for _ in range(min(shards, len(groups)))]
    load = [0] * len(bins)
    for k in sorted(range(len(groups)), key=lambda k: (-weights[k], groups[k][0])):
        lightest = min(range(len(bins)), key=lambda b: (load[b], b))
        bins[lightest] += groups[k]
        load[lightest] += weights[k]
    return [sorted(b) for b in bins if b]


def instrument_groups(symbols: Sequence[str], shards: int) -> list[tuple[str, ...]]:
    """Sorted ``symbols`` cut into at most ``shards`` contiguous groups whose sizes differ by at most one."""
    ordered = sorted(symbols)
    count = min(shards, len(ordered))
    bounds = [round(k * len(ordered) / count) for k in range(count + 1)]
    return [tuple(ordered[bounds[k] : bounds[k + 1]]) for k in range(count)]


# -- the tasks ----------------------------------------------------------------------------------------------------


@attrs.frozen
class EngineSpec:
    """What a task needs to build its engine in any process: the (picklable) store, the plugins whose operators
    it uses (``-p``-style names and autoload, as :func:`qcore.load_kernel` takes them), the frequency, missing-field
    policy and threads."""

    provider: Any
    plugins: tuple[str, ...] = ()
    autoload: bool | None = None
    freq: str = "day"
    missing_fields: str = "error"
    num_threads: int = 1


#: Per process: plugin selection -> operators (a task's process loads its kernel once).
_OPERATORS: dict[tuple[tuple[str, ...], bool | None], Mapping[str, Any]] = {}


def _operator_map(kernel: Any) -> dict[str, Any]:
    registry = kernel.registry("operator")
    return {name: registry.get(name) for name in registry.names(include_aliases=True)}


def _operators(plugins: tuple[str, ...], autoload: bool | None, kernel: Any = None) -> Mapping[str, Any]:
    key = (plugins, autoload)
    if kernel is not None:  # this process's kernel: tasks run here use its operators
        _OPERATORS[key] = _operator_map(kernel)
    elif key not in _OPERATORS:
        from qcore.api import load_kernel

        _OPERATORS[key] = _operator_map(load_kernel(plugins, autoload=autoload))
    return _OPERATORS[key]


def _engine(spec: EngineSpec, store: Any) -> Any:
    from qcore.expr.engine import ExpressionEngine

    return ExpressionEngine(store, _operators(spec.plugins, spec.autoload), freq=spec.freq,
                            num_threads=spec.num_threads, missing_fields=spec.missing_fields)  # fmt: skip


@attrs.frozen
class InstrumentShard:
    """One instrument shard's work: its symbols, the planned expressions it evaluates on the query rows (``pure``)
    and the planned cross-sectional inputs it evaluates on the second stage's rows ``load_start..load_end`` (plans
    made once by the driver: a shard does not parse the batch again)."""

    spec: EngineSpec
    market: str | None
    symbols: tuple[str, ...]
    pure: Any
    inputs: Any
    start: Any
    end: Any
    load_start: Any
    load_end: Any
    index: str
    has_query_members: bool
    #: Where the shard writes its frame (``part-NNNNN.parquet``) instead of returning it; None: returned.
    out_file: str | None = None


def run_instrument_shard(job: InstrumentShard) -> tuple[pd.DataFrame | str | None, Panel | None]:
    """Task: the shard's frame of pure expressions (None when it has none, or no member on the query rows; the
    file it wrote when it has an ``out_file``) and its panel of cross-sectional inputs (None when the batch has no
    cross-sectional operator)."""
    if job.market is not None:
        store: Any = shard_store(job.spec.provider, job.market, job.symbols)
        instruments: Any = _SHARD_MARKET
    else:
        store, instruments = job.spec.provider, list(job.symbols)
    engine = _engine(job.spec, store)
    frame: pd.DataFrame | str | None = None
    if job.pure is not None and job.has_query_members:
        frame = engine.evaluate(job.pure, instruments, job.start, job.end, index=job.index)
        if job.out_file is not None:
            from qcore.tables import write_table

            write_table(frame, job.out_file)
            frame = job.out_file
    panel = None
    if job.inputs is not None:
        plan = job.inputs
        values, _ = engine.evaluate_panel(plan, instruments, job.load_start, job.load_end, dtype=None)
        panel = Panel(values.dates, values.instruments, {name: values.data[f"e{k}"]
                                                         for k, name in enumerate(plan.names)})  # fmt: skip
    return frame, panel


@attrs.frozen
class ExpressionShard:
    """One expression shard's work: its planned expressions (a part of the driver's plan) over every instrument."""

    spec: EngineSpec
    expressions: Any
    instruments: Any
    start: Any
    end: Any
    index: str


def run_expression_shard(job: ExpressionShard) -> pd.DataFrame:
    """Task: the shard's expressions evaluated as one batch."""
    return _engine(job.spec, job.spec.provider).evaluate(job.expressions, job.instruments, job.start, job.end,
                                                         index=job.index)  # fmt: skip


# -- the driver ---------------------------------------------------------------------------------------------------


@attrs.frozen
class ShardedResult:
    """A sharded evaluation: the frame (None when written to files), and how it was cut.

    :ivar files: with ``out_dir``, the files written: one ``part-NNNNN.parquet`` per instrument shard (its rows,
        the columns without a cross-sectional operator), and ``cross_sectional.parquet`` (every row, the others).
    """

    frame: pd.DataFrame | None
    by: str
    shards: int
    labels: tuple[str, ...]
    second_stage: tuple[str, ...] = ()
    files: tuple[str, ...] = ()


def _check(by: str, shards: Any) -> None:
    if by not in SHARD_MODES:
        raise ConfigError(f"expected one of {', '.join(SHARD_MODES)}, got {by!r}", path="shard_by")
    if isinstance(shards, bool) or not isinstance(shards, int) or not 1 <= shards <= 100_000:
        raise ConfigError(f"expected a number of shards from 1 to 100000, got {shards!r}", path="shards")


def _same_rows(frames: Sequence[pd.DataFrame]) -> None:
    first = frames[0].index
    for other in frames[1:]:
        if not first.equals(other.index):
            raise RunError("the shards returned different rows for the same query: a sharding bug")


def _stack(frames: Sequence[pd.DataFrame], index: str) -> pd.DataFrame:
    """Shard frames (each ordered as the engine orders rows, over contiguous groups of instruments) as the one
    frame an engine gives for all of them: each column scattered once into one float32 block, rows in
    (datetime, instrument) or (instrument, datetime) order (a ``concat`` and ``sort_index`` copy it twice, slowly)."""
    frames = [f for f in frames if len(f)] or list(frames[:1])
    if len(frames) == 1:
        return frames[0]
    if not all(dtype == np.float32 for f in frames for dtype in f.dtypes):
        whole = pd.concat(frames)
        return whole.sort_index(kind="stable") if index == "datetime" else whole
    rows = np.cumsum([0, *(len(f) for f in frames)])
    names = pd.MultiIndex.from_tuples([], names=frames[0].index.names)
    keys = frames[0].index.append([f.index for f in frames[1:]]) if len(frames) > 1 else names
    if index == "datetime":
        dates = keys.get_level_values(0).asi8
        symbols, _ = pd.factorize(keys.get_level_values(1), sort=True)
        order = np.lexsort((symbols, dates))
        position = np.empty(len(order), dtype=np.int64)
        position[order] = np.arange(len(order))
        keys = keys.take(order)
    else:
        position = None
    columns = frames[0].columns
    out = np.empty((len(columns), int(rows[-1])), dtype=np.float32)
    for f, lo, hi in zip(frames, rows[:-1], rows[1:]):
        values = f.to_numpy(dtype=np.float32, copy=False).T  # (columns, rows): the frame's own block, no copy
        if position is None:
            out[:, lo:hi] = values
        else:
            out[:, position[lo:hi]] = values
    return pd.DataFrame(out.T, index=keys, columns=columns, copy=False)


def _collect(backend: Any, fn: Callable[[Any], Any], jobs: Sequence[Any], labels: Sequence[str], retries: int,
             resources: Any, progress: Callable[[int, int], None] | None) -> list[Any]:  # fmt: skip
    results: list[Any] = [None] * len(jobs)
    for done, (i, result) in enumerate(backend.map(fn, jobs, retries=retries, resources=resources,
                                                   labels=labels), start=1):  # fmt: skip
        results[i] = result
        if progress is not None:
            progress(done, len(jobs))
    return results


def evaluate_sharded(
    expressions: Sequence[str] | Mapping[str, str],
    provider: DataProvider,
    *,
    instruments: str | Sequence[str] = "all",
    start: object = None,
    end: object = None,
    backend: Any = None,
    shards: int = 2,
    by: str = "instruments",
    freq: str = "day",
    plugins: Sequence[str] = (),
    autoload: bool | None = None,
    kernel: Any = None,
    missing_fields: str = "error",
    index: str = "datetime",
    num_threads: int | None = None,
    retries: int = 0,
    resources: Any = None,
    progress: Callable[[int, int], None] | None = None,
    out_dir: str | None = None,
) -> ShardedResult:
    """Evaluate ``expressions`` as :meth:`ExpressionEngine.evaluate` does, cut into ``shards`` tasks on ``backend``.

    :param provider: the store; it travels to every task (it must pickle, as the kernel's stores do).
    :param backend: an execution backend (None: ``serial`` in this process); it is not shut down here.
    :param by: ``instruments`` (groups of instruments, a second stage for cross-sectional operators) or
        ``expressions`` (groups of the shared graph over every instrument); see the module docstring.
    :param plugins: ``-p``-style plugin names (and ``autoload``) the tasks load their operators with, as
        :func:`qcore.load_kernel` takes them (default: every installed plugin).
    :param kernel: the kernel this process already loaded with that selection (tasks run here reuse it).
    :param num_threads: threads of each task's engine (None: all cores when serial, else one per task).
    :param progress: called with ``(tasks done, tasks)`` as tasks finish.
    :param out_dir: (instrument shards only) an empty or new folder: each shard writes its own rows there and no
        process ever holds the whole output (see :attr:`ShardedResult.files`); the result's frame is None.
    """
    from qcore.backends import SerialBackend, check_retries
    from qcore.dates import parse_optional_date
    from qcore.expr.engine import ExpressionEngine

    _check(by, shards)
    retries = check_retries(retries)
    start, end = parse_optional_date(start, "start"), parse_optional_date(end, "end")
    backend = backend if backend is not None else SerialBackend()
    threads = num_threads if num_threads is not None else (0 if isinstance(backend, SerialBackend) else 1)
    plugins = tuple(plugins)
    operators = _operators(plugins, autoload, kernel)
    engine = ExpressionEngine(provider, operators, freq=freq, missing_fields=missing_fields, num_threads=threads)
    plan = engine.plan(expressions)  # every name and argument checked before any task starts
    universe = instruments if isinstance(instruments, str) else list(instruments)
    spec = EngineSpec(provider, plugins, autoload, freq, missing_fields, threads)
    if out_dir is not None:
        out_dir = _output_folder(out_dir, by)
    if by == "expressions":
        return _by_expressions(backend, spec, plan, universe, start, end, index, shards, retries, resources,
                               progress)  # fmt: skip
    return _by_instruments(backend, spec, engine, plan, universe, start, end, index, shards, retries,
                           resources, progress, out_dir)  # fmt: skip


def _output_folder(out_dir: Any, by: str) -> str:
    from pathlib import Path

    if by != "instruments":
        raise ConfigError("writing shards to a folder needs shards by instruments", path="out_dir")
    folder = Path(out_dir)
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise ConfigError("expected a new or empty folder", path=str(folder))
    folder.mkdir(parents=True, exist_ok=True)
    return str(folder)


def _by_expressions(backend: Any, spec: EngineSpec, plan: Any, universe: Any, start: Any,
                    end: Any, index: str, shards: int, retries: int, resources: Any,
                    progress: Callable[[int, int], None] | None) -> ShardedResult:  # fmt: skip
    from qcore.expr.planning import subset

    groups = expression_groups(plan.roots, shards)
    names = list(plan.names)
    jobs = [ExpressionShard(spec, subset(plan, g), universe, start, end, index) for g in groups]
    labels = [f"shard {k + 1}/{len(groups)} ({len(g)} expressions: {names[g[0]]!s:.40}...)"
              for k, g in enumerate(groups)]  # fmt: skip
    frames = _collect(backend, run_expression_shard, jobs, labels, retries, resources, progress)
    _same_rows(frames)
    joined = pd.concat(frames, axis=1, copy=False)
    if list(joined.columns) != names:
        joined = joined[names]
    return ShardedResult(joined, "expressions", len(groups), tuple(labels))


def _by_instruments(backend: Any, spec: EngineSpec, engine: Any, plan: Any, universe: Any,
                    start: Any, end: Any, index: str, shards: int, retries: int, resources: Any,
                    progress: Callable[[int, int], None] | None, out_dir: str | None) -> ShardedResult:  # fmt: skip
    from qcore.expr.engine import ExpressionEngine
    from qcore.expr.planning import subset
    from qcore.expr.schedule import load_window, query_grid, run_symbols

    provider, freq = spec.provider, spec.freq
    operators = _operators(spec.plugins, spec.autoload)
    split = split_cross_sectional(plan.names, plan.roots, operators)
    grid = query_grid(provider, freq, universe, start, end)
    calendar = provider.calendar(freq)
    load_start = load_end = None
    joined = JoinedInputs(provider, list(split.inputs))
    second: Any = None
    symbols: tuple[str, ...] = grid.symbols
    if split.rest:
        second = ExpressionEngine(joined, operators, freq=freq, num_threads=spec.num_threads)
        rest_plan = second.plan(split.rest)
        window = load_window(rest_plan, grid, len(calendar))
        load_start, load_end = calendar[window.load_lo], calendar[window.load_hi]
        symbols = run_symbols(rest_plan, operators, joined, universe, grid.symbols, load_start, load_end)
    groups = instrument_groups(symbols, shards)
    members = set(grid.symbols)
    market = universe if isinstance(universe, str) else None
    files = [None if out_dir is None else f"{out_dir}/part-{k:05d}.parquet" for k in range(len(groups))]
    pure_plan = subset(plan, [i for i, name in enumerate(plan.names) if name in split.pure]) if split.pure else None
    inputs_plan = engine.plan(split.inputs) if split.inputs else None
    jobs = [InstrumentShard(spec, market, g, pure_plan, inputs_plan, start, end, load_start, load_end, index,
                            any(s in members for s in g), files[k]) for k, g in enumerate(groups)]  # fmt: skip
    labels = [f"shard {k + 1}/{len(groups)} ({g[0]}..{g[-1]}, {len(g)} instruments)" for k, g in enumerate(groups)]
    try:
        results = _collect(backend, run_instrument_shard, jobs, labels, retries, resources, progress)
    except BaseException:
        _remove_parts(files)  # no half-written output: the parts of a failed job go
        raise
    if out_dir is not None:
        return _written(results, split, joined, second, calendar, load_start, load_end, universe, start, end, index,
                        out_dir, len(groups), labels)  # fmt: skip
    parts: list[pd.DataFrame] = []
    if split.pure:
        parts.append(_stack([frame for frame, _ in results if frame is not None], index))
    if split.rest:
        joined.fill(calendar[calendar.slice_indexer(load_start, load_end)], [panel for _, panel in results])
        parts.append(second.evaluate(split.rest, universe, start, end, index=index))
    _same_rows(parts)
    frame = pd.concat(parts, axis=1, copy=False) if len(parts) > 1 else parts[0]
    if list(frame.columns) != list(plan.names):
        frame = frame[list(plan.names)]
    return ShardedResult(frame, "instruments", len(groups), tuple(labels), tuple(split.rest))


def _remove_parts(files: Sequence[str | None]) -> None:
    import os

    for path in files:
        if path is not None and os.path.exists(path):
            os.remove(path)


def _written(results: Sequence[Any], split: CrossSectionalSplit, joined: JoinedInputs, second: Any, calendar: Any,
             load_start: Any, load_end: Any, universe: Any, start: Any, end: Any, index: str, out_dir: str,
             shards: int, labels: Sequence[str]) -> ShardedResult:  # fmt: skip
    """The shards wrote their own rows; the second stage (if any) writes its columns for every row."""
    from qcore.tables import write_table

    files = [path for path, _ in results if isinstance(path, str)]
    if split.rest:
        joined.fill(calendar[calendar.slice_indexer(load_start, load_end)], [panel for _, panel in results])
        frame = second.evaluate(split.rest, universe, start, end, index=index)
        files.append(str(write_table(frame, f"{out_dir}/cross_sectional.parquet")))
    return ShardedResult(None, "instruments", shards, tuple(labels), tuple(split.rest), tuple(files))
