"""The server's requests: JSON tickets, parsed into frozen values and checked against :class:`Limits`.

A ticket is a JSON object with a ``kind``:

- ``{"kind": "calendar", "freq": "day"}``: the calendar's timestamps;
- ``{"kind": "instruments", "market": "all"}``: a market's instruments with their spans;
- ``{"kind": "fields", "fields": [...], "instruments": [...], "start": ..., "end": ..., "freq": "day"}``: raw
  fields of the listed symbols on the calendar rows between the dates;
- ``{"kind": "evaluate", "expressions": [[name, expr], ...] | [expr] | {name: expr}, "feature_set": name, "label": bool,
  "instruments": market | [...], "start", "end", "freq", "missing_fields", "index"}``: expressions (or a
  registered feature set) evaluated on the server into one frame;
- ``{"kind": "pit", "field": "eps_q", "instruments": [...]}``: every point-in-time record of a period field (the
  store's ``financial/`` data) for the listed symbols.

Everything wrong with a ticket is a :class:`RequestError` naming the key; the server turns it into a Flight error.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

import attrs

#: Keys each request kind accepts (anything else is an error naming it).
_KEYS = {
    "calendar": {"kind", "freq"},
    "instruments": {"kind", "market"},
    "fields": {"kind", "fields", "instruments", "start", "end", "freq"},
    "evaluate": {"kind", "expressions", "feature_set", "label", "instruments", "start", "end", "freq",
                 "missing_fields", "index"},
    "pit": {"kind", "field", "instruments"},
}  # fmt: skip


#: What a field, frequency or market name may be (the store checks again; this keeps paths out of the server).
_NAME = re.compile(r"^[A-Za-z0-9_]{1,64}$")
_BAD = set("/\\\0")


class RequestError(ValueError):
    """A ticket the server refuses; the message says what is wrong."""


@attrs.frozen
class Limits:
    """Bounds on one request.

    :ivar max_ticket_bytes: size of the JSON ticket.
    :ivar max_instruments: symbols listed in one request.
    :ivar max_fields: raw fields in one request.
    :ivar max_expressions: expressions (or feature-set columns) in one request.
    :ivar max_expression_length: characters of one expression.
    :ivar max_cells: rows × instruments × columns of one answer (estimated before any work).
    """

    max_ticket_bytes: int = 1 << 20
    max_instruments: int = 20_000
    max_fields: int = 256
    max_expressions: int = 2_000
    max_expression_length: int = 4_000
    max_cells: int = 2_000_000_000


@attrs.frozen
class CalendarRequest:
    """A calendar's timestamps."""

    freq: str = "day"


@attrs.frozen
class InstrumentsRequest:
    """A market's instruments and spans."""

    market: str = "all"


@attrs.frozen
class FieldsRequest:
    """Raw fields of symbols between two dates."""

    fields: tuple[str, ...]
    instruments: tuple[str, ...]
    start: Any = None
    end: Any = None
    freq: str = "day"


@attrs.frozen
class EvaluateRequest:
    """Expressions (name → expression) or a feature set, evaluated on the server."""

    expressions: tuple[tuple[str, str], ...]
    feature_set: str | None
    label: bool
    instruments: str | tuple[str, ...]
    start: Any = None
    end: Any = None
    freq: str = "day"
    missing_fields: str = "error"
    index: str = "datetime"


@attrs.frozen
class PitRequest:
    """Every point-in-time record of one period field (``eps_q``, ``roe_a``) for some symbols."""

    field: str
    instruments: tuple[str, ...]


Request = CalendarRequest | InstrumentsRequest | FieldsRequest | EvaluateRequest | PitRequest


def _text(doc: Mapping[str, Any], key: str, default: str | None = None, limit: int = 64) -> str:
    value = doc.get(key, default)
    if not isinstance(value, str) or not value.strip():
        raise RequestError(f"{key}: expected a non-empty string, got {type(value).__name__}")
    if len(value) > limit:
        raise RequestError(f"{key}: longer than {limit} characters")
    return value.strip()


def _name(doc: Mapping[str, Any], key: str, default: str) -> str:
    value = _text(doc, key, default)
    if not _NAME.match(value):
        raise RequestError(f"{key}: {value!r} is not a name (letters, digits, underscores)")
    return value


def _date(doc: Mapping[str, Any], key: str) -> Any:
    from qcore.dates import DateError, parse_optional_date

    try:
        return parse_optional_date(doc.get(key), key)
    except DateError as exc:
        raise RequestError(str(exc)) from None


def _symbols(value: Any, limits: Limits, key: str = "instruments") -> tuple[str, ...]:
    if not isinstance(value, list):
        raise RequestError(f"{key}: expected a list of symbols")
    if len(value) > limits.max_instruments:
        raise RequestError(f"{key}: {len(value)} symbols, more than the server's limit of {limits.max_instruments}")
    if not all(isinstance(s, str) and 0 < len(s) <= 64 and s.strip() and s.strip(".") and not set(s) & _BAD
               for s in value):
        raise RequestError(f"{key}: every symbol is a non-empty string of at most 64 characters without path "
                           "separators")
    return tuple(dict.fromkeys(s.strip() for s in value))


def _expressions(doc: Mapping[str, Any], limits: Limits) -> tuple[tuple[str, str], ...]:
    raw = doc.get("expressions")
    if isinstance(raw, list):
        pairs = [tuple(e) if isinstance(e, list) and len(e) == 2 else (e, e) for e in raw]
    elif isinstance(raw, Mapping):
        pairs = list(raw.items())
    else:
        raise RequestError("expressions: expected a list of expressions or of [name, expression] pairs, or an object "
                           "of name: expression")
    if not pairs:
        raise RequestError("expressions: empty")
    if len(pairs) > limits.max_expressions:
        raise RequestError(f"expressions: {len(pairs)}, more than the server's limit of {limits.max_expressions}")
    for name, text in pairs:
        if not isinstance(name, str) or not isinstance(text, str) or not text.strip():
            raise RequestError("expressions: every name and expression is a non-empty string")
        if len(text) > limits.max_expression_length or len(name) > limits.max_expression_length:
            raise RequestError(f"expressions: {text[:40]!r}... is longer than the server's limit of "
                               f"{limits.max_expression_length} characters")  # fmt: skip
    if len({name for name, _ in pairs}) != len(pairs):
        raise RequestError("expressions: a column name is given twice")
    return tuple(pairs)


def parse_ticket(raw: bytes, limits: Limits) -> Request:
    """The request a ticket holds, checked against ``limits`` (no store access: sizes are checked later)."""
    if len(raw) > limits.max_ticket_bytes:
        raise RequestError(f"ticket of {len(raw)} bytes, more than the server's limit of {limits.max_ticket_bytes}")
    try:
        doc = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise RequestError(f"the ticket is not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise RequestError("the ticket is not a JSON object")
    kind = doc.get("kind")
    if kind not in _KEYS:
        raise RequestError(f"kind: {kind!r} is not one of {', '.join(sorted(_KEYS))}")
    unknown = sorted(set(doc) - _KEYS[kind])
    if unknown:
        raise RequestError(f"unknown key(s) for a {kind} request: {', '.join(map(str, unknown))}")
    if kind == "pit":
        field = _text(doc, "field").lower().removeprefix("$$")
        if not _NAME.match(field) or not field.endswith(("_q", "_a")):
            raise RequestError(f"field: {field!r} is not a period field name (letters, digits, underscores, ending "
                               "in _q or _a)")  # fmt: skip
        return PitRequest(field, _symbols(doc.get("instruments"), limits))
    freq = _name(doc, "freq", "day") if kind != "instruments" else "day"
    if kind == "calendar":
        return CalendarRequest(freq)
    if kind == "instruments":
        return InstrumentsRequest(_name(doc, "market", "all"))
    start, end = _date(doc, "start"), _date(doc, "end")
    if start is not None and end is not None and end < start:
        raise RequestError(f"end ({end.date()}) is before start ({start.date()})")
    if kind == "fields":
        fields = doc.get("fields")
        if not isinstance(fields, list) or not all(isinstance(f, str) and f.strip().lstrip("$") for f in fields):
            raise RequestError("fields: expected a list of field names")
        if len(fields) > limits.max_fields:
            raise RequestError(f"fields: {len(fields)}, more than the server's limit of {limits.max_fields}")
        names = tuple(dict.fromkeys(f.strip().lstrip("$").lower() for f in fields))
        bad = [f for f in names if not _NAME.match(f)]
        if bad:
            raise RequestError(f"fields: {bad[0]!r} is not a field name (letters, digits, underscores)")
        return FieldsRequest(names, _symbols(doc.get("instruments"), limits), start, end, freq)
    feature_set = doc.get("feature_set")
    if (feature_set is None) == (doc.get("expressions") is None):
        raise RequestError("give expressions or a feature_set, not both")
    expressions = _expressions(doc, limits) if feature_set is None else ()
    if feature_set is not None:
        feature_set = _name(doc, "feature_set", "")
    label = doc.get("label", True)
    if not isinstance(label, bool):
        raise RequestError("label: expected true or false")
    raw_instruments = doc.get("instruments", "all")
    instruments = _symbols(raw_instruments, limits) if isinstance(raw_instruments, list) else _name(
        doc, "instruments", "all")
    missing = doc.get("missing_fields", "error")
    if missing not in ("error", "nan"):
        raise RequestError("missing_fields: 'error' or 'nan'")
    index = doc.get("index", "datetime")
    if index not in ("datetime", "instrument"):
        raise RequestError("index: 'datetime' or 'instrument'")
    return EvaluateRequest(expressions, feature_set, label, instruments, start, end, freq, missing, index)


def check_cells(rows: int, instruments: int, columns: int, limits: Limits) -> None:
    """Refuse an answer of more than ``limits.max_cells`` cells before computing it."""
    cells = rows * instruments * columns
    if cells > limits.max_cells:
        raise RequestError(f"the answer would be {rows} rows x {instruments} instruments x {columns} columns = "
                           f"{cells} cells, more than the server's limit of {limits.max_cells}; ask for fewer "
                           "instruments, columns or dates")  # fmt: skip


def ticket(**fields: Any) -> bytes:
    """A ticket's JSON bytes (dates as ISO text), canonical: the same request gives the same bytes."""
    import pandas as pd

    def encode(value: Any) -> Any:
        if isinstance(value, pd.Timestamp):
            return value.isoformat()
        if isinstance(value, tuple):
            return list(value)
        return value

    return json.dumps({k: encode(v) for k, v in fields.items() if v is not None}, sort_keys=True,
                      separators=(",", ":")).encode()  # fmt: skip
