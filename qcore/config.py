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

from qcore.dates import DateError, parse_date
from qcore.errors import ConfigError
from qcore.plugins import PluginSelection

_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


# ---------------------------------------------------------------------------------------------------------------
# Reading YAML with line numbers
# ---------------------------------------------------------------------------------------------------------------

#: Limits on one YAML document: what a config file may weigh, how many aliases it may use, how many nodes it may
#: expand to once every alias is replaced by what it names, and how deeply it may nest.
MAX_CONFIG_BYTES = 4 * 1024 * 1024
MAX_ALIASES = 1000
MAX_NODES = 100_000
MAX_DEPTH = 64


@attrs.frozen
class Document:
    """Parsed YAML plus the line of every key path (``"data.provider"`` → 3) and the file it came from.

    :ivar origins: key path prefix → the path it was translated from (a Qlib config's ``model`` came from
        ``task.model``): errors name the path and line the user wrote.
    :ivar overridden: key paths set with ``--set``: their errors carry no file line.
    """

    data: Any
    lines: Mapping[str, int] = attrs.field(factory=dict)
    source: str | None = None
    origins: Mapping[str, str] = attrs.field(factory=dict)
    overridden: tuple[str, ...] = ()

    def locate(self, path: str) -> tuple[str, int | None]:
        """The path as the user wrote it and its nearest known line (None for values set with ``--set``)."""
        for key in self.overridden:
            if _within(path, key) or _within(key, path):
                return path, None
        shown = path
        probe = path
        while probe:
            if probe in self.origins:
                shown = self.origins[probe] + path[len(probe):]
                break
            probe = probe.rpartition(".")[0]
        probe = shown
        while probe and probe not in self.lines:
            probe = probe.rpartition(".")[0]
        return shown, self.lines.get(probe)

    def error(self, message: str, path: str) -> ConfigError:
        """A :class:`ConfigError` at ``path``, with the nearest known line."""
        shown, line = self.locate(path)
        return ConfigError(message, path=shown, source=self.source, line=line)


def _within(path: str, prefix: str) -> bool:
    return path == prefix or path.startswith(prefix + ".")


class _Refused(yaml.MarkedYAMLError):
    """A document this loader refuses (too many aliases, too big, recursive, duplicate keys)."""

    def __init__(self, problem: str, mark: Any, path: str = "") -> None:
        super().__init__(problem=problem, problem_mark=mark)
        self.path = path


class _BoundedLoader(yaml.SafeLoader):
    """PyYAML's safe loader (plain data only: no tags that build objects), with bounds on what a document may do.

    Counts alias uses and nesting depth while composing and refuses an alias to a node that is still open (a
    recursive alias). A timestamp-looking scalar that is no real date (``2020-02-30``) stays text, so the key that
    holds it reports it; any other value a tag cannot build (``!!int abc``) is an error at its line.
    """

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._aliases = 0
        self._depth = 0
        self._open: list[str] = []

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            if event.anchor in self._open:
                raise _Refused(f"recursive alias *{event.anchor}: it refers to a node that contains it",
                               event.start_mark)  # fmt: skip
            self._aliases += 1
            if self._aliases > MAX_ALIASES:
                raise _Refused(f"more than {MAX_ALIASES} aliases", event.start_mark)
            return super().compose_node(parent, index)
        event = self.peek_event()
        anchor = getattr(event, "anchor", None)
        self._depth += 1
        if self._depth > MAX_DEPTH:
            raise _Refused(f"nested more than {MAX_DEPTH} levels deep", event.start_mark)
        if anchor is not None:
            self._open.append(anchor)
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1
            if anchor is not None:
                self._open.pop()

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep)
        except (ValueError, TypeError, OverflowError) as exc:
            if isinstance(exc, yaml.YAMLError):
                raise
            value = node.value if isinstance(node, yaml.ScalarNode) else type(node).__name__
            reason = str(exc).split(":")[0][:80]
            raise _Refused(f"cannot read {_shown(str(value))} as {node.tag.rpartition(':')[2]}: {reason}",
                           node.start_mark) from None  # fmt: skip

    def construct_lenient_timestamp(self, node: yaml.Node) -> Any:
        """A valid timestamp as a date/datetime; anything else the resolver took for one stays its text."""
        try:
            return self.construct_yaml_timestamp(node)
        except (ValueError, OverflowError):
            return self.construct_scalar(node)


_BoundedLoader.add_constructor("tag:yaml.org,2002:timestamp", _BoundedLoader.construct_lenient_timestamp)
# YAML 1.2's floats with an exponent and no dot (1e8, 5e-4), which YAML 1.1 (PyYAML) reads as text: configs mean
# numbers there (an account of 1e8 cash, a learning rate of 5e-4).
_BoundedLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float", re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"), list("-+0123456789")
)


def _check_graph(root: yaml.Node) -> None:
    """Refuse duplicate mapping keys and documents that expand to more than :data:`MAX_NODES` nodes.

    Nodes an alias shares are sized once (memoised), so a document of nested aliases is refused as soon as its
    expanded size passes the bound, without ever expanding it.
    """
    sizes: dict[int, int] = {}

    def size(node: yaml.Node, path: str) -> int:
        known = sizes.get(id(node))
        if known is not None:
            return known
        total = 1
        if isinstance(node, yaml.MappingNode):
            seen: dict[tuple[str, str], Any] = {}
            for key, value in node.value:
                name = str(key.value) if isinstance(key, yaml.ScalarNode) else "?"
                where = f"{path}.{name}" if path else name
                if isinstance(key, yaml.ScalarNode):
                    ident = (key.tag, key.value)
                    if ident in seen:
                        raise _Refused(f"duplicate key {key.value!r} (also on line {seen[ident].line + 1}; YAML "
                                       "would keep only the last)", key.start_mark, where)  # fmt: skip
                    seen[ident] = key.start_mark
                total += size(key, where) + size(value, where)
        elif isinstance(node, yaml.SequenceNode):
            total += sum(size(item, f"{path}.{i}" if path else str(i)) for i, item in enumerate(node.value))
        if total > MAX_NODES:
            raise _Refused(f"expands to more than {MAX_NODES} values through its aliases (a YAML bomb?)",
                           node.start_mark, path or "(document)")  # fmt: skip
        sizes[id(node)] = total
        return total

    size(root, "")


def _record_lines(node: yaml.Node, prefix: str, lines: dict[str, int]) -> None:
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = str(key_node.value) if isinstance(key_node, yaml.ScalarNode) else "?"
            path = f"{prefix}.{key}" if prefix else key
            lines[path] = key_node.start_mark.line + 1
            _record_lines(value_node, path, lines)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            path = f"{prefix}.{i}" if prefix else str(i)
            lines[path] = item.start_mark.line + 1
            _record_lines(item, path, lines)


def _yaml_failure(exc: yaml.YAMLError, text: str, source: str | None) -> ConfigError:
    if isinstance(exc, yaml.reader.ReaderError):
        line = text.count("\n", 0, exc.position) + 1
        char = exc.character if isinstance(exc.character, str) else chr(exc.character)
        return ConfigError(f"invalid YAML: unacceptable character {ord(char):#06x} (binary data is not a config)",
                           source=source, line=line)  # fmt: skip
    mark = getattr(exc, "problem_mark", None)
    line = mark.line + 1 if mark is not None else None
    problem = getattr(exc, "problem", None) or str(exc)
    if isinstance(exc, _Refused):
        return ConfigError(problem, path=exc.path, source=source, line=line)
    context = getattr(exc, "context", None)
    if context:
        problem = f"{problem} ({context})"
    return ConfigError(f"invalid YAML: {problem}", source=source, line=line)


def parse_yaml(text: str, source: str | None = None) -> Document:
    """Parse YAML ``text`` into a :class:`Document`; syntax errors become a :class:`ConfigError` with the line.

    Plain data only (PyYAML's safe schema). Refused with the line: more than :data:`MAX_ALIASES` aliases, a
    recursive alias, a document that expands to more than :data:`MAX_NODES` values, nesting deeper than
    :data:`MAX_DEPTH`, and a key given twice in one mapping.
    """
    try:
        loader = _BoundedLoader(text)  # checks for unprintable characters at once
    except yaml.YAMLError as exc:
        raise _yaml_failure(exc, text, source) from None
    try:
        node = loader.get_single_node()
        if node is not None:
            _check_graph(node)
        data = loader.construct_document(node) if node is not None else {}
    except yaml.YAMLError as exc:
        raise _yaml_failure(exc, text, source) from None
    except RecursionError:
        raise ConfigError("invalid YAML: nested too deeply", source=source) from None
    finally:
        loader.dispose()
    lines: dict[str, int] = {}
    if node is not None:
        _record_lines(node, "", lines)
    return Document(data, lines, source)


def parse_value(text: str) -> Any:
    """One ``--set`` or ``${VAR}`` value read as YAML (``0.1`` → 0.1), or the text itself if it is not YAML."""
    if not text.strip():
        return text
    try:
        return parse_yaml(text).data
    except ConfigError:
        return text


def _decode(raw: bytes, source: str) -> str:
    """Config bytes as text: UTF-8 (a BOM is allowed), or UTF-16/32 with a BOM; anything else names the byte."""
    import codecs

    for bom, encoding in ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"),
                          (codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"),
                          (codecs.BOM_UTF16_BE, "utf-16")):  # fmt: skip
        if raw.startswith(bom):
            try:
                return raw.decode(encoding)
            except UnicodeDecodeError:
                raise ConfigError(f"not valid {encoding.upper()} text", source=source) from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise ConfigError(f"not UTF-8 text: byte {raw[exc.start]:#04x} cannot be decoded (save the file as UTF-8)",
                          source=source, line=line) from None  # fmt: skip


def read_yaml(path: str | os.PathLike[str], *, mapping: bool = True) -> Document:
    """Read and parse a YAML file; anything unreadable is a :class:`ConfigError` naming it.

    Refused: a missing file, a folder, a file over :data:`MAX_CONFIG_BYTES`, bytes that are not UTF-8 (or UTF-16/32
    with a BOM), an empty document and, with ``mapping``, a top level that is not a mapping.
    """
    p = Path(path)
    source = str(p)
    try:
        if p.is_dir():
            raise ConfigError("is a folder, not a config file", source=source)
        with p.open("rb") as handle:
            raw = handle.read(MAX_CONFIG_BYTES + 1)
    except FileNotFoundError:
        raise ConfigError("config file not found", source=source) from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file: {exc.strerror or exc}", source=source) from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError(f"config file is larger than {MAX_CONFIG_BYTES // (1024 * 1024)} MiB", source=source)
    doc = parse_yaml(_decode(raw, source), source=source)
    if doc.data == {} and not doc.lines:
        raise ConfigError("the config file is empty (no YAML document)", source=source)
    if mapping and not isinstance(doc.data, dict):
        raise ConfigError(f"the top level must be a mapping of keys, got {_kind(doc.data)}", source=source, line=1)
    return doc


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
            return parse_value(text)
        return text

    return attrs.evolve(doc, data=substitute(doc.data, ""))


def apply_overrides(doc: Document, overrides: Iterable[str]) -> Document:
    """Apply ``a.b.c=value`` overrides (values parsed as YAML; list items addressed by index)."""
    data = _deep_copy(doc.data if doc.data is not None else {})
    overridden: list[str] = []
    for item in overrides:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"override {item!r} must look like key.path=value")
        value = parse_value(raw) if raw.strip() else ""
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
        overridden.append(key)
    return attrs.evolve(doc, data=data, overridden=(*doc.overridden, *overridden))


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
    document: Document | None = attrs.field(default=None, eq=False, repr=False)

    def error(self, message: str, path: str) -> ConfigError:
        """A :class:`ConfigError` at the key ``path`` (qcore's form), naming the key as written and its line."""
        if self.document is not None:
            return self.document.error(message, path)
        return ConfigError(message, path=path, source=self.source)

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
            raise self.fail(f"expected a mapping, got {_kind(value)}", path)
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
        if not isinstance(value, str) or not value.strip():
            raise self.fail(f"expected a non-empty string, got {_shown(value)}", path)
        return value

    def integer(self, value: Any, path: str, low: int | None = None, high: int | None = None) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(f"expected an integer, got {_shown(value)}", path)
        if (low is not None and value < low) or (high is not None and value > high):
            raise self.fail(f"expected an integer in {low}..{high}, got {value}", path)
        return value

    def date(self, value: Any, path: str) -> pd.Timestamp | None:
        if value is None:
            return None
        try:
            return parse_date(value, path)
        except DateError as exc:
            raise self.fail(exc.message, path) from None

    def sequence(self, value: Any, path: str, what: str) -> list[Any]:
        if not isinstance(value, list):
            raise self.fail(f"expected a list of {what}, got {_kind(value)}", path)
        return value

    def component(self, value: Any, path: str) -> ComponentSpec:
        if isinstance(value, str):
            return ComponentSpec(self.string(value, path))
        body = self.mapping(value, path, ("name", "kwargs"), required=("name",))
        kwargs = body.get("kwargs") or {}
        if not isinstance(kwargs, dict):
            raise self.fail(f"expected a mapping of keyword arguments, got {_kind(kwargs)}", f"{path}.kwargs")
        for key in kwargs:
            if not isinstance(key, str) or not key.isidentifier():
                raise self.fail(f"keyword argument names are identifiers, got {key!r}", f"{path}.kwargs")
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


def _kind(value: Any) -> str:
    """How an error names the type of a value a user wrote."""
    names = {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean", int: "an integer",
             float: "a number", type(None): "nothing (null)"}  # fmt: skip
    return names.get(type(value), type(value).__name__)


def _shown(value: Any) -> str:
    """A value as an error quotes it (long values cut)."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


_TOP_KEYS = ("experiment", "seed", "plugins", "data", "dataset", "model", "backtest", "records", "recorder")
_DATA_KEYS = ("provider", "market_rules", "universe", "freq", "start", "end", "fields", "missing_fields")
#: Values of ``data.missing_fields``.
MISSING_FIELDS = ("nan", "error")
_DATASET_KEYS = ("features", "instruments", "segments", "infer_processors", "learn_processors", "fit_start", "fit_end")
_BACKTEST_KEYS = ("strategy", "executor", "start", "end", "account", "benchmark", "exchange", "pos_type")
#: Records run after prediction when a config names none: the signal, its analysis, and the backtest if any.
DEFAULT_RECORDS = ("signal", "sig_analysis")
BACKTEST_RECORD = "port_analysis"
#: The largest seed numpy's global generator takes.
MAX_SEED = 2**32 - 1


def _ordered(r: _Reader, start: pd.Timestamp | None, end: pd.Timestamp | None, path: str, what: str) -> None:
    if start is not None and end is not None and end < start:
        raise r.fail(f"{what} ends ({end.date()}) before it starts ({start.date()})", path)


def _segments(r: _Reader, value: Any) -> dict[str, tuple[pd.Timestamp, pd.Timestamp]]:
    raw_segments = r.mapping(value, "dataset.segments", ("train", "valid", "test"), required=("train",))
    segments = {}
    for name, bounds in raw_segments.items():
        path = f"dataset.segments.{name}"
        if not isinstance(bounds, list) or len(bounds) != 2:
            raise r.fail(f"expected [start, end], got {_shown(bounds)}", path)
        start, end = r.date(bounds[0], f"{path}.0"), r.date(bounds[1], f"{path}.1")
        if start is None or end is None:
            raise r.fail("expected [start, end] with both dates given", f"{path}.{0 if start is None else 1}")
        _ordered(r, start, end, path, f"the {name} segment")
        segments[name] = (start, end)
    return segments


def _dataset(r: _Reader, value: Any) -> DatasetConfig:
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


def _backtest(r: _Reader, value: Any) -> BacktestConfig:
    body = r.mapping(value, "backtest", _BACKTEST_KEYS, required=("strategy",))
    options = {k: v for k, v in body.items() if k not in ("strategy", "executor")}
    for key in ("start", "end"):
        if key in options:
            options[key] = r.date(options[key], f"backtest.{key}")
    _ordered(r, options.get("start"), options.get("end"), "backtest.end", "the backtest")
    if options.get("exchange") is not None and not isinstance(options["exchange"], dict):
        raise r.fail(f"expected a mapping of exchange options, got {_kind(options['exchange'])}", "backtest.exchange")
    if "pos_type" in options and options["pos_type"] != "Position":
        raise r.fail(f"only pos_type Position is supported, got {_shown(options['pos_type'])}", "backtest.pos_type")
    executor = r.component(body["executor"], "backtest.executor") if "executor" in body else ComponentSpec("simulator")
    return BacktestConfig(r.component(body["strategy"], "backtest.strategy"), executor, options)


def _data(r: _Reader, value: Any) -> DataConfig:
    data = r.mapping(value, "data", _DATA_KEYS, required=("provider",))
    fields = data.get("fields")
    if fields is not None:
        if not isinstance(fields, list) or not fields:
            raise r.fail(f"expected a non-empty list of field names, got {_shown(fields)}", "data.fields")
        fields = tuple(r.string(f, f"data.fields.{i}").lstrip("$").lower() for i, f in enumerate(fields))
    start, end = r.date(data.get("start"), "data.start"), r.date(data.get("end"), "data.end")
    if start is not None and end is not None and end < start:
        raise r.fail(f"end {end.date()} is before start {start.date()}", "data.end")
    rules = data.get("market_rules")
    missing = data.get("missing_fields")
    if missing is not None and missing not in MISSING_FIELDS:
        raise r.fail(f"expected one of {', '.join(MISSING_FIELDS)}, got {_shown(missing)}", "data.missing_fields")
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


def validate(doc: Document) -> WorkflowConfig:
    """Turn a parsed document into a :class:`WorkflowConfig`, or raise :class:`ConfigError` at the bad key."""
    r = _Reader(doc)
    if not isinstance(doc.data, dict):
        raise r.fail(f"the top level must be a mapping of sections, got {_kind(doc.data)}", "")
    top = r.mapping(doc.data, "", _TOP_KEYS, required=("data",))
    data_config = _data(r, top["data"])
    dataset = _dataset(r, top["dataset"]) if top.get("dataset") is not None else None
    model = r.component(top["model"], "model") if top.get("model") is not None else None
    if model is not None and dataset is None:
        raise r.fail("a model needs a dataset section", "model")
    backtest = _backtest(r, top["backtest"]) if top.get("backtest") is not None else None
    if top.get("records") is not None:
        items = r.sequence(top["records"], "records", "records")
        records = tuple(r.component(item, f"records.{i}") for i, item in enumerate(items))
    elif model is not None:
        names = DEFAULT_RECORDS + ((BACKTEST_RECORD,) if backtest is not None else ())
        records = tuple(ComponentSpec(name) for name in names)
    else:
        records = ()
    return WorkflowConfig(
        data=data_config,
        experiment=r.string(top.get("experiment", "default"), "experiment"),
        seed=r.integer(top.get("seed", 0), "seed", 0, MAX_SEED),
        plugins=r.plugins(top.get("plugins"), "plugins"),
        recorder=r.component(top.get("recorder") or "local", "recorder"),
        dataset=dataset,
        model=model,
        backtest=backtest,
        records=records,
        source=doc.source,
        raw=doc.data,
        document=doc,
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
    if not isinstance(data, Mapping):
        raise ConfigError(f"a workflow config is a mapping, got {_kind(data)}", source=source)
    return validate(Document(_deep_copy(dict(data)), {}, source))
