"""The training loop of the PyTorch models: seeded, deterministic where torch allows, early-stopped on ``valid``.

An epoch runs the batches a plan gives (shuffled mini-batches, days, or draws), with masked MSE (NaN labels are
skipped), then scores ``valid``: ``-loss`` (``metric`` ``""``/``"loss"``/``"mse"``), the mean daily IC (``"ic"``)
or Rank IC (``"ric"``). The best epoch's weights are kept; training stops after ``early_stop`` epochs without a
better score. Without a ``valid`` segment every epoch runs and the last weights are kept.

Sample weights (:func:`normalised_weights`): each sample's squared error is multiplied by its weight, weights
scaled so that those above zero average 1; samples of weight 0 are left out of the epoch's plan altogether, so a
span weighted 0 trains exactly as if it were not there, and uniform weights train exactly as none.

An :class:`Objective` is the hook for networks with several heads or auxiliary losses (ADD, ADARNN): it turns a
network's output into the training loss and into scores, and hears the start and end of each epoch.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable, Iterator
from typing import Any

import attrs
import numpy as np
import pandas as pd
import torch
from torch import nn

from qmodel_zoo.analysis import calc_ic
from qmodel_zoo.nn.batching import chunks
from qmodel_zoo.nn.samples import Samples

OPTIMIZERS = ("adam", "gd")
#: Early-stopping scores every model takes; some take more (:data:`ALL_METRICS`).
METRICS = ("", "loss", "ic")
#: Every score :func:`valid_metrics` knows: ``mse`` is ``loss``; ``ric`` is the mean daily Rank IC.
ALL_METRICS = ("", "loss", "mse", "ic", "ric")


@attrs.frozen
class TrainSettings:
    """Loop settings shared by every network."""

    n_epochs: int
    lr: float
    optimizer: str
    weight_decay: float
    early_stop: int
    metric: str
    batch_size: int
    clip_value: float | None = 3.0
    plateau: bool = False  # halve the learning rate when the valid loss stalls (Qlib's MLP)
    plateau_patience: int = 10
    plateau_threshold: float = 1e-4
    plateau_min_lr: float = 1e-5
    by_day: bool = False  # evaluate one date's cross-section per forward pass (networks that mix stocks)
    daily_loss: bool = False  # valid loss: the mean of each date's MSE (Qlib's GATs), not the MSE of all rows


@attrs.define
class History:
    """Per-epoch training loss (mean over batches), valid loss and valid score; the epoch whose weights were kept."""

    train_loss: list[float] = attrs.field(factory=list)
    valid_loss: list[float] = attrs.field(factory=list)
    valid_score: list[float] = attrs.field(factory=list)
    best_epoch: int = -1

    def as_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return attrs.asdict(self)


def resolve_device(gpu: int | str | None) -> torch.device:
    """CUDA device ``gpu`` when CUDA is available and ``gpu >= 0``, else the CPU."""
    if gpu is None or not torch.cuda.is_available():
        return torch.device("cpu")
    index = int(gpu)
    return torch.device(f"cuda:{index}") if index >= 0 else torch.device("cpu")


@contextlib.contextmanager
def seeded(seed: int, device: torch.device) -> Iterator[None]:
    """Seed torch inside the block; the global generator is restored after.

    On CUDA the block also asks for deterministic kernels (``use_deterministic_algorithms``, warning where an op
    has none; cuDNN without autotuning). CPU kernels of these networks are deterministic already, and switching
    the flag there costs an import of torch's compiler stack, so it is left alone.
    """
    if device.type != "cuda":
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            yield
        return
    enabled = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    cudnn = (torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark)
    with torch.random.fork_rng(devices=[device.index or 0]):
        torch.manual_seed(seed)
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
        try:
            yield
        finally:
            torch.use_deterministic_algorithms(enabled, warn_only=warn_only)
            torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = cudnn


def make_optimizer(settings: TrainSettings, network: nn.Module) -> torch.optim.Optimizer:
    """Adam or plain SGD (``gd``) with the settings' learning rate and weight decay."""
    kind = {"adam": torch.optim.Adam, "gd": torch.optim.SGD}[settings.optimizer]
    return kind(network.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)


def masked_mse(pred: torch.Tensor, label: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
    """Mean squared error over the samples whose label is not NaN, each times its ``weight`` when given."""
    keep = ~torch.isnan(label)
    error = (pred[keep] - label[keep]) ** 2
    if weight is None:
        return torch.mean(error)
    return torch.mean(error * weight[keep])


class Objective:
    """How the trainer turns a network's output into a loss and into scores (the default: masked, weighted MSE on
    an output of one score per sample). Networks with several heads or auxiliary losses subclass it."""

    def loss(self, output: Any, label: torch.Tensor, weight: torch.Tensor | None, x: torch.Tensor,
             rows: np.ndarray) -> torch.Tensor:
        """The training loss of one batch: ``output`` of the network on inputs ``x`` (training rows ``rows``),
        ``label`` (NaN allowed) and per-sample ``weight`` (``None``: unweighted)."""
        return masked_mse(output, label, weight)

    def scores(self, output: Any) -> torch.Tensor:
        """One score per sample from the network's output."""
        return output

    def start_epoch(self, network: nn.Module, epoch: int) -> None:
        """Called before each training epoch (``epoch`` counts from 0)."""

    def end_epoch(self, network: nn.Module, epoch: int) -> None:
        """Called after each training epoch, before the valid segment is scored."""


DEFAULT_OBJECTIVE = Objective()


def normalised_weights(weights: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """``(kept, weights)``: positions of the samples with a positive weight, and their weights scaled to average 1
    (``None`` when they are all equal: training is then exactly unweighted)."""
    weights = np.asarray(weights, dtype=np.float64)
    kept = np.flatnonzero(weights > 0)
    scaled = weights[kept] / weights[kept].mean()
    if np.all(weights[kept] == weights[kept[0]]):
        return kept, None
    return kept, scaled.astype(np.float32)


def predict_samples(network: nn.Module, samples: Samples, batch_size: int, device: torch.device,
                    by_day: bool = False, objective: Objective = DEFAULT_OBJECTIVE) -> np.ndarray:
    """Scores of every sample in order, in evaluation mode; ``by_day``: one forward pass per date's rows."""
    network.eval()
    groups = samples.day_groups() if by_day else list(chunks(len(samples), batch_size))
    out = np.zeros(len(samples), dtype=np.float64)
    with torch.no_grad():
        for rows in groups:
            output = network(torch.from_numpy(samples.batch(rows)).to(device))
            out[rows] = objective.scores(output).float().cpu().numpy().reshape(-1)
    return out


def valid_metrics(pred: np.ndarray, samples: Samples, metric: str, daily_loss: bool = False) -> tuple[float, float]:
    """``(loss, score)`` of predictions on a labelled segment (the score: higher is better); ``daily_loss``: the
    loss is the mean over dates of each date's MSE (dates without a label left out) instead of the pooled MSE."""
    label = samples.label.astype(np.float64)
    keep = ~np.isnan(label)
    loss = float(np.mean((pred[keep] - label[keep]) ** 2)) if keep.any() else float("nan")
    if daily_loss and keep.any():
        errors = pd.Series((pred[keep] - label[keep]) ** 2)
        loss = float(errors.groupby(np.asarray(samples.index.get_level_values("datetime"))[keep]).mean().mean())
    if metric in ("ic", "ric"):
        ic = calc_ic(pd.Series(pred, index=samples.index), pd.Series(label, index=samples.index))
        return loss, float(ic["IC" if metric == "ic" else "RankIC"].mean())
    return loss, -loss


def train(network: nn.Module, train_set: Samples, valid_set: Samples | None,
          plan: Callable[[np.random.Generator], list[np.ndarray]], settings: TrainSettings, device: torch.device,
          rng: np.random.Generator, *, weights: np.ndarray | None = None,
          objective: Objective = DEFAULT_OBJECTIVE) -> History:
    """Fit ``network`` in place and return its history; the kept weights are loaded at the end.

    ``weights``: one per sample of ``train_set`` (``None``: unweighted); ``objective``: loss and scores of the
    network's output (default: masked MSE on one score per sample).
    """
    optimizer = make_optimizer(settings, network)
    labels = torch.from_numpy(train_set.label)
    sample_weights = None if weights is None else torch.from_numpy(np.asarray(weights, dtype=np.float32))

    def epoch_step(epoch: int) -> float:
        network.train()
        losses = []
        for rows in plan(rng):
            label = labels[rows].to(device)
            if torch.isnan(label).all():
                continue
            x = torch.from_numpy(train_set.batch(rows)).to(device)
            weight = None if sample_weights is None else sample_weights[rows].to(device)
            loss = objective.loss(network(x), label, weight, x, rows)
            optimizer.zero_grad()
            loss.backward()
            if settings.clip_value is not None:
                nn.utils.clip_grad_value_(network.parameters(), settings.clip_value)
            optimizer.step()
            losses.append(loss.item())
        return float(np.mean(losses)) if losses else float("nan")

    def score_valid(samples: Samples) -> tuple[float, float]:
        pred = predict_samples(network, samples, settings.batch_size, device, settings.by_day, objective)
        return valid_metrics(pred, samples, settings.metric, settings.daily_loss)

    return run_epochs(network, settings, epoch_step, score_valid if valid_set is not None else None, valid_set,
                      optimizer=optimizer, objective=objective)


def run_epochs(network: nn.Module, settings: TrainSettings, epoch_step: Callable[[int], float],
               score_valid: Callable[[Samples], tuple[float, float]] | None, valid_set: Samples | None, *,
               optimizer: torch.optim.Optimizer | None = None, objective: Objective = DEFAULT_OBJECTIVE) -> History:
    """The epoch loop every model shares: ``epoch_step(epoch)`` trains one epoch and returns its mean loss;
    ``score_valid(valid_set)`` gives ``(loss, score)``; the best-scoring epoch's weights are kept (early stopping
    after ``settings.early_stop`` epochs without a better score). Models with their own epoch (TCTS, ADARNN) call
    this directly."""
    scheduler = None
    if settings.plateau and optimizer is not None:
        scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="min", factor=0.5,
                                                               patience=settings.plateau_patience,
                                                               threshold=settings.plateau_threshold,
                                                               min_lr=settings.plateau_min_lr)
    history = History()
    best_score, best_state, stale = -np.inf, None, 0
    for epoch in range(settings.n_epochs):
        objective.start_epoch(network, epoch)
        history.train_loss.append(epoch_step(epoch))
        objective.end_epoch(network, epoch)
        if score_valid is None or valid_set is None:
            history.best_epoch = epoch
            continue
        valid_loss, score = score_valid(valid_set)
        history.valid_loss.append(valid_loss)
        history.valid_score.append(score)
        if scheduler is not None and np.isfinite(valid_loss):
            scheduler.step(valid_loss)
        if score > best_score:
            best_score, best_state, stale = score, copy.deepcopy(network.state_dict()), 0
            history.best_epoch = epoch
        else:
            stale += 1
            if stale >= settings.early_stop:
                break
    if best_state is not None:
        network.load_state_dict(best_state)
    network.eval()
    return history
