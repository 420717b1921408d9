"""The online routine's steps over an :class:`~qonline.store.OnlineFolder`: predict one date, replay a span of
dates (``simulate``), and what the folder holds (``status``). Each step is idempotent: a date whose stored
prediction came from the same model and data version is not predicted again (unless forced)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import attrs
import pandas as pd

from qcore.config import WorkflowConfig
from qcore.kernel import Kernel
from qonline.serving import ServedModel, data_version, predict_date, serving_model
from qonline.store import OnlineFolder


@attrs.frozen
class Predicted:
    """One date of the routine: where its scores are, the model that served it, and whether it was computed now
    (False: the stored prediction was already up to date)."""

    date: pd.Timestamp
    path: Path
    model: str
    rows: int
    computed: bool


def predict(config: WorkflowConfig, kernel: Kernel, provider: Any, folder: OnlineFolder, date: pd.Timestamp,
            *, force: bool = False, served: ServedModel | None = None) -> tuple[Predicted, ServedModel]:  # fmt: skip
    """Predict ``date`` (for the next bar) into ``folder``, unless it already holds that prediction."""
    version = data_version(provider)
    served = served or serving_model(config, kernel, provider, date)
    meta = folder.prediction_meta(date)
    path = folder.root / "predictions" / f"{date.date()}.parquet"
    if not force and meta is not None and meta.get("model") == served.source and meta.get("data_version") == version:
        return Predicted(date, path, served.source, int(meta.get("rows", 0)), False), served
    pred, served = predict_date(config, kernel, provider, date, served)
    path = folder.write_prediction(date, pred, {"model": served.source, "data_version": version})
    return Predicted(date, path, served.source, len(pred), True), served


def simulate(config: WorkflowConfig, kernel: Kernel, provider: Any, folder: OnlineFolder, start: pd.Timestamp,
             end: pd.Timestamp, *, force: bool = False) -> tuple[list[Predicted], pd.Series]:  # fmt: skip
    """Replay :func:`predict` on every trading day of ``[start, end]``, in order; returns each day and the joined
    signal (the stored scores of every day)."""
    calendar = provider.calendar(config.data.freq)
    days = calendar[(calendar >= start) & (calendar <= end)]
    done: list[Predicted] = []
    cache: dict[str, ServedModel] = {}
    for day in days:
        served = serving_model(config, kernel, provider, day, cache=cache)
        step, _ = predict(config, kernel, provider, folder, day, force=force, served=served)
        done.append(step)
    parts = [folder.read_prediction(step.date) for step in done]
    signal = pd.concat(parts).sort_index() if parts else pd.Series(dtype="float64", name="score")
    return done, signal


def status(folder: OnlineFolder, provider: Any = None, freq: str = "day") -> dict[str, Any]:
    """What the online folder holds: prediction dates, the last one's model and data version; with the store,
    its data version and last bar, and how many bars the predictions are behind it."""
    dates = folder.prediction_dates()
    body: dict[str, Any] = {"folder": str(folder.root), "predictions": len(dates)}
    if dates:
        last = folder.prediction_meta(dates[-1]) or {}
        body.update(first_prediction=str(dates[0].date()), last_prediction=str(dates[-1].date()),
                    model=last.get("model"), prediction_data_version=last.get("data_version"))  # fmt: skip
    if provider is not None:
        calendar = provider.calendar(freq)
        body["data_version"] = data_version(provider)
        if len(calendar):
            body["store_last_bar"] = str(calendar[-1].date())
            if dates:
                body["bars_behind"] = int((calendar > dates[-1]).sum())
    return body
