"""Workflow configuration: the schema of a workflow YAML, validated into frozen attrs value objects.

``load_config(path)`` reads a YAML file (:mod:`qcore.yamldoc`: bounded safe loader, line numbers, ``${VAR}``
interpolation, ``--set a.b=c`` overrides), lets a plugin translate a foreign format (``qcore_translate_config``) and
validates the result into a :class:`WorkflowConfig`. Every error names the key path and, where the value came from
the file, its line.

The kernel's own sections are ``experiment``, ``seed``, ``plugins``, ``data``, ``dataset``, ``model``, ``records``,
``recorder`` and ``rolling`` (retraining windows, :class:`RollingConfig`). Any other top-level section belongs to a
plugin: it registers a ``config_section`` component (a :class:`~qcore.protocols.ConfigSection`) that parses it with
a :class:`Reader` and lists the components it names, so name and argument checks cover them; its parsed value is
``config.sections[name]``. Validation therefore needs a kernel: :func:`load_config` loads one from the document's own
``plugins:`` key when none is given.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterable, Mapping, Sequence
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import attrs
import pandas as pd

from qcore.dates import DateError, parse_date
from qcore.errors import ConfigError
from qcore.plugins import PluginSelection
from qcore.yamldoc import (
    MAX_ALIASES,
    MAX_CONFIG_BYTES,
    MAX_DEPTH,
    MAX_NODES,
    Document,
    apply_overrides,
    deep_copy,
    interpolate,
    kind_of,
    parse_value,
    parse_yaml,
    read_yaml,
    shown,
)

if TYPE_CHECKING:
    from qcore.kernel import Kernel
    from qcore.rolling.windows import Step

__all__ = [
    "MAX_ALIASES",
    "MAX_CONFIG_BYTES",
    "MAX_DEPTH",
    "MAX_NODES",
    "ComponentSpec",
    "DataConfig",
    "DatasetConfig",
    "Document",
    "Reader",
    "RollingConfig",
    "WorkflowConfig",
    "WorkflowDocument",
    "apply_overrides",
    "config_from_mapping",
    "interpolate",
    "load_config",
    "parse_value",
    "parse_yaml",
    "read_workflow",
    "read_yaml",
    "validate",
]

#: The kind of the components that parse plugin-owned top-level sections.
SECTION_KIND = "config_section"


# ---------------------------------------------------------------------------------------------------------------
# Value objects
# ---------------------------------------------------------------------------------------------------------------


def _frozen_mapping(value: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return MappingProxyType(dict(value or {}))


@attrs.frozen
class ComponentSpec:
    """A component referenced by registry name, with the keyword arguments its factory receives."""

    name: str
    kwargs: Mapping[str, Any] = attrs.field(factory=dict, converter=_frozen_mapping)

    def to_dict(self) -> dict[str, Any]:
        """A plain mapping (for logging params)."""
        return {"name": self.name, "kwargs": _plain(self.kwargs)}


@attrs.frozen
class DataConfig:
    """Where bars come from and which part of them a run uses.

    :ivar provider: the data provider component (``qlib_bin`` with ``provider_uri``...).
    :ivar market_rules: the market rules component (``cn``...), if the run trades.
    :ivar universe: the market (universe) name, ``all`` by default.
    :ivar freq: bar frequency.
    :ivar start: first date of the run (None: the calendar's start).
    :ivar end: last date of the run (None: the calendar's end).
    :ivar fields: raw fields the data step summarises (None: every stored field).
    :ivar missing_fields: a field the dataset's feature set reads that the store lacks: ``nan`` (read as NaN,
        with one warning naming the field and the columns; what None means) or ``error``.
    """

    provider: ComponentSpec
    market_rules: ComponentSpec | None = None
    universe: str = "all"
    freq: str = "day"
    start: pd.Timestamp | None = None
    end: pd.Timestamp | None = None
    fields: tuple[str, ...] | None = None
    missing_fields: str | None = None


@attrs.frozen
class DatasetConfig:
    """Features, labels and segments of the dataset a model learns from.

    :ivar features: the feature set component (``alpha158`` with its config as kwargs).
    :ivar segments: name → (start, end); ``train`` is required, ``valid`` and ``test`` are usual.
    :ivar instruments: the universe (None: ``data.universe``).
    :ivar infer_processors: processors applied to all data, fitted on the fit window.
    :ivar learn_processors: processors applied on top to training data.
    :ivar fit_start: start of the fit window (None: the train segment's start).
    :ivar fit_end: end of the fit window (None: the train segment's end).
    """

    features: ComponentSpec
    segments: Mapping[str, tuple[pd.Timestamp, pd.Timestamp]] = attrs.field(converter=_frozen_mapping)
    instruments: str | None = None
    infer_processors: tuple[ComponentSpec, ...] = ()
    learn_processors: tuple[ComponentSpec, ...] = ()
    fit_start: pd.Timestamp | None = None
    fit_end: pd.Timestamp | None = None

@attrs.frozen
class RollingConfig:
    """The ``rolling:`` section: retrain the model on a schedule of windows (:mod:`qcore.rolling`).

    :ivar step: how far apart windows are (:class:`qcore.rolling.windows.Step`: bars, or calendar periods).
    :ivar window: ``expanding`` (the train start stays) or ``sliding``.
    :ivar gap: bars between the last train/valid day and the first test day (the label's look-ahead).
    :ivar backend: the ``execution_backend`` that runs the windows (the workflow's ``backend:``, else ``serial``).
    :ivar checkpoint: the folder each finished window's prediction is stored in (None: under the cache folder,
        keyed by the data version and the config), which a re-run resumes from.
    :ivar resume: skip the windows the checkpoint already holds.
    """

    step: Step
    window: str = "expanding"
    gap: int = 0
    backend: ComponentSpec = attrs.field(factory=lambda: ComponentSpec("serial"))
    checkpoint: str | None = None
    resume: bool = True


#: ``(key path, registry kind, spec)`` of one component a config names.
ComponentRefs = tuple[tuple[str, str, ComponentSpec], ...]


@attrs.frozen
class WorkflowConfig:
    """A validated workflow: the plugins it needs, its data, dataset, model, records and where it is recorded.

    :ivar records: the records to run after the model, in order: the ``records`` section, or the defaults plugins
        contribute (``qcore_default_records``) when the config names none.
    :ivar sections: plugin-owned top-level sections by name (``sections["backtest"]``), as their
        :class:`~qcore.protocols.ConfigSection` parsed them.
    :ivar section_components: the components those sections name, as ``(key path, kind, spec)``.
    :ivar reweighter: the ``reweighter`` whose sample weights the model trains with (``reweighter:``; None: equal).
    :ivar backend: the ``execution_backend`` the workflow's independent tasks run on (``backend:``; None: serial);
        a ``rolling.backend`` of its own takes precedence for the windows.
    """

    data: DataConfig
    experiment: str = "default"
    seed: int = 0
    plugins: PluginSelection = attrs.field(factory=PluginSelection)
    recorder: ComponentSpec = attrs.field(factory=lambda: ComponentSpec("local"))
    dataset: DatasetConfig | None = None
    model: ComponentSpec | None = None
    reweighter: ComponentSpec | None = None
    records: tuple[ComponentSpec, ...] = ()
    sections: Mapping[str, Any] = attrs.field(factory=dict, converter=_frozen_mapping)
    section_components: ComponentRefs = ()
    rolling: RollingConfig | None = None
    backend: ComponentSpec | None = None
    source: str | None = attrs.field(default=None, eq=False)
    raw: Mapping[str, Any] = attrs.field(factory=dict, eq=False, repr=False, converter=_frozen_mapping)
    document: Document | None = attrs.field(default=None, eq=False, repr=False)

    def error(self, message: str, path: str) -> ConfigError:
        """A :class:`ConfigError` at the key ``path`` (qcore's form), naming the key as written and its line."""
        if self.document is not None:
            return self.document.error(message, path)
        return ConfigError(message, path=path, source=self.source)

    def component_specs(self) -> list[tuple[str, str, ComponentSpec]]:
        """Every component the config names as ``(key path, registry kind, spec)``, in config order."""
        specs = [("data.provider", "data_provider", self.data.provider)]
        if self.data.market_rules is not None:
            specs.append(("data.market_rules", "market_rules", self.data.market_rules))
        if self.dataset is not None:
            specs.append(("dataset.features", "feature_set", self.dataset.features))
            for group in ("infer_processors", "learn_processors"):
                specs += [(f"dataset.{group}.{i}", "processor", p) for i, p in enumerate(getattr(self.dataset, group))]
        if self.model is not None:
            specs.append(("model", "model", self.model))
        if self.reweighter is not None:
            specs.append(("reweighter", "reweighter", self.reweighter))
        if self.backend is not None:
            specs.append(("backend", "execution_backend", self.backend))
        if self.rolling is not None and self.rolling.backend is not self.backend:
            specs.append(("rolling.backend", "execution_backend", self.rolling.backend))
        specs += list(self.section_components)
        specs += [(f"records.{i}", "record", spec) for i, spec in enumerate(self.records)]
        specs.append(("recorder", "recorder", self.recorder))
        return specs

    def components(self) -> list[tuple[str, str, str]]:
        """Every component reference as ``(key path, registry kind, name)``."""
        return [(path, kind, spec.name) for path, kind, spec in self.component_specs()]

    def params(self) -> dict[str, Any]:
        """The config as plain nested data, for recording."""
        return _plain(self.raw)


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


# ---------------------------------------------------------------------------------------------------------------
# Validation
# ---------------------------------------------------------------------------------------------------------------


class Reader:
    """Typed access to a document's values that reports the key path and line on every error.

    What a :class:`~qcore.protocols.ConfigSection` receives to parse its section: every method takes the value and
    its key path (``backtest.account``) and raises a :class:`ConfigError` there, with the line the file gave it.
    """

    def __init__(self, doc: Document) -> None:
        self.doc = doc

    def fail(self, message: str, path: str) -> ConfigError:
        """The :class:`ConfigError` to raise about the value at ``path``."""
        return self.doc.error(message, path)

    def mapping(self, value: Any, path: str, allowed: Sequence[str], required: Sequence[str] = ()) -> dict[str, Any]:
        """A mapping (None reads as empty) of ``allowed`` keys (an unknown one gets a did-you-mean), with the
        ``required`` ones present and not null."""
        if value is None:
            value = {}
        if not isinstance(value, dict):
            raise self.fail(f"expected a mapping, got {kind_of(value)}", path)
        for key in value:
            if key not in allowed:
                close = difflib.get_close_matches(str(key), list(allowed), n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                where = f"{path}.{key}" if path else str(key)
                raise self.fail(f"unknown key {key!r}{hint} (allowed: {', '.join(allowed)})", where)
        for key in required:
            if value.get(key) is None:
                raise self.fail(f"missing required key {key!r}", f"{path}.{key}" if path and key in value else
                                (path or key))  # fmt: skip
        return value

    def string(self, value: Any, path: str) -> str:
        """A non-empty string."""
        if not isinstance(value, str) or not value.strip():
            raise self.fail(f"expected a non-empty string, got {shown(value)}", path)
        return value

    def integer(self, value: Any, path: str, low: int | None = None, high: int | None = None) -> int:
        """An integer (not a boolean) within ``low..high`` when given."""
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(f"expected an integer, got {shown(value)}", path)
        if (low is not None and value < low) or (high is not None and value > high):
            raise self.fail(f"expected an integer in {low}..{high}, got {value}", path)
        return value

    def date(self, value: Any, path: str) -> pd.Timestamp | None:
        """A date (:func:`qcore.dates.parse_date`), None when not given."""
        if value is None:
            return None
        try:
            return parse_date(value, path)
        except DateError as exc:
            raise self.fail(exc.message, path) from None

    def sequence(self, value: Any, path: str, what: str) -> list[Any]:
        """A list (``what`` names its items in the error)."""
        if not isinstance(value, list):
            raise self.fail(f"expected a list of {what}, got {kind_of(value)}", path)
        return value

    def component(self, value: Any, path: str) -> ComponentSpec:
        """A component: a registry name, or ``{name, kwargs}`` with identifier keyword names."""
        if isinstance(value, str):
            return ComponentSpec(self.string(value, path))
        body = self.mapping(value, path, ("name", "kwargs"), required=("name",))
        kwargs = body.get("kwargs") or {}
        if not isinstance(kwargs, dict):
            raise self.fail(f"expected a mapping of keyword arguments, got {kind_of(kwargs)}", f"{path}.kwargs")
        for key in kwargs:
            if not isinstance(key, str) or not key.isidentifier():
                raise self.fail(f"keyword argument names are identifiers, got {key!r}", f"{path}.kwargs")
        return ComponentSpec(self.string(body["name"], f"{path}.name"), kwargs)

    def plugins(self, value: Any, path: str) -> PluginSelection:
        """A ``plugins:`` section: a list of ``-p``-style names, or ``{enable, disable, autoload}``."""
        if value is None:
            return PluginSelection()
        if isinstance(value, str):
            value = [value]
        if isinstance(value, list):
            for i, item in enumerate(value):
                self.string(item, f"{path}.{i}")
            return PluginSelection.parse(value)
        body = self.mapping(value, path, ("enable", "disable", "autoload"))
        enable = body.get("enable") or []
        disable = body.get("disable") or []
        for key, items in (("enable", enable), ("disable", disable)):
            if not isinstance(items, list):
                raise self.fail("expected a list of plugin names", f"{path}.{key}")
            for i, item in enumerate(items):
                self.string(item, f"{path}.{key}.{i}")
        autoload = body.get("autoload")
        if autoload is not None and not isinstance(autoload, bool):
            raise self.fail(f"expected true or false, got {autoload!r}", f"{path}.autoload")
        return PluginSelection(tuple(enable), tuple(disable), autoload)


#: The kernel's own top-level sections; plugins declare more (``config_section`` components).
KERNEL_KEYS = ("experiment", "seed", "plugins", "data", "dataset", "model", "reweighter", "records", "recorder",
               "rolling", "backend", "sweep")  # sweep: read by qcore.sweep (qcore sweep), ignored by a single run
_ROLLING_KEYS = ("step", "window", "rtype", "gap", "backend", "checkpoint", "resume")
_DATA_KEYS = ("provider", "market_rules", "universe", "freq", "start", "end", "fields", "missing_fields")
#: Values of ``data.missing_fields``.
MISSING_FIELDS = ("nan", "error")
_DATASET_KEYS = ("features", "instruments", "segments", "infer_processors", "learn_processors", "fit_start", "fit_end")
#: The largest seed numpy's global generator takes.
MAX_SEED = 2**32 - 1


def _ordered(r: Reader, start: pd.Timestamp | None, end: pd.Timestamp | None, path: str, what: str) -> None:
    if start is not None and end is not None and end < start:
        raise r.fail(f"{what} ends ({end.date()}) before it starts ({start.date()})", path)


def _segments(r: Reader, value: Any) -> dict[str, tuple[pd.Timestamp, pd.Timestamp]]:
    raw_segments = r.mapping(value, "dataset.segments", ("train", "valid", "test", "pretrain", "pretrain_validation"),
                             required=("train",))
    segments = {}
    for name, bounds in raw_segments.items():
        path = f"dataset.segments.{name}"
        if not isinstance(bounds, list) or len(bounds) != 2:
            raise r.fail(f"expected [start, end], got {shown(bounds)}", path)
        start, end = r.date(bounds[0], f"{path}.0"), r.date(bounds[1], f"{path}.1")
        if start is None or end is None:
            raise r.fail("expected [start, end] with both dates given", f"{path}.{0 if start is None else 1}")
        _ordered(r, start, end, path, f"the {name} segment")
        segments[name] = (start, end)
    return segments


def _dataset(r: Reader, value: Any) -> DatasetConfig:
    body = r.mapping(value, "dataset", _DATASET_KEYS, required=("features", "segments"))
    segments = _segments(r, body["segments"])
    processors = {}
    for group in ("infer_processors", "learn_processors"):
        items = r.sequence(body.get(group) or [], f"dataset.{group}", "processors")
        processors[group] = tuple(r.component(item, f"dataset.{group}.{i}") for i, item in enumerate(items))
    instruments = body.get("instruments")
    fit_start = r.date(body.get("fit_start"), "dataset.fit_start")
    fit_end = r.date(body.get("fit_end"), "dataset.fit_end")
    train_start, train_end = segments["train"]
    _ordered(r, fit_start or train_start, fit_end or train_end, "dataset.fit_end" if fit_end else "dataset.fit_start",
             "the fit window")  # fmt: skip
    return DatasetConfig(
        features=r.component(body["features"], "dataset.features"),
        segments=segments,
        instruments=r.string(instruments, "dataset.instruments") if instruments is not None else None,
        infer_processors=processors["infer_processors"],
        learn_processors=processors["learn_processors"],
        fit_start=fit_start,
        fit_end=fit_end,
    )


def _rolling(r: Reader, value: Any, dataset: DatasetConfig | None, model: ComponentSpec | None,
             backend: ComponentSpec | None = None) -> RollingConfig:  # fmt: skip
    """The ``rolling:`` section, checked against the dataset it rolls (a test segment, no fixed fit window);
    its windows run on ``rolling.backend``, else the workflow's ``backend``, else ``serial``."""
    from qcore.rolling.windows import WINDOW_TYPES, WindowError, parse_step

    body = r.mapping(value, "rolling", _ROLLING_KEYS, required=("step",))
    try:
        step = parse_step(body["step"])
    except WindowError as exc:
        raise r.fail(str(exc), "rolling.step") from None
    if "window" in body and "rtype" in body:
        raise r.fail("give the window type once: 'window' (or Qlib's name for it, 'rtype')", "rolling.rtype")
    key = "rtype" if "rtype" in body else "window"
    window = body.get(key, "expanding")
    if window not in WINDOW_TYPES:
        raise r.fail(f"expected one of {', '.join(WINDOW_TYPES)}, got {shown(window)}", f"rolling.{key}")
    gap = r.integer(body.get("gap", 0), "rolling.gap", 0, 10_000)
    checkpoint = body.get("checkpoint")
    resume = body.get("resume", True)
    if not isinstance(resume, bool):
        raise r.fail(f"expected true or false, got {shown(resume)}", "rolling.resume")
    if model is None or dataset is None:
        raise r.fail("rolling retrains a model: the workflow needs 'dataset' and 'model' sections", "rolling")
    if "test" not in dataset.segments:
        raise r.fail("rolling needs a test segment to roll over", "dataset.segments")
    for key_name in ("fit_start", "fit_end"):
        if getattr(dataset, key_name) is not None:
            raise r.fail(f"with a rolling section each window fits its processors on its own train span; remove "
                         f"dataset.{key_name}", f"dataset.{key_name}")  # fmt: skip
    for group in ("infer_processors", "learn_processors"):
        for i, spec in enumerate(getattr(dataset, group)):
            for arg in ("fit_start_time", "fit_end_time"):
                if spec.kwargs.get(arg) is not None:
                    raise r.fail(f"with a rolling section each window fits its processors on its own train span; "
                                 f"remove {arg}", f"dataset.{group}.{i}.kwargs.{arg}")  # fmt: skip
    return RollingConfig(
        step=step,
        window=window,
        gap=gap,
        backend=(r.component(body["backend"], "rolling.backend") if body.get("backend")
                 else backend or ComponentSpec("serial")),
        checkpoint=r.string(checkpoint, "rolling.checkpoint") if checkpoint is not None else None,
        resume=resume,
    )


def _data(r: Reader, value: Any) -> DataConfig:
    data = r.mapping(value, "data", _DATA_KEYS, required=("provider",))
    fields = data.get("fields")
    if fields is not None:
        if not isinstance(fields, list) or not fields:
            raise r.fail(f"expected a non-empty list of field names, got {shown(fields)}", "data.fields")
        fields = tuple(r.string(f, f"data.fields.{i}").lstrip("$").lower() for i, f in enumerate(fields))
    start, end = r.date(data.get("start"), "data.start"), r.date(data.get("end"), "data.end")
    if start is not None and end is not None and end < start:
        raise r.fail(f"end {end.date()} is before start {start.date()}", "data.end")
    rules = data.get("market_rules")
    missing = data.get("missing_fields")
    if missing is not None and missing not in MISSING_FIELDS:
        raise r.fail(f"expected one of {', '.join(MISSING_FIELDS)}, got {shown(missing)}", "data.missing_fields")
    return DataConfig(
        provider=r.component(data["provider"], "data.provider"),
        market_rules=r.component(rules, "data.market_rules") if rules is not None else None,
        universe=r.string(data.get("universe", "all"), "data.universe"),
        freq=r.string(data.get("freq", "day"), "data.freq"),
        start=start,
        end=end,
        fields=fields,
        missing_fields=missing,
    )


def _sections(r: Reader, top: Mapping[str, Any], kernel: Kernel) -> tuple[dict[str, Any], ComponentRefs]:
    """Parse every plugin-owned section the document has, in document order."""
    registry = kernel.registry(SECTION_KIND)
    parsed: dict[str, Any] = {}
    refs: list[tuple[str, str, ComponentSpec]] = []
    for key, value in top.items():
        if key in KERNEL_KEYS:
            continue
        name = registry.entry(key).name
        section = kernel.create(SECTION_KIND, name)
        parsed[name] = section.parse(value, r, key)
        refs += [(path, kind, spec) for path, kind, spec in section.components(parsed[name], key)]
    return parsed, tuple(refs)


def validate(doc: Document, kernel: Kernel) -> WorkflowConfig:
    """Turn a (translated, overridden) document into a :class:`WorkflowConfig`, or raise :class:`ConfigError` at the
    bad key. ``kernel`` supplies the plugin-owned sections and the default records."""
    r = Reader(doc)
    if not isinstance(doc.data, dict):
        raise r.fail(f"the top level must be a mapping of sections, got {kind_of(doc.data)}", "")
    allowed = (*KERNEL_KEYS, *kernel.registry(SECTION_KIND).names(include_aliases=True))
    top = r.mapping(doc.data, "", allowed, required=("data",))
    data_config = _data(r, top["data"])
    dataset = _dataset(r, top["dataset"]) if top.get("dataset") is not None else None
    model = r.component(top["model"], "model") if top.get("model") is not None else None
    if model is not None and dataset is None:
        raise r.fail("a model needs a dataset section", "model")
    reweighter = r.component(top["reweighter"], "reweighter") if top.get("reweighter") is not None else None
    if reweighter is not None and model is None:
        raise r.fail("a reweighter weights a model's training samples: the workflow needs a 'model' section",
                     "reweighter")
    records = None
    if top.get("records") is not None:
        items = r.sequence(top["records"], "records", "records")
        records = tuple(r.component(item, f"records.{i}") for i, item in enumerate(items))
    sections, section_components = _sections(r, top, kernel)
    backend = r.component(top["backend"], "backend") if top.get("backend") is not None else None
    rolling = _rolling(r, top["rolling"], dataset, model, backend) if top.get("rolling") is not None else None
    config = WorkflowConfig(
        data=data_config,
        experiment=r.string(top.get("experiment", "default"), "experiment"),
        seed=r.integer(top.get("seed", 0), "seed", 0, MAX_SEED),
        plugins=r.plugins(top.get("plugins"), "plugins"),
        recorder=r.component(top.get("recorder") or "local", "recorder"),
        dataset=dataset,
        model=model,
        reweighter=reweighter,
        records=records or (),
        sections=sections,
        section_components=section_components,
        rolling=rolling,
        backend=backend,
        source=doc.source,
        raw=doc.data,
        document=doc,
    )
    if records is None:
        config = attrs.evolve(config, records=tuple(ComponentSpec(name) for name in kernel.default_records(config)))
    return config


# ---------------------------------------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------------------------------------


@attrs.frozen
class WorkflowDocument:
    """A workflow file read, interpolated and not yet validated: what it asks of the plugins comes first.

    :attr:`plugins` is the document's own ``plugins:`` selection (with ``--set plugins...`` applied), so a caller
    can load the one kernel the run uses before validation needs it (:meth:`validate`).

    :ivar document: the interpolated document, before translation and overrides.
    :ivar overrides: ``key.path=value`` overrides, applied after translation (they address qcore's keys).
    """

    document: Document
    overrides: tuple[str, ...] = attrs.field(default=(), converter=tuple)

    @property
    def plugins(self) -> PluginSelection:
        """The plugin selection the document asks for (its ``plugins:`` key, overrides of it applied)."""
        selecting = [o for o in self.overrides if o.partition("=")[0].strip().partition(".")[0] == "plugins"]
        doc = apply_overrides(self.document, selecting) if selecting else self.document
        data = doc.data if isinstance(doc.data, Mapping) else {}
        return Reader(doc).plugins(data.get("plugins"), "plugins")

    def validate(self, kernel: Kernel) -> WorkflowConfig:
        """Translate a foreign format (``qcore_translate_config``), apply the overrides and validate with
        ``kernel``."""
        doc = kernel.translate_config(self.document) or self.document
        return validate(apply_overrides(doc, self.overrides), kernel)

    def load_kernel(self) -> Kernel:
        """The kernel the document's ``plugins:`` selection (after the environment's) loads."""
        from qcore.kernel import Kernel

        return Kernel.load(self.plugins)


def read_workflow(
    path: str | os.PathLike[str], overrides: Iterable[str] = (), environ: Mapping[str, str] | None = None
) -> WorkflowDocument:
    """Read and interpolate a workflow YAML file (qcore's own or a foreign one a plugin translates)."""
    return WorkflowDocument(interpolate(read_yaml(path), environ), tuple(overrides))


def load_config(
    path: str | os.PathLike[str],
    overrides: Iterable[str] = (),
    environ: Mapping[str, str] | None = None,
    kernel: Kernel | None = None,
) -> WorkflowConfig:
    """Read, interpolate, translate, override and validate a workflow YAML file.

    :param kernel: the kernel whose plugins own the sections and translations; by default one is loaded from the
        document's own ``plugins:`` key (and the environment).
    """
    workflow = read_workflow(path, overrides, environ)
    return workflow.validate(kernel if kernel is not None else workflow.load_kernel())


def config_from_mapping(
    data: Mapping[str, Any], source: str | None = None, kernel: Kernel | None = None
) -> WorkflowConfig:
    """Validate an in-memory mapping (a notebook's dict) as a workflow config (``kernel`` as for
    :func:`load_config`)."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"a workflow config is a mapping, got {kind_of(data)}", source=source)
    workflow = WorkflowDocument(Document(deep_copy(dict(data)), {}, source))
    return workflow.validate(kernel if kernel is not None else workflow.load_kernel())
