"""Names on disk: instrument directories, field files, frequencies and their date formats.

Qlib stores instrument ``SH600000`` under ``features/sh600000/`` and field ``$close`` of frequency ``day`` as
``close.day.bin``. Windows reserved names (``CON``, ``PRN``, ``AUX``, ``NUL``, ``COM0``-``COM9``,
``LPT0``-``LPT9``) get the prefix ``_qlib_``. Qlib removes that prefix with ``str.lstrip("_qlib_")``, which strips
a *character set* (``_qlib_lpt1`` becomes ``pt1``); here the exact prefix is removed.

Symbols become folder names, so a symbol that could name another place (``../x``, ``a/b``, a NUL byte, ``..``) is
a :class:`DataError`: nothing a store or a source file says can make qcore read or write outside the store.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from qcore.errors import DataError

QLIB_PREFIX = "_qlib_"
RESERVED_NAMES = frozenset(
    ["CON", "PRN", "AUX", "NUL"] + [f"COM{i}" for i in range(10)] + [f"LPT{i}" for i in range(10)]
)
#: Field files end in ``.<freq>.bin``.
BIN_SUFFIX = ".bin"
#: Order in which the usual fields are listed (others follow alphabetically).
CANONICAL_FIELDS = ("open", "high", "low", "close", "vwap", "volume", "amount", "factor", "change")
#: Frequencies whose calendars hold dates only.
DAILY_FREQS = frozenset({"day", "1d", "d", "week", "1w", "w", "month", "1mon", "mon"})
DAY_FORMAT = "%Y-%m-%d"
HIGH_FREQ_FORMAT = "%Y-%m-%d %H:%M:%S"

_FIELD_RE = re.compile(r"^[a-z0-9_][a-z0-9_.\-]*$")
_FREQ_RE = re.compile(r"^[a-z0-9_]+$")
#: Characters a symbol may not hold: path separators, NUL and the other control characters.
_UNSAFE_SYMBOL_RE = re.compile(r"[/\\\x00-\x1f\x7f]")


def symbol_problem(code: object) -> str | None:
    """Why ``code`` cannot be an instrument symbol (it would not be one folder under ``features/``), or ``None``."""
    if not isinstance(code, str):
        return f"symbol {code!r} is not text"
    text = code.strip()
    if not text:
        return "empty symbol"
    if _UNSAFE_SYMBOL_RE.search(text):
        return f"invalid symbol {code!r}: symbols cannot hold '/', '\\' or control characters"
    if text.strip(".") == "":
        return f"invalid symbol {code!r}: a symbol cannot be made of dots only"
    return None


def check_symbol(code: object) -> str:
    """``code`` stripped, if it can name an instrument folder; else a :class:`DataError`."""
    problem = symbol_problem(code)
    if problem is not None:
        raise DataError(problem)
    return str(code).strip()


def code_to_fname(code: str) -> str:
    """The directory name of instrument ``code`` under ``features/`` (lower case, reserved names prefixed).

    :raises DataError: ``code`` would not be a single folder name (``../x``, ``a/b``, ``..``, control characters).
    """
    text = check_symbol(code)
    if text.upper() in RESERVED_NAMES:
        text = QLIB_PREFIX + text
    return text.lower()


def fname_to_code(fname: str) -> str:
    """The instrument symbol (upper case) of a ``features/`` directory or a source file stem."""
    text = str(fname).strip()
    if text.lower().startswith(QLIB_PREFIX):
        text = text[len(QLIB_PREFIX) :]
    return text.upper()


def normalise_field(name: str) -> str:
    """``$Close`` → ``close``: strip one leading ``$``, lower-case, and check it can be a file name."""
    text = str(name).strip()
    if text.startswith("$"):
        text = text[1:]
    text = text.lower()
    if not _FIELD_RE.match(text):
        raise DataError(f"invalid field name {name!r}: use letters, digits, '_', '-' or '.'")
    return text


def normalise_fields(names: Iterable[str]) -> list[str]:
    """:func:`normalise_field` of each name, keeping order and dropping repeats."""
    out: list[str] = []
    for name in names:
        field = normalise_field(name)
        if field not in out:
            out.append(field)
    return out


def check_freq(freq: str) -> str:
    """``freq`` if it can be part of a file name (``day``, ``1min``...), else a :class:`DataError`."""
    text = str(freq).strip().lower()
    if not _FREQ_RE.match(text):
        raise DataError(f"invalid frequency {freq!r}")
    return text


def is_daily(freq: str) -> bool:
    """Whether calendars of ``freq`` hold dates only (``day``) rather than timestamps (``1min``)."""
    return check_freq(freq) in DAILY_FREQS


def date_format(freq: str) -> str:
    """The ``strftime`` format of ``freq``'s calendar and instrument files, as Qlib's ``dump_bin`` writes them."""
    return DAY_FORMAT if is_daily(freq) else HIGH_FREQ_FORMAT


def bin_name(field: str, freq: str) -> str:
    """``close`` + ``day`` → ``close.day.bin``."""
    return f"{field}.{freq}{BIN_SUFFIX}"


def field_order(fields: Iterable[str]) -> list[str]:
    """Fields in canonical order: the usual OHLCV fields first, then the rest alphabetically."""
    names = set(fields)
    head = [f for f in CANONICAL_FIELDS if f in names]
    return head + sorted(names - set(head))
