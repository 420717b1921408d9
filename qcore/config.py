"""Workflow configuration: YAML in, validated attrs value objects out.

``load_config(path)`` reads a YAML file, interpolates ``${VAR}`` / ``${VAR:-default}`` from the environment,
applies ``--set a.b=c`` overrides and validates the result into a frozen :class:`WorkflowConfig`. Every error
names the key path and, where the value came from the file, its line.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any

import attrs
import pandas as pd
import yaml

from qcore.errors import ConfigError
from qcore.plugins import PluginSelection

_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


# ---------------------------------------------------------------------------------------------------------------
# Reading YAML with line numbers
# ---------------------------------------------------------------------------------------------------------------


@attrs.frozen
class Document:
    """Parsed YAML plus the line of every key path (``"data.provider"`` → 3) and the file it came from."""

    data: Any
    lines: Mapping[str, int] = attrs.field(factory=dict)
    source: str | None = None

    def error(self, message: str, path: str) -> ConfigError:
        """A :class:`ConfigError` at ``path``, with the nearest known line."""
        probe = path
        while probe and probe not in self.lines:
            probe = probe.rpartition(".")[0]
        return ConfigError(message, path=path, source=self.source, line=self.lines.get(probe))


def _record_lines(node: yaml.Node, prefix: str, lines: dict[str, int]) -> None:
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = str(key_node.value)
            path = f"{prefix}.{key}" if prefix else key
            lines[path] = key_node.start_mark.line + 1
            _record_lines(value_node, path, lines)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            path = f"{prefix}.{i}" if prefix else str(i)
            lines[path] = item.start_mark.line + 1
            _record_lines(item, path, lines)


def parse_yaml(text: str, source: str | None = None) -> Document:
    """Parse YAML ``text`` into a :class:`Document`; syntax errors become a :class:`ConfigError` with the line."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"invalid YAML: {problem}", source=source, line=line) from None
    finally:
        loader.dispose()
    lines: dict[str, int] = {}
    if node is not None:
        _record_lines(node, "", lines)
    return Document(data, lines, source)


def read_yaml(path: str | os.PathLike[str]) -> Document:
    """Read and parse a YAML file; a missing file is a :class:`ConfigError` naming it."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError("config file not found", source=str(p)) from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file: {exc.strerror}", source=str(p)) from None
    return parse_yaml(text, source=str(p))


# ---------------------------------------------------------------------------------------------------------------
# Interpolation and overrides
# ---------------------------------------------------------------------------------------------------------------


def interpolate(doc: Document, environ: Mapping[str, str] | None = None) -> Document:
    """Replace ``${VAR}`` and ``${VAR:-default}`` in string values from the environment.

    A value that is exactly one placeholder takes the YAML type of the substituted text (``${LR}`` with LR=0.1
    gives the float 0.1). An unset variable without a default is an error naming the key.
    """
    env = os.environ if environ is None else environ

    def substitute(value: Any, path: str) -> Any:
        if isinstance(value, dict):
            return {k: substitute(v, f"{path}.{k}" if path else str(k)) for k, v in value.items()}
        if isinstance(value, list):
            return [substitute(v, f"{path}.{i}" if path else str(i)) for i, v in enumerate(value)]
        if not isinstance(value, str) or "${" not in value:
            return value

        def one(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            if name in env:
                return env[name]
            if default is not None:
                return default
            raise doc.error(
                f"environment variable {name!r} is not set (write ${{{name}:-default}} for a default)", path
            )

        text = _ENV.sub(one, value)
        if _ENV.fullmatch(value):
            try:
                return yaml.safe_load(text) if text.strip() else text
            except yaml.YAMLError:
                return text
        return text

    return Document(substitute(doc.data, ""), doc.lines, doc.source)


def apply_overrides(doc: Document, overrides: Iterable[str]) -> Document:
    """Apply ``a.b.c=value`` overrides (values parsed as YAML; list items addressed by index)."""
    data = _deep_copy(doc.data if doc.data is not None else {})
    for item in overrides:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"override {item!r} must look like key.path=value")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            value = raw
        parts = key.split(".")
        node = data
        for depth, part in enumerate(parts[:-1]):
            here = ".".join(parts[: depth + 1])
            if isinstance(node, list):
                node = node[_list_index(part, node, here)]
            elif isinstance(node, dict):
                if node.get(part) is None:
                    node[part] = {}
                node = node[part]
            else:
                raise ConfigError(f"cannot set {key!r}: {here!r} is not a mapping", path=here)
        last = parts[-1]
        if isinstance(node, list):
            node[_list_index(last, node, key)] = value
        elif isinstance(node, dict):
            node[last] = value
        else:
            raise ConfigError(f"cannot set {key!r}: its parent is not a mapping", path=key)
    return Document(data, doc.lines, doc.source)


def _list_index(part: str, node: list[Any], path: str) -> int:
    try:
        index = int(part)
        node[index]
    except (ValueError, IndexError):
        raise ConfigError(f"{part!r} is not an index of a list of {len(node)} items", path=path) from None
    return index


def _deep_copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _deep_copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_deep_copy(v) for v in value]
    return value


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
    """

    provider: ComponentSpec
    market_rules: ComponentSpec | None = None
    universe: str = "all"
    freq: str = "day"
    start: pd.Timestamp | None = None
    end: pd.Timestamp | None = None
    fields: tuple[str, ...] | None = None


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
class BacktestConfig:
    """How predictions are traded: a strategy, an executor and the backtest's own options.

    :ivar options: ``start``, ``end``, ``account``, ``benchmark``, ``exchange`` (Qlib's ``exchange_kwargs``)...,
        passed as they are to the record that runs the backtest.
    """

    strategy: ComponentSpec
    executor: ComponentSpec = attrs.field(factory=lambda: ComponentSpec("simulator"))
    options: Mapping[str, Any] = attrs.field(factory=dict, converter=_frozen_mapping)


@attrs.frozen
class WorkflowConfig:
    """A validated workflow: the plugins it needs, its data, dataset, model, records and where it is recorded."""

    data: DataConfig
    experiment: str = "default"
    seed: int = 0
    plugins: PluginSelection = attrs.field(factory=PluginSelection)
    recorder: ComponentSpec = attrs.field(factory=lambda: ComponentSpec("local"))
    dataset: DatasetConfig | None = None
    model: ComponentSpec | None = None
    backtest: BacktestConfig | None = None
    records: tuple[ComponentSpec, ...] = ()
    source: str | None = attrs.field(default=None, eq=False)
    raw: Mapping[str, Any] = attrs.field(factory=dict, eq=False, repr=False, converter=_frozen_mapping)

    def components(self) -> list[tuple[str, str, str]]:
        """Every component reference as ``(key path, registry kind, name)``."""
        refs = [("data.provider", "data_provider", self.data.provider.name)]
        if self.data.market_rules is not None:
            refs.append(("data.market_rules", "market_rules", self.data.market_rules.name))
        if self.dataset is not None:
            refs.append(("dataset.features", "feature_set", self.dataset.features.name))
            for group in ("infer_processors", "learn_processors"):
                for i, spec in enumerate(getattr(self.dataset, group)):
                    refs.append((f"dataset.{group}.{i}", "processor", spec.name))
        if self.model is not None:
            refs.append(("model", "model", self.model.name))
        if self.backtest is not None:
            refs.append(("backtest.strategy", "strategy", self.backtest.strategy.name))
            refs.append(("backtest.executor", "executor", self.backtest.executor.name))
        for i, spec in enumerate(self.records):
            refs.append((f"records.{i}", "record", spec.name))
        refs.append(("recorder", "recorder", self.recorder.name))
        return refs

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


class _Reader:
    """Typed access to a document's values that reports the key path and line on every error."""

    def __init__(self, doc: Document) -> None:
        self.doc = doc

    def fail(self, message: str, path: str) -> ConfigError:
        return self.doc.error(message, path)

    def mapping(self, value: Any, path: str, allowed: Sequence[str], required: Sequence[str] = ()) -> dict[str, Any]:
        if value is None:
            value = {}
        if not isinstance(value, dict):
            raise self.fail(f"expected a mapping, got {type(value).__name__}", path)
        for key in value:
            if key not in allowed:
                close = difflib.get_close_matches(str(key), list(allowed), n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                where = f"{path}.{key}" if path else str(key)
                raise self.fail(f"unknown key {key!r}{hint} (allowed: {', '.join(allowed)})", where)
        for key in required:
            if key not in value:
                raise self.fail(f"missing required key {key!r}", path or key)
        return value

    def string(self, value: Any, path: str) -> str:
        if not isinstance(value, str) or not value.strip():
            raise self.fail(f"expected a non-empty string, got {value!r}", path)
        return value

    def integer(self, value: Any, path: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(f"expected an integer, got {value!r}", path)
        return value

    def date(self, value: Any, path: str) -> pd.Timestamp | None:
        if value is None:
            return None
        try:
            return pd.Timestamp(value)
        except (ValueError, TypeError):
            raise self.fail(f"expected a date such as 2020-01-31, got {value!r}", path) from None

    def component(self, value: Any, path: str) -> ComponentSpec:
        if isinstance(value, str):
            return ComponentSpec(self.string(value, path))
        body = self.mapping(value, path, ("name", "kwargs"), required=("name",))
        kwargs = body.get("kwargs") or {}
        if not isinstance(kwargs, dict):
            raise self.fail(f"expected a mapping of keyword arguments, got {type(kwargs).__name__}", f"{path}.kwargs")
        return ComponentSpec(self.string(body["name"], f"{path}.name"), kwargs)

    def plugins(self, value: Any, path: str) -> PluginSelection:
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


_TOP_KEYS = ("experiment", "seed", "plugins", "data", "dataset", "model", "backtest", "records", "recorder")
_DATA_KEYS = ("provider", "market_rules", "universe", "freq", "start", "end", "fields")
_DATASET_KEYS = ("features", "instruments", "segments", "infer_processors", "learn_processors", "fit_start", "fit_end")
_BACKTEST_KEYS = ("strategy", "executor", "start", "end", "account", "benchmark", "exchange", "pos_type")
#: Records run after prediction when a config names none: the signal, its analysis, and the backtest if any.
DEFAULT_RECORDS = ("signal", "sig_analysis")
BACKTEST_RECORD = "port_analysis"


def _dataset(r: _Reader, value: Any) -> DatasetConfig:
    body = r.mapping(value, "dataset", _DATASET_KEYS, required=("features", "segments"))
    raw_segments = r.mapping(body["segments"], "dataset.segments", ("train", "valid", "test"), required=("train",))
    segments = {}
    for name, bounds in raw_segments.items():
        path = f"dataset.segments.{name}"
        if not isinstance(bounds, list) or len(bounds) != 2:
            raise r.fail("expected [start, end]", path)
        start, end = r.date(bounds[0], f"{path}.0"), r.date(bounds[1], f"{path}.1")
        if start is None or end is None or end < start:
            raise r.fail("expected [start, end] with start <= end", path)
        segments[name] = (start, end)
    processors = {}
    for group in ("infer_processors", "learn_processors"):
        items = body.get(group) or []
        if not isinstance(items, list):
            raise r.fail("expected a list of processors", f"dataset.{group}")
        processors[group] = tuple(r.component(item, f"dataset.{group}.{i}") for i, item in enumerate(items))
    instruments = body.get("instruments")
    return DatasetConfig(
        features=r.component(body["features"], "dataset.features"),
        segments=segments,
        instruments=r.string(instruments, "dataset.instruments") if instruments is not None else None,
        infer_processors=processors["infer_processors"],
        learn_processors=processors["learn_processors"],
        fit_start=r.date(body.get("fit_start"), "dataset.fit_start"),
        fit_end=r.date(body.get("fit_end"), "dataset.fit_end"),
    )


def _backtest(r: _Reader, value: Any) -> BacktestConfig:
    body = r.mapping(value, "backtest", _BACKTEST_KEYS, required=("strategy",))
    options = {k: v for k, v in body.items() if k not in ("strategy", "executor")}
    for key in ("start", "end"):
        if key in options:
            options[key] = r.date(options[key], f"backtest.{key}")
    if "exchange" in options and not isinstance(options["exchange"], dict):
        raise r.fail("expected a mapping of exchange options", "backtest.exchange")
    executor = r.component(body["executor"], "backtest.executor") if "executor" in body else ComponentSpec("simulator")
    return BacktestConfig(r.component(body["strategy"], "backtest.strategy"), executor, options)


def validate(doc: Document) -> WorkflowConfig:
    """Turn a parsed document into a :class:`WorkflowConfig`, or raise :class:`ConfigError` at the bad key."""
    r = _Reader(doc)
    top = r.mapping(doc.data, "", _TOP_KEYS, required=("data",))
    data = r.mapping(top["data"], "data", _DATA_KEYS, required=("provider",))
    fields = data.get("fields")
    if fields is not None:
        if not isinstance(fields, list) or not fields:
            raise r.fail("expected a non-empty list of field names", "data.fields")
        fields = tuple(r.string(f, f"data.fields.{i}").lstrip("$").lower() for i, f in enumerate(fields))
    start, end = r.date(data.get("start"), "data.start"), r.date(data.get("end"), "data.end")
    if start is not None and end is not None and end < start:
        raise r.fail(f"end {end.date()} is before start {start.date()}", "data.end")
    data_config = DataConfig(
        provider=r.component(data["provider"], "data.provider"),
        market_rules=r.component(data["market_rules"], "data.market_rules") if data.get("market_rules") else None,
        universe=r.string(data.get("universe", "all"), "data.universe"),
        freq=r.string(data.get("freq", "day"), "data.freq"),
        start=start,
        end=end,
        fields=fields,
    )
    dataset = _dataset(r, top["dataset"]) if top.get("dataset") is not None else None
    model = r.component(top["model"], "model") if top.get("model") is not None else None
    if model is not None and dataset is None:
        raise r.fail("a model needs a dataset section", "model")
    backtest = _backtest(r, top["backtest"]) if top.get("backtest") is not None else None
    if "records" in top:
        if not isinstance(top["records"], list):
            raise r.fail("expected a list of records", "records")
        records = tuple(r.component(item, f"records.{i}") for i, item in enumerate(top["records"]))
    elif model is not None:
        names = DEFAULT_RECORDS + ((BACKTEST_RECORD,) if backtest is not None else ())
        records = tuple(ComponentSpec(name) for name in names)
    else:
        records = ()
    return WorkflowConfig(
        data=data_config,
        experiment=r.string(top.get("experiment", "default"), "experiment"),
        seed=r.integer(top.get("seed", 0), "seed"),
        plugins=r.plugins(top.get("plugins"), "plugins"),
        recorder=r.component(top.get("recorder", "local"), "recorder"),
        dataset=dataset,
        model=model,
        backtest=backtest,
        records=records,
        source=doc.source,
        raw=doc.data,
    )


def load_config(
    path: str | os.PathLike[str],
    overrides: Iterable[str] = (),
    environ: Mapping[str, str] | None = None,
) -> WorkflowConfig:
    """Read, interpolate, override and validate a workflow YAML file (qcore's own or a Qlib ``qrun`` config)."""
    doc = interpolate(read_yaml(path), environ)
    from qcore import qlib_compat

    if qlib_compat.is_qlib_workflow(doc.data):
        doc = qlib_compat.translate(doc)
    return validate(apply_overrides(doc, overrides))


def config_from_mapping(data: Mapping[str, Any], source: str | None = None) -> WorkflowConfig:
    """Validate an in-memory mapping (a notebook's dict) as a workflow config."""
    return validate(Document(_deep_copy(dict(data)), {}, source))
