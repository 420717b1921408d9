"""TCN, Localformer and GATs: each learns the planted signal on both dataset views, reproduces with a seed, saves
and loads without pickle; GATs attends within a day and starts from a pre-trained base when asked."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from qcore.errors import ConfigError, DataError, QcoreError
from qcore.kernel import Kernel
from tests.qmodel_zoo.helpers import IC_BAR, assert_roundtrip, mean_test_ic

torch = pytest.importorskip("torch")

COMMON = {"batch_size": 256, "seed": 0, "GPU": None}
SMALL = {
    "tcn": {**COMMON, "n_chans": 8, "kernel_size": 2, "num_layers": 2, "dropout": 0.0, "n_epochs": 3, "lr": 0.01},
    "localformer": {**COMMON, "d_model": 8, "nhead": 2, "num_layers": 1, "dim_feedforward": 16, "n_epochs": 3,
                    "lr": 0.005},
    "gats": {**COMMON, "hidden_size": 8, "num_layers": 1, "n_epochs": 3, "lr": 0.01},
}


def make(kernel: Kernel, name: str, view: str, **extra):
    kwargs = dict(SMALL[name])
    if view == "reshape":
        kwargs["d_feat"] = 4
    else:
        kwargs.update(d_feat=None, step_len=4)
    return kernel.create("model", name, **{**kwargs, **extra})


@pytest.mark.parametrize("view", ["reshape", "window"])
@pytest.mark.parametrize("name", ["tcn", "localformer", "gats"])
def test_learns_and_roundtrips(kernel: Kernel, planted, planted_lags, tmp_path, name: str, view: str) -> None:
    dataset = planted_lags if view == "reshape" else planted
    model = make(kernel, name, view).fit(dataset)
    history = model.evals_result_
    assert history["train"][-1] < history["train"][0], history
    assert mean_test_ic(model, dataset) > IC_BAR
    assert_roundtrip(model, dataset, tmp_path, kernel, name)


@pytest.mark.parametrize(("qlib_name", "name"), [("TCN", "tcn"), ("LocalformerModel", "localformer"),
                                                 ("GATs", "gats")])
def test_registered_under_qlib_names_with_qlib_defaults(kernel: Kernel, qlib_name: str, name: str) -> None:
    assert kernel.registry("model").entry(qlib_name).name == name
    model = kernel.create("model", qlib_name)
    expected = {"tcn": {"d_feat": 6, "n_chans": 128, "kernel_size": 5, "num_layers": 5, "dropout": 0.5,
                        "n_epochs": 200, "lr": 0.0001, "batch_size": 2000, "early_stop": 20},
                "localformer": {"d_feat": 20, "d_model": 64, "nhead": 2, "num_layers": 2, "n_epochs": 100,
                                "lr": 0.0001, "batch_size": 2048, "early_stop": 5, "reg": 1e-3},
                "gats": {"d_feat": 6, "hidden_size": 64, "num_layers": 2, "n_epochs": 200, "lr": 0.001,
                         "early_stop": 20, "base_model": "GRU", "model_path": None}}[name]
    assert {k: model.init_params[k] for k in expected} == expected


def test_seeded_runs_reproduce(kernel: Kernel, planted) -> None:
    a = make(kernel, "tcn", "window", n_epochs=1).fit(planted).predict(planted)
    b = make(kernel, "tcn", "window", n_epochs=1).fit(planted).predict(planted)
    pd.testing.assert_series_equal(a, b, rtol=0, atol=0)
    assert not np.allclose(make(kernel, "tcn", "window", n_epochs=1, seed=1).fit(planted).predict(planted), a)


def test_gats_scores_depend_on_the_days_cross_section_only(kernel: Kernel, planted) -> None:
    model = make(kernel, "gats", "window", n_epochs=1).fit(planted)
    whole = model.predict(planted, "test")
    # predicting with another batch size changes nothing: the attention spans exactly one date's rows
    model.batch_size = 7
    pd.testing.assert_series_equal(model.predict(planted, "test"), whole, rtol=0, atol=1e-6)
    net = model.network
    x = torch.randn(5, 4, 4)
    weights = net.attention(net.rnn(x)[0][:, -1, :])
    assert weights.shape == (5, 5) and torch.allclose(weights.sum(dim=1), torch.ones(5))
    # the score of one stock changes when another stock of the same day changes
    y = x.clone()
    y[4] += 1.0
    with torch.no_grad():
        assert not torch.isclose(net(x)[0], net(y)[0])


def test_gats_starts_from_a_pretrained_base(kernel: Kernel, planted, tmp_path) -> None:
    base = kernel.create("model", "gru", d_feat=None, step_len=4, hidden_size=8, num_layers=1, n_epochs=2,
                         lr=0.01, **COMMON).fit(planted)
    base.save(tmp_path / "gru")
    gats = make(kernel, "gats", "window", n_epochs=1, lr=1e-12, optimizer="gd", model_path=str(tmp_path / "gru"))
    gats.fit(planted)
    # with a vanishing learning rate the recurrent base stays what the GRU learnt
    for key, value in base.network.state_dict().items():
        if key.startswith("rnn."):
            torch.testing.assert_close(gats.network.state_dict()[key], value)
    # a plain state-dict file works too (Qlib saves its base models this way)
    torch.save(base.network.state_dict(), tmp_path / "gru.pt")
    make(kernel, "gats", "window", n_epochs=1, model_path=str(tmp_path / "gru.pt")).fit(planted)
    with pytest.raises(ConfigError, match="does not fit"):
        make(kernel, "gats", "window", n_epochs=1, hidden_size=4, model_path=str(tmp_path / "gru")).fit(planted)
    with pytest.raises(DataError, match="no saved model weights"):
        make(kernel, "gats", "window", n_epochs=1, model_path=str(tmp_path / "nowhere")).fit(planted)


def test_bad_arguments(kernel: Kernel) -> None:
    with pytest.raises(ConfigError, match="base_model"):
        kernel.create("model", "GATs", base_model="RNN")
    with pytest.raises(ConfigError, match="unknown parameter 'n_chan' for the tcn model; did you mean 'n_chans'"):
        kernel.create("model", "TCN", n_chan=4)
    with pytest.raises(ConfigError, match="nhead"):
        kernel.create("model", "LocalformerModel", d_model=10, nhead=3)


def test_mlp_takes_qlib_pt_model_kwargs(kernel: Kernel, planted) -> None:
    model = kernel.create("model", "DNNModelPytorch", pt_model_kwargs={"input_dim": 4, "layers": [8, 4]},
                          max_steps=20, eval_steps=20, **COMMON)
    assert model.input_dim == 4 and model.layers == [8, 4]
    model.fit(planted)
    assert model.spec_["layers"] == [8, 4]
    with pytest.raises(QcoreError, match="input_dim=5 but the dataset has 4 features"):
        kernel.create("model", "mlp", pt_model_kwargs={"input_dim": 5}, max_steps=20, **COMMON).fit(planted)
    with pytest.raises(ConfigError, match=r"only Qlib.s qlib\.contrib\.model\.pytorch_nn\.Net") as info:
        kernel.create("model", "mlp", pt_model_uri="my.module.Net")
    assert info.value.path == "pt_model_uri"
    with pytest.raises(ConfigError, match="did you mean 'layers'") as info:
        kernel.create("model", "mlp", pt_model_kwargs={"layer": [4]})
    assert info.value.path == "pt_model_kwargs.layer"
    with pytest.raises(ConfigError, match="act must be 'LeakyReLU'"):
        kernel.create("model", "mlp", pt_model_kwargs={"act": "ReLU"})
