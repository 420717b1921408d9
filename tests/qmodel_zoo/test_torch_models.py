"""PyTorch models: each learns the planted signal in a few epochs on both dataset views, reproduces with a seed,
and saves/loads without pickle."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from qmodel_zoo.nn.samples import fill_windows
from qmodel_zoo.nn.trainer import resolve_device

from qcore.errors import ConfigError, QcoreError
from qcore.kernel import Kernel
from tests.qmodel_zoo.helpers import IC_BAR, WithoutValid, assert_roundtrip, mean_test_ic

COMMON = {"batch_size": 256, "seed": 0, "GPU": None}
RNN = {**COMMON, "hidden_size": 8, "n_epochs": 3, "lr": 0.01}
SMALL = {
    "mlp": {**COMMON, "layers": [16], "lr": 0.01, "optimizer": "adam", "max_steps": 60, "eval_steps": 20},
    "lstm": RNN,
    "gru": RNN,
    "alstm": RNN,
    "transformer": {**COMMON, "d_model": 8, "nhead": 2, "num_layers": 1, "dim_feedforward": 16, "n_epochs": 3,
                    "lr": 0.005},
}
#: (model, view): "rows" = MLP on flat rows, "reshape" = rows of 4 fields × 4 lags read with d_feat=4,
#: "window" = the time-series view with step_len=4.
CASES = [("mlp", "rows")] + [(m, v) for m in ("lstm", "gru", "alstm", "transformer") for v in ("reshape", "window")]


def make(kernel: Kernel, name: str, view: str, **extra):
    kwargs = dict(SMALL[name])
    if view == "reshape":
        kwargs["d_feat"] = 4
    elif view == "window":
        kwargs.update(d_feat=None, step_len=4)
    return kernel.create("model", name, **{**kwargs, **extra})


@pytest.mark.parametrize(("name", "view"), CASES)
def test_learns_and_roundtrips(kernel: Kernel, planted, planted_lags, tmp_path, name: str, view: str) -> None:
    dataset = planted_lags if view == "reshape" else planted
    model = make(kernel, name, view).fit(dataset)
    history = model.evals_result_
    assert history["train"][-1] < history["train"][0], history  # the training loss falls
    assert len(history["valid"]) == len(history["train"])
    assert mean_test_ic(model, dataset) > IC_BAR
    loaded = assert_roundtrip(model, dataset, tmp_path, kernel, name)
    assert loaded.spec_ == model.spec_
    assert (tmp_path / "weights.pt").exists() or (tmp_path / "weights.safetensors").exists()


@pytest.mark.parametrize(("name", "view"), [("mlp", "rows"), ("gru", "window"), ("alstm", "reshape")])
def test_seeded_runs_reproduce(kernel: Kernel, planted, planted_lags, name: str, view: str) -> None:
    dataset = planted_lags if view == "reshape" else planted
    first = make(kernel, name, view, n_epochs=1) if name != "mlp" else make(kernel, name, view, max_steps=20)
    second = make(kernel, name, view, n_epochs=1) if name != "mlp" else make(kernel, name, view, max_steps=20)
    a = first.fit(dataset).predict(dataset)
    b = second.fit(dataset).predict(dataset)
    pd.testing.assert_series_equal(a, b, rtol=0, atol=0)
    other = make(kernel, name, view, seed=1, **({"n_epochs": 1} if name != "mlp" else {"max_steps": 20}))
    assert not np.allclose(other.fit(dataset).predict(dataset), a)


def test_daily_batches_and_ic_metric(kernel: Kernel, planted) -> None:
    model = make(kernel, "lstm", "window", batching="daily", metric="ic", early_stop=1, n_epochs=4)
    model.fit(planted)
    assert model.history_.valid_score[model.history_.best_epoch] == max(model.history_.valid_score)
    assert len(model.history_.train_loss) <= 4
    assert mean_test_ic(model, planted) > IC_BAR


def test_trains_without_valid_segment(kernel: Kernel, planted) -> None:
    no_valid = WithoutValid(planted)
    model = make(kernel, "mlp", "rows", max_steps=40).fit(no_valid)
    assert model.evals_result_["valid"] == [] and model.history_.best_epoch == 1


def test_bad_arguments(kernel: Kernel, planted, planted_lags) -> None:
    with pytest.raises(ConfigError, match="unknown parameter 'hiden_size' for the lstm model; did you mean 'hidden_"):
        kernel.create("model", "lstm", hiden_size=8)
    with pytest.raises(ConfigError, match="optimizer must be one of adam, gd"):
        kernel.create("model", "GRU", optimizer="rmsprop")
    with pytest.raises(ConfigError, match="d_model=10 must be a multiple of nhead=4"):
        kernel.create("model", "transformer", d_model=10, nhead=4)
    with pytest.raises(ConfigError, match="batching must be one of shuffle, daily"):
        kernel.create("model", "alstm", batching="weekly")
    with pytest.raises(ConfigError, match="rnn_type must be one of GRU, LSTM, RNN"):
        kernel.create("model", "alstm", rnn_type="tcn")
    with pytest.raises(ConfigError, match="layers must be a non-empty list"):
        kernel.create("model", "DNNModelPytorch", layers=[])
    with pytest.raises(QcoreError, match="d_feat=5 does not divide the 16 features"):
        make(kernel, "lstm", "reshape", d_feat=5).fit(planted_lags)
    with pytest.raises(QcoreError, match="d_feat=6 but the time-series view has 4 features"):
        make(kernel, "gru", "window", d_feat=6).fit(planted)
    with pytest.raises(QcoreError, match="input_dim=360 but the dataset has 4 features"):
        make(kernel, "mlp", "rows", input_dim=360).fit(planted)
    with pytest.raises(QcoreError, match="not fitted"):
        kernel.create("model", "lstm").predict(planted)


def test_fill_windows_forward_then_backward() -> None:
    nan = np.nan
    windows = np.array([[[nan, 1.0], [2.0, nan], [nan, nan], [5.0, 3.0]],
                        [[nan, nan], [nan, nan], [nan, nan], [nan, np.inf]]], dtype=np.float32)
    filled = fill_windows(windows)
    np.testing.assert_array_equal(filled[0], [[2.0, 1.0], [2.0, 1.0], [2.0, 1.0], [5.0, 3.0]])
    np.testing.assert_array_equal(filled[1], np.zeros((4, 2)))


def test_device_choice() -> None:
    assert resolve_device(None).type == "cpu"
    assert resolve_device(-1).type == "cpu"
    import torch

    assert resolve_device(0).type == ("cuda" if torch.cuda.is_available() else "cpu")
