"""LightGBM gradient-boosted trees with early stopping on the ``valid`` segment (Qlib's ``LGBModel``)."""

from __future__ import annotations

import logging
import re
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from qcore.errors import ConfigError
from qcore.memory import return_freed_memory
from qcore.modelio import write_manifest
from qcore.protocols import Dataset, Reweighter
from qcore.reweight import sample_weights
from qmodel_zoo import _lgb_cache as lgb_cache
from qmodel_zoo._base import (
    check_choice,
    check_known,
    check_number,
    feature_matrix,
    has_segment,
    jsonable,
    labelled,
    not_fitted,
    read_state,
    score_series,
    write_state,
)
from qmodel_zoo._lgb import LOSSES, booster_params, read_booster, training_arrays, weighted_arrays, write_booster
from qmodel_zoo._lgb_cache import LgbDatasetCache
from qmodel_zoo._lightgbm import lgb

logger = logging.getLogger(__name__)
MODEL_FILE = "model.txt"
#: LightGBM parameters whose check needs the real data (feature counts, column names, files): not probed early.
_DATA_DEPENDENT = ("categorical_feature", "monotone_constraints", "interaction_constraints", "feature_contri",
                   "forcedsplits_filename", "forcedbins_filename", "max_bin_by_feature", "cegb_penalty_feature_lazy",
                   "cegb_penalty_feature_coupled", "input_model", "output_model", "saved_feature_importance_type",
                   "label_column", "weight_column", "group_column", "ignore_column", "init_score_file", "valid")


def _data_dependent() -> set[str]:
    """The parameters of :data:`_DATA_DEPENDENT` with every LightGBM alias of each."""
    names: set[str] = set()
    for name in _DATA_DEPENDENT:
        try:
            names |= set(lgb.basic._ConfigAliases.get(name))
        except Exception:  # a LightGBM without the alias listing
            names.add(name)
    return names


def _probe(params: dict[str, Any]) -> str | None:
    """LightGBM's complaint about ``params``, from building a 4-row dataset with them (its parameter parser runs
    there), or None. LightGBM's own fatal-error print on stderr is kept out of the user's terminal."""
    import contextlib
    import io
    import os
    import tempfile

    x, y = np.zeros((4, 1)), np.zeros(4)
    with tempfile.TemporaryFile() as sink, contextlib.redirect_stdout(io.StringIO()):
        saved = os.dup(2)
        os.dup2(sink.fileno(), 2)
        try:
            lgb.Dataset(x, label=y, params=params, free_raw_data=True).construct()
        except (lgb.basic.LightGBMError, TypeError, ValueError) as exc:
            return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        finally:
            os.dup2(saved, 2)
            os.close(saved)
    return None


def check_extra_names(component: str, cls: type, given: dict[str, Any]) -> None:
    """Refuse a keyword that is neither one of ``cls``'s own arguments nor a LightGBM parameter, suggesting the
    closest of both (``epoch`` → ``epochs``, ``num_leavs`` → ``num_leaves``)."""
    import inspect

    from qmodel_zoo._lgb import lightgbm_parameter_names

    lgb_names = lightgbm_parameter_names()
    if not lgb_names:
        return
    own = [n for n, p in inspect.signature(cls).parameters.items() if p.kind is not p.VAR_KEYWORD]
    check_known(component, given, [*own, *lgb_names])


def check_lightgbm_values(component: str, params: dict[str, Any], given: dict[str, Any]) -> None:
    """Refuse values LightGBM would refuse at training (``num_leaves: five``, ``learning_rate: -1``), now.

    LightGBM parses its parameters when it builds a dataset, so a 4-row one is built with them (a few
    milliseconds). The error names the argument: the one LightGBM's message names, else the first that fails
    alone. Parameters that depend on the real data (:data:`_DATA_DEPENDENT`) are left to training.
    """
    skip = _data_dependent()
    probed = {k: v for k, v in params.items() if k not in skip}
    problem = _probe({**probed, "verbosity": -1})
    if problem is None:
        return
    culprit = next((k for k in given if k not in skip and re.search(rf"\b{re.escape(str(k))}\b", problem)), None)
    if culprit is None:
        base = {k: v for k, v in probed.items() if k not in given}
        culprit = next((k for k in given if k not in skip and _probe({**base, k: given[k], "verbosity": -1})), None)
    cleaned = re.sub(r" at [^ ]+\.(cpp|h), line \d+ ?\.?$", "", problem)
    key = culprit or ""
    shown = f"{culprit}={given[culprit]!r}" if culprit else "the parameters"
    raise ConfigError(f"LightGBM refuses {shown} for {component}: {cleaned}", path=key)


class LGBModel:
    """LightGBM regressor (or binary classifier) trained on ``train``, early-stopped on ``valid``.

    Takes Qlib's ``LGBModel`` arguments: ``loss`` (``mse`` or ``binary``), ``early_stopping_rounds``,
    ``num_boost_round``, and any LightGBM parameter by name or alias (``colsample_bytree``, ``learning_rate``,
    ``subsample``, ``lambda_l1``, ``lambda_l2``, ``max_depth``, ``num_leaves``, ``num_threads``, ``seed``...). An
    unknown parameter name is an error. Training is deterministic (``deterministic=True``, column-wise histograms)
    unless the parameters say otherwise. Rows with a NaN label are left out of training.

    :param verbose_eval: log the metrics every this many rounds (0: silent).
    :param dataset_cache: reuse LightGBM's constructed datasets across runs (:mod:`qmodel_zoo._lgb_cache`; also
        off with ``QCORE_LGB_DATASET_CACHE=0``).
    """

    registry_name = "lightgbm"

    def __init__(
        self,
        loss: str = "mse",
        early_stopping_rounds: int | None = 50,
        num_boost_round: int = 1000,
        verbose_eval: int = 0,
        dataset_cache: bool = True,
        **kwargs: Any,
    ) -> None:
        check_choice("loss", loss, tuple(LOSSES))
        check_extra_names("the lightgbm model", type(self), kwargs)
        self.params = booster_params("the lightgbm model", loss, kwargs)
        check_lightgbm_values("the lightgbm model", self.params, kwargs)
        check_number("num_boost_round", num_boost_round, low=1, integer=True)
        if early_stopping_rounds is not None:
            check_number("early_stopping_rounds", early_stopping_rounds, low=0, integer=True)
        check_number("verbose_eval", verbose_eval, low=0, integer=True)
        self.loss = loss
        self.early_stopping_rounds = early_stopping_rounds
        self.num_boost_round = int(num_boost_round)
        self.verbose_eval = int(verbose_eval)
        if not isinstance(dataset_cache, bool):
            raise ConfigError(f"dataset_cache must be true or false, got {dataset_cache!r}", path="dataset_cache")
        self.dataset_cache = dataset_cache
        #: where the last fit's LightGBM datasets came from: ``hit``, ``miss`` (built and stored) or ``off``.
        self.dataset_cache_ = "off"
        #: seconds the last fit spent on: feature matrices (``arrays``), LightGBM's dataset construction
        #: (``construct``), the dataset cache (``cache``: reading or writing it) and boosting (``boost``).
        self.timings_: dict[str, float] = {}
        self._kwargs = jsonable(kwargs)
        self.model: lgb.Booster | None = None
        self.feature_names_: list[str] = []
        self.evals_result_: dict[str, dict[str, list[float]]] = {}

    @property
    def init_params(self) -> dict[str, Any]:
        """The keyword arguments that rebuild this model (saved in ``model.json``)."""
        return {
            "loss": self.loss,
            "early_stopping_rounds": self.early_stopping_rounds,
            "num_boost_round": self.num_boost_round,
            "verbose_eval": self.verbose_eval,
            **({} if self.dataset_cache else {"dataset_cache": False}),
            **self._kwargs,
        }

    def fit(self, dataset: Dataset, reweighter: Reweighter | None = None) -> LGBModel:
        """Train on ``train``; with a ``valid`` segment, stop after ``early_stopping_rounds`` rounds without gain.

        The constructed LightGBM datasets come from the dataset cache (:mod:`qmodel_zoo._lgb_cache`) when an entry
        for the same data, dataset configuration and LightGBM dataset parameters exists, and are stored there
        otherwise; the model trained is the same either way.

        With a ``reweighter`` (Qlib's ``reweighter``), the rows of ``train`` and ``valid`` are weighted by it
        (:func:`qmodel_zoo._lgb.weighted_arrays`: zero-weight rows are left out, the others scaled to a mean of 1).
        The dataset cache is skipped then: a cached dataset never carries another run's weights.
        """
        names = ["train", *(["valid"] if has_segment(dataset, "valid") else [])]
        self.timings_ = {"arrays": 0.0, "construct": 0.0, "cache": 0.0}
        if reweighter is None:
            sets = self._cached_sets(dataset, names)
        else:
            sets, self.dataset_cache_ = None, "off"
        if sets is None:
            sets = self._construct_sets(dataset, names, reweighter)
        train_set = sets[0]
        self.evals_result_ = {}
        callbacks = [lgb.record_evaluation(self.evals_result_)]
        if self.verbose_eval:
            callbacks.append(lgb.log_evaluation(period=self.verbose_eval))
        if self.early_stopping_rounds and len(sets) > 1:
            callbacks.append(lgb.early_stopping(self.early_stopping_rounds, verbose=bool(self.verbose_eval)))
        began = time.perf_counter()
        self.model = lgb.train(self.params, train_set, num_boost_round=self.num_boost_round, valid_sets=sets,
                               valid_names=names, callbacks=callbacks)
        self.timings_["boost"] = time.perf_counter() - began
        self.model.free_dataset()  # the binned datasets are not needed to predict: their memory goes now
        del sets, train_set
        return_freed_memory()  # LightGBM's bins came from the C heap: hand them back before the next step
        logger.info("lightgbm: datasets %s: arrays %.2fs, construct %.2fs, cache %s %.2fs; %d boosting rounds in "
                    "%.2fs", "/".join(names), self.timings_["arrays"], self.timings_["construct"], self.dataset_cache_,
                    self.timings_["cache"], self.model.current_iteration(), self.timings_["boost"])  # fmt: skip
        return self

    def _cache(self) -> LgbDatasetCache | None:
        return LgbDatasetCache() if lgb_cache.enabled(self.dataset_cache) else None

    def _cached_sets(self, dataset: Dataset, names: list[str]) -> list[lgb.Dataset] | None:
        """The constructed datasets from the cache, or None (cache off, no fingerprint, no usable entry)."""
        fingerprint = getattr(dataset, "fingerprint", None)
        cache = self._cache()
        self.dataset_cache_ = "off" if cache is None or not fingerprint else "miss"
        if cache is None or not fingerprint:
            return None
        began = time.perf_counter()
        found = cache.load(cache.key(fingerprint, self.params, names), self.params, names)
        self.timings_["cache"] += time.perf_counter() - began
        if found is None:
            return None
        sets, self.feature_names_ = found
        self.dataset_cache_ = "hit"
        return sets

    def _construct_sets(self, dataset: Dataset, names: list[str],
                        reweighter: Reweighter | None = None) -> list[lgb.Dataset]:
        """Build the LightGBM datasets of ``names`` from ``dataset`` (weighted by ``reweighter`` when given; else
        stored in the cache when it is on)."""
        began = time.perf_counter()
        arrays: list[tuple[np.ndarray, ...]] = []
        for name in names:
            features, label = labelled(dataset, name)
            if name == "train":
                self.feature_names_ = [str(c) for c in features.columns]
            elif list(features.columns) != self.feature_names_:
                features = features[self.feature_names_]
            if reweighter is None:
                arrays.append(training_arrays(features, label))
            else:
                weights = sample_weights(reweighter, features.index, segment=name)
                arrays.append(weighted_arrays(features, label, weights))
            del features, label
        release = getattr(dataset, "release", None)
        if callable(release):  # the matrices are copies: the processed training frame can go before LightGBM bins
            release("learn")
        self.timings_["arrays"] += time.perf_counter() - began
        params, sets = dict(self.params), []
        while arrays:
            began = time.perf_counter()
            x, y, *weight = arrays.pop(0)
            reference = sets[0] if sets else None
            # free_raw_data: each float matrix is freed once LightGBM has binned it
            sets.append(lgb.Dataset(x, label=y, weight=weight[0] if weight else None, reference=reference,
                                    params=params, free_raw_data=True).construct())
            del x, y, weight
            self.timings_["construct"] += time.perf_counter() - began
        fingerprint = getattr(dataset, "fingerprint", None)
        cache = self._cache() if fingerprint and reweighter is None else None
        if cache is not None:
            began = time.perf_counter()
            cache.store(cache.key(fingerprint, self.params, names), sets, names, self.feature_names_)
            self.timings_["cache"] += time.perf_counter() - began
        return sets

    @property
    def best_iteration_(self) -> int:
        """Boosting rounds the predictions use (the early-stopping optimum, else every round)."""
        if self.model is None:
            raise not_fitted("lightgbm")
        return int(self.model.best_iteration or self.model.current_iteration())

    def predict(self, dataset: Dataset, segment: str = "test") -> pd.Series:
        """Scores of ``segment`` from the best iteration."""
        if self.model is None:
            raise not_fitted("lightgbm")
        features, _ = dataset.xy(segment)
        x = feature_matrix(features, self.feature_names_, np.float32)
        return score_series(self.model.predict(x, num_iteration=self.best_iteration_), features.index)

    def feature_importance(self, importance_type: str = "split") -> pd.Series:
        """LightGBM's feature importance (``split`` or ``gain``) by feature name, largest first."""
        if self.model is None:
            raise not_fitted("lightgbm")
        values = self.model.feature_importance(importance_type=importance_type, iteration=self.best_iteration_)
        return pd.Series(values, index=self.feature_names_).sort_values(ascending=False)

    def save(self, folder: Path) -> None:
        """Write ``model.json``, LightGBM's text model (``model.txt``) and the feature names."""
        if self.model is None:
            raise not_fitted("lightgbm")
        write_manifest(folder, self.registry_name, self.init_params)
        write_booster(self.model, Path(folder) / MODEL_FILE)
        write_state(folder, {"features": self.feature_names_, "best_iteration": self.best_iteration_})

    def restore(self, folder: Path) -> None:
        """Load the text model written by :meth:`save`."""
        state = read_state(folder)
        self.model = read_booster(Path(folder) / MODEL_FILE)
        self.feature_names_ = list(state["features"])
