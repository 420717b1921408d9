"""Qlib's ``ADARNN`` (adaptive RNN): stacked one-layer GRUs trained so that their hidden states look alike across
periods of the train segment (temporal distribution matching).

The train segment's dates are cut into ``n_splits`` consecutive periods (domains); each training step draws one
shuffled batch per period and, for every pair of periods, adds ``MSE(source) + MSE(target) + dw · transfer`` where
``transfer`` sums a distance (``loss_type``, :mod:`qmodel_zoo.nn.transfer`) between the two batches' hidden states
at each step of each layer, weighted:

- for the first ``pre_epoch`` epochs by gates learnt from the pair's states (softmax over steps; with ``len_win``,
  each step is also compared with its neighbours within the window);
- afterwards by a weight matrix that starts from the last gates and, after each epoch, grows where the epoch's
  summed distance grew (``× (1 + sigmoid(increase))``), rows normalised to sum 1 (boosting).

A step is skipped when the periods' batches differ in size (their last batches). Gradients are clipped at 3;
early stopping on the valid score: ``mse``/``loss`` (minus the MSE — Qlib's "mse" is minus the mean error, a sign
slip that rewards biased predictions), ``ic`` or ``ric`` (mean daily IC / Rank IC). Scores are the last GRU's
last step through a linear head. ``len_seq`` must equal a sample's number of steps (Alpha360: 60); ``dropout`` is
accepted and, as in Qlib (its GRUs have one layer each), has no effect. Sample weights multiply each sample's
squared error.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

from qcore.errors import QcoreError
from qmodel_zoo._base import check_number
from qmodel_zoo.nn.base import collect_params
from qmodel_zoo.nn.batching import shuffled_batches
from qmodel_zoo.nn.models import SequenceModel
from qmodel_zoo.nn.samples import Samples
from qmodel_zoo.nn.trainer import (
    ALL_METRICS,
    History,
    make_optimizer,
    masked_mse,
    predict_samples,
    run_epochs,
    valid_metrics,
)
from qmodel_zoo.nn.transfer import transfer_loss


class AdaRNNNet(nn.Module):
    """The network of Qlib's ``AdaRNN`` (model type ``AdaRNN``, no bottleneck)."""

    def __init__(self, d_feat: int, hidden_size: int = 64, num_layers: int = 2, len_seq: int = 60) -> None:
        super().__init__()
        sizes = [d_feat] + [hidden_size] * num_layers
        self.features = nn.ModuleList(nn.GRU(sizes[i], sizes[i + 1], num_layers=1, batch_first=True)
                                      for i in range(num_layers))
        self.fc_out = nn.Linear(hidden_size, 1)
        self.gate = nn.ModuleList(nn.Linear(len_seq * hidden_size * 2, len_seq) for _ in range(num_layers))
        self.bn_lst = nn.ModuleList(nn.BatchNorm1d(len_seq) for _ in range(num_layers))
        for gate in self.gate:
            nn.init.normal_(gate.weight, 0.0, 0.05)
            nn.init.zeros_(gate.bias)
        self.len_seq = len_seq

    def layers(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Each GRU layer's outputs ``(batch, steps, hidden)``."""
        outputs = []
        for rnn in self.features:
            x, _ = rnn(x)
            outputs.append(x)
        return outputs

    def head(self, last: torch.Tensor) -> torch.Tensor:
        """Scores from the last layer's outputs."""
        return self.fc_out(last[:, -1, :]).squeeze(-1)

    def gate_weights(self, out: torch.Tensor, layer: int) -> torch.Tensor:
        """Step weights (softmax over ``len_seq``) of a layer's outputs for a source-then-target batch."""
        half = out.shape[0] // 2
        pairs = torch.cat((out[:half], out[half : 2 * half]), 2).reshape(half, -1)
        weight = torch.sigmoid(self.bn_lst[layer](self.gate[layer](pairs))).mean(dim=0)
        return torch.softmax(weight, dim=0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Scores, shape ``(batch,)``."""
        return self.head(self.layers(x)[-1])


def period_rows(samples: Samples, n_splits: int) -> list[np.ndarray]:
    """Row positions of ``n_splits`` consecutive periods of the samples' dates (as ``np.array_split`` cuts them)."""
    dates = samples.index.get_level_values("datetime")
    unique = np.sort(dates.unique())
    if len(unique) < n_splits:
        raise QcoreError(f"ADARNN cuts the train segment into n_splits={n_splits} periods but it has "
                         f"{len(unique)} dates")
    codes = np.searchsorted(unique, dates.to_numpy())
    return [np.flatnonzero(np.isin(codes, part)) for part in np.array_split(np.arange(len(unique)), n_splits)]


def boost_weights(weight_mat: torch.Tensor, dist_old: torch.Tensor, dist_new: torch.Tensor) -> torch.Tensor:
    """Qlib's boosting update: weights grow where the distance grew, then each layer's row sums to 1."""
    grew = dist_new > dist_old + 1e-5
    weight_mat = weight_mat.clone()
    weight_mat[grew] = weight_mat[grew] * (1 + torch.sigmoid(dist_new[grew] - dist_old[grew]))
    return weight_mat / weight_mat.abs().sum(dim=1, keepdim=True)


class ADARNNModel(SequenceModel):
    """Qlib's ``ADARNN`` with its arguments and defaults (see the module docstring)."""

    registry_name = "adarnn"
    kind = "adarnn"
    metrics = ALL_METRICS

    def __init__(self, d_feat: int | None = 6, hidden_size: int = 64, num_layers: int = 2, dropout: float = 0.0,
                 n_epochs: int = 200, pre_epoch: int = 40, dw: float = 0.5, loss_type: str = "cosine",
                 len_seq: int = 60, len_win: int = 0, lr: float = 0.001, metric: str = "mse",
                 batch_size: int = 2000, early_stop: int = 20, loss: str = "mse", optimizer: str = "adam",
                 n_splits: int = 2, GPU: Any = 0, seed: int | None = None, step_len: int | None = None,
                 **kwargs: Any) -> None:
        params = collect_params(locals())
        for name, value in (("hidden_size", hidden_size), ("num_layers", num_layers), ("len_seq", len_seq),
                            ("n_splits", n_splits)):
            check_number(name, value, low=1, integer=True)
        check_number("n_splits", n_splits, low=2, integer=True)
        check_number("pre_epoch", pre_epoch, low=0, integer=True)
        check_number("len_win", len_win, low=0, integer=True)
        check_number("dw", dw, low=0.0)
        check_number("dropout", dropout, low=0.0, high=0.99)
        self.distance = transfer_loss(loss_type)
        super().__init__(params, kwargs, n_epochs=n_epochs, lr=lr, batch_size=batch_size, early_stop=early_stop,
                         loss=loss, optimizer=optimizer, metric=metric, GPU=GPU, seed=seed, weight_decay=0.0)
        self._sequence_setup(d_feat, step_len, "shuffle")
        self.net_args = {"hidden_size": int(hidden_size), "num_layers": int(num_layers), "len_seq": int(len_seq)}
        self.pre_epoch, self.dw, self.len_win, self.n_splits = int(pre_epoch), float(dw), int(len_win), int(n_splits)

    def _network_args(self) -> dict[str, Any]:
        return dict(self.net_args)

    def _build_network(self, spec: Mapping[str, Any]) -> nn.Module:
        return AdaRNNNet(**{k: v for k, v in spec.items() if k != "kind"})

    def _spec(self, samples: Samples) -> dict[str, Any]:
        if samples.steps != self.net_args["len_seq"]:
            raise QcoreError(f"len_seq={self.net_args['len_seq']} but a sample has {samples.steps} steps")
        return super()._spec(samples)

    def _plan(self, samples: Samples) -> Callable[[np.random.Generator], list[np.ndarray]]:
        n, size = len(samples), self.batch_size
        return lambda rng: shuffled_batches(n, size, rng)

    def _pair_transfer(self, network: AdaRNNNet, layers: list[torch.Tensor], half: int, pretrain: bool,
                       weight_mat: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """``(transfer loss, distances per layer and step, gate weights)`` of one source-then-target batch."""
        len_seq, win = network.len_seq, self.len_win
        total = torch.zeros((), device=layers[0].device)
        dist = torch.zeros(len(layers), len_seq, device=layers[0].device)
        gates = []
        for i, out in enumerate(layers):
            source, target = out[:half], out[half:]
            if pretrain:
                gate = network.gate_weights(out, i)
                gates.append(gate)
                for j in range(len_seq):
                    for k in range(max(0, j - win), min(len_seq - 1, j + win) + 1):
                        total = total + gate[j] * self.distance(source[:, j, :], target[:, k, :])
            else:
                for j in range(len_seq):
                    d = self.distance(source[:, j, :], target[:, j, :])
                    total = total + weight_mat[i, j] * d
                    dist[i, j] = d.detach()
        return total, dist, (torch.stack(gates).detach() if gates else None)

    def _train(self, network: Any, train_set: Samples, valid_set: Samples | None, weights: np.ndarray | None,
               rng: np.random.Generator) -> History:
        periods = period_rows(train_set, self.n_splits)
        labels = torch.from_numpy(train_set.label)
        w_all = None if weights is None else torch.from_numpy(np.asarray(weights, dtype=np.float32))
        optimizer = make_optimizer(self.settings, network)
        device, num_layers, len_seq = self.device, self.net_args["num_layers"], self.net_args["len_seq"]
        pairs = [(a, b) for a in range(self.n_splits) for b in range(a + 1, self.n_splits)]
        state: dict[str, torch.Tensor | None] = {"weight_mat": None, "dist_mat": None}

        def epoch_step(epoch: int) -> float:
            network.train()
            pretrain = epoch < self.pre_epoch
            weight_mat = state["weight_mat"]
            if not pretrain and weight_mat is None:
                weight_mat = torch.full((num_layers, len_seq), 1.0 / len_seq, device=device)
            dist_mat = torch.zeros(num_layers, len_seq, device=device)
            gates = None
            losses = []
            batches = [[period[b] for b in shuffled_batches(len(period), self.batch_size, rng)] for period in periods]
            for step in zip(*batches, strict=False):
                if any(len(step[a]) != len(step[b]) for a, b in pairs):
                    continue
                xs = [torch.from_numpy(train_set.batch(rows)).to(device) for rows in step]
                total = torch.zeros((), device=device)
                for a, b in pairs:
                    layers = network.layers(torch.cat((xs[a], xs[b]), 0))
                    pred = network.head(layers[-1])
                    half = len(step[a])
                    for part, rows in ((pred[:half], step[a]), (pred[half:], step[b])):
                        weight = None if w_all is None else w_all[rows].to(device)
                        total = total + masked_mse(part, labels[rows].to(device), weight)
                    transfer, dist, gate = self._pair_transfer(network, layers, half, pretrain, weight_mat)
                    total = total + self.dw * transfer
                    dist_mat = dist_mat + dist
                    gates = gate if gate is not None else gates
                optimizer.zero_grad()
                total.backward()
                nn.utils.clip_grad_value_(network.parameters(), self.settings.clip_value)
                optimizer.step()
                losses.append(total.item())
            if pretrain:
                state["weight_mat"] = gates if gates is not None else state["weight_mat"]
            else:
                if epoch > self.pre_epoch and state["dist_mat"] is not None:
                    weight_mat = boost_weights(weight_mat, state["dist_mat"], dist_mat)
                state["weight_mat"], state["dist_mat"] = weight_mat, dist_mat
            return float(np.mean(losses)) if losses else float("nan")

        def score_valid(samples: Samples) -> tuple[float, float]:
            pred = predict_samples(network, samples, self.batch_size, device)
            return valid_metrics(pred, samples, self.settings.metric)

        return run_epochs(network, self.settings, epoch_step, score_valid if valid_set is not None else None,
                          valid_set)
