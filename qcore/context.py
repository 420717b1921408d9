"""What a workflow run hands its steps, records and lifecycle hooks, and what it gives back.

The runner (:mod:`qcore.runner`) builds one :class:`RunContext` per run; each step reads what earlier steps left
in ``context.state`` (a :class:`RunState`: named fields, not string keys) and a record returns a
:class:`RecordOutput`. :class:`RunResult` is what :func:`qcore.runner.run_workflow` returns and what
``qcore_after_run``, ``qcore_run_summary`` and ``qcore_run_hints`` receive. Plugins import these from here, never
from the runner.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import attrs

if TYPE_CHECKING:
    import pandas as pd

    from qcore.config import WorkflowConfig
    from qcore.kernel import Kernel
    from qcore.protocols import DataProvider, Dataset, MarketRules, Model, Run
    from qcore.types import Panel, Universe


@attrs.define(slots=True)
class RunState:
    """What the steps of one run have produced so far; each field is None until its step has run.

    Slotted: a misspelled field (``state.predd = ...``) is an ``AttributeError``, not a silent new key. A plugin
    keeps values of its own under :attr:`extra`, keyed by its own names.

    :ivar panel: the raw fields the data step loaded (universe × data range).
    :ivar universe: the data step's universe, with membership spans.
    :ivar engine: the run's expression engine over the provider (:func:`qcore.assembly.dataset_engine`).
    :ivar dataset: the dataset the model learns from.
    :ivar model: the fitted model.
    :ivar pred: the model's scores of :attr:`segment`, indexed ``(datetime, instrument)``.
    :ivar label: the raw label of :attr:`segment`, same index.
    :ivar segment: the segment the model predicted (``test``, else the last one).
    :ivar ic: per-date IC of the predictions against the label (a frame by date with ``IC`` and ``RankIC``
        columns), left by a signal-analysis record for the records after it (a backtest report shows it).
    :ivar trading: the result of a record that traded the predictions (its plugin's result object: reports,
        positions...), for the records after it.
    :ivar report_sections: sections for the run's HTML report (:class:`qcore.reporting.ReportSection`, or builders
        called once the run has traded), appended by records, placed by the record that renders the page.
    :ivar extra: anything else a plugin hands to later steps, under keys it owns.
    """

    panel: Panel | None = None
    universe: Universe | None = None
    engine: Any = None
    dataset: Dataset | None = None
    model: Model | None = None
    pred: pd.Series | None = None
    label: pd.Series | None = None
    segment: str | None = None
    ic: pd.DataFrame | None = None
    trading: Any = None
    report_sections: list[Any] = attrs.field(factory=list)
    extra: dict[str, Any] = attrs.field(factory=dict)


@attrs.define
class RunContext:
    """What every step, record and lifecycle hook sees of a run.

    :ivar config: the validated workflow.
    :ivar kernel: the kernel the run builds its components with.
    :ivar run: the recorder's run (None while ``qcore validate`` checks a config).
    :ivar provider: the opened data provider (None until opened, or when the store cannot be opened at validate).
    :ivar market_rules: the market rules of ``data.market_rules``, when given.
    :ivar state: what the steps produced so far.
    """

    config: WorkflowConfig
    kernel: Kernel
    run: Run | None
    provider: DataProvider | None = None
    market_rules: MarketRules | None = None
    state: RunState = attrs.field(factory=RunState)


@attrs.frozen
class RecordOutput:
    """What a record produced: metrics to log and named artifacts to store (frames, mappings, text, files)."""

    metrics: Mapping[str, float] = attrs.field(factory=dict)
    artifacts: Mapping[str, Any] = attrs.field(factory=dict)


@attrs.frozen
class RunResult:
    """What a finished run produced: its id, final metrics and stored artifact paths (artifact name → path)."""

    run_id: str
    metrics: Mapping[str, float]
    artifacts: Mapping[str, str]
