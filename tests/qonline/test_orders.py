"""qonline orders: the orders for D+1 equal a one-day backtest's decision on the same positions (on a store whose
D+1 repeats D, so both see the same quotes), limit-up/limit-down/suspended names are not traded, T+N lots and
hold_thresh are respected, the files are written once per inputs, and bad positions files are refused."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from qonline.positions import read_positions
from qonline.routine import orders, status
from qonline.store import OnlineFolder

from qcore import hookimpl
from qcore.cli import cli
from qcore.config import config_from_mapping
from qcore.errors import DataError
from qcore.kernel import Kernel
from tests.kernel.test_workflow import STORE, TinyFeatures, workflow

D = pd.Timestamp("2019-03-01")
NEXT = pd.Timestamp("2019-03-04")
LIMIT_UP, LIMIT_DOWN, SUSPENDED = "SH600012", "SH600016", "SH600017"
HELD = ("SH600016", "SH600017", "SH600021", "SH600022", "SH600023")


class T2Rules:
    """A test plugin: China's rules with T+2 settlement."""

    @hookimpl
    def qcore_register_market_rules(self, register: Any) -> None:
        from qdata_cn.rules import CNMarketRules

        class CNT2(CNMarketRules):
            settlement_days = 2

        register("cn_t2", CNT2)


def _patch_store(root: Path) -> None:
    """D+1 repeats D for every field; LIMIT_UP closed at +10%, LIMIT_DOWN at -10% and SUSPENDED had no bar on D."""
    calendar = pd.DatetimeIndex(pd.read_csv(root / "calendars" / "day.txt", header=None)[0])
    k = int(calendar.get_loc(D))
    for folder in (root / "features").iterdir():
        for path in folder.glob("*.day.bin"):
            data = np.fromfile(path, dtype="<f4")
            start = int(data[0])
            i = k - start + 1
            if not 1 <= i < len(data) - 1:
                continue
            name, field = folder.name.upper(), path.name.split(".")[0]
            if name == SUSPENDED:
                data[i] = np.nan
            elif field == "change" and name == LIMIT_UP:
                data[i] = 0.1
            elif field == "change" and name == LIMIT_DOWN:
                data[i] = -0.1
            data[i + 1] = data[i]
            data.tofile(path)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("orders") / "store"
    shutil.copytree(STORE, root)
    _patch_store(root)
    return root


@pytest.fixture(scope="module")
def kernel() -> Kernel:
    return Kernel.load(extra={"tiny": TinyFeatures(), "t2": T2Rules()}, use_env=False)


def _scores(provider: Any) -> pd.Series:
    names = sorted(provider.universe("csi_like"))
    values = np.random.default_rng(3).normal(size=len(names))
    scores = pd.Series(values, index=names)
    scores[LIMIT_UP] = 10.0  # the best name, but it closed at its upper limit
    scores[LIMIT_DOWN] = -10.0  # the worst names: planned sells that cannot execute
    scores[SUSPENDED] = -9.0
    index = pd.MultiIndex.from_product([[D], names], names=["datetime", "instrument"])
    return pd.Series(scores.to_numpy(), index=index, name="score")


def _config(tmp: Path, store: Path, kernel: Kernel, strategy: dict[str, Any], rules: str = "cn") -> Any:
    raw = workflow(tmp)
    raw["data"]["provider"]["kwargs"]["provider_uri"] = str(store)
    raw["data"]["market_rules"] = rules
    raw["backtest"] = {"strategy": strategy, "benchmark": None}
    raw["online"] = {"folder": str(tmp / "online")}
    return raw


def _setup(tmp: Path, store: Path, kernel: Kernel, strategy: dict[str, Any], rules: str = "cn") -> tuple[Any, ...]:
    raw = _config(tmp, store, kernel, strategy, rules)
    config = config_from_mapping(raw, kernel=kernel)
    provider = kernel.create("data_provider", "qlib_bin", provider_uri=str(store))
    folder = OnlineFolder(tmp / "online")
    pred = _scores(provider)
    folder.write_prediction(D, pred, {"model": "test", "data_version": None})
    return raw, config, provider, folder, pred


def _positions(tmp: Path, rows: list[tuple[Any, ...]], header: str = "instrument,amount") -> Path:
    path = tmp / "positions.csv"
    path.write_text(header + "\n" + "".join(",".join(map(str, row)) + "\n" for row in rows))
    return path


def _one_day_backtest(provider: Any, kernel: Kernel, strategy: Any, cash: float, holdings: dict[str, float],
                      exchange_kwargs: dict[str, Any] | None = None) -> Any:  # fmt: skip
    """The decision a backtest makes on bar D+1 starting from ``holdings`` (its first and only bar)."""
    from qbacktest.backtest import run_backtest
    from qbacktest.executor import SimulatorExecutor
    from qdata_cn.rules import CNMarketRules

    decisions = []

    class Capture(SimulatorExecutor):
        def execute(self, decision: Any, step: Any) -> Any:
            decisions.append(decision)
            return super().execute(decision, step)

    run_backtest(provider, strategy, Capture(), start=NEXT, end=NEXT, benchmark=None, kernel=kernel,
                 account={"cash": cash, **holdings}, codes="all", exchange_kwargs=exchange_kwargs,
                 market_rules=CNMarketRules(provider_uri=provider.root))  # fmt: skip
    assert len(decisions) == 1
    return decisions[0]


def _weight_decision(provider: Any, kernel: Kernel, strategy: Any, cash: float, holdings: dict[str, float]) -> Any:
    """The backtest's decision for bar D+1 of a weight strategy (qbacktest's ``WeightOrders``: Qlib's order
    generator prices targets at the previous bar's close, so the exchange holds bars D and D+1)."""
    from qbacktest.account import Account
    from qbacktest.exchange import Exchange
    from qbacktest.weight_orders import WeightOrders
    from qdata_cn.rules import CNMarketRules

    from qcore.trading import BarCalendar, Step, TradingInfra

    calendar = provider.calendar("day")
    k = int(calendar.get_loc(D))
    names = sorted(provider.universe("all"))
    exchange = Exchange.from_rules(provider, kernel.registry("operator"), CNMarketRules(provider_uri=provider.root),
                                   names, calendar[k : k + 2])  # fmt: skip
    close = provider.load(["close"], list(holdings), D, D)["close"][0]
    account = Account(cash, {n: {"amount": a, "price": float(p)} for (n, a), p in zip(holdings.items(), close)},
                      settlement_days=1)  # fmt: skip
    orders = WeightOrders(strategy)
    orders.reset(TradingInfra(exchange, account, BarCalendar(calendar, k, 2), provider=provider,
                              operators=kernel.registry("operator")))  # fmt: skip
    return orders.generate_trade_decision(Step(1, NEXT, calendar[k + 2]))


QLIB_EXCHANGE = {"limit_threshold": 0.095, "deal_price": "close", "open_cost": 0.0005, "close_cost": 0.0015,
                 "min_cost": 5}  # fmt: skip


@pytest.mark.parametrize("exchange_kwargs", [None, QLIB_EXCHANGE], ids=["cn-rules", "qlib-exchange"])
def test_topk_dropout_orders_equal_the_backtest_decision(tmp_path: Path, store: Path, kernel: Kernel,
                                                         exchange_kwargs: dict[str, Any] | None) -> None:  # fmt: skip
    strategy = {"name": "TopkDropout", "kwargs": {"topk": 5, "n_drop": 3, "hold_thresh": 0}}
    raw, config, provider, folder, pred = _setup(tmp_path, store, kernel, strategy)
    if exchange_kwargs is not None:
        raw["backtest"]["exchange"] = exchange_kwargs
        config = config_from_mapping(raw, kernel=kernel)
    holdings = {name: 1000.0 * (i + 1) for i, name in enumerate(HELD)}
    path = _positions(tmp_path, [("CASH", 2_000_000)] + [(n, a) for n, a in holdings.items()])
    step = orders(config, kernel, provider, folder, D, path)
    assert step.computed and step.trade_date == NEXT
    ours = folder.read_orders(D)
    csv = pd.read_csv(folder.orders_path(D, ".csv"))
    assert list(csv.columns) == ["date", "instrument", "direction", "amount", "shares", "price", "real_price", "value",
                                 "reason"]  # fmt: skip
    assert set(csv["date"]) == {"2019-03-04"}

    from qbacktest.strategies.topk_dropout import TopkDropout

    decision = _one_day_backtest(provider, kernel, TopkDropout(**strategy["kwargs"], signal=pred), 2_000_000,
                                 holdings, exchange_kwargs)  # fmt: skip
    expected = [(o.instrument, o.direction.name.lower()) for o in decision.orders]
    assert list(zip(ours["instrument"], ours["direction"])) == expected
    np.testing.assert_allclose(ours["amount"].to_numpy(), [o.amount for o in decision.orders], rtol=1e-12)
    # the market's rules at D's close: the best name closed limit-up, the planned sells limit-down / suspended
    assert LIMIT_UP not in set(ours["instrument"])
    assert not {LIMIT_DOWN, SUSPENDED} & set(ours.loc[ours["direction"] == "sell", "instrument"])
    blocked = {b["instrument"]: b["reason"] for b in folder.orders_meta(D)["blocked"]}
    assert "upper price limit" in blocked[LIMIT_UP]
    assert "lower price limit" in blocked[LIMIT_DOWN] and "suspended" in blocked[SUSPENDED]
    # buys are whole lots of real shares, priced at D's close
    buys = ours[ours["direction"] == "buy"]
    assert len(buys) and np.allclose(np.round(buys["shares"] / 100), buys["shares"] / 100)
    close = provider.load(["close"], list(buys["instrument"]), D, D)["close"][0]
    np.testing.assert_allclose(buys["price"].to_numpy(), close, rtol=1e-6)
    targets = pd.read_parquet(folder.orders_path(D, ".targets.parquet"))
    assert set(targets["instrument"]) == (set(HELD) - set(ours.loc[ours["direction"] == "sell", "instrument"])) | \
        set(buys["instrument"])  # fmt: skip
    assert targets["weight"].sum() <= 1.0


def test_weight_strategy_orders_equal_the_backtest_decision(tmp_path: Path, store: Path, kernel: Kernel) -> None:
    strategy = {"name": "inverse_volatility", "kwargs": {"topk": 4, "volatility_window": 10}}
    _, config, provider, folder, _ = _setup(tmp_path, store, kernel, strategy)
    holdings = {"SH600024": 5000.0, "SH600025": 3000.0}
    path = _positions(tmp_path, [("CASH", 1_000_000)] + [(n, a) for n, a in holdings.items()])
    orders(config, kernel, provider, folder, D, path)
    ours = folder.read_orders(D)
    decision = _weight_decision(provider, kernel, kernel.create("strategy", "inverse_volatility",
                                                                **strategy["kwargs"]), 1_000_000, holdings)  # fmt: skip
    expected = {(o.instrument, o.direction.name.lower()): o.amount for o in decision.orders}
    got = {(r.instrument, r.direction): r.amount for r in ours.itertuples()}
    assert got.keys() == expected.keys()
    np.testing.assert_allclose([got[k] for k in expected], list(expected.values()), rtol=1e-9)
    assert ours["reason"].str.startswith("target weight").all()
    sells = list(ours["direction"]).index("buy") if "buy" in set(ours["direction"]) else len(ours)
    assert set(ours["direction"][:sells]) <= {"sell"}  # sells first


def test_settlement_and_hold_thresh(tmp_path: Path, store: Path, kernel: Kernel) -> None:
    strategy = {"name": "TopkDropout", "kwargs": {"topk": 3, "n_drop": 3, "hold_thresh": 2}}
    rows = [("CASH", 1_000_000, "", ""), ("SH600024", 1000, 5, "2019-02-28"), ("SH600024", 500, 5, "2019-03-01"),
            ("SH600025", 800, 1, ""), ("SH600026", 900, 4, "2019-03-01")]  # fmt: skip
    # T+1: a lot bought on D is sellable on D+1
    _, config, provider, folder, _ = _setup(tmp_path / "t1", store, kernel, strategy)
    path = _positions(tmp_path, rows, "instrument,amount,count_day,bought")
    orders(config, kernel, provider, folder, D, path)
    sold = folder.read_orders(D).query("direction == 'sell'").set_index("instrument")["amount"]
    assert sold.get("SH600024") == 1500 and sold.get("SH600026") == 900
    blocked = {b["instrument"]: b["reason"] for b in folder.orders_meta(D)["blocked"]}
    assert "SH600025" not in sold and "hold_thresh 2" in blocked["SH600025"]
    # T+2: the lots bought on D stay locked on D+1
    _, config, provider, folder, _ = _setup(tmp_path / "t2", store, kernel, strategy, rules="cn_t2")
    orders(config, kernel, provider, folder, D, path)
    sold = folder.read_orders(D).query("direction == 'sell'").set_index("instrument")["amount"]
    assert sold.get("SH600024") == 1000 and "SH600026" not in sold
    blocked = {b["instrument"]: b["reason"] for b in folder.orders_meta(D)["blocked"]}
    assert "settlement" in blocked["SH600026"]


def test_orders_are_written_once_per_inputs(tmp_path: Path, store: Path, kernel: Kernel) -> None:
    strategy = {"name": "TopkDropout", "kwargs": {"topk": 4, "n_drop": 1}}
    _, config, provider, folder, _ = _setup(tmp_path, store, kernel, strategy)
    path = _positions(tmp_path, [("SH600024", 1000), ("SH600025", 2000)])
    with pytest.raises(DataError, match="no CASH row"):
        orders(config, kernel, provider, folder, D, path)
    first = orders(config, kernel, provider, folder, D, path, cash=500_000)
    stamp = first.path.stat().st_mtime_ns
    again = orders(config, kernel, provider, folder, D, path, cash=500_000)
    assert first.computed and not again.computed and again.path.stat().st_mtime_ns == stamp
    assert orders(config, kernel, provider, folder, D, path, cash=600_000).computed  # new inputs: decided again
    assert [e["computed"] for e in folder.read_log() if e["step"] == "orders"] == [True, False, True]
    body = status(folder)
    assert (body["last_orders"], body["orders_for"]) == ("2019-03-01", "2019-03-04") and body["orders"] >= 1
    with pytest.raises(DataError, match="no prediction for 2019-03-04"):
        orders(config, kernel, provider, folder, NEXT, path, cash=1.0)
    assert not list(folder.root.rglob("*.tmp*"))


@pytest.mark.parametrize(("text", "message"), [
    ("instrument,amount\nSH600024,-5\n", "line 2: amount must be a finite number >= 0"),
    ("instrument,amount,colour\nSH600024,5,red\n", "unknown column"),
    ("instrument,amount,shares\nSH600024,5,500\n", "exactly one of amount and shares"),
    ("instrument,amount\nCASH,1\nCASH,2\n", "line 3: a second CASH row"),
    ("instrument,amount,bought\nSH600024,5,someday\n", "not a date"),
    ("amount,price\n5,1\n", "needs the columns"),
])  # fmt: skip
def test_bad_positions_files_are_refused(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "p.csv"
    path.write_text(text)
    with pytest.raises(DataError, match=message):
        read_positions(path)


def test_cli_orders(tmp_path: Path, store: Path, kernel: Kernel, monkeypatch: pytest.MonkeyPatch) -> None:
    import yaml

    strategy = {"name": "TopkDropout", "kwargs": {"topk": 4, "n_drop": 1}}
    raw, *_ = _setup(tmp_path, store, kernel, strategy)
    config_path = tmp_path / "wf.yaml"
    config_path.write_text(yaml.safe_dump(raw))
    positions = tmp_path / "positions.parquet"
    pd.DataFrame({"instrument": ["SH600024", "SH600012"], "shares": [1000.0, 2000.0]}).to_parquet(positions)
    monkeypatch.setattr("qcore.cli.get_kernel", lambda ctx, extra_selection=None: kernel)
    runner = CliRunner()
    args = ["online", "orders", str(config_path), "--date", "2019-03-01", "--positions", str(positions)]
    out = runner.invoke(cli, [*args, "--cash", "800000"])
    assert out.exit_code == 0, out.output
    assert "2019-03-01.csv" in out.output and "for 2019-03-04" in out.output and "written" in out.output
    out = runner.invoke(cli, [*args, "--cash", "800000"])
    assert out.exit_code == 0 and "up to date" in out.output
    out = runner.invoke(cli, args)
    assert out.exit_code not in (0, 70) and "--cash" in out.output
    out = runner.invoke(cli, [*args[:-1], str(tmp_path / "missing.csv"), "--cash", "1"])
    assert out.exit_code not in (0, 70) and "missing.csv" in out.output
