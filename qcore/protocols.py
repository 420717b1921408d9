"""The contracts plugins implement, as typing protocols.

The kernel only calls these methods; it never imports an implementation. Factories registered through the hooks
in :mod:`qcore.hookspecs` return objects that satisfy them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import pandas as pd

from qcore.types import CostSchedule, Panel, Universe


@runtime_checkable
class DataProvider(Protocol):
    """A market's stored bars: calendars, universes and fields, read as whole panels."""

    def calendar(self, freq: str = "day") -> pd.DatetimeIndex:
        """Every trading timestamp of ``freq``, ascending."""
        ...

    def markets(self) -> list[str]:
        """Names of the universes this store holds (``all`` always among them)."""
        ...

    def universe(self, market: str = "all") -> Universe:
        """The instruments of ``market`` with their membership spans."""
        ...

    def fields(self, freq: str = "day") -> list[str]:
        """Names of the stored fields (without ``$``), lower case."""
        ...

    def load(
        self,
        fields: Sequence[str],
        instruments: Sequence[str],
        start: object = None,
        end: object = None,
        freq: str = "day",
    ) -> Panel:
        """Raw fields of ``instruments`` on the calendar rows between ``start`` and ``end`` (inclusive).

        Cells outside an instrument's stored range are NaN; values are float32.
        """
        ...

    @property
    def version(self) -> str:
        """A token that changes whenever the stored data changes (used to key caches)."""
        ...


@runtime_checkable
class MarketRules(Protocol):
    """Trading rules of a market, supplied by its adapter through ``qcore_register_market_rules``."""

    name: str
    #: shares per lot: orders are rounded to multiples of it (in real, unadjusted shares).
    lot_size: int
    #: days before bought shares can be sold: 1 for T+1, 0 for T+0.
    settlement_days: int
    costs: CostSchedule

    def price_limits(self, instruments: Sequence[str], dates: pd.DatetimeIndex) -> np.ndarray:
        """Daily price-limit ratios, shape ``(len(dates), len(instruments))``; NaN where no limit applies."""
        ...


@runtime_checkable
class Dataset(Protocol):
    """Features and labels split into named segments (``train``, ``valid``, ``test``)."""

    def xy(self, segment: str, data_key: str | None = None) -> tuple[pd.DataFrame, pd.Series | None]:
        """Features (index ``(datetime, instrument)``, one column per feature) and the label of ``segment``.

        The label is ``None`` where a segment has none (inference). ``data_key`` picks the processing stage
        (``raw``, ``infer``, ``learn``); by default ``learn`` for ``train``/``valid`` and ``infer`` otherwise.
        """
        ...


@runtime_checkable
class Model(Protocol):
    """A forecasting model: fitted on a dataset, it scores a segment."""

    def fit(self, dataset: Dataset) -> Model:
        """Train on the ``train`` segment (and ``valid`` where the model early-stops); return self."""
        ...

    def predict(self, dataset: Dataset, segment: str = "test") -> pd.Series:
        """Scores of ``segment``, indexed ``(datetime, instrument)``."""
        ...

    def save(self, folder: Path) -> None:
        """Write ``model.json`` (:func:`qcore.modelio.write_manifest`) and the model's files into ``folder``."""
        ...

    def restore(self, folder: Path) -> None:
        """Load the fitted state written by :meth:`save` (the model was built from the manifest's params)."""
        ...


@runtime_checkable
class Run(Protocol):
    """One tracked run of a recorder."""

    run_id: str

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Record parameters (nested mappings are flattened with dots)."""
        ...

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        """Record numeric metrics, optionally at a step."""
        ...

    def set_tags(self, tags: Mapping[str, str]) -> None:
        """Attach string tags."""
        ...

    def log_artifact(self, name: str, obj: Any) -> Path | str:
        """Store ``obj`` (a DataFrame/Series as Parquet, a mapping as JSON, text, or an existing file path)."""
        ...

    def end(self, status: str = "FINISHED") -> None:
        """Close the run with ``FINISHED``, ``FAILED`` or ``KILLED``."""
        ...


@runtime_checkable
class Recorder(Protocol):
    """Experiment tracking: starts runs and reads them back."""

    def start_run(self, experiment: str, run_name: str | None = None) -> Run:
        """Open a new run in ``experiment``."""
        ...

    def list_runs(self, experiment: str | None = None) -> list[dict[str, Any]]:
        """Summaries of stored runs, newest first."""
        ...

    def get_run(self, run_id: str) -> dict[str, Any]:
        """Params, metrics, tags and artifact names of one run."""
        ...
