"""Qlib's two multi-frequency LightGBM configs (``LightGBM/workflow_config_lightgbm_multi_freq.yaml``: the example's
``Avg15minHandler`` with ``ResampleNProcessor``; ``..._Alpha158_multi_freq.yaml``: Alpha158 on 1-minute bars with
``Resample1minProcessor`` at 14:56) on a tiny store with minute bars: they validate and run, the resampled columns
equal a pandas computation of Qlib's rules on the same bars, and what cannot work is refused at its key before any
data is read."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from qcore.checks import check_components
from qcore.config import read_workflow
from qcore.dataset import build_dataset
from qcore.errors import ConfigError
from qcore.expr.engine import ExpressionEngine
from qcore.kernel import Kernel
from qcore.plugins import PluginSelection
from qcore.types import FeatureSet, Resample

EXAMPLES = Path(__file__).resolve().parents[1] / "data" / "qlib_examples" / "LightGBM"
AVG15 = "workflow_config_lightgbm_multi_freq.yaml"
A158 = "workflow_config_lightgbm_Alpha158_multi_freq.yaml"
PLUGINS = ("qdata_cn", "qops", "qmodel_zoo", "qbacktest")
SEGMENTS = {"train": ["2015-01-05", "2015-01-30"], "valid": ["2015-02-02", "2015-02-06"],
            "test": ["2015-02-09", "2015-02-17"]}
HANDLER = "task.dataset.kwargs.handler.kwargs"
#: (instrument position in all.txt, day position, minute bars of that day) set to NaN in the store's 1min closes:
#: the day's last bars (``last`` takes an earlier one), a whole day (a suspension), the 14:56 bar (kept as NaN).
HOLES = ((0, 3, slice(235, 240)), (0, 5, slice(0, 240)), (1, 7, slice(236, 237)))  # bar 236: 14:56


@pytest.fixture(scope="module")
def kernel() -> Kernel:
    return Kernel.load(PluginSelection(enable=PLUGINS, autoload=False), use_env=False)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Six stocks, 30 days of day and 1-minute bars, with NaN holes in some minute closes (:data:`HOLES`)."""
    from qdata_cn.synth import synthesize

    root = tmp_path_factory.mktemp("multi-freq") / "store"
    synthesize(root, instruments=6, days=30, seed=5, freq="1min", fundamentals=False)
    calendar = pd.DatetimeIndex(pd.read_csv(root / "calendars" / "1min.txt", header=None)[0])
    symbols = [line.split("\t")[0] for line in (root / "instruments" / "all.txt").read_text().splitlines()]
    stocks = [s for s in symbols if not s.startswith("SH000")]
    days = calendar.normalize().unique()
    for position, day, bars in HOLES:
        path = root / "features" / stocks[position].lower() / "close.1min.bin"
        data = np.fromfile(path, dtype="<f4")
        first = int(data[0])
        rows = np.flatnonzero(calendar.normalize() == days[day])[bars] - first + 1
        data[rows] = np.nan
        data.tofile(path)
    return root


@pytest.fixture(scope="module")
def day_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from qdata_cn.synth import synthesize

    root = tmp_path_factory.mktemp("day-only") / "store"
    synthesize(root, instruments=6, days=30, seed=5, fundamentals=False)
    return root


def _config(tmp_path: Path, name: str, store: Path, edit: Any = None, uri: Any = None) -> Path:
    """Qlib's config ``name`` on ``store`` (both folders), shrunk to its dates, ``edit(config)`` applied."""
    config = yaml.safe_load((EXAMPLES / name).read_text())
    config["qlib_init"]["provider_uri"] = uri if uri is not None else {"day": str(store), "1min": str(store)}
    handler = config["task"]["dataset"]["kwargs"]["handler"]["kwargs"]
    handler.update(start_time="2015-01-05", end_time="2015-02-17 15:00:00", fit_start_time="2015-01-05",
                   fit_end_time="2015-01-30", instruments="all")
    config["task"]["dataset"]["kwargs"]["segments"] = SEGMENTS
    config["task"]["model"]["kwargs"].update(num_threads=1, num_boost_round=5, lambda_l1=0.0, lambda_l2=0.0,
                                             min_data_in_leaf=5)
    backtest = config["task"]["record"][2]["kwargs"]["config"]
    backtest["strategy"]["kwargs"].update(topk=2, n_drop=1)
    if "start_time" in backtest["backtest"]:
        backtest["backtest"].update(start_time="2015-02-09", end_time="2015-02-16")
    if edit is not None:
        edit(config)
    path = tmp_path / name
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def _check(path: Path, kernel: Kernel) -> Any:
    config = read_workflow(path).validate(kernel)
    check_components(config, kernel)
    return config


# -- the two configs -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", [AVG15, A158])
def test_qlib_configs_validate_as_shipped(name: str, store: Path, kernel: Kernel) -> None:
    """The configs as copied from Qlib (only the data paths substituted) pass the translation and the schema."""
    environ = {"QCORE_QLIB_DATA": str(store), "QCORE_QLIB_DATA_1MIN": str(store)}
    config = read_workflow(EXAMPLES / name, environ=environ).validate(kernel)
    check_components(config, kernel, store=False)
    assert config.dataset is not None and config.dataset.features.name == "qlib_multi_freq"
    assert config.data.provider.kwargs["provider_uri"] == {"day": str(store), "1min": str(store)}


@pytest.mark.parametrize(("name", "columns"), [(AVG15, 102), (A158, 158)])
def test_configs_run_on_a_store_with_minute_bars(name: str, columns: int, store: Path, kernel: Kernel,
                                                 tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from qcore.api import run

    monkeypatch.chdir(tmp_path)
    result = run(_config(tmp_path, name, store), kernel=kernel)
    assert result.metrics["dataset.features"] == columns
    assert result.metrics["model.predictions"] == result.metrics["dataset.rows.test"] > 0
    assert np.isfinite(result.metrics["backtest.excess_cost.annualized_return"])  # the backtest traded the signal


def test_the_cli_runs_a_multi_frequency_config(store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from qcore import cli as cli_module

    monkeypatch.chdir(tmp_path)
    path = _config(tmp_path, AVG15, store)
    out = CliRunner().invoke(cli_module.cli, ["run", str(path)])
    assert out.exit_code == 0, out.output
    assert "dataset.features" in out.output and "model.predictions" in out.output
    bad = _config(tmp_path, A158, store, uri={"day": str(store)})
    out = CliRunner().invoke(cli_module.cli, ["validate", str(bad)])
    assert out.exit_code not in (0, 70) and "qlib_init.provider_uri" in out.output


# -- the resampled values against pandas -----------------------------------------------------------------------


def _minute_frames(store: Path, fields: list[str]) -> dict[str, pd.DataFrame]:
    """Each stock's stored minute bars of ``fields`` over the whole calendar, as Qlib's per-instrument frames."""
    from qdata_cn.binstore import QlibBinProvider

    provider = QlibBinProvider(store)
    universe = provider.universe("all")
    panel = provider.load(fields, sorted(universe), freq="1min")
    return {symbol: pd.DataFrame({f: panel[f][:, j] for f in fields}, index=panel.dates)
            for j, symbol in enumerate(panel.instruments)}


def _members(frame: pd.DataFrame, spans: Any, start: str, end: str) -> pd.DataFrame:
    """The rows of a stock's minute frame inside the query days and its membership spans."""
    stamps = frame.index
    keep = (stamps >= pd.Timestamp(start)) & (stamps < pd.Timestamp(end) + pd.Timedelta(days=1))
    member = np.zeros(len(stamps), dtype=bool)
    for span in spans:
        member |= (stamps >= span.start) & (stamps <= span.end)
    return frame[keep & member]


def _qlib_resample_n(frame: pd.DataFrame) -> pd.DataFrame:
    """Qlib's ``ResampleNProcessor(target_frq="1d")`` on one instrument's frame (its rule, rewritten)."""
    days = pd.DatetimeIndex(np.unique(frame.index.normalize()))
    return frame.resample("1d").last().reindex(days)


def _qlib_resample_at(frame: pd.DataFrame, hour: int, minute: int) -> pd.DataFrame:
    """Qlib's ``Resample1minProcessor(hour, minute)`` on one instrument's frame (its rule, rewritten)."""
    out = frame.loc[frame.index.time == dt.time(hour, minute)]
    out.index = out.index.normalize()
    return out


def _stack(frames: dict[str, pd.DataFrame]) -> pd.DataFrame:
    out = pd.concat(frames, names=["instrument", "datetime"]).swaplevel().sort_index()
    return out.astype(np.float32)


def _dataset(store: Path, kernel: Kernel, **kwargs: Any) -> pd.DataFrame:
    from qdata_cn.binstore import QlibBinProvider

    feature_set = kernel.create("feature_set", "qlib_multi_freq", **kwargs)
    engine = ExpressionEngine(QlibBinProvider({"day": str(store), "1min": str(store)}), kernel.registry("operator"))
    return build_dataset(engine, feature_set, instruments="all", segments=SEGMENTS).frame("raw")


def test_raw_minute_fields_resampled_equal_qlibs_rules_exactly(store: Path, kernel: Kernel) -> None:
    """``$close``/``$volume`` read on 1-minute bars: the bar at 14:56 and each day's last valid bar, bit for bit
    what Qlib's two inst_processors give on the same stored bars (holes included)."""
    loader = {"name": "QlibDataLoader", "kwargs": {"config": {"feature": [["$close", "$volume"], ["C", "V"]],
                                                              "label": [["Ref($close, -2)/Ref($close, -1) - 1"],
                                                                        ["LABEL0"]]}}}
    frames = _minute_frames(store, ["close", "volume"])
    from qdata_cn.binstore import QlibBinProvider

    spans = QlibBinProvider(store).universe("all")
    members = {s: _members(f.rename(columns={"close": "C", "volume": "V"}), spans[s], "2015-01-05", "2015-02-17")
               for s, f in frames.items()}
    nans: dict[str, int] = {}
    for processor, rule in (({"class": "Resample1minProcessor", "kwargs": {"hour": 14, "minute": 56}},
                             lambda f: _qlib_resample_at(f, 14, 56)),
                            ({"class": "ResampleNProcessor", "kwargs": {"target_frq": "1d"}}, _qlib_resample_n)):
        raw = _dataset(store, kernel, handler=loader, freq={"feature": "1min", "label": "day"},
                       inst_processors={"feature": [processor]})
        expected = _stack({s: rule(f) for s, f in members.items() if len(f)})
        got = raw["feature"].loc[expected.index]
        assert len(expected) == len(raw)  # every row of the dataset has its minute bars (and the reverse)
        np.testing.assert_array_equal(got.to_numpy(), expected.to_numpy())
        nans[processor["class"]] = int(np.isnan(got["C"].to_numpy()).sum())
    assert nans["Resample1minProcessor"] > nans["ResampleNProcessor"] > 0  # the 14:56 holes: NaN for the at rule


def _holes(store: Path) -> tuple[list[str], pd.DatetimeIndex]:
    symbols = [line.split("\t")[0] for line in (store / "instruments" / "all.txt").read_text().splitlines()]
    calendar = pd.DatetimeIndex(pd.read_csv(store / "calendars" / "day.txt", header=None)[0])
    return [s for s in symbols if not s.startswith("SH000")], calendar


def test_holes_follow_qlibs_rules(store: Path, kernel: Kernel) -> None:
    """A day whose last bars are NaN takes its last valid close; a suspended day keeps its row, NaN; a NaN bar at
    14:56 stays NaN (the at rule does not look for another bar)."""
    loader = {"name": "QlibDataLoader", "kwargs": {"config": {"feature": [["$close"], ["C"]]}}}
    stocks, days = _holes(store)
    last = _dataset(store, kernel, handler=loader, freq="1min",
                    inst_processors=[{"class": "ResampleNProcessor", "kwargs": {"target_frq": "1d"}}])["feature"]["C"]
    at = _dataset(store, kernel, handler=loader, freq="1min",
                  inst_processors=[{"class": "Resample1minProcessor", "kwargs": {"hour": 14, "minute": 56}}])
    bars = _minute_frames(store, ["close"])
    day3 = bars[stocks[0]]["close"].loc[str(days[3].date())]
    assert day3.iloc[-5:].isna().all() and last[(days[3], stocks[0])] == day3.iloc[-6]
    assert np.isnan(last[(days[5], stocks[0])])  # the suspended day has a row, NaN
    assert np.isnan(at["feature"]["C"][(days[7], stocks[1])])
    assert np.isfinite(last[(days[7], stocks[1])])


def test_avg15min_columns_equal_pandas_on_the_same_bars(store: Path, kernel: Kernel) -> None:
    """The example's 15-minute averages: the engine's minute values resampled with Qlib's rule equal the dataset
    exactly, and equal pandas' own rolling means of the stored bars (float32 rounding apart)."""
    freq = {"label": "day", "feature_15min": "1min", "feature_day": "day"}
    processors = {"feature_15min": [{"class": "ResampleNProcessor", "kwargs": {"target_frq": "1d"}}]}
    raw = _dataset(store, kernel, handler={"name": "Avg15minHandler"}, freq=freq, inst_processors=processors)
    from qcore.builtin.qlib_multi_freq import avg15min_groups

    minute = {k: v for k, v in avg15min_groups()["feature_15min"].items() if k.startswith(("close", "volume"))}
    assert list(raw["feature"].columns[:8]) == ["close0", "open0", "low0", "high0", "volume0", "vwap0", "close15",
                                                "close14"]
    from qdata_cn.binstore import QlibBinProvider

    provider = QlibBinProvider({"day": str(store), "1min": str(store)})
    engine = ExpressionEngine(provider, kernel.registry("operator"), freq="1min")
    evaluated = engine.evaluate(minute, "all", "2015-01-05", "2015-02-17 23:59")
    by_instrument = {s: f.droplevel("instrument") for s, f in evaluated.groupby(level="instrument")}
    expected = _stack({s: _qlib_resample_n(f) for s, f in by_instrument.items()})
    got = raw["feature"].loc[expected.index, list(minute)]
    np.testing.assert_array_equal(got.to_numpy(), expected.to_numpy())  # the resampling, exactly
    spans = provider.universe("all")
    pandas_means = {}
    for symbol, frame in _minute_frames(store, ["close", "volume"]).items():
        columns = {}
        for field in ("close", "volume"):
            mean = frame[field].astype(np.float64).rolling(15, min_periods=1).mean()
            for k in range(1, 16):
                columns[f"{field}{16 - k}"] = mean.shift(15 * k)
            columns[f"{field}16"] = mean
        member = _members(pd.DataFrame(columns), spans[symbol], "2015-01-05", "2015-02-17")
        if len(member):
            pandas_means[symbol] = _qlib_resample_n(member)
    reference = _stack(pandas_means).loc[expected.index, list(minute)]
    np.testing.assert_allclose(got.to_numpy(), reference.to_numpy(), rtol=2e-6, equal_nan=True)
    assert np.isnan(got.to_numpy()).sum() == np.isnan(reference.to_numpy()).sum()


def test_a_feature_set_resamples_from_python(store: Path, kernel: Kernel) -> None:
    """The kernel's contract: a FeatureSet marks columns with a Resample; other columns stay at the day's bars."""
    from qdata_cn.binstore import QlibBinProvider

    provider = QlibBinProvider(store)
    engine = ExpressionEngine(provider, kernel.registry("operator"))
    feature_set = FeatureSet({"day_close": "$close", "close_1456": "$close", "close_last": "$close"},
                             resample={"close_1456": Resample("1min", "at", "14:56"),
                                       "close_last": Resample("1min", "last")})
    dataset = build_dataset(engine, feature_set, instruments="all", segments={"train": SEGMENTS["train"]})
    values = dataset.frame("raw")["feature"].dropna()
    other = FeatureSet(feature_set.features, resample={"close_1456": Resample("1min", "at", "14:55"),
                                                       "close_last": Resample("1min", "last")})
    plain = FeatureSet(feature_set.features)
    prints = {build_dataset(engine, f, instruments="all", segments={"train": SEGMENTS["train"]}).fingerprint
              for f in (feature_set, other, plain)}
    assert len(prints) == 3 and dataset.fingerprint in prints  # caches keyed by it tell the rules apart
    # the synthetic store's daily close is its last minute close: equal on days without holes
    np.testing.assert_array_equal(values["day_close"].to_numpy(), values["close_last"].to_numpy())
    assert (values["close_1456"] != values["close_last"]).any()
    with pytest.raises(ValueError, match="HH:MM"):
        Resample("1min", "at", "2:56")
    with pytest.raises(ValueError, match="not in the set"):
        FeatureSet({"a": "$close"}, resample={"b": Resample("1min")})


# -- refusals --------------------------------------------------------------------------------------------------


def _processors(value: Any, group: str = "feature") -> Any:
    def edit(config: dict[str, Any]) -> None:
        config["task"]["dataset"]["kwargs"]["handler"]["kwargs"]["inst_processors"][group] = value
    return edit


def _freq(value: Any) -> Any:
    def edit(config: dict[str, Any]) -> None:
        config["task"]["dataset"]["kwargs"]["handler"]["kwargs"]["freq"] = value
    return edit


@pytest.mark.parametrize(("edit", "message", "key"), [
    (_processors([{"class": "MyProcessor", "module_path": "mine.py"}]), "inst_processor 'MyProcessor' is not "
     "supported", f"{HANDLER}.inst_processors.feature.0.class"),
    (_processors([{"class": "Resample1minProcessor", "kwargs": {"hour": 24, "minute": 0}}]),
     "expected an integer from 0 to 23", f"{HANDLER}.inst_processors.feature.0.kwargs.hour"),
    (_processors([{"class": "Resample1minProcessor", "kwargs": {"hour": 14, "minute": 56, "second": 0}}]),
     "unknown argument 'second' of Resample1minProcessor", f"{HANDLER}.inst_processors.feature.0.kwargs.second"),
    (_processors([{"class": "Resample1minProcessor", "kwargs": {"hour": 14}}]), "needs 'minute'",
     f"{HANDLER}.inst_processors.feature.0.kwargs"),
    (_processors([{"class": "ResampleNProcessor", "kwargs": {"target_frq": "1w"}}]), "target_frq '1w' is not "
     "supported", f"{HANDLER}.inst_processors.feature.0.kwargs.target_frq"),
    (_processors([{"class": "ResampleNProcessor", "kwargs": {"target_frq": "1d"}}], "label"), "group 'label' is "
     "read at day frequency", f"{HANDLER}.inst_processors.label.0"),
    (_processors([{"class": "ResampleNProcessor", "kwargs": {"target_frq": "1d"}}] * 2), "exactly one resampling",
     f"{HANDLER}.inst_processors.feature.1"),
    (_freq({"feature": "1min"}), "freq gives no frequency for group 'label'", f"{HANDLER}.freq"),
    (_freq({"feature": "1min", "label": "day", "extra": "day"}), "freq names group 'extra'", f"{HANDLER}.freq.extra"),
    (_freq({"feature": "15s", "label": "day"}), "expected a frequency", f"{HANDLER}.freq.feature"),
])
def test_bad_multi_frequency_settings_are_refused_at_their_key(edit: Any, message: str, key: str, store: Path,
                                                               kernel: Kernel, tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        _check(_config(tmp_path, A158, store, edit), kernel)
    assert message in info.value.message and info.value.path == key and info.value.line is not None


def test_a_store_without_minute_bars_is_refused_before_reading(store: Path, day_store: Path, kernel: Kernel,
                                                               tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="provider_uri has no '1min' folder") as info:
        _check(_config(tmp_path, AVG15, store, uri={"day": str(day_store)}), kernel)
    assert info.value.path == "qlib_init.provider_uri" and info.value.line is not None
    with pytest.raises(ConfigError, match="are evaluated on 1min bars, but the store has no 1min bars") as info:
        _check(_config(tmp_path, AVG15, store, uri=str(day_store)), kernel)
    assert info.value.path == "qlib_init.provider_uri" and "close15" in info.value.message
    at_noon = _processors([{"class": "Resample1minProcessor", "kwargs": {"hour": 12, "minute": 0}}])
    with pytest.raises(ConfigError, match="calendar has no bar at 12:00"):
        _check(_config(tmp_path, A158, store, at_noon), kernel)
