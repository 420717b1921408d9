"""Qlib's ``TCTS`` (temporally correlated task scheduling): a GRU forecaster trained on several labels at once,
each sample's labels weighted by a scheduler network that is itself trained on the valid segment.

One epoch, as Qlib's ``pytorch_tcts``: (1) with the scheduler frozen, ``steps`` passes over the shuffled training
batches train the forecaster on ``mean((pred - label_j)² · w_j)`` (``mode="soft"``; ``"hard"``: the label the
scheduler weighs most), where the scheduler reads the flat features, the forecaster's error against each label at
the epoch's start, the labels, that prediction and a one-hot of ``target_label``; (2) with the forecaster frozen, one
pass over the shuffled valid batches trains the scheduler on ``mean(valid MSE · log w_max)``. The valid MSE against
``target_label`` is the early-stopping score (lowest wins; both networks' best weights are kept).

Qlib retrains with a new random seed until the best valid MSE is below ``lowest_valid_performance``, with no limit;
here ``max_retries`` (default 10) bounds the retries, after which the best attempt is kept and a warning says so.
The labels are the dataset's label columns (``output_dim`` of them, e.g. Qlib's three horizons); ``input_dim`` is
the number of features (Qlib's 360 for Alpha360); a missing label counts as 0 (the cross-sectional mean of
normalised labels; Qlib's loss would turn NaN). Sample weights multiply each sample's forecaster loss.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Mapping
from typing import Any

import attrs
import numpy as np
import pandas as pd
import torch
from torch import nn

from qcore.errors import QcoreError
from qcore.protocols import Dataset
from qmodel_zoo._base import check_choice, check_number
from qmodel_zoo.nn.base import collect_params
from qmodel_zoo.nn.batching import shuffled_batches
from qmodel_zoo.nn.models import SequenceModel, _check_rnn
from qmodel_zoo.nn.networks import RNNNet
from qmodel_zoo.nn.samples import Samples
from qmodel_zoo.nn.trainer import OPTIMIZERS, History, predict_samples, run_epochs

logger = logging.getLogger(__name__)


class SchedulerNet(nn.Module):
    """TCTS's weight network: ``num_layers`` ReLU layers (dropout between them), a linear layer, a softmax."""

    def __init__(self, d_in: int, hidden_size: int, num_layers: int, dropout: float, output_dim: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for i in range(num_layers):
            if i > 0:
                layers.append(nn.Dropout(dropout))
            layers += [nn.Linear(d_in if i == 0 else hidden_size, hidden_size), nn.ReLU()]
        layers.append(nn.Linear(hidden_size, output_dim))
        self.mlp = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Task weights ``(batch, output_dim)``, each row summing to 1."""
        return torch.softmax(self.mlp(x), dim=1)


class TCTSNet(nn.Module):
    """The forecaster (a GRU, Qlib's) and the scheduler; ``forward`` is the forecaster's score."""

    def __init__(self, d_feat: int, input_dim: int, hidden_size: int, num_layers: int, dropout: float,
                 output_dim: int) -> None:
        super().__init__()
        self.fore = RNNNet("GRU", d_feat, hidden_size, num_layers, dropout)
        self.weight = SchedulerNet(input_dim + 3 * output_dim + 1, hidden_size, num_layers, dropout, output_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Scores, shape ``(batch,)``."""
        return self.fore(x)


def _optimizer(kind: str, params: Any, lr: float) -> torch.optim.Optimizer:
    return {"adam": torch.optim.Adam, "gd": torch.optim.SGD}[kind](params, lr=lr)


class TCTSModel(SequenceModel):
    """Qlib's ``TCTS`` with its arguments and defaults (see the module docstring). ``metric`` and ``lr`` are
    accepted as Qlib's configs pass them and unused (the score is the valid MSE; the rates are ``fore_lr`` and
    ``weight_lr``)."""

    registry_name = "tcts"
    kind = "tcts"
    metrics = ("", "loss")

    def __init__(self, d_feat: int | None = 6, hidden_size: int = 64, num_layers: int = 2, dropout: float = 0.0,
                 n_epochs: int = 200, batch_size: int = 2000, early_stop: int = 20, loss: str = "mse",
                 fore_optimizer: str = "adam", weight_optimizer: str = "adam", input_dim: int = 360,
                 output_dim: int = 5, fore_lr: float = 5e-7, weight_lr: float = 5e-7, steps: int = 3, GPU: Any = 0,
                 target_label: int = 0, mode: str = "soft", seed: int | None = None,
                 lowest_valid_performance: float = 0.993, max_retries: int = 10, metric: str = "",
                 lr: float | None = None, step_len: int | None = None, **kwargs: Any) -> None:
        params = collect_params(locals())
        _check_rnn(hidden_size, num_layers, dropout)
        for name, value in (("input_dim", input_dim), ("output_dim", output_dim), ("steps", steps)):
            check_number(name, value, low=1, integer=True)
        check_number("fore_lr", fore_lr, low=0.0, low_open=True)
        check_number("weight_lr", weight_lr, low=0.0, low_open=True)
        check_number("target_label", target_label, low=0, high=output_dim - 1, integer=True)
        check_number("lowest_valid_performance", lowest_valid_performance)
        check_number("max_retries", max_retries, low=0, integer=True)
        check_choice("mode", mode, ("soft", "hard"))
        check_choice("fore_optimizer", str(fore_optimizer).lower(), OPTIMIZERS)
        check_choice("weight_optimizer", str(weight_optimizer).lower(), OPTIMIZERS)
        if lr is not None:
            check_number("lr", lr, low=0.0, low_open=True)
        super().__init__(params, kwargs, n_epochs=n_epochs, lr=fore_lr, batch_size=batch_size,
                         early_stop=early_stop, loss=loss, optimizer=fore_optimizer, metric=metric, GPU=GPU,
                         seed=seed, weight_decay=0.0)
        self._sequence_setup(d_feat, step_len, "shuffle")
        self.settings = attrs.evolve(self.settings, metric="loss")
        self.net_args = {"input_dim": int(input_dim), "hidden_size": int(hidden_size), "num_layers": int(num_layers),
                         "dropout": float(dropout), "output_dim": int(output_dim)}
        self.fore_optimizer, self.weight_optimizer = str(fore_optimizer).lower(), str(weight_optimizer).lower()
        self.fore_lr, self.weight_lr, self.steps = float(fore_lr), float(weight_lr), int(steps)
        self.target_label, self.mode = int(target_label), mode
        self.lowest_valid_performance, self.max_retries = float(lowest_valid_performance), int(max_retries)
        self._dataset: Dataset | None = None
        self.attempts_ = 0

    def _network_args(self) -> dict[str, Any]:
        return dict(self.net_args)

    def _build_network(self, spec: Mapping[str, Any]) -> nn.Module:
        return TCTSNet(**{k: v for k, v in spec.items() if k != "kind"})

    def _plan(self, samples: Samples) -> Callable[[np.random.Generator], list[np.ndarray]]:
        n, size = len(samples), self.batch_size
        return lambda rng: shuffled_batches(n, size, rng)

    def _all_labels(self, dataset: Dataset, segment: str, index: pd.Index) -> np.ndarray:
        prepare = getattr(dataset, "prepare", None)
        if prepare is None:
            _, label = dataset.xy(segment)
            frame = label.to_frame()
        else:
            frame = prepare(segment, "label", "learn")
        frame = frame.reindex(index)
        if frame.shape[1] != self.net_args["output_dim"]:
            raise QcoreError(f"TCTS with output_dim={self.net_args['output_dim']} needs that many label columns; "
                             f"the dataset has {frame.shape[1]} (give the labels as a list, e.g. Qlib's three "
                             "horizons)")
        return frame.to_numpy(dtype=np.float32)

    def fit(self, dataset: Dataset, reweighter: Any = None) -> TCTSModel:
        """Train as Qlib's TCTS (see the module docstring); ``reweighter``: sample weights."""
        self._dataset = dataset
        try:
            return super().fit(dataset, reweighter=reweighter)
        finally:
            self._dataset = None

    def _spec(self, samples: Samples) -> dict[str, Any]:
        spec = super()._spec(samples)
        width = spec["d_feat"] * samples.steps
        if width != self.net_args["input_dim"]:
            raise QcoreError(f"input_dim={self.net_args['input_dim']} but a sample has {width} features "
                             "(steps × fields)")
        return spec

    def _train(self, network: Any, train_set: Samples, valid_set: Samples | None, weights: np.ndarray | None,
               rng: np.random.Generator) -> History:
        if valid_set is None:
            raise QcoreError("TCTS trains its scheduler on the valid segment; the dataset has none")
        train_labels = self._all_labels(self._dataset, "train", train_set.index)
        valid_labels = self._all_labels(self._dataset, "valid", valid_set.index)
        best: tuple[float, History, dict[str, Any]] | None = None
        for attempt in range(self.max_retries + 1):
            if attempt:
                torch.manual_seed(int(rng.integers(0, 2**31)))
                network.load_state_dict(self._build_network(self.spec_).to(self.device).state_dict())
            history = self._attempt(network, train_set, train_labels, valid_set, valid_labels, weights, rng)
            score = min(history.valid_loss) if history.valid_loss else float("inf")
            if best is None or score < best[0]:
                best = (score, history, copy.deepcopy(network.state_dict()))
            self.attempts_ = attempt + 1
            if score <= self.lowest_valid_performance:
                break
        else:
            logger.warning("TCTS: best valid MSE %.6f stayed above lowest_valid_performance=%s after %d attempts; "
                           "keeping the best attempt", best[0], self.lowest_valid_performance, self.attempts_)
        network.load_state_dict(best[2])
        network.eval()
        return best[1]

    def _scheduler_input(self, x: torch.Tensor, labels: torch.Tensor, pred: torch.Tensor) -> torch.Tensor:
        flat = x.permute(0, 2, 1).reshape(len(x), -1)  # the row's original column order (fields × steps)
        task = torch.zeros(len(x), self.net_args["output_dim"], device=x.device)
        task[:, self.target_label] = 1.0
        return torch.cat((flat, pred.unsqueeze(1) - labels, labels, pred.unsqueeze(1), task), 1)

    def _attempt(self, network: TCTSNet, train_set: Samples, train_labels: np.ndarray, valid_set: Samples,
                 valid_labels: np.ndarray, weights: np.ndarray | None, rng: np.random.Generator) -> History:
        device, clip = self.device, self.settings.clip_value
        fore_opt = _optimizer(self.fore_optimizer, network.fore.parameters(), self.fore_lr)
        weight_opt = _optimizer(self.weight_optimizer, network.weight.parameters(), self.weight_lr)
        y_train, y_valid = torch.from_numpy(train_labels), torch.from_numpy(valid_labels)
        w_train = None if weights is None else torch.from_numpy(np.asarray(weights, dtype=np.float32))
        target = self.target_label

        def epoch_step(epoch: int) -> float:
            start = copy.deepcopy(network.fore).eval()
            network.train()
            network.weight.requires_grad_(False)
            network.fore.requires_grad_(True)
            order = shuffled_batches(len(train_set), self.batch_size, rng)
            losses = []
            for _ in range(self.steps):
                for rows in order:
                    x = torch.from_numpy(train_set.batch(rows)).to(device)
                    labels = torch.nan_to_num(y_train[rows].to(device))
                    with torch.no_grad():
                        start_pred = start(x)
                    weight = network.weight(self._scheduler_input(x, labels, start_pred))
                    error = (network.fore(x).unsqueeze(1) - labels) ** 2
                    if self.mode == "hard":
                        per_sample = error.gather(1, weight.argmax(1, keepdim=True)).squeeze(1)
                    else:
                        per_sample = (error * weight).mean(dim=1)
                    if w_train is not None:
                        per_sample = per_sample * w_train[rows].to(device)
                    loss = per_sample.mean()
                    fore_opt.zero_grad()
                    loss.backward()
                    nn.utils.clip_grad_value_(network.fore.parameters(), clip)
                    fore_opt.step()
                    losses.append(loss.item())
            network.weight.requires_grad_(True)
            network.fore.requires_grad_(False)
            for rows in shuffled_batches(len(valid_set), self.batch_size, rng):
                x = torch.from_numpy(valid_set.batch(rows)).to(device)
                labels = torch.nan_to_num(y_valid[rows].to(device))
                pred = network.fore(x)
                weight = network.weight(self._scheduler_input(x, labels, pred))
                picked = weight.gather(1, weight.argmax(1, keepdim=True)).squeeze(1)
                valid_mse = torch.mean((pred - labels[:, target]) ** 2)
                loss = torch.mean(valid_mse * torch.log(picked))
                weight_opt.zero_grad()
                loss.backward()
                nn.utils.clip_grad_value_(network.weight.parameters(), clip)
                weight_opt.step()
            network.fore.requires_grad_(True)
            return float(np.mean(losses)) if losses else float("nan")

        def score_valid(samples: Samples) -> tuple[float, float]:
            pred = predict_samples(network, samples, self.batch_size, device)
            label = valid_labels[:, target].astype(np.float64)
            keep = ~np.isnan(label)
            loss = float(np.mean((pred[keep] - label[keep]) ** 2))
            return loss, -loss

        return run_epochs(network, self.settings, epoch_step, score_valid, valid_set)
