"""Qlib's ``TFTModel`` (the Temporal Fusion Transformer benchmark) in PyTorch.

Qlib's TFT runs Google's TensorFlow 1.x implementation (``tensorflow.compat.v1`` sessions, ``tf.keras`` 1.x
layers, CuDNN LSTMs); TensorFlow 1.x installs on no current Python (its last wheels are for Python 3.7), so that
code cannot run next to qcore. This is the same architecture written in PyTorch
(:mod:`qmodel_zoo.nn.tft_network`), with Qlib's inputs and hyper-parameters (its ``qlib_Alpha158`` formatter):

- observed inputs: the 20 Alpha158 columns Qlib's formatter selects (``feature_cols``; every feature when the
  dataset lacks them), over ``num_encoder_steps`` days ending at the sample's date (gaps filled forward/backward,
  then 0); known inputs: day of week and month over those days and the ``total_time_steps - num_encoder_steps``
  decoder days after them (trading days of the dataset, business days past its end); a constant static input;
- targets: decoder step ``k`` forecasts the stock's label ``k`` rows later (step 0: the sample's own label), with
  the quantile loss over ``quantiles``; the score is step 0's ``score_quantile`` forecast (Qlib scores with its
  p90 forecast, hence the default 0.9);
- training: Adam (``learning_rate``), shuffled ``minibatch_size`` batches, gradient norm clipped at
  ``max_gradient_norm``, early stopping on the valid loss after ``early_stopping_patience`` epochs.

Qlib's own alignment shifts the label five days back and reads the sixth decoder step, which scores each date
with a forecast of the next date's label; here step 0 is the sample's own label, as every other model predicts.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from qcore.errors import ConfigError, QcoreError
from qcore.modelio import write_manifest
from qcore.protocols import Dataset
from qmodel_zoo._base import check_known, check_number, has_segment, not_fitted, read_state, score_series, write_state
from qmodel_zoo.nn.base import collect_params
from qmodel_zoo.nn.samples import fill_windows
from qmodel_zoo.nn.tft_network import TFTNet
from qmodel_zoo.nn.trainer import resolve_device, seeded
from qmodel_zoo.nn.weights import load_weights, save_weights

#: The Alpha158 columns Qlib's TFT formatter feeds the model (``data_formatters/qlib_Alpha158.py``).
QLIB_TFT_FEATURES = ("RESI5", "WVMA5", "RSQR5", "KLEN", "RSQR10", "CORR5", "CORD5", "CORR10", "ROC60", "RESI10",
                     "VSTD5", "RSQR60", "CORR60", "WVMA60", "STD5", "RSQR20", "CORD60", "CORD10", "CORR20", "KLOW")


class TFTSamples:
    """Encoder windows, calendar codes and multi-step targets of one segment."""

    def __init__(self, dataset: Dataset, segment: str, encoder_steps: int, decoder_steps: int,
                 feature_cols: Sequence[str]) -> None:
        ts_view = getattr(dataset, "ts_view", None)
        if ts_view is None:
            raise QcoreError("TFT needs a dataset with ts_view() (qcore's PanelDataset)")
        self._view = ts_view(segment, encoder_steps)
        names = [str(c) for c in self._view.feature_names]
        missing = [c for c in feature_cols if c not in names]
        if missing:
            raise QcoreError(f"the dataset lacks the TFT input column(s) {', '.join(missing[:5])}")
        self._columns = np.array([names.index(c) for c in feature_cols])
        self.index = self._view.index
        label = self._view.label
        self.label = None if label is None else label.astype(np.float32)
        if label is not None:
            series = pd.Series(label, index=self.index)
            by_stock = series.groupby(level="instrument")
            self.targets = np.stack([series.to_numpy()] + [by_stock.shift(-k).to_numpy()
                                                           for k in range(1, decoder_steps)], axis=1)
        dates = self.index.get_level_values("datetime")
        seen = dates.unique().sort_values()
        before = pd.bdate_range(end=seen[0] - pd.Timedelta(days=1), periods=encoder_steps)
        after = pd.bdate_range(start=seen[-1] + pd.Timedelta(days=1), periods=decoder_steps)
        calendar = before.append(seen).append(after)
        codes = np.stack([calendar.dayofweek.to_numpy(), calendar.month.to_numpy() - 1], axis=1).astype(np.int64)
        where = calendar.get_indexer(dates)
        self._known = codes[where[:, None] + np.arange(-encoder_steps + 1, decoder_steps + 1)[None, :]]

    def __len__(self) -> int:
        return len(self.index)

    def inputs(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(observed (rows, encoder_steps, features), known (rows, steps, 2))``."""
        windows = fill_windows(self._view.batch(rows))[:, :, self._columns]
        return np.ascontiguousarray(windows), self._known[rows]


def quantile_loss(forecast: torch.Tensor, target: torch.Tensor, quantiles: torch.Tensor) -> torch.Tensor:
    """Pinball loss summed over quantiles, averaged over the (sample, step) cells whose target is known."""
    keep = ~torch.isnan(target)
    error = torch.nan_to_num(target).unsqueeze(-1) - forecast
    loss = torch.maximum(quantiles * error, (quantiles - 1) * error).sum(dim=-1)
    return loss[keep].mean() if keep.any() else loss.sum() * 0


class TFTModel:
    """Qlib's ``TFTModel``; see the module docstring. Arguments are the hyper-parameters of Qlib's Alpha158
    formatter, with its values as defaults."""

    registry_name = "tft"

    def __init__(self, feature_cols: Sequence[str] | None = None, total_time_steps: int = 12,
                 num_encoder_steps: int = 6, num_epochs: int = 100, early_stopping_patience: int = 10,
                 dropout_rate: float = 0.4, hidden_layer_size: int = 160, learning_rate: float = 0.0001,
                 minibatch_size: int = 128, max_gradient_norm: float = 0.0135, num_heads: int = 1,
                 stack_size: int = 1, quantiles: Sequence[float] = (0.1, 0.5, 0.9), score_quantile: float = 0.9,
                 seed: int | None = None, GPU: Any = 0, **kwargs: Any) -> None:
        self.init_params = collect_params(locals())
        check_known("the TFT model", kwargs, self.init_params)
        for name, value in (("total_time_steps", total_time_steps), ("num_encoder_steps", num_encoder_steps),
                            ("num_epochs", num_epochs), ("early_stopping_patience", early_stopping_patience),
                            ("hidden_layer_size", hidden_layer_size), ("minibatch_size", minibatch_size),
                            ("num_heads", num_heads), ("stack_size", stack_size)):
            check_number(name, value, low=1, integer=True)
        if total_time_steps <= num_encoder_steps:
            raise ConfigError(f"total_time_steps ({total_time_steps}) must exceed num_encoder_steps "
                              f"({num_encoder_steps}): the rest are the decoder steps", path="total_time_steps")
        check_number("dropout_rate", dropout_rate, low=0.0, high=0.99)
        check_number("learning_rate", learning_rate, low=0.0, low_open=True)
        check_number("max_gradient_norm", max_gradient_norm, low=0.0, low_open=True)
        if not isinstance(quantiles, list | tuple) or not quantiles:
            raise ConfigError(f"quantiles must be a non-empty list, got {quantiles!r}", path="quantiles")
        for q in quantiles:
            check_number("each quantile", q, low=0.0, high=0.99, low_open=True, path="quantiles")
        if score_quantile not in quantiles:
            raise ConfigError(f"score_quantile {score_quantile!r} is not one of the quantiles {list(quantiles)}",
                              path="score_quantile")
        if feature_cols is not None and (not isinstance(feature_cols, list | tuple) or not feature_cols
                                         or not all(isinstance(c, str) for c in feature_cols)):
            raise ConfigError(f"feature_cols must be a list of column names, got {feature_cols!r}",
                              path="feature_cols")
        if seed is not None:
            check_number("seed", seed, low=0, integer=True)
        if GPU is not None and (isinstance(GPU, bool | float) or not str(GPU).strip().lstrip("-").isdigit()):
            raise ConfigError(f"GPU must be a device index (or None for the CPU), got {GPU!r}", path="GPU")
        self.feature_cols = None if feature_cols is None else list(feature_cols)
        self.encoder_steps, self.decoder_steps = int(num_encoder_steps), int(total_time_steps - num_encoder_steps)
        self.num_epochs, self.patience = int(num_epochs), int(early_stopping_patience)
        self.learning_rate, self.minibatch_size = float(learning_rate), int(minibatch_size)
        self.max_gradient_norm = float(max_gradient_norm)
        self.net_args = {"hidden_layer_size": int(hidden_layer_size), "dropout_rate": float(dropout_rate),
                         "num_heads": int(num_heads), "stack_size": int(stack_size)}
        self.quantiles = [float(q) for q in quantiles]
        self.score_index = self.quantiles.index(float(score_quantile))
        self.seed = None if seed is None else int(seed)
        self.device = resolve_device(GPU)
        self.network: TFTNet | None = None
        self.spec_: dict[str, Any] = {}
        self.history_: dict[str, Any] = {"train": [], "valid": [], "best_epoch": -1}
        self.seed_: int | None = None

    def _columns(self, dataset: Dataset) -> list[str]:
        if self.feature_cols is not None:
            return self.feature_cols
        names = [str(c) for c in dataset.xy("train")[0].columns]
        return list(QLIB_TFT_FEATURES) if set(QLIB_TFT_FEATURES) <= set(names) else names

    def _samples(self, dataset: Dataset, segment: str, columns: list[str]) -> TFTSamples:
        return TFTSamples(dataset, segment, self.encoder_steps, self.decoder_steps, columns)

    def _forecast(self, samples: TFTSamples, rows: np.ndarray) -> torch.Tensor:
        observed, known = samples.inputs(rows)
        return self.network(torch.from_numpy(observed).to(self.device), torch.from_numpy(known).to(self.device))

    def _valid_loss(self, samples: TFTSamples, quantiles: torch.Tensor) -> float:
        self.network.eval()
        losses, counts = [], []
        with torch.no_grad():
            for start in range(0, len(samples), self.minibatch_size):
                rows = np.arange(start, min(start + self.minibatch_size, len(samples)))
                target = torch.from_numpy(samples.targets[rows].astype(np.float32)).to(self.device)
                known = int((~torch.isnan(target)).sum())
                if known:
                    losses.append(quantile_loss(self._forecast(samples, rows), target, quantiles).item() * known)
                    counts.append(known)
        return float(np.sum(losses) / np.sum(counts)) if counts else float("nan")

    def fit(self, dataset: Dataset) -> TFTModel:
        """Train on ``train``, early-stopped on the quantile loss of ``valid`` (see the module docstring)."""
        columns = self._columns(dataset)
        train = self._samples(dataset, "train", columns)
        if train.label is None or len(train) < 2:
            raise QcoreError("the train segment needs a label and at least two rows")
        valid = self._samples(dataset, "valid", columns) if has_segment(dataset, "valid") else None
        self.seed_ = self.seed if self.seed is not None else int(np.random.SeedSequence().entropy % 2**31)
        self.spec_ = {"n_observed": len(columns), "encoder_steps": self.encoder_steps,
                      "decoder_steps": self.decoder_steps, "quantiles": len(self.quantiles), **self.net_args}
        rng = np.random.default_rng(self.seed_)
        history: dict[str, Any] = {"train": [], "valid": [], "best_epoch": -1}
        with seeded(self.seed_, self.device):
            self.network = TFTNet(**self.spec_).to(self.device)
            quantiles = torch.tensor(self.quantiles, device=self.device)
            optimizer = torch.optim.Adam(self.network.parameters(), lr=self.learning_rate)
            best, best_state, stale = np.inf, None, 0
            for epoch in range(self.num_epochs):
                self.network.train()
                order, losses = rng.permutation(len(train)), []
                for start in range(0, len(order), self.minibatch_size):
                    rows = np.sort(order[start : start + self.minibatch_size])
                    target = torch.from_numpy(train.targets[rows].astype(np.float32)).to(self.device)
                    if torch.isnan(target).all():
                        continue
                    loss = quantile_loss(self._forecast(train, rows), target, quantiles)
                    optimizer.zero_grad()
                    loss.backward()
                    torch.nn.utils.clip_grad_norm_(self.network.parameters(), self.max_gradient_norm)
                    optimizer.step()
                    losses.append(loss.item())
                history["train"].append(float(np.mean(losses)) if losses else float("nan"))
                if valid is None:
                    history["best_epoch"] = epoch
                    continue
                score = self._valid_loss(valid, quantiles)
                history["valid"].append(score)
                if score < best:
                    best, stale, history["best_epoch"] = score, 0, epoch
                    best_state = copy.deepcopy(self.network.state_dict())
                else:
                    stale += 1
                    if stale >= self.patience:
                        break
            if best_state is not None:
                self.network.load_state_dict(best_state)
        self.network.eval()
        self.spec_["feature_cols"] = columns
        self.history_ = history
        return self

    @property
    def evals_result_(self) -> dict[str, list[float]]:
        """Per-epoch train and valid quantile losses of the last fit."""
        return {"train": list(self.history_["train"]), "valid": list(self.history_["valid"])}

    def predict(self, dataset: Dataset, segment: str = "test") -> pd.Series:
        """Step 0's ``score_quantile`` forecast of every row of ``segment``."""
        if self.network is None:
            raise not_fitted(self.registry_name)
        samples = self._samples(dataset, segment, list(self.spec_["feature_cols"]))
        self.network.eval()
        out = np.zeros(len(samples))
        with torch.no_grad():
            for start in range(0, len(samples), self.minibatch_size):
                rows = np.arange(start, min(start + self.minibatch_size, len(samples)))
                out[rows] = self._forecast(samples, rows)[:, 0, self.score_index].float().cpu().numpy()
        return score_series(out, samples.index)

    def save(self, folder: Path) -> None:
        """Write ``model.json``, the weights and ``state.json`` (network description, inputs, history)."""
        if self.network is None:
            raise not_fitted(self.registry_name)
        write_manifest(folder, self.registry_name, self.init_params)
        save_weights(self.network, Path(folder))
        write_state(folder, {"network": self.spec_, "seed": self.seed_, "history": self.history_})

    def restore(self, folder: Path) -> None:
        """Rebuild the network from ``state.json`` and load its weights."""
        state = read_state(folder)
        self.spec_ = dict(state["network"])
        self.seed_ = state.get("seed")
        self.history_ = dict(state.get("history", {}))
        self.network = TFTNet(**{k: v for k, v in self.spec_.items() if k != "feature_cols"})
        load_weights(self.network, Path(folder), self.device)
        self.network.eval()
