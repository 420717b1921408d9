"""Which model serves a date, and its prediction for that date from data up to it.

The model that serves date D is, without an ``online.model`` folder, the latest window of the workflow's rolling
setup whose predicted span starts on or before D (the window whose span holds D inside the test segment, the
last window after it), restored from the rolling checkpoint (:mod:`qcore.rolling.checkpoint`): its processors are
fitted again on that window's own train span, as the rolling run fitted them, so the score of D is the rolling
run's. With ``online.model`` a model folder written through :mod:`qcore.modelio` serves every date, its processors
fitted on the dataset's fit span (``fit_start``/``fit_end``, else its ``train`` segment).

Only the rows the prediction needs are read: the features of D alone (the expression engine reads their warm-up),
and the fit span when the dataset has infer processors to fit.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import attrs
import pandas as pd

from qcore.config import WorkflowConfig
from qcore.errors import ConfigError, DataError
from qcore.kernel import Kernel


@attrs.frozen
class ServedModel:
    """A fitted model ready to predict, where it came from and the span its processors are fitted on.

    :ivar source: ``rolling:window-NNN`` or the model folder's path.
    :ivar fit_start: first day of the processors' fit span (the window's train start).
    :ivar fit_end: last day of that span.
    :ivar model: the restored model.
    """

    source: str
    fit_start: pd.Timestamp
    fit_end: pd.Timestamp
    model: Any = attrs.field(eq=False, repr=False)


def data_version(provider: Any) -> str | None:
    """The store's data version (None when the provider does not tell)."""
    version = getattr(provider, "version", None)
    return version if isinstance(version, str) and version else None


def _needs_dataset(config: WorkflowConfig) -> None:
    if config.dataset is None or config.model is None:
        raise ConfigError("online serving needs the workflow's dataset and model sections", source=config.source)


def online_feature_set(config: WorkflowConfig, kernel: Kernel) -> Any:
    """The workflow's feature set, built; one with columns resampled from intraday bars (a Qlib multi-frequency
    handler) is refused: the online routine evaluates its features at the workflow's frequency only; so is one read
    from files (``StaticDataLoader``): files hold no day after they were written."""
    from qcore.assembly import build_component

    assert config.dataset is not None
    feature_set = build_component(config, kernel, "feature_set", config.dataset.features, "dataset.features")
    static = getattr(feature_set, "static", None)
    if static is not None:
        raise config.error(f"the online routine evaluates each new day's features from the store, but this dataset "
                           f"reads them from files ({', '.join(static.paths)}); give the features as expressions",
                           "dataset.features")  # fmt: skip
    resampled = sorted(getattr(feature_set, "resample", None) or {})
    if resampled:
        shown = ", ".join(resampled[:5]) + (f" and {len(resampled) - 5} more" if len(resampled) > 5 else "")
        raise config.error(f"the online routine cannot serve columns resampled from intraday bars ({shown}): it "
                           f"evaluates features at the workflow's frequency ({config.data.freq})", "dataset.features")
    return feature_set


def _rolling_source(config: WorkflowConfig, calendar: pd.DatetimeIndex, date: pd.Timestamp,
                    version: str | None) -> tuple[Any, Path]:  # fmt: skip
    """The window that serves ``date`` and the checkpoint folder holding it."""
    from qcore.rolling.checkpoint import Checkpoint, checkpoint_key, default_folder
    from qcore.rolling.windows import WindowError, rolling_windows

    rolling, spec = config.rolling, config.dataset
    assert rolling is not None and spec is not None
    try:
        windows = rolling_windows(calendar, spec.segments, rolling.step, rolling.window, rolling.gap)
    except WindowError as exc:
        raise config.error(str(exc), "rolling") from None
    eligible = [w for w in windows if w.predict[0] <= date]
    if not eligible:
        raise DataError(f"no model serves {date.date()}: the first rolling window predicts from "
                        f"{windows[0].predict[0].date()}")  # fmt: skip
    window = max(eligible, key=lambda w: w.index)
    folder = Path(rolling.checkpoint or default_folder(checkpoint_key(config.raw, version)))
    if Checkpoint(folder).load(window) is None:
        raise DataError(f"the rolling checkpoint has no finished {window.name} (run `qcore rolling` on the "
                        "workflow first)", path=str(folder))  # fmt: skip
    return window, folder / f"{window.name}.model"


def serving_model(config: WorkflowConfig, kernel: Kernel, provider: Any, date: pd.Timestamp, *,
                  cache: dict[str, ServedModel] | None = None, folder: Path | None = None) -> ServedModel:  # fmt: skip
    """The model that serves ``date`` (see the module docstring), restored and ready to predict; ``cache`` (by
    source) keeps the models already restored, for a caller that serves many dates. With the online ``folder``, a
    drift model (:mod:`qonline.early`) flagged before ``date`` while the scheduled window served replaces it."""
    cache = {} if cache is None else cache
    from qcore.assembly import build_component
    from qcore.modelio import load_model

    _needs_dataset(config)
    spec = config.dataset
    assert spec is not None and config.model is not None
    online = config.sections.get("online")
    saved = getattr(online, "model", None)
    if saved is not None:
        train = spec.segments.get("train") or next(iter(spec.segments.values()))
        if str(saved) not in cache:
            cache[str(saved)] = ServedModel(str(saved), spec.fit_start or train[0], spec.fit_end or train[1],
                                            load_model(saved, kernel))  # fmt: skip
        return cache[str(saved)]
    if config.rolling is None:
        raise ConfigError("online serving needs a 'rolling:' section (its checkpoint holds the models) or an "
                          "'online.model' folder", source=config.source)  # fmt: skip
    calendar = provider.calendar(config.data.freq)
    window, model_dir = _rolling_source(config, calendar, date, data_version(provider))
    source, train = f"rolling:{window.name}", window.train
    if folder is not None:
        from qonline.early import early_models

        later = [m for m in early_models(folder) if window.predict[0] <= m.flagged < date]
        if later:
            source, train, model_dir = f"drift:{later[-1].flagged.date()}", later[-1].train, later[-1].path
    if source in cache:
        return cache[source]
    model = build_component(config, kernel, "model", config.model, "model")
    restore = getattr(model, "restore", None)
    if not callable(restore) or not model_dir.is_dir():
        raise DataError(f"{window.name}'s model was not saved (model {config.model.name!r} has no save/restore)",
                        path=str(model_dir))  # fmt: skip
    restore(model_dir)
    cache[source] = ServedModel(source, train[0], train[1], model)
    return cache[source]


def trading_day(provider: Any, freq: str, date: pd.Timestamp) -> pd.Timestamp:
    """``date`` itself when it is a bar of the store's calendar; else a :class:`DataError` naming the last bar."""
    calendar = provider.calendar(freq)
    if len(calendar) == 0:
        raise DataError("the store's calendar is empty")
    if date > calendar[-1]:
        raise DataError(f"the store ends on {calendar[-1].date()}, before {date.date()}: append the new bars first "
                        "(qcore data import --mode update)")  # fmt: skip
    if date not in calendar:
        raise DataError(f"{date.date()} is not a trading day of the store")
    return date


def predict_date(config: WorkflowConfig, kernel: Kernel, provider: Any, date: pd.Timestamp,
                 served: ServedModel | None = None) -> tuple[pd.Series, ServedModel]:  # fmt: skip
    """The served model's scores for ``date`` (indexed ``(datetime, instrument)``), from data up to ``date``."""
    from qcore.assembly import build_processor, dataset_engine
    from qcore.context import RunContext
    from qcore.dataset import PanelDataset

    _needs_dataset(config)
    spec = config.dataset
    assert spec is not None
    trading_day(provider, config.data.freq, date)
    served = served or serving_model(config, kernel, provider, date)
    feature_set = online_feature_set(config, kernel)
    processors = [build_processor(kernel, p, served.fit_start, served.fit_end) for p in spec.infer_processors]
    start = min(served.fit_start, date) if processors else date
    engine = dataset_engine(RunContext(config=config, kernel=kernel, run=None, provider=provider))
    frame = engine.evaluate(dict(feature_set.features), spec.instruments or config.data.universe, start, date)
    frame.columns = pd.MultiIndex.from_arrays([["feature"] * frame.shape[1], list(frame.columns)])
    segments = {"train": (served.fit_start, served.fit_end), "test": (date, date)}
    dataset = PanelDataset(frame, segments, infer_processors=processors, fit_start=served.fit_start,
                           fit_end=served.fit_end, lazy_learn=True)  # fmt: skip
    pred = served.model.predict(dataset, "test")
    if not len(pred):
        raise DataError(f"no instrument of the universe {spec.instruments or config.data.universe!r} is a member on "
                        f"{date.date()} (is its membership file up to date with the new bars?)")  # fmt: skip
    return pred.rename("score"), served
