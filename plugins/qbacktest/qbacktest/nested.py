"""The nested executor: carries each outer decision out over finer bars with an inner strategy and executor.

Qlib's ``NestedExecutor``, on the kernel's contracts (:class:`qcore.trading.NestingExecutor`). For each outer bar:

1. the inner bars are the bars of the inner frequency inside the outer bar's window ``[start, next start)``; the
   inner executor and the inner strategy are reset to them (``reset(infra)`` with the inner level's calendar,
   exchange and account) and the inner strategy is told the outer decision (``set_parent(decision, step)``);
2. each inner step runs in order: with ``skip_empty_decision`` (default) an outer decision without an order above
   ``1e-6`` runs no inner step at all (no inner report rows); with ``align_range_limit`` (default) the steps outside
   the decision's trade range (:mod:`qcore.trade_range`) are skipped (no strategy call, no row); otherwise the
   inner strategy decides (``generate_trade_decision``), the decision inherits the outer clock-time range when it
   has none, the inner executor carries it out (recursing to any depth) and the inner strategy hears the fills
   (``post_exe_step(fills)``, when it has that method);
3. the outer bar closes on the outer level's account: valuation at the window's last close, the report row, the
   holdings, and the order indicators aggregated from the inner steps (:class:`qbacktest.indicators.OrderTable`).

All levels share one position (cash and holdings) and the accumulated turnover and cost; each keeps its own
report, holdings history, bar counts and indicators at its own frequency (:meth:`qbacktest.account.Account.level`).
Every level records its report whatever ``generate_portfolio_metrics`` says (Qlib records only the levels that set
it, and counts no cost or turnover at any level unless the innermost executor sets it).
With ``track_data`` the executor keeps every decision it received (:attr:`NestedExecutor.decisions`), the data
Qlib's ``collect_data`` yields for reinforcement learning.

The quotes come from the store's minute bars (:mod:`qbacktest.intraday`): a run with a nested executor needs a
store with ``1min`` bars; its inner calendars (``30min``, ``5min``) are the store's, derived from them.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any

import attrs
import numpy as np
import pandas as pd

from qbacktest.freq import Freq
from qbacktest.indicators import OrderTable, check_indicator_config
from qcore.errors import ConfigError, DataError, UnknownComponentError
from qcore.trade_range import TradeRangeByTime, decision_range, inherit, range_of
from qcore.trading import BarCalendar, Direction, Fill, Step, TradeDecision, TradingInfra

logger = logging.getLogger(__name__)

_COMPONENT_KEYS = {"class", "name", "module_path", "kwargs"}


def _rebase(path: str, kind: str, where: str) -> str:
    """An inner component's error path (``executor.kwargs.x``, ``strategy.kwargs.x``) under ``where``."""
    head = kind + "."
    if path == kind:
        return where
    if path.startswith(head):
        return f"{where}.{path[len(head):]}"
    return where if not path else f"{where}.{path}"


def _default_kernel() -> Any:
    from qcore.kernel import Kernel

    return Kernel.load(use_env=False)


def build_component(kernel: Any, kind: str, spec: Any, where: str) -> Any:
    """A component from ``{class|name, kwargs, module_path}`` (Qlib's form and qcore's) or an object as given."""
    if spec is None:
        raise ConfigError(f"the nested executor needs an {where.rsplit('.', 1)[-1]}", path=where)
    if isinstance(spec, str):
        spec = {"class": spec}
    if not isinstance(spec, Mapping):
        return spec
    unknown = set(spec) - _COMPONENT_KEYS
    if unknown:
        raise ConfigError(f"unknown key(s) {', '.join(sorted(map(str, unknown)))} (class, module_path, kwargs)",
                          path=where)  # fmt: skip
    name = spec.get("class", spec.get("name"))
    if not isinstance(name, str) or not name:
        raise ConfigError("missing 'class'", path=where)
    kwargs = spec.get("kwargs") or {}
    if not isinstance(kwargs, Mapping):
        raise ConfigError("'kwargs' must be a mapping", path=f"{where}.kwargs")
    kernel = kernel if kernel is not None else _default_kernel()
    try:
        return kernel.create(kind, name, **dict(kwargs))
    except UnknownComponentError as exc:
        raise ConfigError(str(exc), path=f"{where}.class") from None
    except ConfigError as exc:
        raise ConfigError(exc.message, path=_rebase(exc.path, kind, where)) from None
    except TypeError as exc:
        raise ConfigError(f"invalid arguments of {kind} {name!r}: {exc}", path=f"{where}.kwargs") from None


class WindowCalendar:
    """The inner bars of one outer bar: ``calendar[offset : offset + n_bars]`` (a :class:`qcore.trading.TradeCalendar`
    built without copying the store's calendar, once per outer bar)."""

    __slots__ = ("_bars", "calendar", "freq", "n_bars", "offset")

    def __init__(self, calendar: pd.DatetimeIndex, offset: int, n_bars: int, freq: str) -> None:
        self.calendar = calendar
        self.offset = offset
        self.n_bars = n_bars
        self.freq = freq
        self._bars: pd.DatetimeIndex | None = None

    @property
    def bars(self) -> pd.DatetimeIndex:
        """The inner bars' start timestamps."""
        if self._bars is None:
            self._bars = self.calendar[self.offset : self.offset + self.n_bars]
        return self._bars

    def position(self, step: Step) -> int:
        """The calendar position of ``step``'s bar."""
        return self.offset + step.index

    def information_date(self, step: Step) -> pd.Timestamp | None:
        """The last calendar entry before ``step``'s bar (None at the calendar's start)."""
        k = self.offset + step.index - 1
        return self.calendar[k] if k >= 0 else None


@attrs.define
class Level:
    """One level of a nested run: its bars over the whole run and the exchange and account that serve them.

    :ivar freq: the level's bar frequency.
    :ivar calendar: the store's calendar of ``freq``.
    :ivar offset: the calendar position of ``bars[0]``.
    :ivar bars: the run's bars of this level, in order.
    :ivar exchange: the level's exchange on ``bars`` (aggregated from the minute bars).
    :ivar account: the level's account (the run's own at the outermost level).
    """

    freq: Freq
    calendar: pd.DatetimeIndex
    offset: int
    bars: pd.DatetimeIndex
    exchange: Any
    account: Any

    def ends(self) -> pd.DatetimeIndex:
        """Where each bar ends: the next calendar entry (the last one of the calendar: its start plus a bar)."""
        k = self.offset + len(self.bars)
        following = self.calendar[self.offset + 1 : k + 1]
        if len(following) < len(self.bars):
            following = following.append(pd.DatetimeIndex([self.bars[-1] + self.freq.length]))
        return following


class NestedExecutor:
    """An executor that carries each outer decision out over finer bars (see the module docstring).

    :param time_per_step: this level's bar length (``day``, ``30min``...).
    :param inner_executor: the inner executor: a built one or ``{class|name, kwargs}`` (Qlib's form works).
    :param inner_strategy: the inner strategy, likewise.
    :param skip_empty_decision: run no inner step for an outer decision without orders.
    :param align_range_limit: run only the inner steps inside the decision's trade range.
    :param track_data: keep every decision received (:attr:`decisions`).
    :param generate_portfolio_metrics: accepted for Qlib configs (every level's report is always recorded).
    :param indicator_config: Qlib's ``indicator_config`` (``show_indicator``, ``pa_config``, ``ffr_config``).
    :param verbose: log every bar's indicators.
    :param settle_type: ``None`` or ``"cash"`` (sell proceeds become cash at this level's bar end).
    :param kernel: the kernel whose registries build the inner components (given by ``Kernel.create``).
    """

    def __init__(
        self,
        time_per_step: str = "day",
        inner_executor: Any = None,
        inner_strategy: Any = None,
        *,
        skip_empty_decision: bool = True,
        align_range_limit: bool = True,
        track_data: bool = False,
        generate_portfolio_metrics: bool = False,
        indicator_config: Mapping[str, Any] | None = None,
        verbose: bool = False,
        settle_type: str | None = None,
        kernel: Any = None,
        **qlib_kwargs: Any,
    ) -> None:
        for key in ("common_infra", "trade_exchange", "start_time", "end_time"):
            qlib_kwargs.pop(key, None)
        if qlib_kwargs:
            raise ConfigError(f"unknown executor arguments: {', '.join(sorted(qlib_kwargs))}", path="executor.kwargs")
        self.freq = Freq.parse(time_per_step)
        self.time_per_step = self.freq.name
        for name, value in (("skip_empty_decision", skip_empty_decision), ("align_range_limit", align_range_limit),
                            ("track_data", track_data)):  # fmt: skip
            if not isinstance(value, bool):
                raise ConfigError(f"expected true or false, got {value!r}", path=f"executor.kwargs.{name}")
        if settle_type in ("None", "none"):
            settle_type = None
        if settle_type not in (None, "cash"):
            raise ConfigError(f"settle_type must be null or 'cash', got {settle_type!r}",
                              path="executor.kwargs.settle_type")  # fmt: skip
        self.indicator_config = check_indicator_config(indicator_config)
        self._agg = self.indicator_config["pa_config"]["agg"]
        self.inner_executor = build_component(kernel, "executor", inner_executor, "executor.kwargs.inner_executor")
        self.inner_strategy = build_component(kernel, "strategy", inner_strategy, "executor.kwargs.inner_strategy")
        for member in ("reset", "execute"):
            if not callable(getattr(self.inner_executor, member, None)):
                raise ConfigError(f"the inner executor {type(self.inner_executor).__name__} has no {member}()",
                                  path="executor.kwargs.inner_executor")  # fmt: skip
        for member in ("reset", "generate_trade_decision"):
            if not callable(getattr(self.inner_strategy, member, None)):
                raise ConfigError(f"the inner strategy {type(self.inner_strategy).__name__} has no {member}() (an "
                                  "order strategy is needed: weights cannot be executed inside a bar)",
                                  path="executor.kwargs.inner_strategy")  # fmt: skip
        self._inner_freq = Freq.parse(getattr(self.inner_executor, "time_per_step", None) or "day",
                                            path="executor.kwargs.inner_executor.kwargs.time_per_step")
        if not self._inner_freq.finer_than(self.freq):
            raise ConfigError(f"the inner executor's bars ({self._inner_freq}) must be shorter than the nested "
                              f"executor's ({self.freq})",
                              path="executor.kwargs.inner_executor.kwargs.time_per_step")  # fmt: skip
        self.inner_freq = self._inner_freq.name
        self.skip_empty_decision = skip_empty_decision
        self.align_range_limit = align_range_limit
        self.track_data = track_data
        self.generate_portfolio_metrics = bool(generate_portfolio_metrics)
        self.verbose = bool(verbose)
        self.settle_type = settle_type
        #: with ``track_data``: ``(bar start, decision)`` of every decision received, in order
        self.decisions: list[tuple[pd.Timestamp, TradeDecision]] = []
        self.infra: TradingInfra | None = None
        self.level: Level | None = None
        self.inner: Level | None = None
        self._bounds: np.ndarray | None = None
        self._inner_starts: list[pd.Timestamp] = []
        self._inner_ends: list[pd.Timestamp] = []
        self._benchmark: Any = None

    # -- levels -----------------------------------------------------------------------------------------------

    def levels(self) -> list[Level]:
        """This executor's level and every level below it, outermost first (after a run started)."""
        if self.level is None or self.inner is None:
            return []
        below = self.inner_executor.levels() if isinstance(self.inner_executor, NestedExecutor) else [self.inner]
        return [self.level, *below]

    def _attach(self, level: Level) -> None:
        """Build the levels below ``level`` (this executor's) for the whole run."""
        infra = self.infra
        assert infra is not None
        exchange = level.exchange
        minutes = getattr(exchange, "minutes", None)
        if minutes is None:
            raise ConfigError("a nested executor needs an exchange built from minute bars (run it through "
                              "qbacktest.backtest.run_backtest)", path="executor")  # fmt: skip
        provider = infra.provider
        freq = self._inner_freq
        try:
            calendar = provider.calendar(freq.name)
        except DataError as error:
            raise DataError(f"the inner executor trades {freq.name} bars, which the store cannot give: "
                            f"{error.message}") from None  # fmt: skip
        ends = level.ends()
        lo = int(calendar.searchsorted(level.bars[0], "left"))
        hi = int(calendar.searchsorted(ends[-1], "left"))
        bars = calendar[lo:hi]
        if not len(bars):
            raise DataError(f"the store has no {freq.name} bars between {level.bars[0]} and {ends[-1]}")
        starts = bars.searchsorted(level.bars, "left")
        stops = np.append(starts[1:], len(bars))
        self._bounds = np.stack([starts, stops], axis=1).astype(np.intp)
        span_end = calendar[hi] if hi < len(calendar) else None
        inner_exchange = minutes.level(bars, end=span_end)
        from qbacktest.intraday import level_benchmark

        windows = inner_exchange.minute_windows
        bench = level_benchmark(provider, infra.operators, self._benchmark, minutes.minutes, windows[:, 0],
                                windows[:, 1], freq=minutes.freq) if self._benchmark is not None else None
        account = level.account.level(freq.key, bench)
        self.inner = Level(freq, calendar, lo, bars, inner_exchange, account)
        self._inner_starts = list(bars)
        self._inner_ends = list(self.inner.ends())
        if isinstance(self.inner_executor, NestedExecutor):
            self.inner_executor._benchmark = self._benchmark
            self.inner_executor.infra = attrs.evolve(infra, exchange=inner_exchange, account=account,
                                                     calendar=BarCalendar(calendar, lo, len(bars), freq.name))
            self.inner_executor.level = self.inner
            self.inner_executor.decisions = []
            self.inner_executor._attach(self.inner)
        else:
            begin = getattr(self.inner_executor, "begin_run", None)
            if callable(begin):
                begin()

    def set_benchmark(self, benchmark: Any) -> None:
        """The benchmark the inner levels' reports compare with (a code, codes, a Series or None)."""
        self._benchmark = benchmark

    # -- the loop ---------------------------------------------------------------------------------------------

    def reset(self, infra: TradingInfra) -> None:
        """Bind to a run (the outermost executor: builds every level below) or to one outer bar's inner bars."""
        self.infra = infra
        if getattr(infra.account, "count_key", "") is None:  # the run's own account: this is the outermost level
            self.decisions = []
            self.level = Level(self.freq, infra.calendar.calendar, infra.calendar.offset, infra.calendar.bars,
                               infra.exchange, infra.account)  # fmt: skip
            self._attach(self.level)
        infra.account.indicator_config = self.indicator_config

    def execute(self, decision: TradeDecision, step: Step) -> list[Fill]:
        """Carry ``decision`` out over the inner bars of ``step``; close the bar; return the inner fills."""
        infra, inner, bounds = self.infra, self.inner, self._bounds
        assert infra is not None and inner is not None and bounds is not None, "reset() first"
        if self.track_data:
            self.decisions.append((step.start, decision))
        position = infra.account.position
        if self.settle_type == "cash":
            position.settle_start()
        g = infra.exchange.base + step.index
        a, b = int(bounds[g, 0]), int(bounds[g, 1])
        calendar = WindowCalendar(inner.calendar, inner.offset + a, b - a, inner.freq.name)
        exchange = inner.exchange.window(a, b)
        inner_infra = attrs.evolve(infra, exchange=exchange, account=inner.account, calendar=calendar)
        strategy, executor = self.inner_strategy, self.inner_executor
        executor.reset(inner_infra)
        strategy.reset(inner_infra)
        set_parent = getattr(strategy, "set_parent", None)
        if callable(set_parent):
            set_parent(decision, step)
        post = getattr(strategy, "post_exe_step", None)
        first, last = range_of(decision, calendar)
        empty = not any(order.amount > 1e-6 for order in decision.orders)
        tables = inner.account.tables
        starts, ends = self._inner_starts, self._inner_ends
        windows = exchange.minute_windows
        steps: list[tuple[OrderTable, int, int, TradeDecision]] = []
        fills: list[Fill] = []
        for i in range(b - a):
            if empty and self.skip_empty_decision:
                break
            if self.align_range_limit and not first <= i <= last:
                continue
            inner_step = Step(i, starts[a + i], ends[a + i])
            inner_decision = inherit(decision, strategy.generate_trade_decision(inner_step))
            recorded = len(tables) if tables is not None else 0
            inner_fills = list(executor.execute(inner_decision, inner_step))
            if callable(post):
                post(inner_fills)
            fills.extend(inner_fills)
            if tables is not None and len(tables) > recorded:
                table = tables[-1]
            else:  # an executor that keeps no indicators of its own
                table = OrderTable.from_fills(inner_fills)
            lo, hi = self._base_rows(int(windows[i, 0]), int(windows[i, 1]), inner_decision)
            steps.append((table, lo, hi, inner_decision))
        done = getattr(strategy, "post_upper_level_exe_step", None)
        if callable(done):
            done()
        table = OrderTable.aggregate(steps, decision.orders, self._base_price)
        infra.account.update_bar_end(step.index, infra.exchange, fills, table)
        if self.settle_type == "cash":
            position.settle_commit()
        if self.verbose or self.indicator_config.get("show_indicator"):
            ffr, pa, pos, *_ = infra.account.indicators[-1]
            logger.info("[Indicator(%s) %s]: FFR: %s, PA: %s, POS: %s", self.freq.key, step.start, ffr, pa, pos)
        return fills

    def _base_rows(self, lo: int, hi: int, decision: TradeDecision) -> tuple[int, int]:
        """The minute rows ``[lo, hi)`` of an inner step cut to its decision's clock-time range (Qlib's
        ``clip_time_range``): where its base price is measured."""
        found = decision_range(decision)
        if not isinstance(found, TradeRangeByTime) or hi <= lo:
            return lo, hi
        assert self.inner is not None
        minutes = self.inner.exchange.minutes
        first, last = found.clip(minutes.minutes[lo], minutes.minutes[hi - 1])
        clo, chi = minutes.rows_between(first, last)
        return max(lo, clo), max(max(lo, clo), min(hi, chi))

    def _base_price(self, name: str, direction: Direction, lo: int, hi: int, decision: TradeDecision) -> tuple[
            float, float]:  # fmt: skip
        """The base price of ``name`` over the minute rows ``[lo, hi)`` of an inner step (see :meth:`_base_rows`)."""
        assert self.inner is not None
        exchange = self.inner.exchange
        j = exchange.col(name)
        if j is None or hi <= lo:
            return math.nan, 0.0
        num, den = exchange.minutes.base_sums(direction, self._agg)
        weight = den[hi, j] - den[lo, j]
        if not weight > 0:
            return math.nan, 0.0
        return float((num[hi, j] - num[lo, j]) / weight), float(weight)


def level_results(executor: Any) -> Sequence[Level]:
    """The levels of a run's executor, outermost first (empty for a plain executor)."""
    return executor.levels() if isinstance(executor, NestedExecutor) else []
