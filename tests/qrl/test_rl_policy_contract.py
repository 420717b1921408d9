"""``rl_policy`` on the kernel's public trading contracts: a :class:`qcore.trading.WeightStrategy` that reads only
``infra.provider``, ``infra.operators``, ``infra.calendar`` and ``infra.account.position``, rebuilds its policy
through the creating kernel's ``rl_algorithm`` registry and observes features with the checkpoint's train-split
scaler, never looking past a bar's information date. Run here on a protocol-only infrastructure (no backtest)."""

from __future__ import annotations

import ast
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from qrl.data import load_daily, planted_daily
from qrl.envs import make_portfolio_env
from qrl.portfolio.env import PortfolioEnv, weights_from_action
from qrl.portfolio.strategy import RLPolicyStrategy
from qrl.scaling import FeatureScaler
from qrl.trainer import TrainSpec, policy_fn, train

from qcore.errors import ConfigError
from qcore.kernel import Kernel
from qcore.trading import Account, BarCalendar, Position, Step, TradingInfra, WeightStrategy
from tests.qbacktest.conftest import MemoryProvider

NAMES = ("SH600000", "SH600001", "SH600002")
FEATURES = {"mom5": "$close/Ref($close, 5) - 1", "ret1": "$close/Ref($close, 1) - 1"}
QRL = Path(__file__).resolve().parents[2] / "plugins" / "qrl" / "qrl"


def _provider(names=NAMES, days: int = 120) -> MemoryProvider:
    planted = planted_daily(days=days, seed=0)
    dates = pd.bdate_range("2021-01-04", periods=days)
    close = pd.DataFrame(planted.close, index=dates, columns=list(names))
    ones = pd.DataFrame(1.0, index=dates, columns=list(names))
    return MemoryProvider({"close": close, "open": close, "factor": ones, "volume": ones * 1e8})


class FakePosition:
    """A :class:`qcore.trading.Position` over fixed holdings ``{name: (amount, price)}``."""

    def __init__(self, cash: float, holdings: dict[str, tuple[float, float]]) -> None:
        self.cash = cash
        self.holdings = holdings

    def __contains__(self, instrument: object) -> bool:
        return instrument in self.holdings

    def __iter__(self) -> Iterator[str]:
        return iter(self.holdings)

    def __len__(self) -> int:
        return len(self.holdings)

    def amount(self, instrument: str) -> float:
        return self.holdings.get(instrument, (0.0, 0.0))[0]

    def sellable(self, instrument: str) -> float:
        return self.amount(instrument)

    def price(self, instrument: str) -> float:
        return self.holdings[instrument][1]

    def value(self) -> float:
        return self.cash + sum(a * p for a, p in self.holdings.values())

    def amounts(self) -> dict[str, float]:
        return {k: a for k, (a, _) in self.holdings.items()}

    def weights(self, only_stock: bool = False) -> dict[str, float]:
        total = self.value() - (self.cash if only_stock else 0.0)
        return {k: a * p / total for k, (a, p) in self.holdings.items()}


class FakeAccount:
    def __init__(self, position: FakePosition) -> None:
        self.init_cash = position.value()
        self.position = position


def _infra(provider, kernel, first: int, n_bars: int, position: FakePosition | None = None) -> TradingInfra:
    account = FakeAccount(position or FakePosition(1e7, {}))
    assert isinstance(account.position, Position) and isinstance(account, Account)
    return TradingInfra(exchange=object(), account=account,  # type: ignore[arg-type]  # rl_policy reads no quotes
                        calendar=BarCalendar(provider.calendar(), first, n_bars), provider=provider,
                        operators=kernel.registry("operator"))


def _targets(strategy, infra: TradingInfra) -> dict[pd.Timestamp, dict[str, float] | None]:
    strategy.reset(infra)
    bars = infra.calendar.bars
    ends = [*infra.calendar.calendar[infra.calendar.offset + 1 :], bars[-1] + pd.Timedelta(days=1)]
    return {bars[i]: strategy.target_weights(Step(i, bars[i], ends[i])) for i in range(len(bars))}


@pytest.fixture(scope="module")
def kernel() -> Kernel:
    return Kernel.load(use_env=False)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, kernel):
    provider = _provider()
    data = load_daily(provider, kernel.registry("operator"), None, list(NAMES), None, None, FEATURES)
    scaler = data.take(slice(0, 60)).fit_scaler()
    parts = {"train": data.take(slice(0, 60)), "valid": data.take(slice(60, 80))}
    parts = {k: v.with_scaler(scaler) for k, v in parts.items()}

    def make(split: str):
        return make_portfolio_env(parts[split], episode_days=20 if split == "train" else None,
                                  sequential=split != "train")

    spec = TrainSpec(algorithm="ppo", epochs=1, epoch_steps=60, collect_steps=60, n_envs=1, valid_episodes=1,
                     hidden_sizes=(16,), seed=0)
    out = tmp_path_factory.mktemp("rl_policy_contract")
    meta = {"instruments": list(NAMES), "feature_names": list(FEATURES), "features": FEATURES,
            "scaler": scaler.to_dict(), "splits": {"train": ["2021-01-04", "2021-03-26"]}, "timing": "next_close"}
    res = train(make, "portfolio", spec, out_dir=out, extra_meta=meta, kernel=kernel)
    return provider, res.checkpoints["last"], scaler


def test_a_weight_strategy_built_through_the_kernel(trained, kernel) -> None:
    _, ckpt, _ = trained
    strategy = kernel.create("strategy", "rl_policy", checkpoint=str(ckpt), order_generator="OrderGenWInteract")
    assert isinstance(strategy, WeightStrategy)
    assert strategy.kernel is kernel and strategy.risk_degree == 0.95
    assert strategy.order_generator == "with_interact" and strategy.instruments() == list(NAMES)
    assert kernel.registry("strategy").entry("rl_policy").plugin == "qrl"
    # qrl imports no other plugin and loads no second kernel
    for path in QRL.rglob("*.py"):
        tree = ast.parse(path.read_text())
        imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
        imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        assert not any(m.split(".")[0] == "qbacktest" for m in imported), path
        assert "Kernel.load" not in path.read_text(), path


def test_targets_are_the_policy_weights_at_the_information_date(trained, kernel) -> None:
    provider, ckpt, scaler = trained
    strategy = kernel.create("strategy", "rl_policy", checkpoint=str(ckpt))
    holdings = {NAMES[0]: (20_000.0, 11.0), "SZ000001": (1_000.0, 5.0)}  # a name the policy does not know
    position = FakePosition(5e6, holdings)
    targets = _targets(strategy, _infra(provider, kernel, 80, 30, position))
    dates = provider.calendar()
    # an independent observation: the env over the store's data up to the information date, train-split scaler
    data = load_daily(provider, kernel.registry("operator"), None, list(NAMES), None, dates[108], FEATURES)
    env = PortfolioEnv(data.with_scaler(scaler))
    act = policy_fn(_algorithm(kernel, ckpt, env))
    for i, (bar, got) in enumerate(targets.items()):
        row = 80 + i - 1  # the previous bar's close
        assert got is not None and set(got) == set(NAMES) and sum(got.values()) <= 1.0 + 1e-9
        close = data.close[row, 0]
        shares = np.array([20_000.0 * 11.0 / close, 0.0, 0.0])
        obs = env.observation(row, position.value() - 20_000.0 * 11.0, shares)
        want = weights_from_action(act(obs), 3)
        assert np.allclose([got[n] for n in NAMES], want[:3]), bar
        assert strategy.targets[dates[row]] == got
    # the first bar of the calendar has no information date: no decision
    assert next(iter(_targets(strategy, _infra(provider, kernel, 0, 5)).values())) is None


def _algorithm(kernel, ckpt, env):
    from qrl import checkpoint
    from qrl.trainer import build_algorithm

    meta = checkpoint.read_meta(ckpt)
    alg = build_algorithm(TrainSpec(algorithm=meta["algorithm"], hidden_sizes=tuple(meta["hidden_sizes"])), env,
                          kernel)
    checkpoint.load(ckpt, alg)
    return alg


def test_observations_use_the_sidecar_scaler(trained, kernel, monkeypatch) -> None:
    provider, ckpt, scaler = trained

    def no_refit(*args, **kwargs):
        raise AssertionError("rl_policy refitted a scaler on the backtest's data")

    monkeypatch.setattr(FeatureScaler, "fit", no_refit)
    strategy = kernel.create("strategy", "rl_policy", checkpoint=str(ckpt))
    strategy.reset(_infra(provider, kernel, 90, 20))
    assert strategy.scaler == scaler
    assert np.array_equal(strategy.env.features, scaler.transform(strategy.env.data.features))
    assert strategy.env.data.dates[-1] == provider.calendar()[108]  # loaded up to the last information date only


def test_targets_ignore_data_after_the_information_date(trained, kernel) -> None:
    provider, ckpt, _ = trained
    base = _targets(kernel.create("strategy", "rl_policy", checkpoint=str(ckpt)), _infra(provider, kernel, 80, 35))
    rng = np.random.default_rng(0)
    dates = provider.calendar()
    for cut in (85, 96, 110):
        other = _provider()
        for frame in other.data.values():
            frame.iloc[cut + 1 :] *= rng.lognormal(0, 0.3, size=frame.iloc[cut + 1 :].shape)
        got = _targets(kernel.create("strategy", "rl_policy", checkpoint=str(ckpt)), _infra(other, kernel, 80, 35))
        same = [bar for bar in base if bar <= dates[cut + 1]]  # bars whose information date is <= the cut
        assert len(same) == cut + 2 - 80
        for bar in same:
            assert got[bar] == base[bar], (cut, bar)
        assert any(got[bar] != base[bar] for bar in base if bar > dates[cut + 1])


def test_builds_the_policy_through_the_creating_kernels_registry(trained, kernel) -> None:
    provider, ckpt, _ = trained
    local = Kernel.load(use_env=False)
    registry = local.registry("rl_algorithm")
    real = registry.get("ppo")
    calls = []

    def spy(**kwargs):
        calls.append(sorted(kwargs))
        return real(**kwargs)

    registry.add("ppo", spy, plugin="spy", override=True)
    strategy = local.create("strategy", "rl_policy", checkpoint=str(ckpt))
    strategy.reset(_infra(provider, local, 90, 5))
    assert calls == [["act_space", "hidden_sizes", "obs_space"]]
    unbound = RLPolicyStrategy(checkpoint=str(ckpt))  # built by hand, without a kernel
    with pytest.raises(ConfigError, match="rl_algorithm registry"):
        unbound.reset(_infra(provider, kernel, 90, 5))


def test_bad_inputs_are_config_errors(trained, kernel, tmp_path: Path) -> None:
    provider, ckpt, _ = trained
    strategy = kernel.create("strategy", "rl_policy", checkpoint=str(ckpt))
    with pytest.raises(ConfigError, match="lacks"):
        strategy.reset(_infra(_provider(("SZ000001", "SZ000002", "SZ000003")), kernel, 90, 5))
    no_store = TradingInfra(exchange=object(), account=FakeAccount(FakePosition(1e6, {})),  # type: ignore[arg-type]
                            calendar=BarCalendar(provider.calendar(), 90, 5))
    with pytest.raises(ConfigError, match="provider and the operator registry"):
        strategy.reset(no_store)
    for kwargs, message in (({"risk_degree": 1.5}, "risk_degree"), ({"order_generator": "soon"}, "order_generator"),
                            ({"checkpoint": str(tmp_path / "none.pt")}, "not found")):
        with pytest.raises(ConfigError, match=message):
            kernel.create("strategy", "rl_policy", **{"checkpoint": str(ckpt), **kwargs})
    copy = tmp_path / "best.pt"
    shutil.copy(ckpt, copy)
    meta = json.loads(ckpt.with_suffix(".json").read_text())
    wider = {**meta, "features": {**FEATURES, "ma10": "$close/Mean($close, 10) - 1"}}
    wider["feature_names"] = list(wider["features"])
    wider["scaler"] = FeatureScaler(tuple(wider["features"]), [0.0] * 3, [1.0] * 3).to_dict()
    copy.with_suffix(".json").write_text(json.dumps(wider))
    with pytest.raises(ConfigError, match="shapes"):
        kernel.create("strategy", "rl_policy", checkpoint=str(copy)).reset(_infra(provider, kernel, 90, 5))
    for key in ("scaler", "instruments"):
        old = {k: v for k, v in meta.items() if k != key}
        copy.with_suffix(".json").write_text(json.dumps(old))
        with pytest.raises(ConfigError, match="retrain it") as info:
            kernel.create("strategy", "rl_policy", checkpoint=str(copy))
        assert info.value.path == "strategy.kwargs.checkpoint"
