"""The contracts plugins implement, as typing protocols.

The kernel only calls these methods; it never imports an implementation. Factories registered through the hooks
in :mod:`qcore.hookspecs` return objects that satisfy them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np
import pandas as pd

from qcore.types import CostSchedule, Panel, Universe

if TYPE_CHECKING:
    from qcore.config import ComponentSpec, Reader
    from qcore.context import RecordOutput, RunContext


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


#: The record layout :meth:`PointInTimeProvider.load_pit` returns (Qlib's PIT ``.data`` records without the link):
#: the publication date as a ``YYYYMMDD`` integer, the period (``YYYYQQ`` for a quarterly field, ``YYYY`` for an
#: annual one) and the value.
PIT_RECORD = np.dtype([("date", "<u4"), ("period", "<u4"), ("value", "<f8")])


@runtime_checkable
class PointInTimeProvider(Protocol):
    """An optional extension of :class:`DataProvider`: point-in-time (PIT) period data, Qlib's ``$$field``.

    A store that has fundamentals implements these two methods besides the :class:`DataProvider` ones; the
    expression engine checks for them by protocol (``isinstance(provider, PointInTimeProvider)``) when an expression
    reads a ``$$field``. A period field's name ends in ``_q`` (quarterly, periods ``YYYYQQ`` with ``QQ`` 1..4) or
    ``_a`` (annual, periods ``YYYY``).
    """

    def pit_fields(self) -> list[str]:
        """Names of the stored period fields (without ``$$``), lower case, e.g. ``["eps_q", "roe_a"]``."""
        ...

    def load_pit(self, field: str, instruments: Sequence[str]) -> Mapping[str, np.ndarray]:
        """Every record of ``field`` for each of ``instruments`` that has any, as a :data:`PIT_RECORD` array.

        Records are in publication order (ascending ``date``; records published the same day keep their stored
        order, a later one revising an earlier one of the same period). An amendment is a later record of the same
        period. Instruments without records are left out of the mapping.
        """
        ...


@runtime_checkable
class ExpressionEvaluator(Protocol):
    """An optional extension of :class:`DataProvider`: a provider that can evaluate expressions itself (a remote
    store evaluating them on its server, next to the data).

    :meth:`qcore.expr.engine.ExpressionEngine.evaluate` checks for it by protocol
    (``isinstance(provider, ExpressionEvaluator)``) and uses its frame when it returns one; ``None`` means "evaluate
    locally" (the provider is configured to, or cannot take this request), and the engine goes on as usual.
    """

    def evaluate_expressions(
        self,
        expressions: Mapping[str, str],
        instruments: str | Sequence[str],
        start: object,
        end: object,
        *,
        freq: str = "day",
        missing_fields: str = "error",
        index: str = "datetime",
    ) -> pd.DataFrame | None:
        """What ``ExpressionEngine.evaluate`` would return for these arguments (column name → expression, a market
        name or symbols, inclusive dates, ``missing_fields`` ``"error"``/``"nan"``, ``index`` ``"datetime"``/
        ``"instrument"``), or ``None`` to let the engine evaluate locally."""
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
class Reweighter(Protocol):
    """Weights of training samples (Qlib's ``Reweighter``), registered as a ``reweighter``.

    A workflow names one under ``reweighter:``; the runtime passes it to the model's ``fit(dataset,
    reweighter=...)``, and a model that accepts sample weights turns it into one weight per training row with
    :func:`qcore.reweight.sample_weights` (checked: aligned, finite, non-negative, not all zero). A model whose ``fit``
    takes no ``reweighter`` keyword is refused before any data is read. Rolling meta-learners (DDG-DA) build one per
    window.
    """

    def reweight(self, index: pd.MultiIndex) -> pd.Series | np.ndarray:
        """A non-negative weight for each row of ``index`` (rows ``(datetime, instrument)`` of a training segment):
        a Series indexed like ``index`` (or by its dates alone), or an array of ``len(index)``."""
        ...


@runtime_checkable
class Processor(Protocol):
    """A step of dataset processing (``ZScoreNorm``, ``DropnaLabel``...), registered as a ``processor``.

    Built once per run from its config kwargs (plus ``fit_start_time``/``fit_end_time`` when its factory takes
    them, as Qlib passes them); frames have two-level columns ``("feature" | "label", name)`` and rows
    ``(datetime, instrument)``.
    """

    def fit(self, frame: pd.DataFrame) -> None:
        """Learn parameters from ``frame`` (the fit window's rows); a stateless processor does nothing."""
        ...

    def __call__(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The processed frame (a new one, or ``frame`` itself when nothing changes)."""
        ...

    def is_for_infer(self) -> bool:
        """Whether it may run on inference data (``DropnaLabel``, which drops unlabelled rows, may not)."""
        ...


@runtime_checkable
class Model(Protocol):
    """A forecasting model: fitted on a dataset, it scores a segment.

    What the runtime does with one: the workflow builds it from the registry with the config's kwargs, calls
    :meth:`fit`, then :meth:`predict` on the ``test`` segment (the last segment when there is none), then
    :meth:`save` to store it with the run. :func:`qcore.modelio.load_model` rebuilds it later with :meth:`restore`.
    """

    def fit(self, dataset: Dataset) -> Model:
        """Train on the ``train`` segment (and ``valid`` where the model early-stops); return self."""
        ...

    def predict(self, dataset: Dataset, segment: str = "test") -> pd.Series:
        """Scores of ``segment``, indexed ``(datetime, instrument)``."""
        ...

    def save(self, folder: Path) -> None:
        """Write the fitted model into ``folder`` (an existing, empty folder).

        Write ``model.json`` with :func:`qcore.modelio.write_manifest` (the registry name and the keyword arguments
        that rebuild the model) and the model's own files beside it, flat: after :meth:`fit`, the workflow calls
        this on a temporary folder and stores every regular file directly in it as a run artifact named
        ``model-<file name>`` (sub-folders are not stored), then deletes the folder. No pickle.
        """
        ...

    def restore(self, folder: Path) -> None:
        """Load the fitted state :meth:`save` wrote into ``folder``.

        Called by :func:`qcore.modelio.load_model` (never by the workflow) on a model it has just built from the
        registry with the manifest's ``params``, so only the fitted state (trees, weights, scalers) is read here.
        """
        ...


@runtime_checkable
class Record(Protocol):
    """A workflow step that runs after the model (Qlib's ``SignalRecord``, ``SigAnaRecord``, ``PortAnaRecord``).

    Built from its config kwargs with ``kernel.create("record", ...)``, in the order of the config's ``records``
    (or of the defaults plugins contribute). A record may also define ``check(context) -> None``: it is called
    before the run starts (and by ``qcore validate``) with ``context.provider`` opened when the store could be
    opened (else None) and ``context.state`` empty, and raises a :class:`~qcore.errors.ConfigError` naming the
    config key (``context.config.error(message, path)``) for what it cannot run.
    """

    def generate(self, context: RunContext) -> RecordOutput:
        """Read what earlier steps left in ``context.state`` (and may add to it); return metrics and artifacts to
        record."""
        ...


@runtime_checkable
class ConfigSection(Protocol):
    """A top-level workflow section a plugin owns (``backtest:``), registered as a ``config_section`` under its key.

    Built with no arguments while a config is validated. :meth:`parse` turns the raw value into what
    ``config.sections[key]`` holds (a frozen value object); :meth:`components` lists the components that value
    names, so the kernel checks their names and arguments (``qcore validate``) like its own.
    """

    def parse(self, value: Any, reader: Reader, path: str) -> Any:
        """The section's value parsed and checked; every error through ``reader`` (``reader.fail(message,
        f"{path}.key")``, ``reader.mapping(...)``...), so it names the key and line.

        :param value: the section's raw YAML value.
        :param path: the section's key path (its top-level key).
        """
        ...

    def components(self, parsed: Any, path: str) -> Sequence[tuple[str, str, ComponentSpec]]:
        """``(key path, registry kind, spec)`` of every component ``parsed`` names (``backtest.strategy``...)."""
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
