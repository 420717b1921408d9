"""TFT in PyTorch (Qlib's ``TFTModel``): inputs, quantile loss, training, save/restore, argument checks."""

from __future__ import annotations

import numpy as np
import pytest

from qcore.errors import ConfigError, QcoreError
from qcore.kernel import Kernel
from tests.qmodel_zoo.helpers import assert_roundtrip, mean_test_ic
from tests.qmodel_zoo.planted import planted_dataset

torch = pytest.importorskip("torch")

from qmodel_zoo.nn.tft import QLIB_TFT_FEATURES, TFTSamples, quantile_loss  # noqa: E402

SMALL = {"total_time_steps": 5, "num_encoder_steps": 3, "num_epochs": 2, "hidden_layer_size": 8,
         "minibatch_size": 256, "learning_rate": 0.01, "max_gradient_norm": 1.0, "dropout_rate": 0.1, "seed": 0,
         "GPU": None}


@pytest.fixture(scope="module")
def market():
    return planted_dataset(n_instruments=30, n_days=50, seed=0)


def test_inputs_are_encoder_windows_calendar_codes_and_future_labels(market) -> None:
    samples = TFTSamples(market, "valid", 3, 2, ["A", "C"])
    observed, known = samples.inputs(np.arange(5))
    assert observed.shape == (5, 3, 2) and known.shape == (5, 5, 2)
    date = samples.index[0][0]
    assert known[0, 2].tolist() == [date.dayofweek, date.month - 1]  # the last encoder step is the sample's date
    features, label = market.xy("valid")
    assert np.allclose(observed[0, -1], features.loc[samples.index[0], ["A", "C"]].to_numpy())
    stock = samples.index[0][1]
    own = label.xs(stock, level="instrument")
    assert samples.targets[0, 0] == pytest.approx(own.iloc[0]) and samples.targets[0, 1] == pytest.approx(own.iloc[1])
    with pytest.raises(QcoreError, match="lacks the TFT input"):
        TFTSamples(market, "valid", 3, 2, ["RESI5"])


def test_quantile_loss_is_the_pinball_loss_over_known_targets() -> None:
    forecast = torch.tensor([[[0.0, 1.0]], [[5.0, 5.0]]])
    target = torch.tensor([[1.0], [float("nan")]])
    loss = quantile_loss(forecast, target, torch.tensor([0.1, 0.9]))
    assert loss.item() == pytest.approx(0.1 * 1.0 + 0.0)  # under-forecast at q=0.1, exact at q=0.9; NaN skipped


@pytest.mark.slow
def test_learns_and_roundtrips(kernel: Kernel, market, tmp_path) -> None:
    model = kernel.create("model", "TFTModel", **SMALL).fit(market)
    assert model.spec_["feature_cols"] == ["A", "B", "C", "D"]  # Qlib's 20 columns are absent: every feature
    assert len(model.evals_result_["valid"]) == 2
    assert mean_test_ic(model, market) > 0.05
    assert_roundtrip(model, market, tmp_path, kernel, "tft")


def test_qlib_name_defaults_and_argument_checks(kernel: Kernel) -> None:
    assert kernel.registry("model").entry("TFTModel").name == "tft"
    model = kernel.create("model", "TFTModel")
    assert model.encoder_steps == 6 and model.decoder_steps == 6 and model.net_args["hidden_layer_size"] == 160
    assert model.quantiles[model.score_index] == 0.9 and len(QLIB_TFT_FEATURES) == 20
    for bad, key in (({"total_time_steps": 6}, "total_time_steps"), ({"score_quantile": 0.7}, "score_quantile"),
                     ({"quantiles": []}, "quantiles"), ({"feature_cols": "RESI5"}, "feature_cols"),
                     ({"dropout_rate": 1.5}, "dropout_rate")):
        with pytest.raises(ConfigError) as info:
            kernel.create("model", "TFTModel", **bad)
        assert info.value.path == key
    with pytest.raises(ConfigError, match="unknown parameter"):
        kernel.create("model", "TFTModel", DATASET="Alpha158")
