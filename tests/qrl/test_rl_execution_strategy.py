"""``rl_execution`` (issue 15): a briefly trained order-execution checkpoint as the inner strategy of a nested
backtest — its decisions at the interval starts, every parent order finished by the outer bar's last inner step,
no look-ahead into minute bars that have not started, and wrong checkpoints refused when the strategy is built."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from qbacktest.backtest import run_backtest
from qrl import config as rlconfig
from qrl import workflow

from qcore.cli import cli
from qcore.errors import ConfigError
from qcore.kernel import Kernel
from tests.qbacktest.nested_market import QLIB_EXCHANGE, healthy, orders_file, patch_minutes

TRAIN_YAML = """\
env: execution
data:
  provider_uri: {store}
  instruments: all
  splits: {{train: 3, valid: 1, test: 2}}
env_kwargs: {{side: sell, amount: 2000, n_steps: 8, action: {{name: categorical, kwargs: {{n: 5, max_multiple: 4.0}}}}}}
algorithm: {{name: ppo, hidden_sizes: [16]}}
trainer: {{epochs: 1, epoch_steps: 64, collect_steps: 32, n_envs: 1, valid_episodes: 2, seed: 0}}
output: {{dir: {out}}}
"""


@pytest.fixture(scope="module")
def kernel() -> Kernel:
    return Kernel.load(use_env=False)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("rlexec") / "store"
    result = CliRunner().invoke(cli, ["data", "synth", "--out", str(root), "--instruments", "4", "--days", "6",
                                      "--seed", "3", "--freq", "1min"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return root


@pytest.fixture(scope="module")
def checkpoint(store: Path, kernel: Kernel, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An execution policy trained very briefly on the first days of the minute store."""
    root = tmp_path_factory.mktemp("rlexec_train")
    path = root / "rl.yaml"
    path.write_text(TRAIN_YAML.format(store=store, out=root / "run"))
    result = workflow.train(rlconfig.load(path, kernel), kernel)
    return Path(result["checkpoints"]["best"])


def _nested(kernel: Kernel, checkpoint: Path, inner_freq: str = "30min", **kwargs):
    return kernel.create("executor", "NestedExecutor", time_per_step="day",
                         inner_executor={"class": "SimulatorExecutor", "kwargs": {"time_per_step": inner_freq}},
                         inner_strategy={"class": "rl_execution", "kwargs": {"checkpoint": str(checkpoint), **kwargs}})


def _run(kernel: Kernel, store: Path, checkpoint: Path, tmp_path: Path, *, inner_freq: str = "30min",
         names: int = 2, amount: float = 30000, wrap_state: list | None = None):
    """Buy ``amount`` of ``names`` healthy stocks on the store's fifth day through day → ``inner_freq`` bars."""
    provider = kernel.create("data_provider", "qlib_bin", provider_uri=str(store))
    days = provider.calendar("day")
    chosen = healthy(provider, days[4], names)
    rows = [(str(days[4].date()), name, amount, "buy") for name in chosen]
    strategy = kernel.create("strategy", "OrderReplay", file=str(orders_file(tmp_path / "orders.csv", rows)))
    executor = _nested(kernel, checkpoint, inner_freq)
    inner = executor.inner_strategy
    if wrap_state is not None:  # record every observation the policy is shown
        state = inner.state

        def recording(view):
            obs = state(view)
            wrap_state.append((view.step, view.seen_prices().copy(), obs))
            return obs

        inner.state = recording
    result = run_backtest(provider, strategy, executor, start=days[3], end=days[5], account=1e7, benchmark=None,
                          exchange_kwargs=QLIB_EXCHANGE, kernel=kernel)  # fmt: skip
    return result, inner, provider, days[4], chosen


def test_the_policy_splits_each_parent_order_over_the_30_minute_bars(kernel, store, checkpoint, tmp_path) -> None:
    result, inner, _, day, names = _run(kernel, store, checkpoint, tmp_path)
    assert list(result.levels) == ["1day", "30min"]
    half = result.levels["30min"].orders.dropna(subset=["amount"])
    requests = pd.DataFrame(inner.requests, columns=["bar", "instrument", "k", "request"])
    for name in names:
        mine = requests[requests["instrument"] == name]
        # eight 30-minute bars, eight policy steps: one decision per bar while the order is unfinished
        bars = pd.DatetimeIndex(mine["bar"])
        assert list(mine["k"]) == list(range(len(mine))) and (bars.normalize() == day).all()
        orders = half.xs(name, level="instrument")
        last = bars.max()
        assert orders.index.max() == last == pd.Timestamp(day) + pd.Timedelta("14:30:00") or \
            orders["deal_amount"].sum() == pytest.approx(30000, rel=1e-9)
        # each inner order is what the policy asked for its interval (the last bar: all that remains)
        asked = mine.set_index("bar")["request"]
        early = asked[(asked.index < last) & (asked > 1e-5)]
        np.testing.assert_allclose(orders["amount"].reindex(early.index), early, rtol=1e-9)
        dealt = orders["deal_amount"].fillna(0.0)
        if last in orders.index:
            assert orders.loc[last, "amount"] == pytest.approx(30000 - dealt[dealt.index < last].sum(), rel=1e-9)
        # the first decision saw no bar of the day: the state interpreter's empty history, the whole order left
        view_obs = inner.state(_first_view(inner, 30000))
        import torch

        with torch.no_grad():
            first = inner.action(_first_view(inner, 30000), inner.policy.compute_action(view_obs))
        assert mine["request"].iloc[0] == pytest.approx(first)
    # the daily level's order indicators sum the inner deals
    day_orders = result.levels["1day"].orders.dropna(subset=["amount"])
    for name in names:
        assert day_orders.xs(name, level="instrument")["deal_amount"].iloc[0] == pytest.approx(
            half.xs(name, level="instrument")["deal_amount"].sum(), rel=1e-9)


def _first_view(inner, amount: float):
    from qrl.execution.simulator import Order as ParentOrder
    from qrl.execution.strategy import PolicyView

    return PolicyView(ParentOrder(0, 0, 1, amount), inner.n_steps, 0, 0.0, np.empty(0), inner.lot_size)


def test_one_minute_bars_hear_the_policy_at_each_interval_start(kernel, store, checkpoint, tmp_path) -> None:
    result, inner, _, day, names = _run(kernel, store, checkpoint, tmp_path, inner_freq="1min", names=1,
                                        amount=20000)  # fmt: skip
    minute = result.levels["1min"].orders.dropna(subset=["amount"])
    requests = pd.DataFrame(inner.requests, columns=["bar", "instrument", "k", "request"])
    starts = ["09:30", "10:00", "10:30", "11:00", "13:00", "13:30", "14:00", "14:30"]
    expected = [day + pd.Timedelta(f"{t}:00") for t in starts]
    assert list(pd.DatetimeIndex(requests["bar"])) == expected[: len(requests)]
    # within an interval the request is spread over its 30 bars (shortfall re-targeted), never more than asked
    orders = minute.xs(names[0], level="instrument")
    first = requests["request"].iloc[0]
    morning = orders[orders.index < expected[1]]
    assert morning["deal_amount"].fillna(0).sum() <= first + 1e-6
    assert morning["amount"].iloc[0] == pytest.approx(first / 30, rel=1e-9)
    # the order ends fully dealt, or the day's last minute asks for all that remains
    dealt = orders["deal_amount"].fillna(0)
    close = day + pd.Timedelta("14:59:00")
    if dealt.sum() < 20000 - 1e-6:
        assert orders.index[-1] == close
        assert orders["amount"].iloc[-1] == pytest.approx(20000 - dealt.iloc[:-1].sum(), rel=1e-9)


def test_changing_later_minutes_changes_no_earlier_order(kernel, store, checkpoint, tmp_path) -> None:
    seen_a: list = []
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    base, _, provider, day, names = _run(kernel, store, checkpoint, tmp_path / "a", names=1, wrap_state=seen_a)
    changed = tmp_path / "changed"
    shutil.copytree(store, changed)
    after = day + pd.Timedelta("13:00:00")  # everything after the 11:00 bar (11:00 .. 11:29) of the day
    price = float(provider.load(["vwap"], names, after, after, "1min")["vwap"][0, 0])
    patch_minutes(changed, names[0], {"vwap": price * 1.05, "close": price * 1.05}, after,
                  day + pd.Timedelta("14:59:00"))  # fmt: skip
    seen_b: list = []
    other, *_ = _run(kernel, changed, checkpoint, tmp_path / "b", names=1, wrap_state=seen_b)
    a = base.levels["30min"].orders.dropna(subset=["amount"])
    b = other.levels["30min"].orders.dropna(subset=["amount"])
    early_a, early_b = a[a.index.get_level_values(0) < after], b[b.index.get_level_values(0) < after]
    assert len(early_a) == 4
    pd.testing.assert_frame_equal(early_a, early_b)
    # the decision at 13:00 saw only the minutes before it (09:30 .. 11:29): unchanged as well
    assert len(seen_a[4][1]) == 120
    np.testing.assert_array_equal(seen_a[4][2], seen_b[4][2])
    # the policy does read the minutes once they have passed: the 13:30 observation differs
    assert not np.array_equal(seen_a[5][2], seen_b[5][2])


def test_observed_prices_are_the_minutes_before_the_step(kernel, store, checkpoint, tmp_path) -> None:
    _, inner, provider, _, names = _run(kernel, store, checkpoint, tmp_path, names=1)
    # the last outer bar is bound: its inner bars are the sixth day's; pretend the parent order is there
    from qcore.trading import Direction, Order, Step, TradeDecision

    bars = inner.infra.calendar.bars
    inner.set_parent(TradeDecision((Order(names[0], 1000, Direction.BUY),)), Step(0, bars[0], bars[1]))
    step = Step(3, bars[3], bars[4])
    seen = inner.observed_prices(names, step)[names[0]]
    minutes = provider.calendar("1min")
    window = minutes[(minutes >= bars[0]) & (minutes < bars[3])]
    panel = provider.load(["vwap", "factor"], names, window[0], window[-1], "1min")
    raw = np.asarray(panel["vwap"][:, 0], dtype=np.float64) / np.asarray(panel["factor"][:, 0], dtype=np.float64)
    np.testing.assert_allclose(seen, raw, rtol=1e-12)
    assert len(seen) == 90


def test_a_checkpoint_of_another_env_is_refused_when_built(kernel, checkpoint, tmp_path) -> None:
    wrong = tmp_path / "wrong.pt"
    shutil.copy(checkpoint, wrong)
    meta = json.loads(checkpoint.with_suffix(".json").read_text())
    wrong.with_suffix(".json").write_text(json.dumps({**meta, "env": "portfolio"}))
    with pytest.raises(ConfigError, match="'portfolio' policy; rl_execution needs an execution policy") as info:
        _nested(kernel, wrong)
    assert info.value.path == "executor.kwargs.inner_strategy.kwargs.checkpoint"
    # a checkpoint from before rl_execution (no record of its interpreters) asks to be retrained
    old = {k: v for k, v in meta.items() if k != "execution"}
    wrong.with_suffix(".json").write_text(json.dumps(old))
    with pytest.raises(ConfigError, match="retrain"):
        kernel.create("strategy", "rl_execution", checkpoint=str(wrong))
    # interpreters that do not fit the stored network
    bad = {**meta, "execution": {**meta["execution"], "state": {"name": "recent_bars", "kwargs": {"window": 5}}}}
    wrong.with_suffix(".json").write_text(json.dumps(bad))
    with pytest.raises(ConfigError, match="cannot be loaded"):
        kernel.create("strategy", "SAOEIntStrategy", checkpoint=str(wrong))


def test_qcore_backtest_runs_rl_execution_from_a_yaml(kernel, store, checkpoint, tmp_path) -> None:
    provider = kernel.create("data_provider", "qlib_bin", provider_uri=str(store))
    days = provider.calendar("day")
    names = sorted(n for n in provider.universe("all") if not n.startswith("SH000"))
    index = pd.MultiIndex.from_product([days, names], names=["datetime", "instrument"])
    score = pd.Series(np.random.default_rng(0).normal(size=len(index)), index=index, name="score")
    score.to_frame().to_parquet(tmp_path / "score.parquet")
    (tmp_path / "bt.yaml").write_text(f"""\
port_analysis_config:
  strategy: {{class: TopkDropoutStrategy, kwargs: {{signal: <PRED>, topk: 2, n_drop: 1}}}}
  executor:
    class: NestedExecutor
    kwargs:
      time_per_step: day
      inner_strategy: {{class: rl_execution, kwargs: {{checkpoint: {checkpoint}}}}}
      inner_executor: {{class: SimulatorExecutor, kwargs: {{time_per_step: 30min}}}}
  backtest:
    account: 10000000
    benchmark: null
    exchange_kwargs: {{freq: 1min, limit_threshold: 0.095, deal_price: close}}
""")
    run = CliRunner().invoke(cli, ["backtest", "--provider-uri", str(store), "--score", str(tmp_path / "score.parquet"),
                                   "--config", str(tmp_path / "bt.yaml"), "--out", str(tmp_path / "out")])
    assert run.exit_code == 0, run.output
    half = pd.read_parquet(tmp_path / "out" / "orders_30min.parquet")
    day = pd.read_parquet(tmp_path / "out" / "orders_1day.parquet")
    assert len(half.dropna(subset=["amount"])) > 0
    assert day["deal_amount"].fillna(0).sum() == pytest.approx(half["deal_amount"].fillna(0).sum(), rel=1e-9)
