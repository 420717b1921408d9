"""Qlib's ``ADD``: two recurrent encoders (excess return, market state), adversarial heads behind gradient reversal,
and a decoder that rebuilds the input sequence from both encodings.

Training follows Qlib's ``pytorch_add``: shuffled mini-batches; the loss of a batch is

    MSE(excess head, label) + CE(market head, market class)
    + MSE(adversarial excess head, label) + CE(adversarial market head, market class)
    + mu · MSE(reconstruction, input sequence)

where a day's market class is its mean raw label cut at the train segment's daily terciles (0 low, 1 middle,
2 high). The gradient reversal's strength starts at 0 and after epoch ``p`` is ``min(gamma_clip,
2 / (1 + exp(-gamma·p)) - 1)``. Scores are the excess head's. The auxiliary heads use the shared trainer's
objective hook (:class:`~qmodel_zoo.nn.trainer.Objective`); sample weights multiply every term of a sample.

Differences from Qlib, on purpose: valid scores are computed over the whole segment (``mse``/``loss``: minus the
MSE; ``ic``/``ric``: mean daily IC / Rank IC) rather than averaged day by day; ``model_path`` takes the zoo's saved
``lstm``/``gru`` folders or a state-dict file, read without pickle.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from qcore.errors import ConfigError, QcoreError
from qcore.protocols import Dataset
from qmodel_zoo._base import check_choice, check_number
from qmodel_zoo.nn.base import collect_params
from qmodel_zoo.nn.models import SequenceModel
from qmodel_zoo.nn.samples import Samples
from qmodel_zoo.nn.trainer import ALL_METRICS, Objective


class _ReverseGradient(torch.autograd.Function):
    """Identity forward; the gradient times ``-alpha`` backward."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, alpha: float) -> torch.Tensor:
        ctx.alpha = alpha
        return x.view_as(x)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return -grad * ctx.alpha, None


class GradientReversal(nn.Module):
    """Gradient reversal whose strength grows per epoch (:meth:`step`) as Qlib's ``RevGrad``."""

    def __init__(self, gamma: float, gamma_clip: float) -> None:
        super().__init__()
        self.gamma, self.gamma_clip = gamma, gamma_clip
        self.steps, self.alpha = 0, 0.0

    def step(self) -> None:
        """One epoch more: ``alpha = min(gamma_clip, 2 / (1 + exp(-gamma·steps)) - 1)``."""
        self.steps += 1
        self.alpha = min(self.gamma_clip, 2.0 / (1.0 + math.exp(-self.gamma * self.steps)) - 1.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x``, reversing its gradient."""
        return _ReverseGradient.apply(x, self.alpha)


def _recurrent(base_model: str, d_in: int, hidden: int, layers: int, dropout: float) -> nn.Module:
    cls = {"GRU": nn.GRU, "LSTM": nn.LSTM}[base_model]
    return cls(input_size=d_in, hidden_size=hidden, num_layers=layers, batch_first=True, dropout=dropout)


def _head(width: int, out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(width, width), nn.BatchNorm1d(width), nn.Tanh(), nn.Linear(width, out))


class ADDNet(nn.Module):
    """The network of Qlib's ``ADDModel``; ``forward`` returns a dict of its heads' outputs."""

    def __init__(self, d_feat: int, hidden_size: int = 64, num_layers: int = 2, dropout: float = 0.0,
                 dec_dropout: float = 0.0, base_model: str = "GRU", gamma: float = 0.1,
                 gamma_clip: float = 0.4) -> None:
        super().__init__()
        self.base_model = base_model
        self.enc_excess = _recurrent(base_model, d_feat, hidden_size, num_layers, dropout)
        self.enc_market = _recurrent(base_model, d_feat, hidden_size, num_layers, dropout)
        self.dec = _recurrent(base_model, d_feat, 2 * hidden_size, num_layers, dec_dropout)
        self.dec_fc = nn.Linear(2 * hidden_size, d_feat)
        width = hidden_size * num_layers
        self.pred_excess, self.adv_excess = _head(width, 1), _head(width, 1)
        self.pred_market, self.adv_market = _head(width, 3), _head(width, 3)
        self.before_adv_excess = GradientReversal(gamma, gamma_clip)
        self.before_adv_market = GradientReversal(gamma, gamma_clip)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Heads of ``x`` ``(batch, steps, d_feat)``: ``excess`` (scores), ``market`` and ``adv_market`` (3-class
        logits), ``adv_excess``, and in training mode ``reconstructed`` (``(batch, steps, d_feat)``)."""
        n, steps = x.shape[0], x.shape[1]
        _, hidden_excess = self.enc_excess(x)
        _, hidden_market = self.enc_market(x)
        is_lstm = self.base_model == "LSTM"
        h_excess = hidden_excess[0] if is_lstm else hidden_excess
        h_market = hidden_market[0] if is_lstm else hidden_market
        feature_excess = h_excess.permute(1, 0, 2).reshape(n, -1)
        feature_market = h_market.permute(1, 0, 2).reshape(n, -1)
        out = {
            "excess": self.pred_excess(feature_excess).squeeze(-1),
            "market": self.pred_market(feature_market),
            "adv_market": self.adv_market(self.before_adv_market(feature_excess)),
            "adv_excess": self.adv_excess(self.before_adv_excess(feature_market)).squeeze(-1),
        }
        if not self.training:  # scoring reads the excess head only; the decoder's step-by-step loop is skipped
            return out
        if is_lstm:
            state: Any = tuple(torch.cat([hidden_excess[i], hidden_market[i]], -1) for i in range(2))
        else:
            state = torch.cat([hidden_excess, hidden_market], -1)
        step = torch.zeros_like(x[:, 0, :])
        rebuilt = []
        for _ in range(steps):
            output, state = self.dec(step.unsqueeze(1), state)
            step = self.dec_fc(output.squeeze(1))
            rebuilt.append(step)
        out["reconstructed"] = torch.stack(rebuilt, 1)
        return out


def _weighted_mean(values: torch.Tensor, weight: torch.Tensor | None) -> torch.Tensor:
    return torch.mean(values if weight is None else values * weight)


class ADDObjective(Objective):
    """ADD's loss (see the module docstring); ``market`` is the market class of each training sample."""

    def __init__(self, market: np.ndarray | None, mu: float) -> None:
        self.market = None if market is None else torch.from_numpy(np.asarray(market, dtype=np.int64))
        self.mu = mu

    def loss(self, output: Any, label: torch.Tensor, weight: torch.Tensor | None, x: torch.Tensor,
             rows: np.ndarray) -> torch.Tensor:
        if self.market is None:
            raise QcoreError("ADD's objective was built without market classes (prediction only)")
        market = self.market[rows].to(label.device)
        keep = ~torch.isnan(label)
        w = None if weight is None else weight[keep]
        excess = _weighted_mean((output["excess"][keep] - label[keep]) ** 2, w)
        adv_excess = _weighted_mean((output["adv_excess"][keep] - label[keep]) ** 2, w)
        market_ce = _weighted_mean(F.cross_entropy(output["market"], market, reduction="none"), weight)
        adv_market_ce = _weighted_mean(F.cross_entropy(output["adv_market"], market, reduction="none"), weight)
        rebuilt = ((output["reconstructed"] - x) ** 2).mean(dim=(1, 2))
        return excess + market_ce + adv_excess + adv_market_ce + self.mu * _weighted_mean(rebuilt, weight)

    def scores(self, output: Any) -> torch.Tensor:
        return output["excess"]

    def end_epoch(self, network: nn.Module, epoch: int) -> None:
        network.before_adv_excess.step()
        network.before_adv_market.step()


def market_classes(daily_mean: pd.Series, dates: pd.Index) -> np.ndarray:
    """Each of ``dates``' market class from the daily mean labels: 0 up to the first tercile of ``daily_mean``,
    1 up to the second, 2 above (Qlib's ``pd.cut`` at ``[-inf, lo, hi, inf]``)."""
    lo, hi = daily_mean.quantile([1 / 3, 2 / 3])
    means = daily_mean.reindex(dates).to_numpy(dtype=np.float64)
    if np.isnan(means).any():
        raise QcoreError("ADD needs a raw label on every training date to make its market classes")
    return np.where(means <= lo, 0, np.where(means <= hi, 1, 2)).astype(np.int64)


class ADDModel(SequenceModel):
    """Qlib's ``ADD`` with its arguments and defaults (see the module docstring)."""

    registry_name = "add_model"
    kind = "add"
    metrics = ALL_METRICS

    def __init__(self, d_feat: int | None = 6, hidden_size: int = 64, num_layers: int = 2, dropout: float = 0.0,
                 dec_dropout: float = 0.0, n_epochs: int = 200, lr: float = 0.001, metric: str = "mse",
                 batch_size: int = 5000, early_stop: int = 20, base_model: str = "GRU",
                 model_path: str | None = None, optimizer: str = "adam", gamma: float = 0.1,
                 gamma_clip: float = 0.4, mu: float = 0.05, GPU: Any = 0, seed: int | None = None,
                 step_len: int | None = None, loss: str = "mse", **kwargs: Any) -> None:
        params = collect_params(locals())
        check_number("hidden_size", hidden_size, low=1, integer=True)
        check_number("num_layers", num_layers, low=1, integer=True)
        check_number("dropout", dropout, low=0.0, high=0.99)
        check_number("dec_dropout", dec_dropout, low=0.0, high=0.99)
        check_number("gamma", gamma, low=0.0)
        check_number("gamma_clip", gamma_clip, low=0.0)
        check_number("mu", mu, low=0.0)
        check_choice("base_model", base_model, ("GRU", "LSTM"))
        if model_path is not None and (not isinstance(model_path, str) or not model_path.strip()):
            raise ConfigError(f"model_path must be a path to saved weights, got {model_path!r}", path="model_path")
        super().__init__(params, kwargs, n_epochs=n_epochs, lr=lr, batch_size=batch_size, early_stop=early_stop,
                         loss=loss, optimizer=optimizer, metric=metric, GPU=GPU, seed=seed, weight_decay=0.0)
        self._sequence_setup(d_feat, step_len, "shuffle")
        self.net_args = {"hidden_size": int(hidden_size), "num_layers": int(num_layers), "dropout": float(dropout),
                         "dec_dropout": float(dec_dropout), "base_model": base_model, "gamma": float(gamma),
                         "gamma_clip": float(gamma_clip)}
        self.mu, self.model_path = float(mu), model_path
        self._daily_market: pd.Series | None = None

    def _network_args(self) -> dict[str, Any]:
        return dict(self.net_args)

    def _build_network(self, spec: Mapping[str, Any]) -> nn.Module:
        return ADDNet(**{k: v for k, v in spec.items() if k != "kind"})

    def fit(self, dataset: Dataset, reweighter: Any = None) -> ADDModel:
        """Train as Qlib's ADD (see the module docstring); ``reweighter``: sample weights."""
        try:
            _, raw = dataset.xy("train", "raw")
        except (QcoreError, KeyError, TypeError):
            raw = None
        if raw is None:
            _, raw = dataset.xy("train")
        if raw is None:
            raise QcoreError("ADD needs a label on the train segment")
        self._daily_market = raw.groupby(level="datetime").mean()
        try:
            return super().fit(dataset, reweighter=reweighter)
        finally:
            self._daily_market = None

    def _objective(self, samples: Samples) -> Objective:
        if self._daily_market is None:
            return ADDObjective(None, self.mu)
        dates = pd.Index(samples.index.get_level_values("datetime"))
        return ADDObjective(market_classes(self._daily_market, dates), self.mu)

    def _prepare_network(self, network: Any) -> None:
        if self.model_path is None:
            return
        from qmodel_zoo.nn.weights import read_weights

        pretrained = read_weights(Path(self.model_path).expanduser())
        base = {k[len("rnn."):]: v for k, v in pretrained.items() if k.startswith("rnn.")}
        if not base:
            raise ConfigError(f"the weights at {self.model_path} hold no recurrent base ('rnn.*') for ADD",
                              path="model_path")
        for encoder in (network.enc_excess, network.enc_market):
            own = encoder.state_dict()
            wrong = [k for k, v in base.items() if k in own and tuple(v.shape) != tuple(own[k].shape)]
            if wrong:
                raise ConfigError(f"the pre-trained base does not fit (base_model, hidden_size, num_layers, "
                                  f"d_feat): rnn.{wrong[0]} is {tuple(base[wrong[0]].shape)}", path="model_path")
            encoder.load_state_dict({**own, **{k: v for k, v in base.items() if k in own}})
