"""Config values that used to reach internal errors: each is a one-line error naming the key and its line.

A small synthetic store backs the checks that need data (segments against the calendar, fields of the deal
price, the benchmark). Every case goes through ``qcore validate`` (which must catch it) and a sample through
``qcore run`` (which must stop before building the dataset).
"""

from __future__ import annotations

import datetime as dt
import re
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from qcore.cli import ExitCode, cli
from qcore.dates import MAX_YEAR, MIN_YEAR, DateError, parse_date

TEMPLATE = textwrap.dedent("""
    experiment: checks
    seed: 0
    data:
      provider: {name: qlib_bin, kwargs: {provider_uri: STORE}}
      market_rules: cn
      universe: csi300
    dataset:
      features: alpha158
      segments:
        train: [2015-02-02, 2015-09-30]
        valid: [2015-10-08, 2015-12-31]
        test: [2016-01-04, 2016-03-18]
      learn_processors: [DropnaLabel]
    model:
      name: linear
      kwargs: {estimator: ridge, alpha: 1.0}
    backtest:
      strategy: {name: TopkDropout, kwargs: {topk: 5, n_drop: 1}}
      account: 100000000
      benchmark: SH000300
      exchange: {limit_threshold: 0.095, deal_price: close, open_cost: 0.0005, close_cost: 0.0015, min_cost: 5}
    recorder: {name: local, kwargs: {uri: RUNS}}
""").lstrip()


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("store") / "synth"
    args = ["data", "synth", "--out", str(out), "--instruments", "12", "--days", "300", "--seed", "0"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    return out


def config(tmp_path: Path, store: Path, old: str = "", new: str = "") -> Path:
    text = TEMPLATE
    if old:
        assert old in text, old
        text = text.replace(old, new, 1)
    text = text.replace("STORE", str(store)).replace("RUNS", str(tmp_path / "runs"))
    path = tmp_path / "wf.yaml"
    path.write_text(text)
    return path


def snapshot(*folders: Path) -> dict[str, bytes]:
    return {str(p): p.read_bytes() for folder in folders for p in sorted(folder.rglob("*")) if p.is_file()}


def fails(path: Path, key: str, needle: str, fragment: str, command: str = "validate", *extra: str) -> str:
    """Run ``qcore COMMAND path``; assert one error line at ``key`` on the line of ``needle``, with ``fragment``."""
    result = CliRunner().invoke(cli, [command, str(path), *extra])
    output = result.output.strip()
    assert result.exit_code not in (0, ExitCode.INTERNAL), output
    assert "Traceback" not in output and "internal error" not in output
    line = output.splitlines()[-1]
    number = next(i for i, text in enumerate(path.read_text().splitlines(), 1) if needle in text)
    assert line.startswith(f"Error: {path}:{number}: {key}: "), line
    assert fragment in line, line
    return line


# ---------------------------------------------------------------------------------------------------------------
# The date parser other commands share
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2020-01-31", "2020-01-31"),
        (" 2020/1/5 ", "2020-01-05"),
        ("20200131", "2020-01-31"),
        ("2020-01-31 15:00", "2020-01-31 15:00:00"),
        (dt.date(2020, 2, 29), "2020-02-29"),
        (dt.datetime(2020, 1, 2, 3, 4), "2020-01-02 03:04:00"),
        (pd.Timestamp("2020-01-02"), "2020-01-02"),
        (np.datetime64("2020-01-02"), "2020-01-02"),
    ],
)
def test_parse_date_accepts(value: object, expected: str) -> None:
    stamp = parse_date(value, "--start")
    assert stamp == pd.Timestamp(expected) and stamp.tz is None and stamp.unit == "ns"


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("2020-13-45", "month must be in 1..12"),
        ("2020-02-30", "day is out of range"),
        ("2019-02-29", "day is out of range"),
        ("yesterday", "not a date"),
        ("now", "not a date"),
        ("", "empty date"),
        ("   ", "empty date"),
        ("01/02/2020", "not a date"),
        ("2020131", "two-digit month and day"),
        ("2020-01-01T10:00:00+08:00", "time-zone-aware"),
        ("2020-01-01 10:00 UTC", "time-zone-aware"),
        (pd.Timestamp("2020-01-01", tz="Asia/Shanghai"), "time-zone-aware"),
        (dt.datetime(2020, 1, 1, tzinfo=dt.UTC), "time-zone-aware"),
        ("9999-01-01", f"out of range {MIN_YEAR}..{MAX_YEAR}"),
        ("0001-01-01", "out of range"),
        (dt.date(2300, 1, 1), "out of range"),
        (np.datetime64("50000-01-01"), "out of range"),
        (pd.NaT, "NaT"),
        (2020, "not a date: int"),
        (20200131.0, "not a date: float"),
        (True, "not a date"),
        (None, "not a date"),
        (["2020-01-01"], "not a date: list"),
    ],
)
def test_parse_date_refuses_naming_the_label(value: object, reason: str) -> None:
    with pytest.raises(DateError) as info:
        parse_date(value, "task.dataset.kwargs.segments.test.1")
    message = str(info.value)
    assert message.startswith("task.dataset.kwargs.segments.test.1: expected a date such as 2020-01-31, got ")
    assert reason in message


# ---------------------------------------------------------------------------------------------------------------
# Families of bad values in a qcore workflow, through `qcore validate`
# ---------------------------------------------------------------------------------------------------------------

SEGMENTS = [
    ("test: [2016-01-04, 2016-03-18]", "test: [2016-01-04, 2016-02-30]", "dataset.segments.test.1", "test: [",
     "got '2016-02-30' (invalid date"),
    ("test: [2016-01-04, 2016-03-18]", "test: [abc, 2016-03-18]", "dataset.segments.test.0", "test: [",
     "got 'abc' (not a date)"),
    ("test: [2016-01-04, 2016-03-18]", "test: [2016-03-18, 2016-01-04]", "dataset.segments.test", "test: [",
     "the test segment ends (2016-01-04) before it starts (2016-03-18)"),
    ("test: [2016-01-04, 2016-03-18]", "test: [2017-01-04, 2017-03-18]", "dataset.segments.test.0", "test: [",
     "the test segment starts on 2017-01-04, after the store's last day (the store's calendar is 2015-01-05.."),
    ("train: [2015-02-02, 2015-09-30]", "train: [2010-01-04, 2011-03-18]", "dataset.segments.train.1", "train:",
     "the train segment ends on 2011-03-18, before the store's first day"),
    ("valid: [2015-10-08, 2015-12-31]", "valid: [2015-10-10, 2015-10-11]", "dataset.segments.valid.0", "valid:",
     "the valid segment holds no trading day of the store"),
    ("test: [2016-01-04, 2016-03-18]", "test: [2016-01-04]", "dataset.segments.test", "test: [",
     "expected [start, end]"),
    ("test: [2016-01-04, 2016-03-18]", "test: [2016-01-04, 9999-01-01]", "dataset.segments.test.1", "test: [",
     "year 9999 is out of range"),
    ("learn_processors: [DropnaLabel]", "learn_processors: [DropnaLabel]\n  fit_start: 2015-02-30",
     "dataset.fit_start", "fit_start:", "invalid date"),
    ("universe: csi300", "universe: csi300\n  start: 2030-01-01", "data.start", "start:",
     "after the store's last day"),
]

STRATEGY = [
    ("topk: 5", "topk: five", "expected an integer, got 'five'"),
    ("topk: 5", "topk: 0", "expected a number >= 1, got 0"),
    ("topk: 5", "topk: -3", "expected a number >= 1, got -3"),
    ("topk: 5", "topk: true", "expected an integer, got True"),
    ("topk: 5", "topk: 2.5", "expected an integer, got 2.5"),
    ("topk: 5", "topk: .inf", "expected an integer, got inf"),
    ("n_drop: 1", "n_drop: 9", "n_drop (9) cannot exceed topk (5)"),
    ("n_drop: 1", "n_drop: -1", "expected a number >= 0, got -1"),
    ("n_drop: 1", "n_drop: 1, risk_degree: 1.5", "expected a number >= 0.0 and <= 1.0, got 1.5"),
    ("n_drop: 1", "n_drop: 1, method_sell: worst", "expected one of bottom, random, got 'worst'"),
    ("n_drop: 1", "n_drop: 1, seed: -1", "expected a non-negative integer or null, got -1"),
    ("n_drop: 1", "n_drop: 1, tokp: 3", "unknown argument 'tokp' of strategy TopkDropout; did you mean 'topk'?"),
]

BACKTEST = [
    ("deal_price: close", "deal_price: $vwapp", "backtest.exchange.deal_price", "deal_price",
     "the store has no field $vwapp (fields: $amount, $change, $close"),
    ("deal_price: close", "deal_price: vwapp", "backtest.exchange.deal_price", "deal_price",
     "the store has no field $vwapp"),
    ("deal_price: close", "deal_price: [$open, 'Mean($clos, 5)']", "backtest.exchange.deal_price.1", "deal_price",
     "unknown field '$clos'; did you mean '$close'?"),
    ("deal_price: close", "deal_price: 'Mean($close,'", "backtest.exchange.deal_price", "deal_price",
     "invalid expression 'Mean($close,'"),
    ("deal_price: close", "deal_price: 5", "backtest.exchange.deal_price", "deal_price", "expected a price"),
    ("account: 100000000", "account: 0", "backtest.account", "account:", "starting cash must be > 0, got 0"),
    ("account: 100000000", "account: -5", "backtest.account", "account:", "starting cash must be > 0"),
    ("account: 100000000", "account: .nan", "backtest.account", "account:", "got nan"),
    ("account: 100000000", "account: .inf", "backtest.account", "account:", "got inf"),
    ("account: 100000000", "account: lots", "backtest.account", "account:", "got 'lots'"),
    ("account: 100000000", "account: true", "backtest.account", "account:", "got True"),
    ("account: 100000000", "account: {cash: -1}", "backtest.account.cash", "account:", "expected cash >= 0.0"),
    ("account: 100000000", "account: {money: 1}", "backtest.account", "account:", "needs a 'cash' entry"),
    ("account: 100000000", "account: {cash: 1e8, ZZZ999: 100}", "backtest.account.ZZZ999", "account:",
     "the starting holding 'ZZZ999' is not in the store"),
    ("open_cost: 0.0005", "open_cost: -0.0005", "backtest.exchange.open_cost", "open_cost", "got -0.0005"),
    ("close_cost: 0.0015", "close_cost: .nan", "backtest.exchange.close_cost", "close_cost", "got nan"),
    ("min_cost: 5", "min_cost: -5", "backtest.exchange.min_cost", "min_cost", "got -5"),
    ("limit_threshold: 0.095", "limit_threshold: 9.5", "backtest.exchange.limit_threshold", "limit_threshold",
     "> 0.0 and <= 1.0, got 9.5"),
    ("limit_threshold: 0.095", "limit_threshold: -0.1", "backtest.exchange.limit_threshold", "limit_threshold",
     "got -0.1"),
    ("min_cost: 5", "min_cost: 5, trade_unit: 0", "backtest.exchange.trade_unit", "trade_unit", "got 0"),
    ("min_cost: 5", "min_cost: 5, dealprice: close", "backtest.exchange.dealprice", "dealprice",
     "unknown exchange option 'dealprice'; did you mean 'deal_price'?"),
    ("benchmark: SH000300", "benchmark: SH999999", "backtest.benchmark", "benchmark:",
     "the benchmark 'SH999999' is not in the store"),
    ("benchmark: SH000300", "benchmark: 5", "backtest.benchmark", "benchmark:", "expected an instrument code"),
    ("benchmark: SH000300", "benchmark: []", "backtest.benchmark", "benchmark:", "expected an instrument code"),
    ("account: 100000000", "account: 100000000\n  start: 2030-01-01", "backtest.start", "start:",
     "the backtest starts on 2030-01-01, after the store's last day"),
    ("account: 100000000", "account: 100000000\n  start: 2016-03-22", "backtest.start", "start:", "no bar between"),
]

TYPES = [
    ("seed: 0", "seed: -1", "seed", "seed:", "expected an integer in 0..4294967295"),
    ("seed: 0", "seed: 1e20", "seed", "seed:", "expected an integer"),
    ("experiment: checks", "experiment: [a]", "experiment", "experiment:", "expected a non-empty string"),
    ("experiment: checks", "experiment: ~", "experiment", "experiment:", "expected a non-empty string"),
    ("universe: csi300", "universe: csi301", "data.universe", "universe:", "did you mean 'csi300'?"),
    ("universe: csi300", "universe: csi300\n  fields: [closee]", "data.fields.0", "fields:",
     "the store has no field 'closee'"),
    ("universe: csi300", "universe: csi300\n  freq: minute", "data.freq", "freq:", "the store has no 'minute'"),
    ("universe: csi300", "universe: csi300\n  extra: 1", "data.extra", "extra:", "unknown key 'extra'"),
    ("features: alpha158", "features: [alpha158]", "dataset.features", "features:", "expected a mapping"),
    ("features: alpha158", "features: {name: alpha158, kwargs: {label: 5}}", "dataset.features.kwargs.label",
     "features:", "label must be"),
    ("learn_processors: [DropnaLabel]", "learn_processors: [{name: CSZScoreNorm, kwargs: {field_group: label}}]",
     "dataset.learn_processors.0.kwargs.field_group", "learn_processors", "did you mean 'fields_group'?"),
    ("learn_processors: [DropnaLabel]", "learn_processors: [~]", "dataset.learn_processors.0", "learn_processors",
     "missing required key 'name'"),
    ("learn_processors: [DropnaLabel]", "learn_processors: {a: 1}", "dataset.learn_processors", "learn_processors",
     "expected a list of processors"),
    ("kwargs: {estimator: ridge, alpha: 1.0}", "kwargs: [1, 2]", "model.kwargs", "kwargs: [1",
     "expected a mapping of keyword arguments"),
    ("kwargs: {estimator: ridge, alpha: 1.0}", "kwargs: {1: 2}", "model.kwargs", "kwargs: {1",
     "keyword argument names are identifiers"),
    ("provider: {name: qlib_bin, kwargs: {provider_uri: STORE}}", "provider: {name: qlib_bin, kwargs: {uri: 5}}",
     "data.provider.kwargs.uri", "provider:", "unknown keyword argument 'uri'"),
    ("market_rules: cn", "market_rules: {name: cn, kwargs: {foo: 1}}", "data.market_rules.kwargs.foo",
     "market_rules:", "unknown keyword argument 'foo' for market_rules 'cn'"),
    ("  strategy: {name: TopkDropout, kwargs: {topk: 5, n_drop: 1}}", "  strategy: ~", "backtest.strategy",
     "strategy:", "missing required key 'strategy'"),
    ("recorder: {name: local, kwargs: {uri: RUNS}}", "recorder: 5", "recorder", "recorder:",
     "expected a mapping, got an integer"),
    ("exchange: {", "pos_type: Infinite\n  exchange: {", "backtest.pos_type", "pos_type",
     "only pos_type Position is supported"),
]


@pytest.mark.parametrize(("old", "new", "key", "needle", "fragment"), SEGMENTS, ids=[c[1] for c in SEGMENTS])
def test_dates_and_segments(tmp_path: Path, store: Path, old: str, new: str, key: str, needle: str,
                            fragment: str) -> None:
    fails(config(tmp_path, store, old, new), key, needle, fragment)


@pytest.mark.parametrize(("old", "new", "fragment"), STRATEGY, ids=[c[1] for c in STRATEGY])
def test_strategy_arguments(tmp_path: Path, store: Path, old: str, new: str, fragment: str) -> None:
    key = "backtest.strategy.kwargs." + re.split(r"[:,]", new.split(", ")[-1])[0].strip()
    fails(config(tmp_path, store, old, new), key, "strategy:", fragment)


@pytest.mark.parametrize(("old", "new", "key", "needle", "fragment"), BACKTEST, ids=[c[1] for c in BACKTEST])
def test_backtest_options(tmp_path: Path, store: Path, old: str, new: str, key: str, needle: str,
                          fragment: str) -> None:
    fails(config(tmp_path, store, old, new), key, needle, fragment)


@pytest.mark.parametrize(("old", "new", "key", "needle", "fragment"), TYPES, ids=[c[1] for c in TYPES])
def test_wrong_types_and_names(tmp_path: Path, store: Path, old: str, new: str, key: str, needle: str,
                               fragment: str) -> None:
    fails(config(tmp_path, store, old, new), key, needle, fragment)


MODELS = [
    ("linear", "{estimator: ridge, alpah: 1.0}", "alpah", "did you mean 'alpha'? (accepted: alpha, estimator"),
    ("linear", "{estimator: ridge, alpha: -1}", "alpha", "alpha must be >= 0"),
    ("linear", "{estimator: ridg}", "estimator", "estimator must be one of ols, ridge, lasso, nnls"),
    ("lightgbm", "{num_leavs: 31}", "num_leavs", "did you mean 'num_leaves'?"),
    ("lightgbm", "{num_leaves: five}", "num_leaves", "LightGBM refuses num_leaves='five'"),
    ("lightgbm", "{learning_rate: -0.1}", "learning_rate", "LightGBM refuses learning_rate=-0.1"),
    ("lightgbm", "{subsample: 2}", "subsample", "LightGBM refuses subsample=2"),
    ("lightgbm", "{loss: mae}", "loss", "loss must be one of mse, binary"),
    ("double_ensemble", "{epoch: 10}", "epoch", "did you mean 'epochs'?"),
    ("double_ensemble", "{sample_ratios: 5}", "sample_ratios", "sample_ratios must be a list of numbers"),
    ("mlp", "{lrr: 0.1}", "lrr", "did you mean 'lr'?"),
    ("mlp", "{layers: 3.0}", "layers", "layers must be a non-empty list"),
    ("lstm", "{lr: fast}", "lr", "lr must be a number, got 'fast'"),
    ("gru", "{hiden_size: 8}", "hiden_size", "did you mean 'hidden_size'?"),
    ("alstm", "{rnn_type: CNN}", "rnn_type", "rnn_type must be one of GRU, LSTM, RNN"),
    ("transformer", "{d_model: 10, nhead: 4}", "nhead", "d_model=10 must be a multiple of nhead=4"),
    ("transformer", "{GPU: 1.5}", "GPU", "GPU must be a device index"),
]


@pytest.mark.parametrize(("model", "kwargs", "key", "fragment"), MODELS, ids=[f"{m[0]}-{m[2]}" for m in MODELS])
def test_model_arguments_of_every_model(tmp_path: Path, store: Path, model: str, kwargs: str, key: str,
                                        fragment: str) -> None:
    if model in ("mlp", "lstm", "gru", "alstm", "transformer"):
        pytest.importorskip("torch")
    path = config(tmp_path, store, "name: linear\n  kwargs: {estimator: ridge, alpha: 1.0}",
                  f"name: {model}\n  kwargs: {kwargs}")
    fails(path, f"model.kwargs.{key}", "kwargs: {" + kwargs[1:4], fragment)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("backtest.strategy.kwargs.topk=five", "backtest.strategy.kwargs.topk: expected an integer, got 'five'"),
        ("data.start=2020-02-30", "data.start: expected a date such as 2020-01-31, got '2020-02-30'"),
        ("dataset.segments.test.0=2099-01-01", "dataset.segments.test: the test segment ends (2016-03-18) before"),
        ("backtest.account=.nan", "backtest.account: expected starting cash (a positive number)"),
        ("model.kwargs.alpah=1", "model.kwargs.alpah: unknown parameter 'alpah' for the linear model"),
    ],
)
def test_set_overrides_name_the_key_without_a_line(tmp_path: Path, store: Path, override: str, message: str) -> None:
    path = config(tmp_path, store)
    result = CliRunner().invoke(cli, ["validate", str(path), "--set", override])
    assert result.exit_code == ExitCode.CONFIG, result.output
    assert result.output.startswith(f"Error: {path}: {message}"), result.output


# ---------------------------------------------------------------------------------------------------------------
# Qlib-format workflows: the errors name Qlib's keys and lines
# ---------------------------------------------------------------------------------------------------------------

QLIB = textwrap.dedent("""
    qlib_init:
        provider_uri: "STORE"
        region: cn
    market: &market csi300
    benchmark: &benchmark SH000300
    data_handler_config: &data_handler_config
        start_time: 2015-01-05
        end_time: 2016-03-18
        fit_start_time: 2015-02-02
        fit_end_time: 2015-09-30
        instruments: *market
    port_analysis_config: &port_analysis_config
        strategy:
            class: TopkDropoutStrategy
            module_path: qlib.contrib.strategy
            kwargs:
                signal: [<MODEL>, <DATASET>]
                topk: 5
                n_drop: 1
        backtest:
            start_time: 2016-01-04
            end_time: 2016-03-17
            account: 100000000
            benchmark: *benchmark
            exchange_kwargs:
                limit_threshold: 0.095
                deal_price: close
                open_cost: 0.0005
                close_cost: 0.0015
                min_cost: 5
    task:
        model:
            class: LGBModel
            module_path: qlib.contrib.model.gbdt
            kwargs: {loss: mse, num_threads: 2}
        dataset:
            class: DatasetH
            module_path: qlib.data.dataset
            kwargs:
                handler:
                    class: Alpha158
                    module_path: qlib.contrib.data.handler
                    kwargs: *data_handler_config
                segments:
                    train: [2015-02-02, 2015-09-30]
                    valid: [2015-10-08, 2015-12-31]
                    test: [2016-01-04, 2016-03-18]
        record:
            - class: SignalRecord
              module_path: qlib.workflow.record_temp
              kwargs: {model: <MODEL>, dataset: <DATASET>}
            - class: PortAnaRecord
              module_path: qlib.workflow.record_temp
              kwargs:
                config: *port_analysis_config
""").lstrip()

QLIB_CASES = [
    ("test: [2016-01-04, 2016-03-18]", "test: [2016-01-04, 2016-02-30]", "task.dataset.kwargs.segments.test.1",
     "test: [", "invalid date"),
    ("test: [2016-01-04, 2016-03-18]", "test: [2017-01-04, 2017-03-18]", "task.dataset.kwargs.segments.test.0",
     "test: [", "after the store's last day"),
    ("topk: 5", "topk: five", "task.record.1.kwargs.config.strategy.kwargs.topk", "topk:", "got 'five'"),
    ("n_drop: 1", "n_drop: 8", "task.record.1.kwargs.config.strategy.kwargs.n_drop", "n_drop:", "cannot exceed"),
    ("{loss: mse, num_threads: 2}", "{loss: mse, num_leavs: 2}", "task.model.kwargs.num_leavs", "kwargs: {loss",
     "did you mean 'num_leaves'?"),
    ("deal_price: close", "deal_price: $vwapp", "task.record.1.kwargs.config.backtest.exchange_kwargs.deal_price",
     "deal_price:", "the store has no field $vwapp"),
    ("account: 100000000", "account: 0", "task.record.1.kwargs.config.backtest.account", "account:", "must be > 0"),
    ("account: 100000000", "account: .nan", "task.record.1.kwargs.config.backtest.account", "account:", "got nan"),
    ("close_cost: 0.0015", "close_cost: -1", "task.record.1.kwargs.config.backtest.exchange_kwargs.close_cost",
     "close_cost:", "got -1"),
    ("benchmark: &benchmark SH000300", "benchmark: &benchmark SH000999",
     "task.record.1.kwargs.config.backtest.benchmark", "benchmark: *benchmark", "not in the store"),
    ("start_time: 2016-01-04", "start_time: yesterday", "task.record.1.kwargs.config.backtest.start_time",
     "start_time: yesterday", "not a date"),
    ("market: &market csi300", "market: &market csi301", "task.dataset.kwargs.handler.kwargs.instruments",
     "instruments: *market", "did you mean 'csi300'?"),
    ("end_time: 2016-03-18", "end_time: 2016-03-48", "task.dataset.kwargs.handler.kwargs.end_time", "end_time:",
     "invalid date"),
    ("region: cn", "region: [cn]", "qlib_init.region", "region:", "unsupported region"),
    ('provider_uri: "STORE"', "provider_uri: 5", "qlib_init.provider_uri", "provider_uri:", "got 5"),
    ("fit_end_time: 2015-09-30", "fit_end_time: 2014-09-30", "task.dataset.kwargs.handler.kwargs.fit_end_time",
     "fit_end_time:", "the fit window ends"),
]


@pytest.mark.parametrize(("old", "new", "key", "needle", "fragment"), QLIB_CASES, ids=[c[1] for c in QLIB_CASES])
def test_qlib_format(tmp_path: Path, store: Path, old: str, new: str, key: str, needle: str, fragment: str) -> None:
    assert old in QLIB
    path = tmp_path / "qlib.yaml"
    path.write_text(QLIB.replace(old, new, 1).replace("STORE", str(store)))
    fails(path, key, needle, fragment)


def test_the_qlib_template_is_valid(tmp_path: Path, store: Path) -> None:
    path = tmp_path / "qlib.yaml"
    path.write_text(QLIB.replace("STORE", str(store)))
    result = CliRunner().invoke(cli, ["validate", str(path)])
    assert result.exit_code == 0, result.output


# ---------------------------------------------------------------------------------------------------------------
# `qcore run` stops before any data is read, writes no model, and leaves the store alone
# ---------------------------------------------------------------------------------------------------------------

RUN_CASES = [
    ("test: [2016-01-04, 2016-03-18]", "test: [2016-01-04, 2016-02-30]", "dataset.segments.test.1", "test: ["),
    ("test: [2016-01-04, 2016-03-18]", "test: [2016-05-04, 2016-06-18]", "dataset.segments.test.0", "test: ["),
    ("topk: 5", "topk: five", "backtest.strategy.kwargs.topk", "strategy:"),
    ("kwargs: {estimator: ridge, alpha: 1.0}", "kwargs: {estimator: ridge, alpah: 1.0}", "model.kwargs.alpah",
     "kwargs: {estimator"),
    ("deal_price: close", "deal_price: $vwapp", "backtest.exchange.deal_price", "deal_price"),
    ("account: 100000000", "account: .nan", "backtest.account", "account:"),
    ("benchmark: SH000300", "benchmark: SH999999", "backtest.benchmark", "benchmark:"),
]


@pytest.mark.parametrize(("old", "new", "key", "needle"), RUN_CASES, ids=[c[1] for c in RUN_CASES])
def test_run_stops_before_reading_data(tmp_path: Path, store: Path, monkeypatch: pytest.MonkeyPatch, old: str,
                                       new: str, key: str, needle: str) -> None:
    import qcore.runner

    def data_step(context: object) -> None:
        raise AssertionError("the data step ran before the config was checked")

    monkeypatch.setattr(qcore.runner, "_data_step", data_step)
    path = config(tmp_path, store, old, new)
    before = snapshot(store)
    fails(path, key, needle, "", "run")
    assert snapshot(store) == before
    runs = tmp_path / "runs"
    written = [p.name for p in runs.rglob("*") if p.is_file()] if runs.exists() else []
    assert not [name for name in written if name.startswith("model") or name.endswith(".parquet")], written
    assert sorted(p.name for p in tmp_path.iterdir()) in (["wf.yaml"], ["runs", "wf.yaml"])


# ---------------------------------------------------------------------------------------------------------------
# Mutated configs: any value anywhere replaced by any other kind of value never ends in an internal error
# ---------------------------------------------------------------------------------------------------------------

BAD_VALUES = [None, True, -1, 2**70, float("nan"), "", "five", "2020-02-30", [1, "a"], {"x": None},
              dt.date(2020, 1, 1), "x" * 300]


def _paths(value: object, prefix: str = "") -> list[str]:
    out = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, item in value.items():
            out += _paths(item, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            out += _paths(item, f"{prefix}.{i}" if prefix else str(i))
    return out


def _mutated(data: dict, path: str, value: object, mode: str) -> dict:
    import copy

    data = copy.deepcopy(data)
    parts = path.split(".")
    node: object = data
    for part in parts[:-1]:
        node = node[int(part)] if isinstance(node, list) else node[part]  # type: ignore[index]
    last: object = int(parts[-1]) if isinstance(node, list) else parts[-1]
    if mode == "delete":
        del node[last]  # type: ignore[index, union-attr]
    elif mode == "extra" and isinstance(node, dict):
        node[f"{last}_extra"] = value
    else:
        node[last] = value  # type: ignore[index]
    return data


def _check_mutation(tmp_path: Path, store: Path, data: dict, path: str, value: object, mode: str) -> None:
    import yaml

    target = tmp_path / "fuzz.yaml"
    target.write_text(yaml.safe_dump(_mutated(data, path, value, mode), sort_keys=False))
    result = CliRunner().invoke(cli, ["validate", str(target)])
    assert result.exit_code != ExitCode.INTERNAL, (path, value, mode, result.output)
    assert "Traceback" not in result.output
    if result.exit_code == ExitCode.CONFIG:
        assert result.output.startswith(f"Error: {target}"), (path, value, mode, result.output)
    else:  # a store that cannot be read (an empty provider_uri reads the working folder) names its file
        assert result.exit_code in (0, ExitCode.DATA), (path, value, mode, result.output)
    lines = [line for line in result.output.strip().splitlines() if not line.startswith("WARNING")]
    assert len(lines) == 1, result.output


@pytest.fixture(scope="module")
def template_data(store: Path) -> dict:
    import yaml

    return yaml.safe_load(TEMPLATE.replace("STORE", str(store)).replace("RUNS", str(store.parent / "runs")))


def test_every_key_with_every_kind_of_bad_value(tmp_path: Path, store: Path, template_data: dict) -> None:
    before = snapshot(store)
    for path in _paths(template_data):
        for mode in ("replace", "delete", "extra"):
            for value in BAD_VALUES if mode == "replace" else [1]:
                _check_mutation(tmp_path, store, template_data, path, value, mode)
    assert snapshot(store) == before


def test_every_key_of_a_qlib_config(tmp_path: Path, store: Path) -> None:
    import yaml

    data = yaml.safe_load(QLIB.replace("STORE", str(store)))
    for path in _paths(data):
        for mode in ("replace", "delete"):
            for value in (None, {"x": 1}) if mode == "replace" else [1]:
                _check_mutation(tmp_path, store, data, path, value, mode)


def test_random_mutations(tmp_path_factory: pytest.TempPathFactory, store: Path, template_data: dict) -> None:
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    leaves = st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12) | st.dates().map(str),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
        max_leaves=6,
    )
    tmp_path = tmp_path_factory.mktemp("fuzz")

    @settings(max_examples=60, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
    @given(path=st.sampled_from(_paths(template_data)), value=leaves, mode=st.sampled_from(["replace", "extra"]))
    def check(path: str, value: object, mode: str) -> None:
        _check_mutation(tmp_path, store, template_data, path, value, mode)

    check()
