"""HIST (Qlib's ``HIST``): concepts from the store's industry codes or from Qlib-style files, training by date,
save/restore, and the pre-trained base."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from qcore.errors import ConfigError, DataError, QcoreError
from qcore.kernel import Kernel
from qcore.types import Panel
from tests.qmodel_zoo.helpers import assert_roundtrip, mean_test_ic
from tests.qmodel_zoo.planted import planted_dataset

torch = pytest.importorskip("torch")

from qmodel_zoo.nn.hist import concepts_from_files, concepts_from_store  # noqa: E402

SMALL = {"d_feat": 4, "hidden_size": 8, "num_layers": 1, "n_epochs": 2, "lr": 0.01, "seed": 0, "GPU": None,
         "metric": "ic"}


class IndustryStore:
    """A provider stand-in with an ``industry`` field: instrument ``S0ij`` is in industry ``j % 4`` (S000 has no
    code before its 10th date)."""

    def __init__(self, dates: pd.DatetimeIndex) -> None:
        self.dates = dates

    def fields(self, freq: str = "day") -> list[str]:
        return ["close", "industry"]

    def load(self, fields, instruments, start=None, end=None, freq="day") -> Panel:
        dates = self.dates[(self.dates >= start) & (self.dates <= end)]
        codes = np.array([[float(int(name[1:]) % 4) for name in instruments]] * len(dates))
        if "S000" in instruments:
            codes[: max(0, 10 - int(self.dates.get_loc(dates[0]))), list(instruments).index("S000")] = np.nan
        return Panel(dates, instruments, {fields[0]: codes.astype(np.float32)})


@pytest.fixture(scope="module")
def market():
    dataset = planted_dataset(n_instruments=40, n_days=60, seed=0, lags=4)
    dataset.provider = IndustryStore(dataset.frame("raw").index.get_level_values("datetime").unique())
    return dataset


def test_store_concepts_are_one_hot_industry_codes(market) -> None:
    features, _ = market.xy("train")
    concepts = concepts_from_store(market, features.index, "$industry")
    assert concepts.shape == (len(features), 4)
    names = features.index.get_level_values("instrument")
    s005 = np.flatnonzero(names == "S005")
    assert (concepts[s005] == [0, 1, 0, 0]).all()
    s000 = np.flatnonzero(names == "S000")
    assert concepts[s000[:10]].sum() == 0 and (concepts[s000[10:]] == [1, 0, 0, 0]).all()
    with pytest.raises(DataError, match=r"no \$sector field"):
        concepts_from_store(market, features.index, "sector")


def test_file_concepts_read_without_pickle(tmp_path, market) -> None:
    features, _ = market.xy("test")
    matrix = np.zeros((3, 2), np.float32)
    matrix[0, 1] = matrix[1, 0] = matrix[2, 1] = 1
    np.save(tmp_path / "s2c.npy", matrix)
    (tmp_path / "index.json").write_text(json.dumps({"S001": 0, "s002": 1}))
    concepts = concepts_from_files(features.index, str(tmp_path / "s2c.npy"), str(tmp_path / "index.json"))
    names = features.index.get_level_values("instrument")
    assert (concepts[names == "S001"] == [0, 1]).all() and (concepts[names == "S002"] == [1, 0]).all()
    assert concepts[names == "S003"].sum() == 0  # not listed: no concept
    np.save(tmp_path / "index.npy", np.array({"S001": 0}, dtype=object), allow_pickle=True)
    with pytest.raises(ConfigError, match="pickled dict"):
        concepts_from_files(features.index, str(tmp_path / "s2c.npy"), str(tmp_path / "index.npy"))
    with pytest.raises(DataError, match="qcore does not"):
        concepts_from_files(features.index, str(tmp_path / "missing.npy"), str(tmp_path / "index.json"))
    (tmp_path / "far.json").write_text(json.dumps({"S001": 7}))
    with pytest.raises(DataError, match="past the matrix"):
        concepts_from_files(features.index, str(tmp_path / "s2c.npy"), str(tmp_path / "far.json"))


@pytest.mark.slow
def test_learns_by_date_and_roundtrips(kernel: Kernel, market, tmp_path) -> None:
    model = kernel.create("model", "HIST", **SMALL).fit(market)
    assert len(model.evals_result_["valid"]) == 2
    assert mean_test_ic(model, market) > 0.05
    assert_roundtrip(model, market, tmp_path, kernel, "hist")
    # a stock's score depends on the other stocks of its day (shared concept information)
    net = model.network
    x = torch.randn(6, 16 + 4)
    x[:, 16:] = torch.eye(4)[[0, 0, 1, 1, 2, 3]]
    y = x.clone()
    y[1, :16] += 2.0
    with torch.no_grad():
        assert not torch.isclose(net(x)[0], net(y)[0])


def test_pretrained_base_and_missing_store(kernel: Kernel, market, tmp_path) -> None:
    gru = kernel.create("model", "gru", d_feat=4, hidden_size=8, num_layers=1, n_epochs=1, seed=0, GPU=None)
    gru.fit(market)
    gru.save(tmp_path / "gru")
    model = kernel.create("model", "HIST", **{**SMALL, "n_epochs": 1, "model_path": str(tmp_path / "gru")})
    network = model._prepare_network  # the base is loaded before training starts
    from qmodel_zoo.nn.hist_network import HISTNet

    fresh = HISTNet(4, 16, 8, 1)
    network(fresh)
    assert torch.equal(fresh.state_dict()["rnn.weight_hh_l0"], gru.network.state_dict()["rnn.weight_hh_l0"])
    with pytest.raises(ConfigError, match="no recurrent base"):
        kernel.create("model", "HIST", **{**SMALL, "hidden_size": 16, "model_path": str(tmp_path / "gru")}
                      )._prepare_network(HISTNet(4, 16, 16, 1))
    bare = planted_dataset(n_instruments=10, n_days=30, seed=1, lags=4)
    with pytest.raises(QcoreError, match="this dataset has none"):
        kernel.create("model", "HIST", **SMALL).fit(bare)
    with pytest.raises(ConfigError) as info:
        kernel.create("model", "HIST", base_model="RNN")
    assert info.value.path == "base_model"


QLIB_HIST = """\
qlib_init: {provider_uri: "STORE", region: cn}
task:
  model:
    class: HIST
    kwargs: {d_feat: 2, hidden_size: 8, num_layers: 1, n_epochs: 1, metric: ic, GPU: -1, seed: 0}
  dataset:
    class: DatasetH
    kwargs:
      handler:
        class: DataHandlerLP
        kwargs:
          instruments: all
          data_loader:
            class: QlibDataLoader
            kwargs:
              config:
                feature: [["Ref($close, 1)/$close - 1", "$close/Ref($close, 1) - 1"], [RET1, RET0]]
                label: [["Ref($close, -2)/Ref($close, -1) - 1"], [LABEL0]]
          infer_processors: [{class: Fillna, kwargs: {fields_group: feature}}]
      segments: {train: [2020-02-03, 2020-05-29], valid: [2020-06-01, 2020-06-30], test: [2020-07-01, 2020-07-31]}
  record: [{class: SignalRecord}]
"""


@pytest.mark.slow
def test_a_qlib_hist_yaml_runs_on_the_stores_industry_field(tmp_path) -> None:
    from click.testing import CliRunner
    from qdata_cn.synth import synthesize

    from qcore.cli import cli

    store = tmp_path / "store"
    synthesize(store, instruments=12, days=160, start="2020-01-02", seed=2)
    for i, folder in enumerate(sorted((store / "features").iterdir())):  # Qlib bin: start index, then values
        close = np.fromfile(folder / "close.day.bin", dtype="<f4")
        np.hstack([close[:1], np.full(len(close) - 1, i % 3, "<f4")]).astype("<f4").tofile(folder / "industry.day.bin")
    config = tmp_path / "hist.yaml"
    config.write_text(QLIB_HIST.replace("STORE", str(store)), encoding="utf-8")
    args = ["run", str(config), "--set", "recorder.name=local", "--set", f"recorder.kwargs.uri={tmp_path / 'runs'}"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert "model.predictions" in result.output
    sector = QLIB_HIST.replace("STORE", str(store)).replace("metric: ic,", "metric: ic, concept_field: sector,")
    config.write_text(sector, encoding="utf-8")
    result = CliRunner().invoke(cli, args)
    assert result.exit_code not in (0, 70) and "no $sector field" in result.output, result.output
    # Qlib's own config names the CSI 300 files Qlib downloads: absent here, the store's industry field serves
    qlib_files = ("metric: ic, stock2concept: benchmarks/HIST/qlib_csi300_stock2concept.npy, "
                  "stock_index: benchmarks/HIST/qlib_csi300_stock_index.npy,")
    config.write_text(QLIB_HIST.replace("STORE", str(store)).replace("metric: ic,", qlib_files), encoding="utf-8")
    with pytest.warns(UserWarning, match="Qlib's downloaded CSI 300 concept file and is not here"):
        result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    own = qlib_files.replace("benchmarks/HIST/qlib_csi300_stock2concept.npy", str(tmp_path / "mine.npy"))
    config.write_text(QLIB_HIST.replace("STORE", str(store)).replace("metric: ic,", own), encoding="utf-8")
    result = CliRunner().invoke(cli, args)
    assert result.exit_code not in (0, 70) and "no stock2concept file here" in result.output, result.output
