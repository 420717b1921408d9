"""Qlib's LightGBM/Alpha158 YAML on stores shaped like real ones: one without ``vwap`` (Qlib's Yahoo collector writes
none), one without ``change`` and ``factor``. Both run, with a warning naming what is missing; ``$change`` is derived
for the price limits; a misconfigured run fails in validation, before any model is fitted."""

from __future__ import annotations

import logging
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

import qcore
from qcore.cli import cli
from tests.expr.test_missing_fields import build_store

#: Qlib's workflow_config_lightgbm_Alpha158.yaml cut to the 300-day synthetic store and a few LightGBM rounds.
QLIB_YAML = """\
qlib_init:
  provider_uri: "{store}"
  region: cn
market: &market csi300
benchmark: &benchmark {benchmark}
data_handler_config: &data_handler_config
  start_time: 2015-01-05
  end_time: 2016-03-22
  fit_start_time: 2015-01-05
  fit_end_time: 2015-09-30
  instruments: *market{label}
port_analysis_config: &port_analysis_config
  strategy:
    class: TopkDropoutStrategy
    module_path: qlib.contrib.strategy
    kwargs: {{signal: <PRED>, topk: 5, n_drop: 1}}
  backtest:
    start_time: {bt_start}
    end_time: {bt_end}
    account: 100000000
    benchmark: *benchmark
    exchange_kwargs: {{limit_threshold: 0.095, deal_price: {deal_price}, open_cost: 0.0005, close_cost: 0.0015,
                      min_cost: 5}}
task:
  model:
    class: LGBModel
    module_path: qlib.contrib.model.gbdt
    kwargs: {{loss: mse, num_boost_round: 5, num_leaves: 8, num_threads: 1}}
  dataset:
    class: DatasetH
    module_path: qlib.data.dataset
    kwargs:
      handler:
        class: Alpha158
        module_path: qlib.contrib.data.handler
        kwargs: *data_handler_config
      segments:
        train: [2015-01-05, 2015-09-30]
        valid: [2015-10-08, 2015-12-31]
        test: [{test_start}, {test_end}]
  record:
    - {{class: SignalRecord, module_path: qlib.workflow.record_temp, kwargs: {{model: <MODEL>, dataset: <DATASET>}}}}
    - {{class: SigAnaRecord, module_path: qlib.workflow.record_temp, kwargs: {{ana_long_short: false}}}}
    - {{class: PortAnaRecord, module_path: qlib.workflow.record_temp, kwargs: {{config: *port_analysis_config}}}}
"""


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("real_stores")
    return {
        "full": build_store(root, "full", ()),
        "novwap": build_store(root, "novwap", ("vwap",)),
        "nochg": build_store(root, "nochg", ("change", "factor")),
    }


@pytest.fixture
def fits(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every LightGBM fit of the test (the model plugin's own ``fit``, spied on)."""
    from qmodel_zoo.gbdt import LGBModel

    calls: list[Any] = []
    original = LGBModel.fit

    def spy(self: Any, dataset: Any) -> Any:
        calls.append(dataset)
        return original(self, dataset)

    monkeypatch.setattr(LGBModel, "fit", spy)
    return calls


def _yaml(tmp_path: Path, store: Path, **values: str) -> Path:
    fields = {"store": str(store), "benchmark": "SH000300", "deal_price": "close", "test_start": "2016-01-04",
              "test_end": "2016-03-22",
              "label": "", "bt_start": "2016-01-04", "bt_end": "2016-03-21"}
    path = tmp_path / "workflow_config_lightgbm_Alpha158.yaml"
    path.write_text(textwrap.dedent(QLIB_YAML).format(**{**fields, **values}))
    return path


def _run(path: Path, runs: Path, *extra: str) -> Any:
    return CliRunner().invoke(cli, ["run", str(path), "--set", "recorder.name=local", "--set",
                                    f"recorder.kwargs.uri={runs}", *extra])  # fmt: skip


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


def test_qlib_yaml_runs_on_a_store_without_vwap(stores: dict[str, Path], tmp_path: Path, fits: list[Any],
                                                caplog: pytest.LogCaptureFixture) -> None:  # fmt: skip
    with caplog.at_level(logging.WARNING):
        result = _run(_yaml(tmp_path, stores["novwap"]), tmp_path / "runs")
    assert result.exit_code == 0, result.output
    assert len(fits) == 1 and "Annualised excess return (with cost)" in result.output
    vwap = [w for w in _warnings(caplog) if "$vwap" in w]
    assert vwap == ["the store has no field '$vwap': it is read as NaN, so 1 column(s) are NaN where they use it: "
                    "VWAP0"]  # fmt: skip


def test_qlib_yaml_runs_on_a_store_without_change_and_factor(stores: dict[str, Path], tmp_path: Path,
                                                             fits: list[Any],
                                                             caplog: pytest.LogCaptureFixture) -> None:  # fmt: skip
    with caplog.at_level(logging.WARNING):
        result = _run(_yaml(tmp_path, stores["nochg"]), tmp_path / "runs")
    assert result.exit_code == 0, result.output
    assert len(fits) == 1 and "Max drawdown (with cost)" in result.output
    warnings = _warnings(caplog)
    assert ("the store has no field '$change': price limits are checked on it derived as "
            "$close / Ref($close, 1) - 1") in warnings  # fmt: skip
    assert any(w.startswith("the store has no field '$factor': trade units are disabled") for w in warnings)


def test_derived_change_gives_the_stored_limits_except_after_suspensions(stores: dict[str, Path]) -> None:
    from qbacktest.exchange import Exchange

    kernel = qcore.load_kernel()
    exchanges = {}
    for name in ("full", "nochg"):
        provider = qcore.open_provider("qlib_bin", provider_uri=str(stores[name]), kernel=kernel)
        dates = provider.calendar("day")[1:]
        symbols = sorted(provider.universe("csi300"))
        exchanges[name] = Exchange.qlib(provider, kernel.registry("operator"), symbols, dates, limit_threshold=0.095)
    full, derived = exchanges["full"], exchanges["nochg"]
    assert derived.limit_buy.sum() > 0 and derived.limit_sell.sum() > 0
    provider = qcore.open_provider("qlib_bin", provider_uri=str(stores["full"]), kernel=kernel)
    close = provider.load(["close"], symbols, provider.calendar("day")[0], dates[-1], "day")["close"]
    after_gap = np.isnan(close[:-1]) | np.isnan(close[1:])  # the bar after (or on) a suspension
    for side in ("limit_buy", "limit_sell"):
        differ = getattr(full, side) != getattr(derived, side)
        assert not (differ & ~after_gap).any(), side
    assert full.trade_unit == 100 and derived.trade_unit is None


@pytest.mark.parametrize(
    ("store", "values", "extra", "key", "message"),
    [
        ("novwap", {"deal_price": "vwap"}, (), "exchange_kwargs.deal_price", "the store has no field $vwap"),
        ("novwap", {}, ("--set", "data.missing_fields=error"), "task.dataset.kwargs.handler",
         "the feature VWAP0 = $vwap/$close: unknown field '$vwap'"),
        ("novwap", {"label": '\n  label: ["Ref($vwap, -2) / Ref($vwap, -1) - 1"]'}, (), "task.dataset.kwargs.handler",
         "the label Ref($vwap, -2) / Ref($vwap, -1) - 1: unknown field '$vwap' (a label needs every field it reads)"),
        ("nochg", {"bt_start": "2015-02-02", "bt_end": "2015-03-31"}, (), "backtest.end_time",
         "the backtest ends on 2015-03-31, before the test segment the model predicts (2016-01-04..2016-03-22)"),
        ("nochg", {"benchmark": "SH999999"}, (), "benchmark", "the benchmark 'SH999999' is not in the store"),
        ("nochg", {"test_start": "2017-01-03", "test_end": "2017-03-01"}, (), "segments.test",
         "after the store's last day"),
    ],
)
def test_misconfigured_run_fails_before_training(stores: dict[str, Path], tmp_path: Path, fits: list[Any],
                                                 store: str, values: dict[str, str], extra: tuple[str, ...],
                                                 key: str, message: str) -> None:  # fmt: skip
    path = _yaml(tmp_path, stores[store], **values)
    runs = tmp_path / "runs"
    result = _run(path, runs, *extra)
    assert result.exit_code not in (0, 70), result.output
    assert message in result.output and key in result.output, result.output
    assert fits == []
    assert not list(runs.glob("**/model-*")) and not list(runs.glob("**/pred.parquet"))
    validated = CliRunner().invoke(cli, ["validate", str(path), *extra])
    assert validated.exit_code == result.exit_code and message in validated.output
