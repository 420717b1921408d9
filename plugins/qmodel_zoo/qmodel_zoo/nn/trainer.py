"""The training loop of the PyTorch models: seeded, deterministic where torch allows, early-stopped on ``valid``.

An epoch runs the batches a plan gives (shuffled mini-batches, days, or draws), with masked MSE (NaN labels are
skipped), then scores ``valid``: ``-loss`` (``metric`` ``""``/``"loss"``) or the mean daily IC (``"ic"``). The
best epoch's weights are kept; training stops after ``early_stop`` epochs without a better score. Without a
``valid`` segment every epoch runs and the last weights are kept.
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
METRICS = ("", "loss", "ic")


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
    by_day: bool = False  # evaluate one date's cross-section per forward pass (networks that mix stocks)


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


def masked_mse(pred: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
    """Mean squared error over the samples whose label is not NaN."""
    keep = ~torch.isnan(label)
    return torch.mean((pred[keep] - label[keep]) ** 2)


def predict_samples(network: nn.Module, samples: Samples, batch_size: int, device: torch.device,
                    by_day: bool = False) -> np.ndarray:
    """Scores of every sample in order, in evaluation mode; ``by_day``: one forward pass per date's rows."""
    network.eval()
    groups = samples.day_groups() if by_day else list(chunks(len(samples), batch_size))
    out = np.zeros(len(samples), dtype=np.float64)
    with torch.no_grad():
        for rows in groups:
            out[rows] = network(torch.from_numpy(samples.batch(rows)).to(device)).float().cpu().numpy().reshape(-1)
    return out


def _valid_metrics(pred: np.ndarray, samples: Samples, metric: str) -> tuple[float, float]:
    """``(loss, score)`` of predictions on a labelled segment."""
    label = samples.label.astype(np.float64)
    keep = ~np.isnan(label)
    loss = float(np.mean((pred[keep] - label[keep]) ** 2)) if keep.any() else float("nan")
    if metric == "ic":
        ic = calc_ic(pd.Series(pred, index=samples.index), pd.Series(label, index=samples.index))["IC"]
        return loss, float(ic.mean())
    return loss, -loss


def train(network: nn.Module, train_set: Samples, valid_set: Samples | None,
          plan: Callable[[np.random.Generator], list[np.ndarray]], settings: TrainSettings, device: torch.device,
          rng: np.random.Generator) -> History:
    """Fit ``network`` in place and return its history; the kept weights are loaded at the end."""
    optimizer = make_optimizer(settings, network)
    scheduler = None
    if settings.plateau:
        scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="min", factor=0.5, patience=10,
                                                               threshold=1e-4, min_lr=1e-5)
    history = History()
    best_score, best_state, stale = -np.inf, None, 0
    labels = torch.from_numpy(train_set.label)
    for epoch in range(settings.n_epochs):
        network.train()
        losses = []
        for rows in plan(rng):
            label = labels[rows].to(device)
            if torch.isnan(label).all():
                continue
            loss = masked_mse(network(torch.from_numpy(train_set.batch(rows)).to(device)), label)
            optimizer.zero_grad()
            loss.backward()
            if settings.clip_value is not None:
                nn.utils.clip_grad_value_(network.parameters(), settings.clip_value)
            optimizer.step()
            losses.append(loss.item())
        history.train_loss.append(float(np.mean(losses)) if losses else float("nan"))
        if valid_set is None:
            history.best_epoch = epoch
            continue
        pred = predict_samples(network, valid_set, settings.batch_size, device, settings.by_day)
        valid_loss, score = _valid_metrics(pred, valid_set, settings.metric)
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
