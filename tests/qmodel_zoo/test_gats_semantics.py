"""GATs follows Qlib's ``pytorch_gats`` where it matters for results (issue #23): the attention of stock ``i`` on
``j`` is ``softmax_j(LeakyReLU(a · [W h_j, W h_i]))`` and early stopping reads the mean over dates of each date's
valid MSE, not the MSE of all valid rows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from qcore.kernel import Kernel

torch = pytest.importorskip("torch")

from qmodel_zoo.nn.more_networks import GATNet  # noqa: E402 (after the torch check)
from qmodel_zoo.nn.trainer import valid_metrics  # noqa: E402


class _Labelled:
    """What :func:`valid_metrics` reads of a segment: its index and labels."""

    def __init__(self, dates: list[str], label: list[float]) -> None:
        self.index = pd.MultiIndex.from_arrays([pd.to_datetime(dates), [f"S{i}" for i in range(len(dates))]],
                                               names=["datetime", "instrument"])
        self.label = np.asarray(label, dtype=np.float32)


def test_valid_loss_is_the_mean_of_daily_losses_when_asked() -> None:
    # day 1: two labelled rows, squared errors 1 and 1; day 2: one labelled row (error 4) and one without a label
    samples = _Labelled(["2020-01-02", "2020-01-02", "2020-01-03", "2020-01-03"], [1.0, -1.0, 2.0, np.nan])
    pred = np.array([0.0, 0.0, 0.0, 5.0])
    assert valid_metrics(pred, samples, "loss") == (pytest.approx(2.0), pytest.approx(-2.0))  # (1 + 1 + 4) / 3
    assert valid_metrics(pred, samples, "loss", daily_loss=True) == (pytest.approx(2.5), pytest.approx(-2.5))
    assert valid_metrics(pred, samples, "ic", daily_loss=True)[0] == pytest.approx(2.5)  # the loss beside an IC


class _UnevenDays:
    """``dataset`` with every other instrument left out of the even valid dates (days of unequal size)."""

    def __init__(self, dataset) -> None:
        self.dataset = dataset
        self.segments = dataset.segments

    def xy(self, segment: str, data_key: str | None = None):
        features, label = self.dataset.xy(segment, data_key)
        if segment != "valid":
            return features, label
        dates = features.index.get_level_values("datetime")
        codes = pd.factorize(dates, sort=True)[0]
        names = features.index.get_level_values("instrument")
        odd = pd.factorize(names, sort=True)[0] % 2 == 1
        keep = ~((codes % 2 == 0) & odd)
        return features[keep], None if label is None else label[keep]


def test_gats_early_stops_on_the_mean_daily_valid_loss(kernel: Kernel, planted_lags) -> None:
    dataset = _UnevenDays(planted_lags)
    model = kernel.create("model", "GATs", d_feat=4, hidden_size=8, num_layers=1, n_epochs=1, lr=0.01, seed=0,
                          GPU=None)
    assert model.settings.daily_loss and model.settings.by_day
    model.fit(dataset)
    # one epoch: the kept weights are those the valid segment was scored with
    pred = model.predict(dataset, "valid")
    _, label = dataset.xy("valid")
    errors = ((pred - label.reindex(pred.index)) ** 2).dropna()
    daily = float(errors.groupby(level="datetime").mean().mean())
    pooled = float(errors.mean())
    assert abs(daily - pooled) > 1e-4 * pooled  # the days are uneven enough to tell the two apart
    assert model.history_.valid_loss[0] == pytest.approx(daily, rel=1e-5)
    assert model.history_.valid_score[0] == pytest.approx(-daily, rel=1e-5)


def test_attention_and_head_match_the_pair_formulation() -> None:
    torch.manual_seed(0)
    net = GATNet(d_feat=3, hidden_size=8, num_layers=1, base_model="LSTM")
    hidden = torch.randn(6, 8)
    with torch.no_grad():
        z = net.transformation(hidden)
        n = len(z)
        # pairs[i, j] = [z_j, z_i]: stock i attending to stock j (Qlib's expand/transpose/cat)
        pairs = torch.cat([z.unsqueeze(0).expand(n, n, 8), z.unsqueeze(1).expand(n, n, 8)], dim=2)
        expected = torch.softmax(torch.nn.functional.leaky_relu(pairs @ net.a).squeeze(-1), dim=1)
        torch.testing.assert_close(net.attention(hidden), expected)
        # the transposed orientation is a different matrix: the test tells the two apart
        assert not torch.allclose(net.attention(hidden), expected.T, atol=1e-3)
        x = torch.randn(6, 5, 3)
        last = net.rnn(x)[0][:, -1, :]
        mixed = expected_attention(net, last) @ last + last
        head = net.fc_out(torch.nn.functional.leaky_relu(net.fc(mixed))).squeeze(-1)
        torch.testing.assert_close(net(x), head)


def expected_attention(net: GATNet, hidden: torch.Tensor) -> torch.Tensor:
    """The pair formulation of the attention, written out loop by loop."""
    z = net.transformation(hidden)
    n = len(z)
    logits = torch.empty(n, n)
    for i in range(n):
        for j in range(n):
            logits[i, j] = torch.cat([z[j], z[i]]) @ net.a[:, 0]
    return torch.softmax(torch.nn.functional.leaky_relu(logits), dim=1)
