"""Readers of the native export formats of common market-data sources, from local files only (no network).

Each format is a column map onto one normalised long frame (:data:`COLUMNS`): ``date`` (tz-naive), ``instrument``
(upper case), raw ``open``, ``high``, ``low``, ``close``, ``volume`` in shares (or coins), ``factor`` (adjusted price
= raw price × factor, Qlib's convention; 1 without adjustment data) and ``tradable`` (False where the source marks a
suspension). Supported: ``yahoo`` (yfinance's ``Date,Open,High,Low,Close,Adj Close,Volume`` per ticker, or FinRL's
YahooDownloader frame with ``tic``), ``binance`` (data.binance.vision kline CSVs, with or without a header, epoch
milli- or microseconds), ``ccxt`` (``fetch_ohlcv`` rows: timestamp, OHLCV), ``akshare`` (``stock_zh_a_hist``'s
Chinese columns, volume in lots of 100), ``tushare`` (``daily``: ``ts_code``, ``trade_date``, ``vol`` in lots,
optional ``adj_factor``), ``baostock`` (``query_history_k_data_plus``: ``code``, ``tradestatus``) and ``alpaca``
(bars with long or one-letter names).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import attrs
import numpy as np
import pandas as pd

from qcore.errors import DataError

#: The columns of a normalised frame, in order.
COLUMNS = ("date", "instrument", "open", "high", "low", "close", "volume", "factor", "tradable")
PRICES = ("open", "high", "low", "close")
SUFFIXES = (".csv", ".csv.gz", ".parquet", ".pq")
#: Binance's kline files without a header, in their column order.
BINANCE_COLUMNS = ("open_time", "open", "high", "low", "close", "volume", "close_time", "quote_volume", "count",
                   "taker_buy_volume", "taker_buy_quote_volume", "ignore")
CCXT_COLUMNS = ("timestamp", "open", "high", "low", "close", "volume")


@attrs.frozen
class SourceFormat:
    """How one source's export maps onto the normalised columns.

    :ivar name: the format's name (``yahoo``...).
    :ivar columns: source column name (lower case, stripped) → normalised name (``date``, ``instrument``, a price,
        ``volume``, ``adj_close``, ``factor``, ``tradestatus``); columns not named are ignored.
    :ivar dates: how the date column reads: ``text`` (ISO and the like), ``yyyymmdd`` or ``epoch`` (milli- or
        microseconds by magnitude, UTC).
    :ivar headerless: column names of a file without a header row (its first cell is a number), or empty.
    :ivar volume_unit: shares per unit of the source's volume (lots of 100 for some Chinese sources).
    :ivar lot_columns: source columns whose presence means the volume is in lots of 100 (akshare's ``成交量``).
    :ivar timezone: the zone tz-aware stamps are converted to before the zone is dropped.
    :ivar symbol: turns a file stem or a symbol cell into the instrument name.
    """

    name: str
    columns: Mapping[str, str]
    dates: str = "text"
    headerless: tuple[str, ...] = ()
    volume_unit: float = 1.0
    lot_columns: tuple[str, ...] = ()
    timezone: str = "UTC"
    symbol: Callable[[str], str] = attrs.field(default=lambda s: s.strip().upper())


def _common(**extra: str) -> dict[str, str]:
    base = {"open": "open", "high": "high", "low": "low", "close": "close", "volume": "volume",
            "symbol": "instrument", "tic": "instrument", "ticker": "instrument"}
    return {**base, **extra}


def _binance_symbol(stem: str) -> str:
    """``BTCUSDT-1d-2024-01`` (Binance's file names) → ``BTCUSDT``; ``BTC/USDT`` → ``BTCUSDT``."""
    return re.split(r"-\d", stem.strip(), maxsplit=1)[0].replace("/", "").replace("_", "").replace("-", "").upper()


def _cn_symbol(code: str) -> str:
    """``600000.SH`` (Tushare), ``sh.600000`` (Baostock) or ``600000`` → Qlib's ``SH600000`` (bare codes: by
    their first digit, 6 → SH, 0/3 → SZ, 4/8 → BJ)."""
    text = code.strip().upper()
    m = re.fullmatch(r"(\d{6})\.(SH|SZ|BJ)", text) or re.fullmatch(r"(SH|SZ|BJ)\.?(\d{6})", text)
    if m:
        a, b = m.groups()
        return f"{b}{a}" if a.isdigit() else f"{a}{b}"
    if re.fullmatch(r"\d{6}", text):
        return {"6": "SH", "0": "SZ", "3": "SZ", "4": "BJ", "8": "BJ"}.get(text[0], "SH") + text
    return text


FORMATS: Mapping[str, SourceFormat] = {
    "yahoo": SourceFormat("yahoo", _common(date="date", datetime="date", **{"adj close": "adj_close",
                                                                             "adj_close": "adj_close",
                                                                             "adjclose": "adj_close",
                                                                             "adjcp": "adj_close"}),
                          timezone="America/New_York"),
    "binance": SourceFormat("binance", _common(open_time="date", **{"open time": "date"}, timestamp="date"),
                            dates="epoch", headerless=BINANCE_COLUMNS, symbol=_binance_symbol),
    "ccxt": SourceFormat("ccxt", _common(timestamp="date", datetime="date", date="date"), dates="epoch",
                         headerless=CCXT_COLUMNS, symbol=_binance_symbol),
    "akshare": SourceFormat("akshare", {"日期": "date", "开盘": "open", "收盘": "close", "最高": "high", "最低": "low",
                                        "成交量": "volume", "股票代码": "instrument", "代码": "instrument",
                                        **_common(date="date")},
                            lot_columns=("成交量",), timezone="Asia/Shanghai", symbol=_cn_symbol),
    "tushare": SourceFormat("tushare", {"ts_code": "instrument", "trade_date": "date", "open": "open",
                                        "high": "high", "low": "low", "close": "close", "vol": "volume",
                                        "adj_factor": "factor"},
                            dates="yyyymmdd", volume_unit=100.0, timezone="Asia/Shanghai", symbol=_cn_symbol),
    "baostock": SourceFormat("baostock", {"date": "date", "code": "instrument", "open": "open", "high": "high",
                                          "low": "low", "close": "close", "volume": "volume",
                                          "tradestatus": "tradestatus"},
                             timezone="Asia/Shanghai", symbol=_cn_symbol),
    "alpaca": SourceFormat("alpaca", _common(timestamp="date", t="date", o="open", h="high", l="low", c="close",
                                             v="volume", s="instrument", date="date"),
                           timezone="America/New_York"),
}


def get_format(name: str) -> SourceFormat:
    """The format called ``name``; an unknown name is a :class:`DataError` listing the known ones."""
    try:
        return FORMATS[str(name).lower()]
    except KeyError:
        raise DataError(f"unknown source format {name!r}; known: {', '.join(FORMATS)}") from None


def source_files(path: str | Path) -> list[Path]:
    """The data files of ``path``: the file itself, or every ``.csv``/``.csv.gz``/``.parquet`` file in the folder
    (not recursive), sorted by name."""
    p = Path(path)
    if p.is_file():
        return [p]
    if not p.is_dir():
        raise DataError("no such file or folder", path=str(p))
    files = sorted(f for f in p.iterdir() if f.is_file() and f.name.lower().endswith(SUFFIXES))
    if not files:
        raise DataError(f"the folder holds no {', '.join(SUFFIXES)} file", path=str(p))
    return files


def _stem(path: Path) -> str:
    name = path.name
    for suffix in SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def _read_table(path: Path, fmt: SourceFormat) -> pd.DataFrame:
    if path.name.lower().endswith((".parquet", ".pq")):
        return pd.read_parquet(path)
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=["", "NaN", "nan", "null", "None"])
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        raise DataError(f"not a readable CSV file: {exc}", path=str(path)) from None
    if fmt.headerless and len(frame.columns) and _is_number(str(frame.columns[0])):
        width = len(frame.columns)
        if width > len(fmt.headerless):
            raise DataError(f"a headerless {fmt.name} file has {width} columns, expected at most "
                            f"{len(fmt.headerless)}", path=str(path))
        frame = pd.read_csv(path, header=None, names=list(fmt.headerless[:width]), dtype=str)
    return frame


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _dates(values: pd.Series, fmt: SourceFormat, path: Path) -> pd.DatetimeIndex:
    text = values.astype("string").str.strip()
    bad = text.isna() | (text == "")
    if bad.any():
        raise DataError(f"missing date in row {int(np.argmax(bad.to_numpy())) + 2}", path=str(path))
    try:
        if fmt.dates == "yyyymmdd":
            out = pd.to_datetime(text, format="%Y%m%d")
        elif fmt.dates == "epoch" and text.str.fullmatch(r"\d+").all():
            ticks = text.astype("int64")
            unit = "us" if ticks.max() >= 10**15 else "ms"
            out = pd.to_datetime(ticks, unit=unit, utc=True)
        else:
            out = pd.to_datetime(text, format="ISO8601")
    except (ValueError, TypeError, OverflowError) as exc:
        raise DataError(f"unreadable date ({exc})", path=str(path)) from None
    index = pd.DatetimeIndex(out)
    if index.tz is not None:
        index = index.tz_convert(fmt.timezone).tz_localize(None)
    return index


def _numbers(frame: pd.DataFrame, column: str, path: Path) -> np.ndarray:
    values = pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=np.float64)
    raw = frame[column]
    bad = np.isnan(values) & raw.notna().to_numpy() & (raw.astype("string").str.strip() != "").fillna(False).to_numpy()
    if bad.any():
        row = int(np.argmax(bad))
        raise DataError(f"column {column!r} row {row + 2}: {raw.iloc[row]!r} is not a number", path=str(path))
    if np.isinf(values).any():
        raise DataError(f"column {column!r} holds an infinite value", path=str(path))
    return values


def read_file(path: Path, fmt: SourceFormat, time_interval: str = "1d") -> pd.DataFrame:
    """One file of ``fmt`` as a normalised frame (:data:`COLUMNS`), rows in the file's order.

    With ``time_interval="1d"`` stamps are cut to their day. Bad input (no date or close column, unreadable dates or
    numbers, negative prices or volumes) is a :class:`DataError` naming the file.
    """
    frame = _read_table(path, fmt)
    names: dict[str, str] = {}
    for col in frame.columns:
        target = fmt.columns.get(str(col).strip().lower())
        if target is not None and target not in names.values():
            names[str(col)] = target
    frame = frame[list(names)].rename(columns=names)
    for need in ("date", "close"):
        if need not in frame.columns:
            raise DataError(f"no {need} column for format {fmt.name!r} (columns it reads: "
                            f"{', '.join(sorted(set(fmt.columns)))})", path=str(path))
    dates = _dates(frame["date"], fmt, path)
    if time_interval == "1d":
        dates = dates.normalize()
    out = pd.DataFrame({"date": dates})
    if "instrument" in frame.columns:
        symbols = frame["instrument"].astype("string").str.strip()
        if (symbols.isna() | (symbols == "")).any():
            raise DataError("a row has no symbol", path=str(path))
        out["instrument"] = [fmt.symbol(s) for s in symbols]
    else:
        out["instrument"] = fmt.symbol(_stem(path))
    for col in PRICES:
        out[col] = _numbers(frame, col, path) if col in frame.columns else np.nan
    unit = 100.0 if any(c in names for c in fmt.lot_columns) else fmt.volume_unit
    out["volume"] = _numbers(frame, "volume", path) * unit if "volume" in frame.columns else np.nan
    if "adj_close" in frame.columns:
        with np.errstate(divide="ignore", invalid="ignore"):
            out["factor"] = _numbers(frame, "adj_close", path) / out["close"].to_numpy()
    elif "factor" in frame.columns:
        out["factor"] = _numbers(frame, "factor", path)
    else:
        out["factor"] = 1.0
    out["tradable"] = (_numbers(frame, "tradestatus", path) != 0) if "tradestatus" in frame.columns else True
    for col in (*PRICES, "volume", "factor"):
        values = out[col].to_numpy()
        if (values < 0).any():
            row = int(np.argmax(values < 0))
            raise DataError(f"negative {col} in row {row + 2}", path=str(path))
    return out[list(COLUMNS)]


def read_source(path: str | Path, fmt: str | SourceFormat, tickers: Sequence[str] | None = None,
                time_interval: str = "1d") -> tuple[pd.DataFrame, list[Path]]:
    """Every file of ``path`` in format ``fmt``, normalised and concatenated (optionally only ``tickers``), with the
    files read; a ticker asked for and not found is a :class:`DataError`."""
    spec = fmt if isinstance(fmt, SourceFormat) else get_format(fmt)
    files = source_files(path)
    frames = [read_file(f, spec, time_interval) for f in files]
    frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=list(COLUMNS))
    if tickers is not None:
        wanted = [spec.symbol(str(t)) for t in tickers]
        missing = sorted(set(wanted) - set(frame["instrument"]))
        if missing:
            raise DataError(f"no rows for ticker(s) {', '.join(missing)} in {spec.name} files", path=str(path))
        frame = frame[frame["instrument"].isin(wanted)].reset_index(drop=True)
    return frame, files
