"""YAML documents with line numbers: the layer every config reader shares (workflows, ``BT.yaml``, RL configs).

:func:`read_yaml` / :func:`parse_yaml` read YAML with a bounded safe loader into a :class:`Document` that knows the
line of every key path, so any reader can raise a :class:`~qcore.errors.ConfigError` naming the key and its line
(:meth:`Document.error`). :func:`interpolate` fills ``${VAR}`` / ``${VAR:-default}`` from the environment and
:func:`apply_overrides` applies ``--set a.b=c``. Nothing here knows what a workflow is (that is :mod:`qcore.config`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import attrs
import yaml

from qcore.errors import ConfigError

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
            raise _Refused(f"cannot read {shown(str(value))} as {node.tag.rpartition(':')[2]}: {reason}",
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
        raise ConfigError(f"the top level must be a mapping of keys, got {kind_of(doc.data)}", source=source, line=1)
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
    data = deep_copy(doc.data if doc.data is not None else {})
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


def kind_of(value: Any) -> str:
    """How an error names the type of a value a user wrote (``a mapping``, ``an integer``...)."""
    names = {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean", int: "an integer",
             float: "a number", type(None): "nothing (null)"}  # fmt: skip
    return names.get(type(value), type(value).__name__)


def shown(value: Any) -> str:
    """A value as an error quotes it (long values cut)."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def deep_copy(value: Any) -> Any:
    """A copy of plain YAML data (nested dicts and lists copied, scalars shared)."""
    if isinstance(value, dict):
        return {k: deep_copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [deep_copy(v) for v in value]
    return value
