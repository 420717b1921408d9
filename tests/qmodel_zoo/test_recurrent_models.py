"""KRNN and SFM: each learns the planted signal on both dataset views, saves and loads without pickle, takes
Qlib's names and defaults; their networks read a sequence step by step as documented."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from qcore.errors import ConfigError
from qcore.kernel import Kernel
from tests.qmodel_zoo.helpers import IC_BAR, assert_roundtrip, mean_test_ic

torch = pytest.importorskip("torch")

COMMON = {"batch_size": 256, "seed": 0, "GPU": None}
SMALL = {
    "krnn": {**COMMON, "cnn_dim": 8, "rnn_dim": 8, "rnn_dups": 2, "rnn_layers": 1, "n_epochs": 3, "lr": 0.01},
    "sfm": {**COMMON, "hidden_size": 8, "freq_dim": 4, "output_dim": 4, "n_epochs": 4, "lr": 0.01,
            "optimizer": "adam"},
}
FEATURE_ARG = {"krnn": "fea_dim", "sfm": "d_feat"}


def make(kernel: Kernel, name: str, view: str, **extra):
    kwargs = dict(SMALL[name])
    if view == "reshape":
        kwargs[FEATURE_ARG[name]] = 4
    else:
        kwargs.update({FEATURE_ARG[name]: None, "step_len": 4})
    return kernel.create("model", name, **{**kwargs, **extra})


@pytest.mark.parametrize("view", ["reshape", "window"])
@pytest.mark.parametrize("name", ["krnn", "sfm"])
def test_learns_and_roundtrips(kernel: Kernel, planted, planted_lags, tmp_path, name: str, view: str) -> None:
    dataset = planted_lags if view == "reshape" else planted
    model = make(kernel, name, view).fit(dataset)
    history = model.evals_result_
    assert history["train"][-1] < history["train"][0], history
    assert mean_test_ic(model, dataset) > IC_BAR
    loaded = assert_roundtrip(model, dataset, tmp_path, kernel, name)
    files = {p.name for p in tmp_path.iterdir()}
    assert {"model.json", "state.json"} <= files and files & {"weights.safetensors", "weights.pt"}
    assert loaded.spec_ == model.spec_


@pytest.mark.parametrize(("qlib_name", "name"), [("KRNN", "krnn"), ("SFM", "sfm")])
def test_registered_under_qlib_names_with_qlib_defaults(kernel: Kernel, qlib_name: str, name: str) -> None:
    assert kernel.registry("model").entry(qlib_name).name == name
    model = kernel.create("model", qlib_name)
    expected = {"krnn": {"fea_dim": 6, "cnn_dim": 64, "cnn_kernel_size": 3, "rnn_dim": 64, "rnn_dups": 3,
                         "rnn_layers": 2, "dropout": 0, "n_epochs": 200, "lr": 0.001, "metric": "",
                         "batch_size": 2000, "early_stop": 20, "loss": "mse", "optimizer": "adam"},
                "sfm": {"d_feat": 6, "hidden_size": 64, "output_dim": 1, "freq_dim": 10, "dropout_W": 0.0,
                        "dropout_U": 0.0, "n_epochs": 200, "lr": 0.001, "metric": "", "batch_size": 2000,
                        "early_stop": 20, "eval_steps": 5, "loss": "mse", "optimizer": "gd"}}[name]
    assert {k: model.init_params[k] for k in expected} == expected
    assert model.settings.clip_value == 3.0 and model.settings.optimizer == expected["optimizer"]


def test_krnn_averages_its_parallel_recurrent_networks() -> None:
    from qmodel_zoo.nn.recurrent_networks import KRNNNet

    torch.manual_seed(0)
    net = KRNNNet(d_feat=3, cnn_dim=5, cnn_kernel_size=3, rnn_dim=4, rnn_dups=3, rnn_layers=1).eval()
    x = torch.randn(7, 6, 3)
    with torch.no_grad():
        encoded = net.conv(x.transpose(1, 2)).transpose(1, 2)
        assert encoded.shape == (7, 6, 5)  # "same" padding keeps the steps
        last = sum(rnn(encoded)[0][:, -1, :] for rnn in net.rnns) / 3
        torch.testing.assert_close(net(x), net.out_fc(last).squeeze(-1))
        # a sample's score depends on its own sequence only
        y = x.clone()
        y[3] += 1.0
        torch.testing.assert_close(net(y)[:3], net(x)[:3])


def test_sfm_cell_matches_its_equations_step_by_step() -> None:
    from qmodel_zoo.nn.recurrent_networks import SFMNet

    torch.manual_seed(1)
    d, hidden, freq = 3, 4, 5
    net = SFMNet(d_feat=d, hidden_size=hidden, output_dim=2, freq_dim=freq).eval()
    x = torch.randn(2, 3, d, dtype=torch.float32)
    p = {k: v.detach().double().numpy() for k, v in net.named_parameters()}

    def hard(v):
        return np.clip(v / 6 + 0.5, 0, 1)

    xs = x.double().numpy()
    h = np.zeros((2, hidden))
    s_re = np.zeros((2, hidden, freq))
    s_im = np.zeros((2, hidden, freq))
    frequency = np.arange(freq) / freq
    for t in range(3):
        def pre(g, xt=xs[:, t], h=h):
            return xt @ p[f"W_{g}"] + p[f"b_{g}"] + h @ p[f"U_{g}"]

        forget = hard(pre("ste"))[:, :, None] * hard(pre("fre"))[:, None, :]
        c = (hard(pre("i")) * np.tanh(pre("c")))[:, :, None]
        omega = 2 * np.pi * (t + 1) * frequency
        s_re = forget * s_re + c * np.cos(omega)
        s_im = forget * s_im + c * np.sin(omega)
        a = np.tanh((s_re**2 + s_im**2) @ p["U_a"][:, 0] + p["b_a"])
        h = hard(pre("o")) * a
    expected = (h @ p["W_p"] + p["b_p"]) @ p["fc_out.weight"].T + p["fc_out.bias"]
    with torch.no_grad():
        np.testing.assert_allclose(net(x).double().numpy(), expected[:, 0], rtol=1e-5, atol=1e-6)


def test_seeded_runs_reproduce(kernel: Kernel, planted) -> None:
    a = make(kernel, "sfm", "window", n_epochs=1).fit(planted).predict(planted)
    b = make(kernel, "sfm", "window", n_epochs=1).fit(planted).predict(planted)
    pd.testing.assert_series_equal(a, b, rtol=0, atol=0)
    assert not np.allclose(make(kernel, "sfm", "window", n_epochs=1, seed=1).fit(planted).predict(planted), a)


def test_bad_arguments(kernel: Kernel) -> None:
    with pytest.raises(ConfigError, match="unknown parameter 'rnn_dup' for the krnn model; did you mean 'rnn_dups'"):
        kernel.create("model", "KRNN", rnn_dup=2)
    with pytest.raises(ConfigError, match="cnn_kernel_size") as info:
        kernel.create("model", "KRNN", cnn_kernel_size=0)
    assert info.value.path == "cnn_kernel_size"
    with pytest.raises(ConfigError, match="freq_dim"):
        kernel.create("model", "SFM", freq_dim=2.5)
    with pytest.raises(ConfigError, match="dropout_W"):
        kernel.create("model", "SFM", dropout_W=1.5)
