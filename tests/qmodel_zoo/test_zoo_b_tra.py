"""TRA on the memory-augmented sampler (Qlib's ``TRAModel`` + ``MTSDatasetH``): sampler semantics, transport,
training with each transport, save/restore, and the Qlib YAML path (``qcore run`` of a TRA config)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from qcore.dataset import PanelDataset
from qcore.errors import ConfigError, QcoreError
from qcore.kernel import Kernel
from tests.qmodel_zoo.helpers import assert_roundtrip, mean_test_ic

torch = pytest.importorskip("torch")

from qmodel_zoo.nn.mts_dataset import MemoryDataset, MTSSettings, guess_horizon  # noqa: E402
from qmodel_zoo.nn.tra import TRAModel  # noqa: E402
from qmodel_zoo.nn.tra_network import minmax_norm, transport  # noqa: E402

SMALL = {"model_config": {"hidden_size": 8, "num_layers": 1}, "tra_config": {"num_states": 3, "hidden_size": 4},
         "n_epochs": 2, "early_stop": 2, "lamb": 1.0, "alpha": 0.5, "lr": 0.01, "seed": 0, "GPU": None}


def tiny_dataset() -> PanelDataset:
    """3 instruments × 6 days; ``S1`` misses day 2. Feature = 100·instrument + day, label = day / 10."""
    dates = pd.bdate_range("2021-01-04", periods=6, name="datetime")
    rows = [(d, f"S{i}") for d in dates for i in range(3) if not (i == 1 and d == dates[2])]
    index = pd.MultiIndex.from_tuples(rows, names=["datetime", "instrument"])
    inst = np.array([int(r[1][1]) for r in rows])
    day = np.array([dates.get_loc(r[0]) for r in rows])
    frame = pd.DataFrame({("feature", "F"): 100.0 * inst + day, ("label", "Ref($close, -2)/$close - 1"): day / 10},
                         index=index)
    segments = {"train": (dates[0], dates[3]), "valid": (dates[4], dates[4]), "test": (dates[5], dates[5])}
    return PanelDataset(frame, segments)


def test_samples_are_instrument_windows_and_states_skip_the_horizon() -> None:
    data = MemoryDataset(tiny_dataset(), MTSSettings(seq_len=3, num_states=2), ["train", "valid", "test"])
    assert data.settings.horizon == 2  # guessed from Ref($close, -2)
    s1_last = int(np.flatnonzero(data.x[:, 0] == 105)[0])  # S1 on day 5: its rows are days 0, 1, 3, 4, 5
    batch = data.batch(np.array([s1_last, 0]))
    assert batch.data[0, :, 0].tolist() == [103, 104, 105]  # the instrument's rows, the missing day skipped
    assert batch.data[1, :, 0].tolist() == [0, 0, 0]  # S0 day 0: two zero rows in front, then its own value 0
    data.memory[:] = np.arange(len(data.memory))[:, None] + 1
    batch = data.batch(np.array([s1_last]))
    assert batch.state.shape == (1, 1, 2)  # seq_len 3 minus horizon 2
    assert batch.state[0, 0, 0] == s1_last - 2 + 1  # the memory of the window's first row only
    rng = np.random.default_rng(0)
    assert sorted(len(b.rows) for b in MemoryDataset(
        tiny_dataset(), MTSSettings(seq_len=3, batch_size=4, drop_last=True), ["train"]).train_batches("train", rng)
    ) == [4, 4]  # 11 train rows, the short last batch dropped
    days = list(data.eval_batches(data.segment_days("train")))
    assert [b.counts for b in days] == [[3], [3], [2], [3]] and all(np.diff(data.day[b.rows]).sum() == 0 for b in days)


def test_daily_memory_and_sampling() -> None:
    settings = MTSSettings(seq_len=2, horizon=1, num_states=2, memory_mode="daily", batch_size=-2, n_samples=2)
    data = MemoryDataset(tiny_dataset(), settings, ["train", "valid"])
    data.memory[:] = np.arange(1, 6)[:, None]
    batches = list(data.train_batches("train", np.random.default_rng(1)))
    assert [len(b.days) for b in batches] == [2, 2] and all(b.counts == [2, 2] for b in batches)
    (day4,) = data.eval_batches(range(4, 5))
    assert day4.state[0, :, 0].tolist() == [2, 3]  # days 1 and 2: the two dates ending one date before day 4


def test_sampler_settings_are_checked_with_their_path() -> None:
    for bad, key in (({"batch_size": 0}, "batch_size"), ({"memory_mode": "daily", "batch_size": 8}, "batch_size"),
                     ({"seq_len": 0}, "seq_len"), ({"sequence": 5}, "sequence"), ({"drop_last": "yes"}, "drop_last")):
        with pytest.raises(ConfigError) as info:
            MTSSettings.parse(bad)
        assert info.value.path == f"sampler.{key}"
    assert MTSSettings.parse({"seq_len": 5, "n_samples": None}).seq_len == 5
    assert guess_horizon("Ref($close, -2) / Ref($close, -1) - 1") == 2 and guess_horizon("LABEL0") == 0
    unknown_label = tiny_dataset()
    unknown_label._raw.columns = pd.MultiIndex.from_tuples([("feature", "F"), ("label", "LABEL0")])
    unknown_label._infer.columns = unknown_label._learn.columns = unknown_label._raw.columns
    with pytest.raises(QcoreError, match="give the sampler's horizon"):
        MemoryDataset(unknown_label, MTSSettings(num_states=2), ["train"])


def test_transport_scales_losses_and_mixes_by_the_plan() -> None:
    assert torch.equal(minmax_norm(torch.tensor([[2.0, 2.0], [1.0, 3.0]])), torch.tensor([[1.0, 1.0], [0.0, 1.0]]))
    preds = torch.tensor([[0.0, 1.0, 2.0], [1.0, 1.0, 1.0]])
    label = torch.tensor([1.9, float("nan")])
    loss, pred, normalised, plan = transport(preds, label, None, None, torch.zeros(2, 3), None, "oracle", 1.0, True)
    assert torch.allclose(plan.sum(dim=1), torch.ones(2)) and plan[0].argmax() == 2
    assert torch.allclose(pred, (preds * plan).sum(dim=1))
    assert normalised[1].tolist() == [1.0, 1.0, 1.0]  # a NaN label: every state equally (un)informed
    all_loss = torch.tensor([[3.61, 0.81, 0.01], [0.0, 0.0, 0.0]])
    assert torch.isclose(loss, (all_loss * plan).sum(dim=1).mean())


@pytest.fixture(scope="module")
def small_market() -> PanelDataset:
    from tests.qmodel_zoo.planted import planted_dataset

    return planted_dataset(n_instruments=40, n_days=60, seed=0)


@pytest.mark.parametrize(("transport_method", "memory_mode", "batch_size", "pretrain"), [
    pytest.param("router", "sample", 128, True, marks=pytest.mark.slow),
    pytest.param("oracle", "daily", -4, False, marks=pytest.mark.slow),
    ("none", "sample", 128, False),
])
def test_trains_predicts_and_roundtrips(kernel: Kernel, small_market, tmp_path, transport_method: str,
                                        memory_mode: str, batch_size: int, pretrain: bool) -> None:
    tra_config = {**SMALL["tra_config"], "src_info": "TPE" if memory_mode == "daily" else "LR_TPE"}
    model = kernel.create("model", "TRAModel", **{**SMALL, "tra_config": tra_config}, pretrain=pretrain,
                          transport_method=transport_method, memory_mode=memory_mode,
                          sampler={"seq_len": 4, "horizon": 1, "batch_size": batch_size})
    model.fit(small_market)
    assert len(model.history_["valid_ic"]) == (4 if pretrain else 2)
    if transport_method == "router":
        assert len(model.history_["train_ic"]) == 2  # the train memory refreshed after each epoch
    assert mean_test_ic(model, small_market) > 0.05
    loaded = assert_roundtrip(model, small_market, tmp_path, kernel, "tra")
    assert loaded.spec_["sampler"]["horizon"] == 1


@pytest.mark.slow
def test_seeded_fits_reproduce_and_arguments_are_checked(small_market) -> None:
    kwargs = {**SMALL, "n_epochs": 1, "transport_method": "router", "sampler": {"seq_len": 3, "horizon": 1,
                                                                                  "batch_size": 256}}
    a = TRAModel(**kwargs).fit(small_market).predict(small_market)
    b = TRAModel(**kwargs).fit(small_market).predict(small_market)
    pd.testing.assert_series_equal(a, b, rtol=0, atol=0)
    for bad, key in (({"transport_method": "router", "tra_config": {"num_states": 1}}, "transport_method"),
                     ({"memory_mode": "daily"}, "tra_config.src_info"),
                     ({"sampler": {"num_states": 2}}, "sampler.num_states"),
                     ({"model_config": {"hiden_size": 2}}, "model_config.hiden_size"),
                     ({"smooth_step": 1}, "smooth_step"), ({"alpha": 2}, "alpha")):
        with pytest.raises(ConfigError) as info:
            TRAModel(**{**SMALL, **bad})
        assert info.value.path == key
    from qcore.reweight import accepts_reweighter

    assert not accepts_reweighter(TRAModel)  # a workflow with a reweighter is refused at validation
    with pytest.raises(QcoreError, match="input_size=7"):
        TRAModel(**{**SMALL, "model_config": {"input_size": 7}, "sampler": {"horizon": 1}}).fit(small_market)


QLIB_TRA = textwrap.dedent("""
    qlib_init: {provider_uri: "STORE", region: cn}
    task:
      model:
        class: TRAModel
        module_path: qlib.contrib.model.pytorch_tra
        kwargs:
          model_config: {input_size: 3, hidden_size: 8, num_layers: 1, rnn_arch: LSTM, use_attn: True}
          tra_config: {num_states: 2, rnn_arch: LSTM, hidden_size: 4, num_layers: 1, src_info: LR_TPE}
          model_type: RNN
          lr: 0.01
          n_epochs: 1
          early_stop: 1
          seed: 0
          lamb: 1.0
          alpha: 0.5
          transport_method: router
          memory_mode: sample
          logdir: output/tra
          GPU: -1
      dataset:
        class: MTSDatasetH
        module_path: qlib.contrib.data.dataset
        kwargs:
          handler:
            class: DataHandlerLP
            kwargs:
              instruments: all
              start_time: 2020-01-01
              end_time: 2020-12-31
              data_loader:
                class: QlibDataLoader
                kwargs:
                  config:
                    feature: [["$close/Ref($close, 1) - 1", "$volume/Mean($volume, 5)", "($high - $low)/$close"],
                              [RET, VOL, RANGE]]
                    label: [["Ref($close, -2)/Ref($close, -1) - 1"], [LABEL0]]
              infer_processors: [{class: Fillna, kwargs: {fields_group: feature}}]
              learn_processors: [{class: CSRankNorm, kwargs: {fields_group: label}}]
          segments: {train: [2020-02-01, 2020-08-31], valid: [2020-09-01, 2020-10-31],
                     test: [2020-11-01, 2020-12-15]}
          seq_len: 5
          batch_size: 256
          memory_mode: sample
          drop_last: True
      record:
        - {class: SignalRecord, module_path: qlib.workflow.record_temp}
""").lstrip()


@pytest.mark.slow
def test_a_qlib_tra_yaml_runs_from_the_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import torch
    from qdata_cn.synth import synthesize

    from qcore.cli import cli

    store = tmp_path / "store"
    synthesize(store, instruments=20, days=300, start="2020-01-01", seed=1)
    config = tmp_path / "tra.yaml"
    config.write_text(QLIB_TRA.replace("STORE", str(store)), encoding="utf-8")
    runner = CliRunner()
    result = runner.invoke(cli, ["validate", str(config)])
    assert result.exit_code == 0, result.output
    monkeypatch.chdir(tmp_path)  # logdir: output/tra is relative to where the run starts, as in Qlib
    result = runner.invoke(cli, ["run", str(config), "--set", "recorder.name=local", "--set",
                                 f"recorder.kwargs.uri={tmp_path / 'runs'}"])
    assert result.exit_code == 0, result.output
    weights = torch.load(tmp_path / "output" / "tra" / "model.bin", weights_only=True)  # Qlib's layout
    assert set(weights) == {"model", "tra"} and weights["tra"]["predictors.weight"].shape[0] == 2
    bad = config.read_text().replace("seq_len: 5", "seq_len: 0")
    config.write_text(bad, encoding="utf-8")
    result = runner.invoke(cli, ["validate", str(config)])
    assert result.exit_code not in (0, 70) and "task.dataset.kwargs.seq_len" in result.output, result.output


MTS_DOC = textwrap.dedent("""
    qlib_init: {provider_uri: /nowhere, region: cn}
    task:
      model: {class: MODEL, kwargs: {tra_config: {num_states: 3}}}
      dataset:
        class: MTSDatasetH
        kwargs:
          handler: {class: Alpha158, kwargs: {instruments: csi300}}
          segments: {train: [2020-01-01, 2020-06-30], test: [2020-07-01, 2020-09-30]}
          seq_len: 20
          horizon: 2
          batch_size: -4
""").lstrip()


def test_mtsdataseth_kwargs_become_the_models_sampler(kernel: Kernel) -> None:
    from qcore.yamldoc import parse_yaml

    out = kernel.translate_config(parse_yaml(MTS_DOC.replace("MODEL", "TRAModel"), "tra.yaml"))
    assert out.data["model"]["kwargs"]["sampler"] == {"seq_len": 20, "horizon": 2, "batch_size": -4}
    assert set(out.data["dataset"]) >= {"features", "segments"} and "seq_len" not in out.data["dataset"]
    assert out.locate("model.kwargs.sampler.seq_len") == ("task.dataset.kwargs.seq_len", 9)
    kernel.create("model", out.data["model"]["name"], **out.data["model"]["kwargs"])  # the sampler is accepted
    lstm = kernel.translate_config(parse_yaml(MTS_DOC.replace("MODEL", "LSTM").replace(
        "kwargs: {tra_config: {num_states: 3}}", "kwargs: {}"), "lstm.yaml"))
    with pytest.raises(ConfigError, match="unknown parameter 'sampler'"):  # only a model that reads it takes it
        kernel.create("model", "LSTM", **lstm.data["model"]["kwargs"])
