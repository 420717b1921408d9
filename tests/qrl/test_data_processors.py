"""FinRL-Meta's data processors over local files (issue #20): source formats, cleaning, alignment with a tradable
mask, FinRL's indicators as expressions (against an independent pandas reference), turbulence and VIX, FinRL's
arrays, the dataset manifest, and Yahoo- and Binance-format fixtures that import, align and train end to end."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from click.testing import CliRunner
from qrl.config import validate
from qrl.meta.formats import read_file, read_source
from qrl.meta.indicators import FINRL_INDICATORS
from qrl.meta.processor import DataProcessor, market_volatility
from qrl.workflow import load_data, train

from qcore.cli import cli
from qcore.config import parse_yaml
from qcore.errors import ConfigError, DataError
from qcore.kernel import Kernel


@pytest.fixture(scope="module")
def kern() -> Kernel:
    return Kernel.load(use_env=False)


def _ohlc(rng: np.random.Generator, n: int, drift: float) -> dict[str, np.ndarray]:
    close = 50 * np.exp(np.cumsum(rng.normal(drift, 0.015, n)))
    high = close * (1 + rng.uniform(0, 0.02, n))
    low = close * (1 - rng.uniform(0, 0.02, n))
    opened = np.clip(np.r_[close[0], close[:-1]] * (1 + rng.normal(0, 0.003, n)), low, high)
    return {"open": opened, "high": high, "low": low, "close": close}


def write_yahoo(folder: Path, n: int = 130) -> Path:
    """yfinance-style files, one per ticker: ``Date,Open,High,Low,Close,Adj Close,Volume``. ``UP`` drifts up,
    ``DOWN`` down, ``LATE`` lists 40 days in, ``GAP`` misses days 60-61 (not tradable)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(7)
    dates = pd.bdate_range("2021-01-04", periods=n)
    for ticker, drift, first in (("UP", 0.004, 0), ("DOWN", -0.003, 0), ("LATE", 0.0, 40), ("GAP", 0.001, 0)):
        d = dates[first:]
        bars = _ohlc(rng, len(d), drift)
        frame = pd.DataFrame({"Date": d.strftime("%Y-%m-%d"), "Open": bars["open"], "High": bars["high"],
                              "Low": bars["low"], "Close": bars["close"], "Adj Close": bars["close"] * 0.5,
                              "Volume": rng.integers(1e5, 1e6, len(d))})
        if ticker == "GAP":
            frame = frame.drop(index=[60, 61])
        frame.to_csv(folder / f"{ticker}.csv", index=False)
    return folder


def write_binance(folder: Path, n: int = 120, micro: bool = False) -> Path:
    """data.binance.vision-style daily kline files without a header (12 columns, epoch milliseconds)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(11)
    start = pd.Timestamp("2023-01-01", tz="UTC")
    scale = 1000 if micro else 1
    for symbol, drift in (("BTCUSDT", 0.004), ("ETHUSDT", -0.003), ("SOLUSDT", 0.0)):
        bars = _ohlc(rng, n, drift)
        opened = (start + pd.to_timedelta(np.arange(n), "D")).asi8 // 10**6 * scale
        frame = pd.DataFrame({0: opened, 1: bars["open"], 2: bars["high"], 3: bars["low"], 4: bars["close"],
                              5: rng.uniform(100, 200, n), 6: opened + 86_399_999 * scale, 7: bars["close"] * 150,
                              8: 1000, 9: 50.0, 10: bars["close"] * 75, 11: 0})
        frame.to_csv(folder / f"{symbol}-1d-2023.csv", header=False, index=False)
    return folder


@pytest.fixture(scope="module")
def yahoo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_yahoo(tmp_path_factory.mktemp("yahoo"))


@pytest.fixture(scope="module")
def binance_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_binance(tmp_path_factory.mktemp("binance"))


# -- formats ---------------------------------------------------------------------------------------------------------

def test_yahoo_files_normalise_with_the_adjustment_factor(yahoo_dir: Path) -> None:
    frame, files = read_source(yahoo_dir, "yahoo")
    assert [f.name for f in files] == ["DOWN.csv", "GAP.csv", "LATE.csv", "UP.csv"]
    up = frame[frame.instrument == "UP"]
    src = pd.read_csv(yahoo_dir / "UP.csv")
    np.testing.assert_allclose(up["close"], src["Close"])
    np.testing.assert_allclose(up["factor"], 0.5)
    assert up["date"].iloc[0] == pd.Timestamp("2021-01-04") and up["tradable"].all()


def test_finrl_yahoo_downloader_frame_with_tic_column(tmp_path: Path) -> None:
    pd.DataFrame({"date": ["2021-01-04", "2021-01-04", "2021-01-05"], "open": [1, 2, 1.1], "high": [1.2, 2.2, 1.3],
                  "low": [0.9, 1.9, 1.0], "close": [1.1, 2.1, 1.2], "volume": [10, 20, 30],
                  "tic": ["aapl", "msft", "aapl"], "day": [0, 0, 1]}).to_csv(tmp_path / "dow.csv", index=False)
    frame = read_file(tmp_path / "dow.csv", __import__("qrl.meta.formats", fromlist=["x"]).FORMATS["yahoo"])
    assert list(frame.instrument) == ["AAPL", "MSFT", "AAPL"] and (frame.factor == 1).all()


@pytest.mark.parametrize("micro", [False, True])
def test_binance_headerless_klines_in_milli_and_microseconds(tmp_path: Path, micro: bool) -> None:
    frame, _ = read_source(write_binance(tmp_path, n=5, micro=micro), "binance")
    assert sorted(frame.instrument.unique()) == ["BTCUSDT", "ETHUSDT", "SOLUSDT"]
    assert list(frame[frame.instrument == "BTCUSDT"].date) == list(pd.date_range("2023-01-01", periods=5))


def test_ccxt_with_header_and_symbol_from_file_name(tmp_path: Path) -> None:
    (tmp_path / "BTC_USDT.csv").write_text("timestamp,open,high,low,close,volume\n"
                                           "1672531200000,10,11,9,10.5,3\n1672617600000,10.5,12,10,11,4\n")
    frame, _ = read_source(tmp_path, "ccxt")
    assert list(frame.instrument) == ["BTCUSDT", "BTCUSDT"] and list(frame.close) == [10.5, 11]


def test_akshare_tushare_baostock_alpaca_column_maps(tmp_path: Path) -> None:
    (tmp_path / "ak.csv").write_text("日期,股票代码,开盘,收盘,最高,最低,成交量,成交额\n"
                                     "2024-01-02,600000,7.0,7.1,7.2,6.9,1000,7100000\n", encoding="utf-8")
    ak, _ = read_source(tmp_path / "ak.csv", "akshare")
    assert ak.instrument[0] == "SH600000" and ak.volume[0] == 100_000 and ak.close[0] == 7.1
    (tmp_path / "ts.csv").write_text("ts_code,trade_date,open,high,low,close,pre_close,vol,amount,adj_factor\n"
                                     "000001.SZ,20240102,9.4,9.5,9.3,9.39,9.4,1200,1100,108.0\n")
    ts, _ = read_source(tmp_path / "ts.csv", "tushare")
    assert (ts.instrument[0], ts.date[0], ts.volume[0], ts.factor[0]) == ("SZ000001", pd.Timestamp("2024-01-02"),
                                                                        120_000, 108.0)
    (tmp_path / "bs.csv").write_text("date,code,open,high,low,close,preclose,volume,amount,adjustflag,turn,"
                                     "tradestatus,pctChg,isST\n"
                                     "2024-01-02,sh.600000,7,7.2,6.9,7.1,7,1000,7100,3,0.1,1,1.4,0\n"
                                     "2024-01-03,sh.600000,7.1,7.1,7.1,7.1,7.1,0,0,3,0,0,0,0\n")
    bs, _ = read_source(tmp_path / "bs.csv", "baostock")
    assert list(bs.instrument) == ["SH600000"] * 2 and list(bs.tradable) == [True, False]
    (tmp_path / "al.csv").write_text("symbol,timestamp,open,high,low,close,volume,trade_count,vwap\n"
                                     "SPY,2024-01-02 05:00:00+00:00,472,473,470,472.6,100,5,472\n")
    al, _ = read_source(tmp_path / "al.csv", "alpaca")
    assert al.date[0] == pd.Timestamp("2024-01-02") and al.instrument[0] == "SPY"


def test_bad_source_files_are_refused_with_the_file(tmp_path: Path) -> None:
    (tmp_path / "x.csv").write_text("Date,Open,High,Low,Volume\n2021-01-04,1,1,1,1\n")
    with pytest.raises(DataError, match="no close column"):
        read_source(tmp_path / "x.csv", "yahoo")
    (tmp_path / "y.csv").write_text("Date,Close\n2021-01-04,-1\n")
    with pytest.raises(DataError, match="negative close in row 2"):
        read_source(tmp_path / "y.csv", "yahoo")
    (tmp_path / "z.csv").write_text("Date,Close\n2021-01-04,abc\n")
    with pytest.raises(DataError, match="'abc' is not a number"):
        read_source(tmp_path / "z.csv", "yahoo")
    with pytest.raises(DataError, match="unknown source format 'bloomberg'"):
        read_source(tmp_path, "bloomberg")
    (tmp_path / "MSFT.csv").write_text("Date,Close\n2021-01-04,1\n")
    with pytest.raises(DataError, match="no rows for ticker"):
        read_source(tmp_path / "MSFT.csv", "yahoo", tickers=["AAPL"])
    (tmp_path / "d.csv").write_text("Date,Close,tic\n2021-01-04,1,A\n2021-01-04,2,A\n")
    proc = DataProcessor("yahoo", path=tmp_path / "d.csv")
    proc.download_data()
    with pytest.raises(DataError, match="two different bars of A"):
        proc.clean_data()
    with pytest.raises(DataError, match="downloads nothing"):
        DataProcessor("yahoo").download_data(["AAPL"])


# -- alignment, indicators, risk series --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def processed(yahoo_dir: Path, kern: Kernel) -> DataProcessor:
    proc = DataProcessor("yahoo", "2021-01-01", "2021-12-31", path=yahoo_dir, kernel=kern)
    proc.download_data()
    proc.clean_data()
    proc.add_technical_indicator()
    proc.add_turbulence(window=20)
    proc.add_vix()
    return proc


def test_alignment_keeps_every_ticker_with_a_tradable_mask_and_no_backfill(processed: DataProcessor) -> None:
    panel = processed.aligned_panel()
    assert panel.instruments == ("DOWN", "GAP", "LATE", "UP") and len(panel.dates) == 130
    late, gap = panel.instruments.index("LATE"), panel.instruments.index("GAP")
    assert np.isnan(panel["close"][:40, late]).all() and np.isfinite(panel["close"][40:, late]).all()
    assert np.isnan(panel["close"][60:62, gap]).all()
    daily = processed.daily_data({"ret": "$close / Ref($close, 1) - 1"})
    assert not daily.tradable[:40, late].any() and daily.tradable[40:, late].all()
    assert np.isnan(daily.close[:40, late]).all()                       # no price before listing
    assert not daily.tradable[60:62, gap].any()
    np.testing.assert_allclose(daily.close[60:62, gap], daily.close[59, gap])  # carried forward to value holdings
    # FinRL's long frame has one row per tradable bar, adjusted prices
    frame = processed.dataframe
    assert len(frame) == 130 * 4 - 40 - 2
    up = frame[frame.tic == "UP"]
    np.testing.assert_allclose(up["close"], pd.read_csv(processed.path / "UP.csv")["Close"] * 0.5, rtol=1e-6)


def _reference(bars: pd.DataFrame) -> dict[str, pd.Series]:
    """FinRL's indicators written directly in pandas with stockstats' definitions (not through expressions)."""
    c, h, lo = bars["close"], bars["high"], bars["low"]

    def ema(x: pd.Series, **kw: float) -> pd.Series:
        return x.ewm(adjust=True, **kw).mean()

    def wilder(x: pd.Series) -> pd.Series:
        return ema(x, alpha=1 / 30)

    sma20, std20 = c.rolling(20, min_periods=1).mean(), c.rolling(20, min_periods=1).std()
    change = c.diff()
    tp = (h + lo + c) / 3
    mad = tp.rolling(30, min_periods=1).apply(lambda x: np.mean(np.abs(x - x.mean())), raw=True)
    up, down = h.diff(), -lo.diff()
    pdm = pd.Series(np.where((up > down) & (up > 0), up, 0.0), index=c.index)
    ndm = pd.Series(np.where((down > up) & (down > 0), down, 0.0), index=c.index)
    prev = c.shift(1)
    tr = pd.concat([h - lo, (h - prev).abs(), (lo - prev).abs()], axis=1).max(axis=1, skipna=False)
    pdi, ndi = 100 * wilder(pdm) / wilder(tr), 100 * wilder(ndm) / wilder(tr)
    return {
        "macd": ema(c, span=12) - ema(c, span=26),
        "boll_ub": sma20 + 2 * std20,
        "boll_lb": sma20 - 2 * std20,
        "rsi_30": 100 - 100 / (1 + wilder(change.clip(lower=0)) / wilder((-change).clip(lower=0))),
        "cci_30": (tp - tp.rolling(30, min_periods=1).mean()) / (0.015 * mad),
        "dx_30": 100 * (pdi - ndi).abs() / (pdi + ndi),
        "close_30_sma": c.rolling(30, min_periods=1).mean(),
        "close_60_sma": c.rolling(60, min_periods=1).mean(),
    }


def test_finrl_indicators_match_an_independent_reference(processed: DataProcessor) -> None:
    frame = processed.dataframe
    assert list(processed.indicators) == list(FINRL_INDICATORS)
    for tic in ("UP", "DOWN"):
        rows = frame[frame.tic == tic].set_index("date")
        bars = rows[["high", "low", "close"]].astype(np.float32).astype(np.float64)  # the store's float32 values
        for name, ref in _reference(bars).items():
            got, want = rows[name].to_numpy(), ref.to_numpy()
            assert np.array_equal(np.isfinite(got), np.isfinite(want)), name
            ok = np.isfinite(want)
            np.testing.assert_allclose(got[ok], want[ok], rtol=2e-3, atol=1e-4, err_msg=name)
    assert frame[frame.tic == "UP"]["macd"].iloc[-1] != frame[frame.tic == "DOWN"]["macd"].iloc[-1]


def test_finrl_feature_set_is_registered(kern: Kernel) -> None:
    fs = kern.create("feature_set", "finrl", indicators=["macd", "rsi_30"])
    assert dict(fs.features) == {k: FINRL_INDICATORS[k] for k in ("macd", "rsi_30")} and not fs.labels
    with pytest.raises(ValueError, match="unknown FinRL indicator"):
        kern.create("feature_set", "finrl", indicators=["kdj"])


def test_arrays_risk_series_and_their_causality(processed: DataProcessor, yahoo_dir: Path, kern: Kernel,
                                                tmp_path: Path) -> None:
    price, tech, turb = processed.df_to_array(["macd", "rsi_30"], if_vix=False)
    assert price.shape == (130, 4) and tech.shape == (130, 8) and turb.shape == (130,)
    frame = processed.dataframe.set_index(["date", "tic"])
    day = processed.aligned_panel().dates[100]
    np.testing.assert_allclose(tech[100, 2:4], frame.loc[(day, "GAP"), ["macd", "rsi_30"]].to_numpy())  # ticker-major
    _, _, vix = processed.df_to_array(["macd"], if_vix=True)
    assert np.isnan(vix[:2]).all() and (vix[2:] > 0).all()
    np.testing.assert_allclose(vix, market_volatility(processed.aligned_panel()["close"].astype(float)))
    # change every bar after row 90: nothing at or before row 90 moves
    moved = tmp_path / "moved"
    moved.mkdir()
    for f in yahoo_dir.iterdir():
        src = pd.read_csv(f)
        late = pd.to_datetime(src["Date"]) > processed.aligned_panel().dates[90]
        src.loc[late, ["Open", "High", "Low", "Close", "Adj Close"]] *= 1.3
        src.to_csv(moved / f.name, index=False)
    other = DataProcessor("yahoo", path=moved, kernel=kern)
    other.run(None, ["macd", "rsi_30", "dx_30"], if_vix=False)
    other.add_turbulence(window=20)
    other.add_vix()
    _, t2, u2 = other.df_to_array(["macd", "rsi_30", "dx_30"], if_vix=False)
    _, t1, u1 = processed.df_to_array(["macd", "rsi_30", "dx_30"], if_vix=False)
    np.testing.assert_array_equal(t1[:91], t2[:91])
    np.testing.assert_array_equal(u1[:91], u2[:91])
    np.testing.assert_array_equal(other.df_to_array(None, True)[2][:91], vix[:91])
    assert not np.array_equal(t1[91:], t2[91:], equal_nan=True)


def test_vix_from_a_ticker_drops_it_from_the_tradable_set(tmp_path: Path, kern: Kernel) -> None:
    write_yahoo(tmp_path)
    vix = pd.read_csv(tmp_path / "UP.csv").assign(Close=20.0, **{"Adj Close": 20.0})
    vix.to_csv(tmp_path / "^VIX.csv", index=False)
    proc = DataProcessor("yahoo", path=tmp_path, kernel=kern)
    proc.download_data()
    proc.clean_data()
    proc.add_vix("^VIX")
    assert "^VIX" not in proc.aligned_panel().instruments and np.allclose(proc.df_to_array([], True)[2], 20.0)


def test_manifest_hashes_every_file(processed: DataProcessor, yahoo_dir: Path) -> None:
    m = processed.manifest()
    assert m["kind"] == "files" and m["format"] == "yahoo"
    assert m["dates"] == {"first": "2021-01-04", "last": "2021-07-02", "rows": 130}
    for entry in m["files"]:
        assert entry["sha256"] == hashlib.sha256(Path(entry["path"]).read_bytes()).hexdigest()
    assert m["instruments"]["LATE"]["bars"] == 90 and m["instruments"]["GAP"]["bars"] == 128


# -- configs and end to end ------------------------------------------------------------------------------------------

TRAINER = {"epochs": 1, "epoch_steps": 20, "collect_steps": 10, "n_envs": 1, "valid_episodes": 1, "seed": 0}


def _cfg(kern: Kernel, data: dict, out: Path, env: str = "portfolio", recorder: Path | None = None) -> object:
    output = {"dir": str(out), **({"recorder_uri": str(recorder)} if recorder is not None else {})}
    doc = {"env": env, "data": data, "algorithm": {"name": "a2c", "hidden_sizes": [8]}, "trainer": TRAINER,
           "output": output}
    return validate(parse_yaml(yaml.safe_dump(doc, allow_unicode=True), "cfg.yaml"), kern)


def test_source_config_errors_name_the_key(kern: Kernel, yahoo_dir: Path, tmp_path: Path) -> None:
    splits = {"train": 60, "valid": 30, "test": 30}
    with pytest.raises(ConfigError, match="format must be one of") as exc:
        _cfg(kern, {"source": {"format": "bbg", "path": str(yahoo_dir)}, "splits": splits}, tmp_path)
    assert exc.value.path == "data.source.format"
    with pytest.raises(ConfigError, match="exactly one of"):
        _cfg(kern, {"source": {"format": "yahoo", "path": "x"}, "planted": {}, "splits": splits}, tmp_path)
    with pytest.raises(ConfigError, match="needs minute bars"):
        _cfg(kern, {"source": {"format": "yahoo", "path": str(yahoo_dir)}, "splits": splits}, tmp_path, "execution")
    with pytest.raises(ConfigError, match="market_rules must be"):
        _cfg(kern, {"source": {"format": "yahoo", "path": "x"}, "market_rules": "us", "splits": splits}, tmp_path)


@pytest.mark.slow  # the first on-policy training of a session compiles tianshou's numba kernels
def test_yahoo_fixture_trains_end_to_end_with_its_manifest(kern: Kernel, yahoo_dir: Path, tmp_path: Path) -> None:
    data = {"source": {"format": "yahoo", "path": str(yahoo_dir)}, "splits": {"train": 70, "valid": 30, "test": 30},
            "turbulence": {"window": 20, "quantile": 0.9}}
    cfg = _cfg(kern, data, tmp_path / "run", recorder=tmp_path / "runs")
    split = load_data(cfg, kern)
    assert split["train"].feature_names == tuple(FINRL_INDICATORS)
    assert split["train"].instruments == ("DOWN", "GAP", "LATE", "UP")
    res = train(cfg, kern, data=split)
    assert {"policy", "buy_and_hold", "equal_weight", "min_variance", "cash"} <= set(res["metrics"])
    meta = json.loads((tmp_path / "run" / "best.json").read_text())
    assert meta["dataset"]["kind"] == "files" and len(meta["dataset"]["files"]) == 4
    assert meta["dataset"]["splits"]["test"] == ["2021-05-24", "2021-07-02"]
    assert meta["features"] == dict(FINRL_INDICATORS)
    logged = list((tmp_path / "runs").rglob("dataset_manifest.json"))
    assert len(logged) == 1 and json.loads(logged[0].read_text())["files"] == meta["dataset"]["files"]


@pytest.mark.slow
def test_binance_fixture_imports_into_a_store_and_trains(kern: Kernel, binance_dir: Path, tmp_path: Path) -> None:
    store = tmp_path / "store"
    res = CliRunner().invoke(cli, ["rl", "data", "import", str(binance_dir), "--format", "binance", "--to",
                                   str(store), "--manifest", str(tmp_path / "m.json")])
    assert res.exit_code == 0, res.output
    assert "3 instruments added" in res.output
    assert sorted(p.name for p in (store / "features").iterdir()) == ["btcusdt", "ethusdt", "solusdt"]
    assert json.loads((tmp_path / "m.json").read_text())["format"] == "binance"
    cfg = _cfg(kern, {"provider_uri": str(store), "market_rules": "none", "features": "finrl",
                      "splits": {"train": 60, "valid": 30, "test": 30}}, tmp_path / "run")
    split = load_data(cfg, kern)
    close = split["train"].close
    src = pd.read_csv(binance_dir / "BTCUSDT-1d-2023.csv", header=None)
    np.testing.assert_allclose(close[:, 0], src[4].to_numpy()[:60], rtol=1e-6)
    out = train(cfg, kern, data=split)
    assert "policy" in out["metrics"]
    meta = json.loads((tmp_path / "run" / "best.json").read_text())
    assert meta["dataset"]["kind"] == "store" and any(f["path"].endswith("close.day.bin")
                                                       for f in meta["dataset"]["files"])


def test_rl_data_show_and_bad_import(binance_dir: Path, tmp_path: Path) -> None:
    res = CliRunner().invoke(cli, ["rl", "data", "show", str(binance_dir), "--format", "binance"])
    assert res.exit_code == 0, res.output
    assert "3 ticker(s) on 120 aligned dates 2023-01-01 .. 2023-04-30" in res.output
    res = CliRunner().invoke(cli, ["rl", "data", "show", str(binance_dir), "--format", "bloomberg"])
    assert res.exit_code not in (0, 70) and "unknown source format" in res.output
