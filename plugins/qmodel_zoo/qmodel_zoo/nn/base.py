"""What every PyTorch model of the zoo shares: argument checks, fit/predict over samples, saving without pickle."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from qcore.errors import ConfigError, QcoreError
from qcore.modelio import write_manifest
from qcore.protocols import Dataset, Reweighter
from qcore.reweight import sample_weights
from qmodel_zoo._base import (
    check_choice,
    check_known,
    check_number,
    has_segment,
    jsonable,
    not_fitted,
    read_state,
    score_series,
    write_state,
)
from qmodel_zoo.nn.networks import build_network
from qmodel_zoo.nn.samples import Samples, SubsetSamples
from qmodel_zoo.nn.trainer import (
    DEFAULT_OBJECTIVE,
    METRICS,
    OPTIMIZERS,
    History,
    Objective,
    TrainSettings,
    normalised_weights,
    predict_samples,
    resolve_device,
    seeded,
    train,
)
from qmodel_zoo.nn.weights import load_weights, save_weights


def collect_params(scope: Mapping[str, Any]) -> dict[str, Any]:
    """A constructor's arguments from its ``locals()``, without ``self``/``kwargs``, as JSON values."""
    return jsonable({k: v for k, v in scope.items() if k not in ("self", "kwargs", "__class__")})


class TorchModel:
    """Base of the PyTorch models; subclasses say how to read samples, which network to build, and how to batch.

    :param n_epochs: training epochs (an upper bound with early stopping).
    :param lr: learning rate.
    :param batch_size: samples per training batch, and per chunk at evaluation.
    :param early_stop: epochs without a better ``valid`` score before stopping.
    :param loss: ``mse`` (NaN labels are skipped).
    :param optimizer: ``adam`` or ``gd`` (plain SGD).
    :param metric: the early-stopping score: ``""``/``"loss"`` (negative valid loss) or ``"ic"`` (mean daily IC).
    :param GPU: CUDA device index, used when CUDA is available; ``None`` or a negative index: the CPU.
    :param seed: seeds weights, dropout and batch order; ``None`` draws one (kept as ``seed_``).
    :param weight_decay: L2 penalty of the optimizer.

    ``fit(dataset, reweighter=None)`` takes sample weights (the kernel's ``Reweighter``): one per training row,
    multiplying that sample's squared error (see :mod:`qmodel_zoo.nn.trainer`).
    """

    registry_name: ClassVar[str] = ""
    #: The early-stopping scores this model takes.
    metrics: ClassVar[tuple[str, ...]] = METRICS

    def __init__(self, params: dict[str, Any], extra: Mapping[str, Any], *, n_epochs: int, lr: float,
                 batch_size: int, early_stop: int, loss: str, optimizer: str, metric: str, GPU: Any,
                 seed: int | None, weight_decay: float) -> None:
        component = f"the {self.registry_name} model"
        check_known(component, extra, params)
        check_number("n_epochs", n_epochs, low=1, integer=True)
        check_number("lr", lr, low=0.0, low_open=True)
        check_number("batch_size", batch_size, low=2, integer=True)
        check_number("early_stop", early_stop, low=1, integer=True)
        check_number("weight_decay", weight_decay, low=0.0)
        check_choice("loss", loss, ("mse",))
        check_choice("optimizer", str(optimizer).lower(), OPTIMIZERS)
        check_choice("metric", metric, self.metrics)
        if seed is not None:
            check_number("seed", seed, low=0, integer=True)
        if GPU is not None and (isinstance(GPU, bool | float) or not str(GPU).strip().lstrip("-").isdigit()):
            raise ConfigError(f"GPU must be a device index (or None for the CPU), got {GPU!r}", path="GPU")
        self.init_params = params
        self.batch_size = int(batch_size)
        self.seed = None if seed is None else int(seed)
        self.device = resolve_device(GPU)
        self.settings = TrainSettings(n_epochs=int(n_epochs), lr=float(lr), optimizer=str(optimizer).lower(),
                                      weight_decay=float(weight_decay), early_stop=int(early_stop), metric=metric,
                                      batch_size=int(batch_size))
        self.network: Any = None
        self.spec_: dict[str, Any] = {}
        self.feature_names_: list[str] = []
        self.history_ = History()
        self.seed_: int | None = None

    # -- what subclasses define ----------------------------------------------------------------------------------

    def _samples(self, dataset: Dataset, segment: str, feature_names: list[str] | None) -> Samples:
        """The samples of ``segment`` (``feature_names`` fixed after fitting)."""
        raise NotImplementedError

    def _spec(self, samples: Samples) -> dict[str, Any]:
        """The JSON-able network description for training samples like ``samples``."""
        raise NotImplementedError

    def _plan(self, samples: Samples) -> Callable[[np.random.Generator], list[np.ndarray]]:
        """The batches of one training epoch."""
        raise NotImplementedError

    def _prepare_network(self, network: Any) -> None:
        """Called on a freshly built network before training (a pre-trained part is loaded here)."""

    def _build_network(self, spec: Mapping[str, Any]) -> Any:
        """The network ``spec`` describes (models with networks of their own override this)."""
        return build_network(spec)

    def _objective(self, train_set: Samples) -> Objective:
        """Loss and scores of the network's output (models with several heads or auxiliary losses override)."""
        return DEFAULT_OBJECTIVE

    def _train(self, network: Any, train_set: Samples, valid_set: Samples | None, weights: np.ndarray | None,
               rng: np.random.Generator) -> History:
        """Train ``network``; models with their own epoch (TCTS, ADARNN) override this."""
        return train(network, train_set, valid_set, self._plan(train_set), self.settings, self.device, rng,
                     weights=weights, objective=self._objective(train_set))

    def _before_predict(self, dataset: Dataset) -> None:
        """Called before scores are computed (a model that reads a memory of the train segment builds it here)."""

    def _training_samples(self, dataset: Dataset, reweighter: Reweighter | None,
                          ) -> tuple[Samples, Samples | None, np.ndarray | None]:
        """``(train, valid, weights)``: training samples (those of weight 0 left out), valid samples, weights."""
        train_set = self._samples(dataset, "train", None)
        if train_set.label is None or len(train_set) < 2:
            raise QcoreError("the train segment needs a label and at least two rows")
        weights = None
        if reweighter is not None:
            kept, weights = normalised_weights(sample_weights(reweighter, train_set.index))
            if len(kept) < len(train_set):
                train_set = SubsetSamples(train_set, kept)
            if len(train_set) < 2:
                raise QcoreError("fewer than two training rows have a positive sample weight")
        valid_set = None
        if has_segment(dataset, "valid"):
            valid_set = self._samples(dataset, "valid", train_set.feature_names)
            if valid_set.label is None or len(valid_set) == 0:
                valid_set = None
        return train_set, valid_set, weights

    # -- the model contract --------------------------------------------------------------------------------------

    @property
    def evals_result_(self) -> dict[str, list[float]]:
        """Per-epoch ``train`` and ``valid`` losses of the last fit."""
        return {"train": list(self.history_.train_loss), "valid": list(self.history_.valid_loss)}

    def fit(self, dataset: Dataset, reweighter: Reweighter | None = None) -> TorchModel:
        """Train on ``train``, early-stopping on ``valid`` when the dataset has one; ``reweighter`` gives each
        training row a weight (rows of weight 0 are left out)."""
        train_set, valid_set, weights = self._training_samples(dataset, reweighter)
        self.seed_ = self.seed if self.seed is not None else int(np.random.SeedSequence().entropy % 2**31)
        with seeded(self.seed_, self.device):
            self.spec_ = self._spec(train_set)
            network = self._build_network(self.spec_)
            self._prepare_network(network)
            self.network = network.to(self.device)
            self.history_ = self._train(self.network, train_set, valid_set, weights,
                                        np.random.default_rng(self.seed_))
        self.feature_names_ = list(train_set.feature_names)
        return self

    def predict(self, dataset: Dataset, segment: str = "test") -> pd.Series:
        """Scores of ``segment``."""
        if self.network is None:
            raise not_fitted(self.registry_name)
        samples = self._samples(dataset, segment, self.feature_names_)
        self._before_predict(dataset)
        scores = predict_samples(self.network, samples, self.batch_size, self.device, self.settings.by_day,
                                 self._objective(samples))
        return score_series(scores, samples.index)

    def save(self, folder: Path) -> None:
        """Write ``model.json``, the weights and ``state.json`` (network description, features, history)."""
        if self.network is None:
            raise not_fitted(self.registry_name)
        write_manifest(folder, self.registry_name, self.init_params)
        save_weights(self.network, Path(folder))
        write_state(folder, {"network": self.spec_, "features": self.feature_names_, "seed": self.seed_,
                             "history": self.history_.as_dict()})

    def restore(self, folder: Path) -> None:
        """Rebuild the network from ``state.json`` and load its weights."""
        state = read_state(folder)
        self.spec_ = dict(state["network"])
        self.feature_names_ = list(state["features"])
        self.seed_ = state.get("seed")
        self.history_ = History(**state.get("history", {}))
        self.network = self._build_network(self.spec_)
        load_weights(self.network, Path(folder), self.device)
        self.network.eval()
