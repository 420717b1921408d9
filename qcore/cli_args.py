"""Checks of command-line arguments that are not about the command line: reading a fields file, an output path
that loses nothing, a ``--start``/``--end`` range, an ``--instruments`` value against the store, the data provider
and recorder a command opens.

Each refuses with a kernel error before any expensive work: :class:`~qcore.errors.ArgumentError` naming the option
(``qcore`` reports it as a usage error) or :class:`~qcore.errors.ConfigError` naming the file and line. Plugins'
commands use them too.
"""

from __future__ import annotations

import difflib
import inspect
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from qcore.errors import ArgumentError, ConfigError

#: Largest ``--fields-file`` read (a file of expressions is a few kilobytes; anything near this is a mistake).
MAX_FIELDS_FILE_BYTES = 16 * 1024 * 1024

#: Column names the output's index already uses.
INDEX_NAMES = ("instrument", "datetime")


def fields_file_text(path: str) -> str:
    """The file's text, refusing unreadable, oversized and non-UTF-8 files with the line of the bad byte."""
    try:
        size = Path(path).stat().st_size
        if size > MAX_FIELDS_FILE_BYTES:
            raise ConfigError(f"file is {size} bytes; a fields file may have at most {MAX_FIELDS_FILE_BYTES}",
                              source=path)
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read the file: {exc.strerror or exc}", source=path) from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ConfigError(
            f"not UTF-8 text: byte 0x{raw[exc.start]:02x} cannot be decoded (save the file as UTF-8)",
            source=path,
            line=line,
        ) from None


def read_fields_file(path: str) -> dict[str, str]:
    """``name,expression`` rows (a header row ``name,expression`` is skipped; the expression may be unquoted).

    :raises ConfigError: naming the file and line of a malformed row, a duplicate or reserved name, an unreadable
        or non-UTF-8 file, or a field longer than the CSV reader's limit.
    """
    import csv
    import io

    out: dict[str, str] = {}
    reader = csv.reader(io.StringIO(fields_file_text(path), newline=""))
    lineno = 0
    try:
        for row in reader:
            lineno = reader.line_num
            if not row or row[0].startswith("#") or (not out and row[:2] == ["name", "expression"]):
                continue
            if len(row) > 2:  # an unquoted expression with commas: everything after the name is the expression
                row = [row[0], ",".join(row[1:])]
            if len(row) != 2 or not row[0].strip() or not row[1].strip():
                raise ConfigError("expected 'name,expression'", source=path, line=lineno)
            name = row[0].strip()
            if name in out:
                raise ConfigError(f"duplicate name {name!r}", source=path, line=lineno)
            if name in INDEX_NAMES:
                raise ConfigError(f"name {name!r} is taken by the output's index ({', '.join(INDEX_NAMES)})",
                                  source=path, line=lineno)
            out[name] = row[1].strip()
    except csv.Error as exc:  # a field over csv.field_size_limit(), an unterminated quote at the end...
        raise ConfigError(f"malformed CSV: {exc}", source=path, line=reader.line_num or lineno + 1) from None
    if not out:
        raise ConfigError("no expression in file", source=path)
    return out


def unique_fields(field_exprs: Sequence[str]) -> list[str]:
    """The ``--field`` expressions; the same text twice would give two columns of one name, so it is refused."""
    seen: dict[str, int] = {}
    for number, text in enumerate(field_exprs, start=1):
        if text in seen:
            raise ArgumentError(
                f"{text!r} is given twice (occurrences {seen[text]} and {number}); each --field is a column named "
                "by its text, so give it once (or use --fields-file to name columns)",
                option="--field",
            )
        seen[text] = number
    return list(field_exprs)


def check_output(out_path: str, store: str | None = None) -> None:
    """``--out`` can be written without losing anything: it is not inside the ``store`` being read, it replaces no
    file but a Parquet or Arrow file, no existing part of its folder is a file, and the nearest existing folder is
    writable. Checked before any evaluation; missing folders are created when the result is written."""
    from qcore.tables import is_table_file

    target = Path(out_path)
    if target.is_dir():
        raise ArgumentError(f"{out_path} is a folder; give a file name such as out.parquet", option="--out")
    if store and inside(target, Path(store).expanduser()):
        raise ArgumentError(f"{out_path} is inside the store being read ({store}); write the result elsewhere",
                            option="--out")
    if target.is_file() and not is_table_file(target):
        raise ArgumentError(f"{out_path} exists and is not a Parquet or Arrow file; it is left alone (remove it, "
                            "or choose another name)", option="--out")
    folder = target.parent
    while not os.path.lexists(folder) and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise ArgumentError(f"{folder} is not a folder, so {out_path} cannot be created", option="--out")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ArgumentError(f"folder {folder} is not writable", option="--out")


def inside(path: Path, folder: Path) -> bool:
    """Whether ``path`` (once links are resolved) lies under the existing folder ``folder``."""
    try:
        return folder.is_dir() and path.resolve().is_relative_to(folder.resolve())
    except (OSError, RuntimeError):  # a link loop: not provably inside
        return False


def dates(start: Any, end: Any) -> tuple[Any, Any]:
    """``--start`` and ``--end`` as timestamps (None when omitted), refusing bad dates and an empty range."""
    from qcore.dates import parse_optional_date

    start = parse_optional_date(start, "--start")
    end = parse_optional_date(end, "--end")
    if start is not None and end is not None and end < start:
        raise ConfigError(f"--start {start.date()} is after --end {end.date()}")
    return start, end


def instruments(provider: Any, text: str) -> str | list[str]:
    """``--instruments``: a market name, one symbol, or comma-separated symbols (checked by the engine)."""
    if "," in text:
        symbols = list(dict.fromkeys(s.strip() for s in text.split(",") if s.strip()))
        if not symbols:
            raise ArgumentError(f"{text!r} names no instrument", option="--instruments")
        return symbols
    name = text.strip()
    if not name:
        raise ArgumentError("give a market name or symbols", option="--instruments")
    markets = provider.markets()
    if name in markets:
        return name
    symbols = provider.universe("all")
    if name in symbols:
        return [name]
    upper = {symbol.upper(): symbol for symbol in symbols}
    close = [upper[name.upper()]] if name.upper() in upper else difflib.get_close_matches(name, [*markets, *symbols])
    hint = f"; did you mean {' or '.join(repr(c) for c in close[:3])}?" if close else ""
    raise ArgumentError(
        f"{name!r} is neither a market nor a symbol of the store{hint} (markets: {', '.join(markets)})",
        option="--instruments",
    )


def check_takes_uri(kernel: Any, name: str) -> None:
    """The data provider ``--provider`` names accepts a ``provider_uri`` (a toy in-memory market does not)."""
    factory = kernel.registry("data_provider").get(name)
    try:
        parameters = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):  # no signature to read: let the provider itself judge
        return
    if any(p.kind is p.VAR_KEYWORD or p.name == "provider_uri" for p in parameters):
        return
    accepted = ", ".join(p.name for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY))
    raise ArgumentError(
        f"data provider {name!r} takes no provider_uri (it takes: {accepted or 'no arguments'}), so it cannot "
        "read --provider-uri",
        option="--provider",
    )


def default_provider(kernel: Any) -> str:
    """The data provider a command opens when it gets a store's location (``--provider-uri``) and no ``--provider``:
    the one whose registered factory is marked ``default_for_uri = True`` by its plugin (exactly one must be)."""
    registry = kernel.registry("data_provider")
    marked = [entry.name for entry in registry if getattr(entry.factory, "default_for_uri", False)]
    if len(marked) == 1:
        return marked[0]
    listing = ", ".join(registry.names()) or "none"
    if not marked:
        raise ArgumentError(f"no loaded plugin names a default data provider for a store location; choose one "
                            f"(data providers: {listing})", option="--provider")  # fmt: skip
    raise ArgumentError(f"several data providers are the default for a store location ({', '.join(marked)}); "
                        "choose one", option="--provider")  # fmt: skip


def open_recorder(kernel: Any, name: str, uri: str | None = None) -> Any:
    """The recorder ``name`` opened at ``uri`` (``--uri``), the location argument every recorder takes; without
    ``uri`` it opens its default location. A recorder that takes no ``uri`` is refused naming what it takes."""
    if uri is None:
        return kernel.create("recorder", name)
    factory = kernel.registry("recorder").get(name)
    try:
        parameters = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):  # no signature to read: let the recorder judge
        parameters = None
    if parameters is not None and not any(p.kind is p.VAR_KEYWORD or p.name == "uri" for p in parameters):
        accepted = ", ".join(p.name for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY))
        raise ArgumentError(f"recorder {name!r} takes no uri (it takes: {accepted or 'no arguments'})",
                            option="--uri")  # fmt: skip
    return kernel.create("recorder", name, uri=uri)
