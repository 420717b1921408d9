"""Qlib's ``HIST`` on the shared trainer: a GRU/LSTM base and concept-oriented shared information, one date's
cross-section per batch (:class:`~qmodel_zoo.nn.hist_network.HISTNet`).

**Concept data.** Qlib reads a stock → concept matrix (``stock2concept``, a ``.npy`` of stocks × concepts) and a
stock → row mapping (``stock_index``), downloading its CSI 300 files when they are missing. qcore downloads nothing
and unpickles nothing; it takes either

- ``stock2concept: null`` (qcore's default): concepts made from the store — each stock on each date belongs to the
  concept of its ``concept_field`` code (default ``$industry``; one concept per distinct code, a stock without a
  code on a date belongs to none), read from the store the dataset was built from; or
- ``stock2concept: matrix.npy`` (a numeric array, read without pickle) with ``stock_index`` a ``.json`` object or a
  two-column ``.csv`` (``instrument,row``) naming each stock's row; stocks not listed belong to no concept. Qlib's
  own ``stock_index`` ``.npy`` holds a pickled dict, which is refused (convert it to JSON once).

Qlib's benchmark config names the two CSI 300 files Qlib downloads (:data:`QLIB_DOWNLOADS`); when they are absent the
config runs unchanged on the store's concepts, with a warning saying so. Any other missing file is an error.

``model_path`` starts the base from a pre-trained LSTM/GRU (a zoo model folder or a state-dict file), as
``GATs`` does. Training: shuffled dates, masked MSE, gradients clipped at 3, early stopping on valid (``metric``
``ic``: mean daily IC, as Qlib's benchmark config; ``""``/``"loss"``: the valid loss).
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import pandas as pd

from qcore.errors import ConfigError, DataError, QcoreError
from qcore.protocols import Dataset
from qmodel_zoo._base import check_choice, check_number
from qmodel_zoo.nn.base import TorchModel, collect_params
from qmodel_zoo.nn.batching import daily_batches
from qmodel_zoo.nn.samples import Samples, TabularSamples


def _read_stock_index(path: Path) -> dict[str, int]:
    if path.suffix == ".json":
        try:
            mapping = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise DataError(f"cannot read the stock index: {exc}", path=str(path)) from None
    elif path.suffix == ".csv":
        try:
            frame = pd.read_csv(path, header=None, names=["instrument", "row"], comment="#")
        except (OSError, ValueError) as exc:
            raise DataError(f"cannot read the stock index: {exc}", path=str(path)) from None
        mapping = dict(zip(frame["instrument"].astype(str), frame["row"], strict=True))
    else:
        raise ConfigError(f"stock_index must be a .json object or a two-column .csv (instrument,row), got {path.name}"
                          " (Qlib's .npy stock index is a pickled dict, which qcore does not unpickle)",
                          path="stock_index")
    if not isinstance(mapping, dict) or not all(isinstance(v, int | np.integer) and v >= 0 for v in mapping.values()):
        raise DataError("the stock index must map instrument names to row numbers (integers >= 0)", path=str(path))
    return {str(k).upper(): int(v) for k, v in mapping.items()}


#: Where Qlib's HIST benchmark config puts the CSI 300 concept files that Qlib downloads when they are missing.
QLIB_DOWNLOADS = ("benchmarks/HIST/qlib_csi300_stock2concept.npy", "benchmarks/HIST/qlib_csi300_stock_index.npy")


def _qlib_download(stock2concept: str, stock_index: str | None) -> bool:
    """Whether the files named are Qlib's downloaded CSI 300 concept files and absent: qcore downloads nothing, so
    Qlib's config runs unchanged on concepts made from the store; a path of the user's own that is missing stays
    an error."""
    return (stock2concept, stock_index) == QLIB_DOWNLOADS and not Path(stock2concept).expanduser().exists()


def _warn_store_concepts(stock2concept: str) -> None:
    warnings.warn(f"HIST: {stock2concept} is Qlib's downloaded CSI 300 concept file and is not here (qcore downloads "
                  "nothing): concepts come from the store's industry field instead (concept_field; give the files "
                  "to use them, or stock2concept: null to say so)", UserWarning, stacklevel=4)


def concepts_from_files(index: pd.MultiIndex, stock2concept: str, stock_index: str | None) -> np.ndarray:
    """Per-row concept memberships ``(rows, concepts)`` from Qlib-style files (see the module docstring)."""
    path = Path(stock2concept).expanduser()
    if not path.is_file():
        raise DataError("no stock2concept file here (Qlib downloads its CSI 300 file; qcore does not: give the file, "
                        "or stock2concept: null to make concepts from the store's industry field)", path=str(path))
    try:
        matrix = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read the stock2concept matrix without pickle: {exc}", path=str(path)) from None
    if matrix.ndim != 2 or not np.issubdtype(matrix.dtype, np.number):
        raise DataError(f"stock2concept must be a numeric stocks × concepts matrix, got shape {matrix.shape}",
                        path=str(path))
    if stock_index is None:
        raise ConfigError("a stock2concept matrix needs stock_index (which row is which stock)", path="stock_index")
    rows = _read_stock_index(Path(stock_index).expanduser())
    too_far = [k for k, v in rows.items() if v >= len(matrix)]
    if too_far:
        raise DataError(f"stock_index points {too_far[0]} at row {rows[too_far[0]]}, past the matrix's "
                        f"{len(matrix)} rows", path=str(stock_index))
    padded = np.vstack([np.nan_to_num(matrix.astype(np.float32)), np.zeros((1, matrix.shape[1]), np.float32)])
    names = index.get_level_values("instrument").astype(str).str.upper()
    return padded[np.array([rows.get(n, len(matrix)) for n in names])]


def concepts_from_store(dataset: Dataset, index: pd.MultiIndex, field: str) -> np.ndarray:
    """Per-row one-hot concepts from the store's ``field`` codes on each row's date."""
    provider = getattr(dataset, "provider", None)
    if provider is None:
        raise QcoreError("HIST's concepts come from the store the dataset was built from, and this dataset has none "
                         "(give stock2concept and stock_index files instead)")
    name = field.lstrip("$").lower()
    if name not in [f.lower() for f in provider.fields()]:
        raise DataError(f"the store has no ${name} field for HIST's concepts (give concept_field, or "
                        "stock2concept and stock_index files)")
    dates = index.get_level_values("datetime")
    instruments = sorted(set(index.get_level_values("instrument")))
    panel = provider.load([name], instruments, dates.min(), dates.max())
    grid = pd.DataFrame(panel[name], index=panel.dates, columns=list(panel.instruments))
    codes = grid.stack(future_stack=True).reindex(pd.MultiIndex.from_arrays(
        [dates, index.get_level_values("instrument")])).to_numpy(dtype=np.float64)
    known = np.isfinite(codes)
    categories = np.unique(codes[known])
    out = np.zeros((len(codes), max(len(categories), 1)), dtype=np.float32)
    out[np.flatnonzero(known), np.searchsorted(categories, codes[known])] = 1.0
    return out


class ConceptSamples(Samples):
    """Flat feature rows followed by each row's concept memberships (one date's rows form a batch)."""

    def __init__(self, base: TabularSamples, concepts: np.ndarray) -> None:
        self._base, self._concepts = base, concepts
        self.index, self.label, self.feature_names = base.index, base.label, base.feature_names
        self.d_feat = None

    def batch(self, rows: np.ndarray) -> np.ndarray:
        """``(rows, features + concepts)``."""
        return np.concatenate([self._base.batch(rows), self._concepts[rows]], axis=1)


class HISTModel(TorchModel):
    """Qlib's ``HIST`` with its arguments and defaults; see the module docstring.

    :param concept_field: the store field whose codes are the concepts when ``stock2concept`` is null.
    """

    registry_name = "hist"

    def __init__(self, d_feat: int = 6, hidden_size: int = 64, num_layers: int = 2, dropout: float = 0.0,
                 n_epochs: int = 200, lr: float = 0.001, metric: str = "", early_stop: int = 20, loss: str = "mse",
                 base_model: str = "GRU", model_path: str | None = None, stock2concept: str | None = None,
                 stock_index: str | None = None, optimizer: str = "adam", GPU: Any = 0, seed: int | None = None,
                 concept_field: str = "industry", batch_size: int = 2000, n_jobs: int | None = None,
                 **kwargs: Any) -> None:
        params = collect_params(locals())
        check_number("d_feat", d_feat, low=1, integer=True)
        check_number("hidden_size", hidden_size, low=1, integer=True)
        check_number("num_layers", num_layers, low=1, integer=True)
        check_number("dropout", dropout, low=0.0, high=0.99)
        check_choice("base_model", base_model, ("GRU", "LSTM"))
        for key, value in (("model_path", model_path), ("stock2concept", stock2concept),
                           ("stock_index", stock_index), ("concept_field", concept_field)):
            if value is not None and (not isinstance(value, str) or not value.strip()):
                raise ConfigError(f"{key} must be a non-empty text, got {value!r}", path=key)
        if concept_field is None:
            raise ConfigError("concept_field must name a store field", path="concept_field")
        super().__init__(params, kwargs, n_epochs=n_epochs, lr=lr, batch_size=batch_size, early_stop=early_stop,
                         loss=loss, optimizer=optimizer, metric=metric, GPU=GPU, seed=seed, weight_decay=0.0)
        self.settings = attrs.evolve(self.settings, by_day=True)
        self.d_feat, self.hidden_size, self.num_layers = int(d_feat), int(hidden_size), int(num_layers)
        self.dropout, self.base_model, self.model_path = float(dropout), base_model, model_path
        self.stock2concept, self.stock_index, self.concept_field = stock2concept, stock_index, concept_field
        self._warned_store_concepts = False  # Qlib's absent concept files: said once per model, not per segment

    def _samples(self, dataset: Dataset, segment: str, feature_names: list[str] | None) -> Samples:
        base = TabularSamples(dataset, segment, feature_names)
        if len(base.feature_names) % self.d_feat:
            raise QcoreError(f"d_feat={self.d_feat} does not divide the {len(base.feature_names)} features of a row "
                             "(HIST reads each row as d_feat fields times a number of steps, Alpha360: d_feat=6)")
        if self.stock2concept is not None and not _qlib_download(self.stock2concept, self.stock_index):
            concepts = concepts_from_files(base.index, self.stock2concept, self.stock_index)
        else:
            if self.stock2concept is not None and not self._warned_store_concepts:
                _warn_store_concepts(self.stock2concept)
                self._warned_store_concepts = True
            concepts = concepts_from_store(dataset, base.index, self.concept_field)
        return ConceptSamples(base, concepts)

    def _spec(self, samples: Samples) -> dict[str, Any]:
        return {"kind": "hist", "d_feat": self.d_feat, "n_features": len(samples.feature_names),
                "hidden_size": self.hidden_size, "num_layers": self.num_layers, "dropout": self.dropout,
                "base_model": self.base_model}

    def _plan(self, samples: Samples) -> Callable[[np.random.Generator], list[np.ndarray]]:
        days = samples.day_groups()
        return lambda rng: daily_batches(days, rng)

    def _prepare_network(self, network: Any) -> None:
        if self.model_path is None:
            return
        from qmodel_zoo.nn.weights import read_weights

        pretrained = read_weights(Path(self.model_path).expanduser())
        own = network.state_dict()
        shared = {k: v for k, v in pretrained.items() if k in own and tuple(v.shape) == tuple(own[k].shape)}
        if not any(k.startswith("rnn.") for k in shared):
            raise ConfigError(f"the weights at {self.model_path} hold no recurrent base ('rnn.*') of HIST's shape "
                              "(base_model, hidden_size, num_layers, d_feat)", path="model_path")
        network.load_state_dict({**own, **shared})
