"""ADD, ADARNN, TCTS, Sandwich, IGMTF and GeneralPTNN: each trains a couple of epochs on a tiny planted store with
finite predictions, saves and loads without pickle to equal predictions, and takes Qlib's names and defaults."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from qcore.errors import ConfigError, QcoreError
from qcore.kernel import Kernel
from tests.qmodel_zoo.helpers import assert_roundtrip

torch = pytest.importorskip("torch")

COMMON = {"seed": 0, "GPU": None}
#: tiny settings per registry name; the data is ``planted_lags`` (4 fields × 4 lags) unless said otherwise.
SMALL = {
    "sandwich": {**COMMON, "fea_dim": 4, "cnn_dim_1": 8, "cnn_dim_2": 4, "rnn_dim_1": 4, "rnn_dim_2": 4,
                 "rnn_dups": 2, "rnn_layers": 1, "n_epochs": 2, "batch_size": 512, "lr": 0.01},
    "general_ptnn": {**COMMON, "n_epochs": 2, "batch_size": 512, "lr": 0.01,
                     "pt_model_uri": "qlib.contrib.model.pytorch_gru.GRUModel",
                     "pt_model_kwargs": {"d_feat": 4, "hidden_size": 8, "num_layers": 1}},
    "add_model": {**COMMON, "d_feat": 4, "hidden_size": 8, "num_layers": 1, "n_epochs": 2, "batch_size": 512,
            "metric": "ic"},
    "tcts": {**COMMON, "d_feat": 4, "input_dim": 16, "output_dim": 3, "hidden_size": 8, "num_layers": 1,
             "n_epochs": 2, "steps": 2, "batch_size": 512, "fore_lr": 0.01, "weight_lr": 0.01,
             "lowest_valid_performance": 10.0},
    "adarnn": {**COMMON, "d_feat": 4, "len_seq": 4, "hidden_size": 8, "num_layers": 2, "n_epochs": 3,
               "pre_epoch": 1, "batch_size": 256, "lr": 0.01, "metric": "ic"},
    "igmtf": {**COMMON, "d_feat": 4, "hidden_size": 8, "num_layers": 1, "n_epochs": 2, "lr": 0.01, "metric": "ic"},
}


@pytest.fixture(scope="module")
def three_labels():
    """``planted_lags`` with two more label columns (longer horizons of the same planted signal)."""
    from qcore.dataset import PanelDataset
    from tests.qmodel_zoo.planted import planted_frame, split

    frame = planted_frame(n_instruments=120, n_days=90, seed=0, lags=4)
    label = frame[("label", "LABEL0")]
    frame[("label", "LABEL1")] = label + 0.5 * label.groupby(level=1).shift(-1).fillna(0)
    frame[("label", "LABEL2")] = label + 0.5 * label.groupby(level=1).shift(-2)
    return PanelDataset(frame, split(frame.index.get_level_values(0).unique()))


def _smoke(kernel: Kernel, name: str, dataset, tmp_path, **extra):
    model = kernel.create("model", name, **{**SMALL[name], **extra}).fit(dataset)
    pred = model.predict(dataset, "test")
    features, _ = dataset.xy("test")
    assert pred.index.equals(features.index) and np.isfinite(pred.to_numpy()).all()
    assert pred.std() > 0
    assert_roundtrip(model, dataset, tmp_path, kernel, name)
    return model


@pytest.mark.parametrize("name", ["sandwich", "general_ptnn", "add_model", "igmtf", "adarnn"])
def test_trains_and_roundtrips(kernel: Kernel, planted_lags, tmp_path, name: str) -> None:
    model = _smoke(kernel, name, planted_lags, tmp_path)
    assert len(model.evals_result_["train"]) == SMALL[name]["n_epochs"]


def test_general_ptnn_builds_qlib_net_on_rows_and_windows(kernel: Kernel, planted, tmp_path) -> None:
    mlp = _smoke(kernel, "general_ptnn", planted, tmp_path / "mlp", pt_model_uri="qlib.contrib.model.pytorch_nn.Net",
                 pt_model_kwargs={"input_dim": 4, "layers": [8]})
    assert mlp.spec_ == {"kind": "mlp", "input_dim": 4, "layers": [8], "dropout": 0.05}
    ts = _smoke(kernel, "general_ptnn", planted, tmp_path / "ts", step_len=3, pt_model_uri="lstm",
                pt_model_kwargs={"d_feat": 4, "hidden_size": 8, "num_layers": 1})
    assert ts.spec_["kind"] == "lstm"


def test_general_ptnn_never_imports_a_path(kernel: Kernel) -> None:
    with pytest.raises(ConfigError, match="no class is imported by path") as info:
        kernel.create("model", "GeneralPTNN", pt_model_uri="os.system")
    assert info.value.path == "pt_model_uri"
    with pytest.raises(ConfigError, match="hidden") as info:
        kernel.create("model", "GeneralPTNN", pt_model_kwargs={"d_feat": 6, "hiden_size": 8})
    assert info.value.path == "pt_model_kwargs.hiden_size"
    with pytest.raises(ConfigError) as info:
        kernel.create("model", "GeneralPTNN", pt_model_uri="qlib.contrib.model.pytorch_nn.Net",
                      pt_model_kwargs={"input_dim": 20, "layers": []})
    assert info.value.path == "pt_model_kwargs.layers"


@pytest.mark.parametrize(("qlib_name", "name", "expected"), [
    ("Sandwich", "sandwich", {"fea_dim": 6, "cnn_dim_1": 64, "cnn_dim_2": 32, "cnn_kernel_size": 3, "rnn_dim_1": 16,
                              "rnn_dim_2": 8, "rnn_dups": 3, "rnn_layers": 2, "dropout": 0, "n_epochs": 200,
                              "lr": 0.001, "metric": "", "batch_size": 2000, "early_stop": 20, "loss": "mse",
                              "optimizer": "adam"}),
    ("ADD", "add_model", {"d_feat": 6, "hidden_size": 64, "num_layers": 2, "dropout": 0.0, "dec_dropout": 0.0,
                    "n_epochs": 200, "lr": 0.001, "metric": "mse", "batch_size": 5000, "early_stop": 20,
                    "base_model": "GRU", "model_path": None, "optimizer": "adam", "gamma": 0.1, "gamma_clip": 0.4,
                    "mu": 0.05}),
    ("IGMTF", "igmtf", {"d_feat": 6, "hidden_size": 64, "num_layers": 2, "dropout": 0.0, "n_epochs": 200,
                        "lr": 0.001, "metric": "", "early_stop": 20, "loss": "mse", "base_model": "GRU",
                        "model_path": None, "optimizer": "adam"}),
    ("TCTS", "tcts", {"d_feat": 6, "hidden_size": 64, "num_layers": 2, "dropout": 0.0, "n_epochs": 200,
                      "batch_size": 2000, "early_stop": 20, "loss": "mse", "fore_optimizer": "adam",
                      "weight_optimizer": "adam", "input_dim": 360, "output_dim": 5, "fore_lr": 5e-7,
                      "weight_lr": 5e-7, "steps": 3, "target_label": 0, "mode": "soft",
                      "lowest_valid_performance": 0.993}),
    ("ADARNN", "adarnn", {"d_feat": 6, "hidden_size": 64, "num_layers": 2, "dropout": 0.0, "n_epochs": 200,
                          "pre_epoch": 40, "dw": 0.5, "loss_type": "cosine", "len_seq": 60, "len_win": 0,
                          "lr": 0.001, "metric": "mse", "batch_size": 2000, "early_stop": 20, "loss": "mse",
                          "optimizer": "adam", "n_splits": 2}),
    ("GeneralPTNN", "general_ptnn", {"n_epochs": 200, "lr": 0.001, "metric": "", "batch_size": 2000,
                                     "early_stop": 20, "loss": "mse", "weight_decay": 0.0, "optimizer": "adam",
                                     "pt_model_uri": "qlib.contrib.model.pytorch_gru_ts.GRUModel",
                                     "pt_model_kwargs": {"d_feat": 6, "hidden_size": 64, "num_layers": 2,
                                                         "dropout": 0.0}}),
])
def test_registered_under_qlib_names_with_qlib_defaults(kernel: Kernel, qlib_name: str, name: str,
                                                        expected: dict) -> None:
    assert kernel.registry("model").entry(qlib_name).name == name
    model = kernel.create("model", qlib_name)
    assert {k: model.init_params[k] for k in expected} == expected
    assert model.settings.clip_value == 3.0


def test_add_trains_every_head_and_steps_its_gradient_reversal(kernel: Kernel, planted_lags, tmp_path) -> None:
    from qmodel_zoo.nn.add import ADDNet, market_classes

    model = _smoke(kernel, "add_model", planted_lags, tmp_path)
    for reversal in (model.network.before_adv_excess, model.network.before_adv_market):
        assert reversal.steps == 2 and reversal.alpha == pytest.approx(min(0.4, 2 / (1 + np.exp(-0.1 * 2)) - 1))
    for base in ("GRU", "LSTM"):
        net = ADDNet(d_feat=3, hidden_size=4, num_layers=2, base_model=base)
        x = torch.randn(5, 7, 3)
        out = net.train()(x)
        assert out["reconstructed"].shape == x.shape and out["market"].shape == (5, 3)
        assert "reconstructed" not in net.eval()(x)  # scoring skips the decoder
        # the reversal layer flips (and scales) the gradient reaching the encoder's features
        net.before_adv_market.alpha = 0.25
        features = torch.randn(5, 8, requires_grad=True)
        net.before_adv_market(features).sum().backward()
        torch.testing.assert_close(features.grad, torch.full((5, 8), -0.25))
    daily = pd.Series([0.3, -0.2, 0.0, 0.1, -0.5, 0.4], index=pd.date_range("2020-01-01", periods=6))
    classes = market_classes(daily, pd.Index(daily.index[[0, 1, 4, 2, 3]]))
    assert classes.tolist() == [2, 0, 0, 1, 1]


def test_igmtf_reads_its_memory_of_the_train_segment(kernel: Kernel, planted_lags) -> None:
    from qmodel_zoo.nn.igmtf import IGMTFNet

    model = kernel.create("model", "igmtf", **{**SMALL["igmtf"], "n_epochs": 1}).fit(planted_lags)
    n_train_days = len(planted_lags.xy("train")[0].index.get_level_values("datetime").unique())
    model.predict(planted_lags)
    assert len(model.network.memory) == n_train_days

    class OnlyTest:
        segments = ("test",)

        def xy(self, segment, data_key=None):
            return planted_lags.xy(segment, data_key)

    with pytest.raises(QcoreError, match="train segment"):
        model.predict(OnlyTest())
    # a stock's score moves with the memory it reads (the aggregate is part of the head's input)
    torch.manual_seed(0)
    net = IGMTFNet(d_feat=3, hidden_size=4, num_layers=1).eval()
    x = torch.randn(12, 5, 3)
    with torch.no_grad():
        net.remember([torch.randn(6, 4) for _ in range(3)])
        first = net(x)
        net.remember([torch.randn(6, 4) for _ in range(3)])
        assert not torch.allclose(first, net(x))


@pytest.mark.parametrize("mode", ["soft", "hard"])
def test_tcts_trains_forecaster_and_scheduler(kernel: Kernel, three_labels, tmp_path, mode: str) -> None:
    model = kernel.create("model", "tcts", **{**SMALL["tcts"], "mode": mode})
    weight_before = None

    def remember(network):
        nonlocal weight_before
        weight_before = {k: v.clone() for k, v in network.weight.state_dict().items()}

    model._prepare_network = remember
    model.fit(three_labels)
    changed = [k for k, v in model.network.weight.state_dict().items() if not torch.equal(v, weight_before[k])]
    assert changed, "the scheduler did not learn"
    assert model.attempts_ == 1 and len(model.evals_result_["valid"]) == 2
    pred = model.predict(three_labels)
    assert np.isfinite(pred.to_numpy()).all()
    del model._prepare_network
    assert_roundtrip(model, three_labels, tmp_path, kernel, "tcts")


def test_tcts_retries_until_good_enough_then_keeps_the_best(kernel: Kernel, three_labels) -> None:
    model = kernel.create("model", "tcts", **{**SMALL["tcts"], "n_epochs": 1, "lowest_valid_performance": 0.0,
                                              "max_retries": 2})
    model.fit(three_labels)
    assert model.attempts_ == 3
    with pytest.raises(QcoreError, match="output_dim=5 needs that many label columns"):
        kernel.create("model", "tcts", **{**SMALL["tcts"], "output_dim": 5}).fit(three_labels)


@pytest.mark.parametrize("loss_type", ["mmd", "coral", "mmd_rbf", "pairwise"])
def test_adarnn_distances_and_boosting(kernel: Kernel, planted_lags, loss_type: str) -> None:
    from qmodel_zoo.nn.adarnn import boost_weights, period_rows
    from qmodel_zoo.nn.transfer import transfer_loss

    model = kernel.create("model", "adarnn", **{**SMALL["adarnn"], "loss_type": loss_type, "n_epochs": 1})
    if loss_type == "coral":  # one run with a windowed pre-training epoch (the others train in the smoke test)
        model = kernel.create("model", "adarnn", **{**SMALL["adarnn"], "loss_type": loss_type, "n_epochs": 2,
                                                    "len_win": 1, "batch_size": 1024})
        model.fit(planted_lags)
        assert np.isfinite(model.evals_result_["train"]).all()
    distance = transfer_loss(loss_type)
    a = torch.randn(16, 5)
    assert distance(a, a).item() == pytest.approx(0.0, abs=1e-4 if loss_type != "pairwise" else 1e9)
    assert distance(a, a + 3.0).item() > distance(a, a + 0.1).item()
    if loss_type == "mmd":
        torch.testing.assert_close(distance(a, a + 1.0), torch.tensor(5.0))
    old = torch.tensor([[1.0, 1.0], [2.0, 2.0]])
    new = torch.tensor([[2.0, 1.0], [2.0, 1.0]])
    boosted = boost_weights(torch.full((2, 2), 0.5), old, new)
    grown = 0.5 * (1 + torch.sigmoid(torch.tensor(1.0)))
    torch.testing.assert_close(boosted, torch.tensor([[grown / (grown + 0.5), 0.5 / (grown + 0.5)], [0.5, 0.5]]))
    train_set = model._samples(planted_lags, "train", None)
    periods = period_rows(train_set, 2)
    dates = train_set.index.get_level_values("datetime")
    assert dates[periods[0]].max() < dates[periods[1]].min()
    assert sum(len(p) for p in periods) == len(train_set)


def test_adarnn_refuses_what_it_cannot_do(kernel: Kernel, planted_lags) -> None:
    for loss_type in ("kl", "js", "mine", "adv"):
        with pytest.raises(ConfigError, match="not offered") as info:
            kernel.create("model", "ADARNN", loss_type=loss_type)
        assert info.value.path == "loss_type"
    with pytest.raises(QcoreError, match="len_seq=60 but a sample has 4 steps"):
        kernel.create("model", "adarnn", **{**SMALL["adarnn"], "len_seq": 60}).fit(planted_lags)
