"""The Python API behind the CLI, for notebooks and scripts.

>>> import qcore
>>> kernel = qcore.load_kernel()
>>> store = qcore.open_provider("qlib_bin", provider_uri="~/.qlib/qlib_data/cn_data", kernel=kernel)
>>> frame = qcore.evaluate(["Mean($close, 5)", "CSRank($volume)"], store, instruments="csi300", kernel=kernel)
>>> result = qcore.run("examples/workflow.yaml")
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd

from qcore.config import Document, WorkflowConfig, WorkflowDocument, read_workflow
from qcore.context import RunResult
from qcore.kernel import Kernel
from qcore.plugins import PluginSelection
from qcore.protocols import DataProvider
from qcore.runner import run_workflow
from qcore.yamldoc import deep_copy


def load_kernel(plugins: Iterable[str] = (), *, autoload: bool | None = None, strict: bool = True) -> Kernel:
    """Load plugins and return a kernel.

    :param plugins: ``-p``-style names: ``"qdata_cn"`` to enable, ``"no:qrl"`` to disable.
    :param autoload: ``False`` loads only the named plugins.
    :param strict: raise if a plugin fails to load (else warn and skip it).
    """
    return Kernel.load(PluginSelection.parse(plugins, autoload=autoload), strict=strict)


def open_provider(name: str, *, kernel: Kernel | None = None, **kwargs: Any) -> DataProvider:
    """Open the data provider registered as ``name`` (``qlib_bin``...) with ``kwargs``."""
    kernel = kernel or load_kernel()
    return kernel.create("data_provider", name, **kwargs)


def evaluate(
    expressions: Iterable[str] | Mapping[str, str],
    provider: DataProvider,
    *,
    instruments: str | Iterable[str] = "all",
    start: object = None,
    end: object = None,
    freq: str = "day",
    kernel: Kernel | None = None,
    missing_fields: str = "error",
    index: str = "datetime",
) -> pd.DataFrame:
    """Evaluate expressions into a float32 frame indexed ``(datetime, instrument)``, one column per expression.

    :param expressions: expression strings (columns named by the text) or a mapping of column name → expression.
    :param provider: an opened data provider (:func:`open_provider`).
    :param instruments: a market name (``all``, ``csi300``...) or a list of symbols.
    :param start: first date (text such as ``2020-01-31``, a date or a Timestamp); an invalid date is a
        :class:`~qcore.dates.DateError` naming ``start``.
    :param end: last date, likewise.
    :param missing_fields: a field the store lacks is an error naming it (``"error"``), or is read as NaN with a
        warning naming it and the columns that use it (``"nan"``, what ``qcore features`` does for feature sets).
    :param index: ``"instrument"`` for a frame indexed and sorted ``(instrument, datetime)`` instead.
    """
    from qcore.dates import parse_optional_date
    from qcore.expr.engine import ExpressionEngine

    start, end = parse_optional_date(start, "start"), parse_optional_date(end, "end")

    kernel = kernel or load_kernel()
    engine = ExpressionEngine(provider, kernel.registry("operator"), freq=freq, missing_fields=missing_fields)
    exprs = dict(expressions) if isinstance(expressions, Mapping) else list(expressions)
    universe = instruments if isinstance(instruments, str) else list(instruments)
    return engine.evaluate(exprs, universe, start, end, index=index)


def run(
    config: str | os.PathLike[str] | Mapping[str, Any] | WorkflowConfig,
    *,
    overrides: Iterable[str] = (),
    plugins: Iterable[str] = (),
    kernel: Kernel | None = None,
) -> RunResult:
    """Run a workflow given as a YAML path, a mapping or a validated config.

    Without ``kernel``, one is loaded from the config's own ``plugins:`` selection, then ``plugins``; the config is
    validated with it (plugins own some of its sections and may translate a foreign format) and run with it.
    """
    if isinstance(config, WorkflowConfig):
        if kernel is None:
            kernel = Kernel.load(config.plugins.then(PluginSelection.parse(plugins)))
        return run_workflow(config, kernel)
    if isinstance(config, Mapping):
        workflow = WorkflowDocument(Document(deep_copy(dict(config))), tuple(overrides))
    else:
        workflow = read_workflow(config, overrides)
    if kernel is None:
        kernel = Kernel.load(workflow.plugins.then(PluginSelection.parse(plugins)))
    return run_workflow(workflow.validate(kernel), kernel)
