"""The shared PyTorch trainer: sample weights (a span weighted 0 trains as if it were absent, uniform weights as
none), the objective hook (auxiliary losses and several heads), device choice and seeds."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import qcore
from qcore.errors import DataError
from qcore.kernel import Kernel
from qcore.reweight import accepts_reweighter, fit_model
from tests.kernel.test_workflow import workflow
from tests.qmodel_zoo.helpers import WithoutValid
from tests.qmodel_zoo.test_sample_weights import SpyWeights, _pred, reweight_kernel  # noqa: F401 (a fixture)

torch = pytest.importorskip("torch")

RNN = {"batch_size": 256, "seed": 0, "GPU": None, "hidden_size": 8, "n_epochs": 2, "lr": 0.01, "d_feat": 4}
SMALL = {
    "mlp": {"batch_size": 256, "seed": 0, "GPU": None, "layers": [16], "lr": 0.01, "optimizer": "adam",
            "max_steps": 40, "eval_steps": 20},
    "lstm": RNN,
    "gats": {**RNN, "n_epochs": 1},
}


class DateWeights:
    """A reweighter: ``inside`` for the dates in ``[start, end]``, ``outside`` elsewhere (one weight per date)."""

    def __init__(self, start: pd.Timestamp, end: pd.Timestamp, inside: float, outside: float = 1.0) -> None:
        self.start, self.end, self.inside, self.outside = start, end, inside, outside

    def reweight(self, index: pd.MultiIndex) -> pd.Series:
        dates = index.get_level_values("datetime").unique()
        inside = (dates >= self.start) & (dates <= self.end)
        return pd.Series(np.where(inside, self.inside, self.outside), index=dates)


class ConstantWeights:
    """A reweighter giving every row the same weight."""

    def __init__(self, value: float) -> None:
        self.value = value

    def reweight(self, index: pd.MultiIndex) -> np.ndarray:
        return np.full(len(index), self.value)


class DropSpan:
    """The dataset without the train rows dated in ``[start, end]``."""

    def __init__(self, dataset, start: pd.Timestamp, end: pd.Timestamp) -> None:
        self.dataset, self.start, self.end = dataset, start, end
        self.segments = dataset.segments

    def xy(self, segment: str, data_key: str | None = None):
        features, label = self.dataset.xy(segment, data_key)
        if segment != "train":
            return features, label
        dates = features.index.get_level_values("datetime")
        keep = ~((dates >= self.start) & (dates <= self.end))
        return features[keep], label[keep]


def _span(dataset) -> tuple[pd.Timestamp, pd.Timestamp]:
    features, _ = dataset.xy("train")
    dates = features.index.get_level_values("datetime").unique().sort_values()
    return dates[10], dates[25]


def _make(kernel: Kernel, name: str):
    return kernel.create("model", name, **SMALL[name])


@pytest.mark.slow
@pytest.mark.parametrize("name", ["mlp", "lstm", "gats"])
def test_zero_weight_on_a_span_trains_as_without_it(kernel: Kernel, planted, planted_lags, name: str) -> None:
    dataset = planted if name == "mlp" else planted_lags
    start, end = _span(dataset)
    weighted = _make(kernel, name).fit(dataset, reweighter=DateWeights(start, end, 0.0))
    without = _make(kernel, name).fit(DropSpan(dataset, start, end))
    pd.testing.assert_series_equal(weighted.predict(dataset), without.predict(dataset), rtol=0, atol=0)
    assert weighted.evals_result_ == without.evals_result_
    # and the span did matter: training on everything gives other predictions
    full = _make(kernel, name).fit(dataset)
    assert not np.allclose(full.predict(dataset), weighted.predict(dataset))


@pytest.mark.parametrize("name", ["mlp", "lstm"])
def test_uniform_weights_train_as_none(kernel: Kernel, planted, planted_lags, name: str) -> None:
    dataset = planted if name == "mlp" else planted_lags
    plain = _make(kernel, name).fit(dataset).predict(dataset)
    for value in (1.0, 2.5):
        weighted = _make(kernel, name).fit(dataset, reweighter=ConstantWeights(value)).predict(dataset)
        pd.testing.assert_series_equal(weighted, plain, rtol=0, atol=0)


def test_unequal_weights_change_training_and_scale_does_not(kernel: Kernel, planted_lags) -> None:
    start, end = _span(planted_lags)
    plain = _make(kernel, "lstm").fit(planted_lags).predict(planted_lags)
    light = _make(kernel, "lstm").fit(planted_lags, reweighter=DateWeights(start, end, 0.2)).predict(planted_lags)
    assert not np.allclose(light, plain)
    # weights are scaled to average 1: multiplying them all by 4 changes nothing (up to float rounding)
    scaled = _make(kernel, "lstm").fit(planted_lags, reweighter=DateWeights(start, end, 0.8, 4.0))
    np.testing.assert_allclose(scaled.predict(planted_lags), light, rtol=0, atol=1e-5)


def test_weighted_loss_multiplies_each_squared_error() -> None:
    from qmodel_zoo.nn.trainer import masked_mse, normalised_weights

    pred = torch.tensor([1.0, 2.0, 3.0, 4.0])
    label = torch.tensor([0.0, float("nan"), 1.0, 1.0])
    weight = torch.tensor([2.0, 5.0, 0.5, 1.0])
    assert masked_mse(pred, label, weight).item() == pytest.approx((2 * 1 + 0.5 * 4 + 1 * 9) / 3)
    assert masked_mse(pred, label).item() == pytest.approx((1 + 4 + 9) / 3)
    kept, scaled = normalised_weights(np.array([0.0, 2.0, 6.0, 0.0]))
    assert kept.tolist() == [1, 2] and scaled.tolist() == [0.5, 1.5]
    kept, scaled = normalised_weights(np.array([3.0, 0.0, 3.0]))
    assert kept.tolist() == [0, 2] and scaled is None


def test_bad_weights_are_refused_by_name(kernel: Kernel, planted_lags) -> None:
    model = _make(kernel, "lstm")
    assert accepts_reweighter(model.fit)
    with pytest.raises(DataError, match="negative"):
        model.fit(planted_lags, reweighter=ConstantWeights(-1.0))
    with pytest.raises(DataError, match="every weight is zero"):
        model.fit(planted_lags, reweighter=ConstantWeights(0.0))


def test_the_runtime_passes_the_reweighter(kernel: Kernel, planted_lags) -> None:
    start, end = _span(planted_lags)
    through_runtime = fit_model(_make(kernel, "lstm"), planted_lags, DateWeights(start, end, 0.0))
    direct = _make(kernel, "lstm").fit(planted_lags, reweighter=DateWeights(start, end, 0.0))
    pd.testing.assert_series_equal(through_runtime.predict(planted_lags), direct.predict(planted_lags))


def test_without_valid_every_epoch_runs_with_weights(kernel: Kernel, planted_lags) -> None:
    start, end = _span(planted_lags)
    model = _make(kernel, "lstm").fit(WithoutValid(planted_lags), reweighter=DateWeights(start, end, 0.5))
    assert len(model.evals_result_["train"]) == SMALL["lstm"]["n_epochs"] and model.evals_result_["valid"] == []


class _TwoHeads(torch.nn.Module):
    """A network with a score head and an auxiliary head."""

    def __init__(self) -> None:
        super().__init__()
        self.score = torch.nn.Linear(3, 1)
        self.aux = torch.nn.Linear(3, 1)

    def forward(self, x):
        return {"score": self.score(x).squeeze(-1), "aux": self.aux(x).squeeze(-1)}


def test_objective_hook_trains_every_head_and_scores_with_one() -> None:
    from qmodel_zoo.nn.samples import Samples
    from qmodel_zoo.nn.trainer import Objective, TrainSettings, masked_mse, predict_samples, train

    class Rows(Samples):
        def __init__(self, x, y, index):
            self.x, self.label, self.index, self.feature_names = x, y, index, ["a", "b", "c"]

        def batch(self, rows):
            return self.x[rows]

    events: list[tuple[str, int]] = []

    class AuxObjective(Objective):
        def loss(self, output, label, weight, x, rows):
            return masked_mse(output["score"], label, weight) + masked_mse(output["aux"], x[:, 0])

        def scores(self, output):
            return output["score"]

        def start_epoch(self, network, epoch):
            events.append(("start", epoch))

        def end_epoch(self, network, epoch):
            events.append(("end", epoch))

    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 3)).astype(np.float32)
    y = (x @ np.array([1.0, -1.0, 0.5])).astype(np.float32)
    index = pd.MultiIndex.from_product([pd.date_range("2020-01-01", periods=8), [f"S{i}" for i in range(8)]],
                                       names=["datetime", "instrument"])
    samples = Rows(x, y, index)
    torch.manual_seed(0)
    net = _TwoHeads()
    aux_before = net.aux.weight.detach().clone()
    settings = TrainSettings(n_epochs=3, lr=0.05, optimizer="adam", weight_decay=0.0, early_stop=5, metric="loss",
                             batch_size=16)
    history = train(net, samples, samples, lambda r: [np.arange(64)], settings, torch.device("cpu"), rng,
                    objective=AuxObjective())
    assert events == [("start", 0), ("end", 0), ("start", 1), ("end", 1), ("start", 2), ("end", 2)]
    assert not torch.equal(net.aux.weight, aux_before)  # the auxiliary head learnt
    assert history.valid_loss[-1] < history.valid_loss[0]
    scores = predict_samples(net, samples, 16, torch.device("cpu"), objective=AuxObjective())
    with torch.no_grad():
        np.testing.assert_allclose(scores, net.score(torch.from_numpy(x)).squeeze(-1).numpy(), rtol=1e-6)


def test_device_choice_follows_qlib() -> None:
    from qmodel_zoo.nn.trainer import resolve_device

    assert resolve_device(None).type == "cpu"
    assert resolve_device(-1).type == "cpu"
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device(0).type == expected


def test_seeded_weighted_runs_reproduce(kernel: Kernel, planted_lags) -> None:
    start, end = _span(planted_lags)
    a = _make(kernel, "lstm").fit(planted_lags, reweighter=DateWeights(start, end, 0.3)).predict(planted_lags)
    b = _make(kernel, "lstm").fit(planted_lags, reweighter=DateWeights(start, end, 0.3)).predict(planted_lags)
    pd.testing.assert_series_equal(a, b, rtol=0, atol=0)


@pytest.mark.slow
def test_a_workflow_reweighter_reaches_a_torch_model(tmp_path, reweight_kernel: Kernel) -> None:  # noqa: F811
    model = {"name": "gru", "kwargs": {"d_feat": None, "hidden_size": 4, "num_layers": 1,
                                                            "n_epochs": 2, "batch_size": 64, "seed": 0, "GPU": None}}
    weighted_spec = {"name": "spy_days", "kwargs": {"start": "2018-01-01", "end": "2018-05-31", "inside": 0.0}}
    weighted = _pred(qcore.run(workflow(tmp_path, model=model, reweighter=weighted_spec), kernel=reweight_kernel),
                     tmp_path)
    assert len(SpyWeights.instances) == 1 and SpyWeights.instances[0].calls
    plain = _pred(qcore.run(workflow(tmp_path, model=model), kernel=reweight_kernel), tmp_path)
    assert not np.allclose(weighted, plain)
    uniform_spec = {"name": "spy_days", "kwargs": {"outside": 2.0}}
    uniform = _pred(qcore.run(workflow(tmp_path, model=model, reweighter=uniform_spec), kernel=reweight_kernel),
                    tmp_path)
    pd.testing.assert_series_equal(uniform, plain, rtol=0, atol=0)
