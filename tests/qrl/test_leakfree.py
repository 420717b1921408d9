"""The leak-free RL protocol (issue #20): train-only feature scalers stored with the checkpoint, a validation split
for checkpoint selection, explicit train / valid / test splits, a tradable mask instead of back-filled prices and
the backtest's execution timing in the environments."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from qrl.config import validate
from qrl.data import DailyData, load_daily, planted_daily
from qrl.portfolio.env import PortfolioEnv, weights_from_action
from qrl.workflow import load_data

from qcore.config import parse_yaml
from qcore.errors import ConfigError
from tests.qbacktest.conftest import MemoryProvider

PORTFOLIO = """\
env: portfolio
data:
  planted: {days: 100, seed: 0}
  splits: {train: 60, valid: 20, test: 20}
algorithm: {name: ppo, hidden_sizes: [8]}
trainer: {epochs: 1, epoch_steps: 60, collect_steps: 60, n_envs: 1, valid_episodes: 1, seed: 0}
"""


def _cfg(kernel, text: str = PORTFOLIO, **replace: str):
    for old, new in replace.items():
        text = text.replace(old, new)
    return validate(parse_yaml(text, source="rl.yaml"), kernel)


def _store(days: int = 40, listing: int | None = None) -> MemoryProvider:
    """Three instruments with trending closes; the third lists on day ``listing`` (NaN before, as a store has)."""
    rng = np.random.default_rng(5)
    dates = pd.bdate_range("2021-01-04", periods=days)
    names = ["SH600000", "SH600001", "SH600002"]
    close = pd.DataFrame(10 * np.exp(np.cumsum(rng.normal(0.001, 0.01, (days, 3)), axis=0)), index=dates,
                         columns=names)
    ones = pd.DataFrame(1.0, index=dates, columns=names)
    fields = {"close": close, "open": close.shift(1).fillna(close), "factor": ones, "volume": ones * 1e6}
    spans = {names[2]: (dates[listing], dates[-1])} if listing is not None else None
    return MemoryProvider(fields, spans=spans)


# -- 1. feature scalers: fitted on the train split only, stored in the sidecar, reused -------------------------------


def test_features_are_scaled_with_the_train_split_only(kernel) -> None:
    from qrl.workflow import split_data

    cfg = _cfg(kernel)
    data = load_data(cfg, None)
    raw = planted_daily(days=100, seed=0).features
    assert data.scaler is not None
    assert np.allclose(data.scaler.mean, raw[:60].mean(axis=(0, 1)))
    assert np.allclose(data.scaler.std, raw[:60].std(axis=(0, 1)))
    # what the train and valid environments observe does not move when the test rows change
    full = planted_daily(days=100, seed=0)
    shocked = DailyData(full.dates, full.instruments, full.close, full.features.copy(), full.limit, full.feature_names,
                        open=full.open)
    shocked.features[80:] *= 50.0
    again = split_data(cfg, shocked)
    for split in ("train", "valid"):
        assert np.array_equal(again[split].observed_features(), data[split].observed_features()), split
    assert not np.array_equal(again["test"].observed_features(), data["test"].observed_features())


def test_store_features_are_raw_until_scaled(kernel) -> None:
    provider = _store()
    data = load_daily(provider, kernel.registry("operator"), None, "all", None, None,
                      {"ret1": "$close/Ref($close, 1) - 1"})
    close = provider.data["close"].to_numpy()
    assert np.allclose(data.features[1:, :, 0], close[1:] / close[:-1] - 1, atol=1e-6)
    scaler = data.take(slice(0, 20)).fit_scaler()
    z = data.with_scaler(scaler).observed_features()
    assert abs(float(z[:20].mean())) < 1e-5 and z.dtype == np.float32
    assert float(np.abs(z[:20]).max()) <= scaler.clip


def test_scaler_round_trips_and_rejects_garbage() -> None:
    from qrl.scaling import FeatureScaler

    scaler = FeatureScaler(("a", "b"), [0.5, -1.0], [2.0, 1.0])
    assert FeatureScaler.from_dict(json.loads(json.dumps(scaler.to_dict()))) == scaler
    assert np.allclose(scaler.transform(np.array([[2.5, np.nan]])), [[1.0, 0.0]])
    from qcore.errors import QcoreError

    for bad in ({"names": ["a"], "mean": [0.0]}, {"names": ["a"], "mean": [0.0], "std": [0.0]},
                {"names": ["a"], "mean": [0.0, 1.0], "std": [1.0]}):
        with pytest.raises(QcoreError, match="not a valid feature scaler"):
            FeatureScaler.from_dict(bad)


# -- 2. a validation split: the best checkpoint is chosen on it; training never reads test rows ----------------------


def test_training_reads_no_test_row_and_selects_on_valid(kernel, tmp_path: Path, monkeypatch) -> None:
    import qrl.trainer
    from qrl import workflow

    seen: list[tuple[object, pd.DatetimeIndex]] = []
    real = qrl.trainer.train

    def spy(make, *args, **kwargs):
        def watched(split):
            env = make(split)
            seen.append((split, env.data.dates))
            return env

        with pytest.raises(KeyError, match="not 'test'"):
            make("test")
        return real(watched, *args, **kwargs)

    monkeypatch.setattr(qrl.trainer, "train", spy)
    cfg = _cfg(kernel, PORTFOLIO + f"output: {{dir: {tmp_path / 'out'}}}\n")
    out = workflow.train(cfg, kernel)
    dates = planted_daily(days=100, seed=0).dates
    test_dates = set(dates[80:])
    assert seen and {split for split, _ in seen} == {"train", "valid"}
    assert not any(test_dates & set(d) for _, d in seen), "training built an environment over test rows"
    assert out["splits"] == {"train": ["2020-01-02", str(dates[59].date())],
                             "valid": [str(dates[60].date()), str(dates[79].date())],
                             "test": [str(dates[80].date()), str(dates[99].date())]}
    expected = {"buy_and_hold", "equal_weight", "min_variance", "max_sharpe", "random", "cash", "policy"}
    assert set(out["metrics"]) == set(out["valid"]) == expected
    meta = json.loads((tmp_path / "out" / "best.json").read_text())
    assert meta["selected_on"] == "valid" and meta["splits"] == out["splits"]
    # the reported best reward is the chosen checkpoint's reward on the validation split
    growth = np.log(1 + out["valid"]["policy"]["cumulative_return"]) * 100.0
    assert out["best_valid_reward"] == pytest.approx(growth, rel=1e-4, abs=1e-4)


def test_eval_reuses_the_sidecar_scaler_and_refuses_seen_rows(kernel, tmp_path: Path, monkeypatch) -> None:
    from qrl import workflow
    from qrl.scaling import FeatureScaler

    cfg = _cfg(kernel, PORTFOLIO + f"output: {{dir: {tmp_path / 'out'}}}\n")
    trained = workflow.train(cfg, kernel)
    best = Path(trained["checkpoints"]["best"])
    meta = json.loads(best.with_suffix(".json").read_text())
    assert FeatureScaler.from_dict(meta["scaler"]) == load_data(cfg, None).scaler

    def no_refit(*args, **kwargs):
        raise AssertionError("evaluation refitted the feature scaler")

    monkeypatch.setattr(FeatureScaler, "fit", no_refit)
    res = workflow.evaluate(cfg, best, kernel)
    assert res["metrics"]["policy"] == pytest.approx(trained["metrics"]["policy"])
    overlapping = _cfg(kernel, PORTFOLIO, **{"{train: 60, valid: 20, test: 20}": "{train: 30, valid: 10, test: 60}"})
    with pytest.raises(ConfigError, match=r"overlaps the (train|valid) split") as info:
        workflow.evaluate(overlapping, best, kernel)
    assert info.value.path == "data.splits.test"
    del meta["scaler"]
    best.with_suffix(".json").write_text(json.dumps(meta))
    with pytest.raises(Exception, match="no feature scaler"):
        workflow.evaluate(cfg, best, kernel)


# -- 3. splits in the config: train / valid / test dates, ordered, not overlapping; split_date is refused -----------


@pytest.mark.parametrize(
    ("splits", "path", "message"),
    [
        ("split_date: 2020-03-01", "data.split_date", "split_date is not supported"),
        ("train_days: 60", "data.train_days", "train_days was replaced by data.splits"),
        ("splits: {train: 60, valid: 20}", "data.splits", "missing the test split"),
        ("splits: {train: 60, valid: 20, test: 20, extra: 3}", "data.splits.extra", "unknown split"),
        ("splits: {train: 60, valid: [2020-04-01, 2020-05-01], test: 20}", "data.splits.train", "not both"),
        ("splits: {train: [2020-01-02, 2020-03-31], valid: [2020-03-15, 2020-04-30], test: [2020-05-01, 2020-05-20]}",
         "data.splits.valid", "must start after the train split ends"),
        ("splits: {train: [2020-01-02, 2020-03-31], valid: [2020-05-01, 2020-05-20], test: [2020-04-01, 2020-04-30]}",
         "data.splits.test", "must start after the valid split ends"),
        ("splits: {train: [2020-03-31, 2020-01-02], valid: [2020-04-01, 2020-04-30], test: [2020-05-01, 2020-05-20]}",
         "data.splits.train", "reversed"),
        ("splits: {train: [2020-01-02, 2020-02-30], valid: [2020-04-01, 2020-04-30], test: [2020-05-01, 2020-05-20]}",
         "data.splits.train.1", "invalid date"),
        ("splits: {train: 0, valid: 20, test: 20}", "data.splits.train", "at least one day"),
    ],
)
def test_bad_splits_are_config_errors(kernel, splits: str, path: str, message: str) -> None:
    text = PORTFOLIO.replace("splits: {train: 60, valid: 20, test: 20}", splits)
    with pytest.raises(ConfigError, match=message) as info:
        validate(parse_yaml(text, source="rl.yaml"), kernel)
    assert info.value.path == path and info.value.line is not None


def test_a_config_without_splits_is_refused(kernel) -> None:
    with pytest.raises(ConfigError, match="data needs splits") as info:
        _cfg(kernel, PORTFOLIO.replace("  splits: {train: 60, valid: 20, test: 20}\n", ""))
    assert info.value.path == "data"
    trainer = PORTFOLIO.replace("valid_episodes: 1", "test_episodes: 1")
    with pytest.raises(ConfigError, match="renamed valid_episodes") as info:
        _cfg(kernel, trainer)
    assert info.value.path == "trainer.test_episodes"


def test_date_splits_are_honoured(kernel) -> None:
    cfg = _cfg(kernel, PORTFOLIO, **{"{train: 60, valid: 20, test: 20}":
                                     "{train: [2020-01-06, 2020-03-31], valid: [2020-04-01, 2020-04-30], "
                                     "test: [2020-05-01, 2020-05-15]}"})
    data = load_data(cfg, None)
    assert data.dates == {"train": ["2020-01-06", "2020-03-31"], "valid": ["2020-04-01", "2020-04-30"],
                          "test": ["2020-05-01", "2020-05-15"]}
    assert data["valid"].dates[0] == pd.Timestamp("2020-04-01") and data["test"].dates[-1] == pd.Timestamp("2020-05-15")
    assert data["train"].dates[-1] < data["valid"].dates[0] and data["valid"].dates[-1] < data["test"].dates[0]
    # the scaler is the train range's, not the whole planted range's
    full = planted_daily(days=100, seed=0)
    rows = (full.dates >= "2020-01-06") & (full.dates <= "2020-03-31")
    assert np.allclose(data.scaler.mean, full.features[rows].mean(axis=(0, 1)))
    beyond = _cfg(kernel, PORTFOLIO, **{"{train: 60, valid: 20, test: 20}": "{train: 60, valid: 20, test: 30}"})
    with pytest.raises(ConfigError, match="need 110 trading days, the data has 100") as info:
        load_data(beyond, None)
    assert info.value.path == "data.splits"
    empty = _cfg(kernel, PORTFOLIO, **{"{train: 60, valid: 20, test: 20}":
                                       "{train: [2020-01-06, 2020-03-31], valid: [2020-04-01, 2020-04-30], "
                                       "test: [2021-05-01, 2021-05-15]}"})
    with pytest.raises(ConfigError, match="test split has 0 trading day") as info:
        load_data(empty, None)
    assert info.value.path == "data.splits.test"


# -- 4. no price before listing: a tradable mask ------------------------------------------------------------------


def test_no_price_before_listing_and_no_trade_while_not_tradable(kernel) -> None:
    provider = _store(listing=10)
    data = load_daily(provider, kernel.registry("operator"), None, "all", None, None,
                      {"ret1": "$close/Ref($close, 1) - 1"})
    late = 2
    assert np.isnan(data.close[:10, late]).all() and np.isfinite(data.close[10:, late]).all()
    assert not data.tradable[:10, late].any() and data.tradable[10:, late].all()
    assert data.tradable[:, :late].all()
    # suspended later: no quote that day, the price carries forward for valuation, the day is not tradable
    provider.data["close"].iloc[20, 0] = np.nan
    gap = load_daily(provider, kernel.registry("operator"), None, "all", None, None, {"r": "$close"})
    assert not gap.tradable[20, 0] and gap.close[20, 0] == gap.close[19, 0]
    env = PortfolioEnv(data.with_scaler(data.take(slice(0, 8)).fit_scaler()), initial_cash=100_000, sequential=True)
    obs, _ = env.reset()
    assert obs[1 + 2 * 3 + late] == 0.0 and obs[1 + 2 * 3] == 1.0  # the tradable mask is observed
    all_in_late = np.array([-1.0, -1.0, 1.0, -1.0])  # nearly everything on the unlisted name
    env.step(all_in_late)
    assert env.shares[late] == 0 and env.cash == pytest.approx(env.initial_cash)  # its weight stays in cash
    while env.t < 10:
        env.step(all_in_late)
    assert env.shares[late] > 0  # bought on its first quoted day


# -- 5. execution timing: the backtest's by default ---------------------------------------------------------------


@pytest.mark.parametrize(("timing", "row", "field"), [
    ("next_close", 1, "close"), ("next_open", 1, "open"), ("same_close", 0, "close")])
def test_portfolio_trades_at_the_timing_price(timing: str, row: int, field: str) -> None:
    data = planted_daily(days=30, seed=1)
    env = PortfolioEnv(data, initial_cash=1_000_000, sequential=True, timing=timing)
    env.reset()
    action = np.array([1.0, -1.0, -1.0, -1.0])
    env.step(action)
    prices = getattr(data, field)[row]
    assert env.shares[0] > 0
    spent = env.initial_cash - env.cash - env.total_cost
    assert spent == pytest.approx(env.shares @ prices, rel=1e-12)
    target = weights_from_action(action, 3)[0] * env.initial_cash
    assert env.shares[0] == np.floor(target / prices[0] / 100) * 100


def test_next_close_is_the_default_and_timing_is_validated(kernel) -> None:
    data = planted_daily(days=30, seed=1)
    assert PortfolioEnv(data).timing == "next_close"
    with pytest.raises(ConfigError, match="timing must be one of") as info:
        _cfg(kernel, PORTFOLIO + "env_kwargs: {timing: at_once}\n")
    assert info.value.path == "env_kwargs.timing"
    no_open = DailyData(data.dates, data.instruments, data.close, data.features, data.limit, data.feature_names)
    with pytest.raises(ValueError, match="next_open needs an open price"):
        PortfolioEnv(no_open, timing="next_open")


def test_execution_observation_shows_only_bars_before_the_trade() -> None:
    from qrl.data import planted_intraday
    from qrl.execution.simulator import ExecutionSimulator, Order

    data = planted_intraday(days=2, instruments=1, seed=0, bars=16)
    late = ExecutionSimulator(data, Order(0, 0, -1, 1_000), n_steps=4)
    assert late.timing == "next_close" and late.observed == 0
    late.execute(100)
    assert late.observed == 4 and np.array_equal(late.seen_prices(), data.price[0, 0, :4])
    same = ExecutionSimulator(data, Order(0, 0, -1, 1_000), n_steps=4, timing="same_close")
    assert same.observed == 1  # it sees the bar it then trades at
    with pytest.raises(ValueError, match="timing must be one of"):
        ExecutionSimulator(data, Order(0, 0, -1, 1_000), n_steps=4, timing="later")
