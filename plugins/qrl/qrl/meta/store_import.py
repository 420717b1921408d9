"""Importing exported source files into a Qlib-layout store through the registered ``qcore data import`` command.

qrl writes no store itself: it normalises, cleans and aligns the files (:class:`~qrl.meta.processor.DataProcessor`),
writes one long CSV in the importer's layout (``symbol``, ``date``, adjusted ``open``/``high``/``low``/``close``,
``volume``, ``factor``; one row per bar on the aligned calendar, none where a ticker has no tradable bar) to a
temporary folder, and runs ``qcore data import`` on it, whichever market-adapter plugin provides that command; that
command writes the store atomically under its lock.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from qcore.errors import DataError, QcoreError
from qrl.meta.processor import DataProcessor

#: Store fields written from an aligned panel, in column order.
STORE_FIELDS = ("open", "high", "low", "close", "volume", "factor")


def importer_frame(proc: DataProcessor) -> pd.DataFrame:
    """The aligned panel of ``proc`` as the importer's long table (tradable bars only, dates as ``YYYY-MM-DD`` or
    ISO stamps)."""
    panel = proc.aligned_panel()
    t, n = panel.shape
    close = panel["close"].reshape(-1)
    keep = np.isfinite(close) & (close > 0)
    dates = panel.dates
    text = dates.strftime("%Y-%m-%d") if (dates.normalize() == dates).all() else dates.strftime("%Y-%m-%d %H:%M:%S")
    frame = pd.DataFrame({"symbol": np.tile(np.asarray(panel.instruments, dtype=object), t),
                          "date": np.repeat(np.asarray(text, dtype=object), n)})
    for name in STORE_FIELDS:
        frame[name] = panel[name].astype(np.float64).reshape(-1)
    return frame[keep].sort_values(["symbol", "date"], kind="stable").reset_index(drop=True)


def import_files(src: str | Path, fmt: str, to: str | Path, *, tickers: Sequence[str] | None = None,
                 start: object = None, end: object = None, mode: str = "all", overwrite: bool = False,
                 kernel: Any = None) -> dict[str, Any]:
    """Read ``src`` (format ``fmt``), align it and import it into the store ``to`` with ``qcore data import``;
    returns the dataset manifest with the importer's one-line summary. A failing import is a :class:`QcoreError`
    with the importer's message (the store is left as it was)."""
    proc = DataProcessor(fmt, start, end, path=src, kernel=kernel)
    proc.download_data(tickers)
    proc.clean_data()
    frame = importer_frame(proc)
    if frame.empty:
        raise DataError("no tradable bar to import", path=str(src))
    with tempfile.TemporaryDirectory(prefix="qrl-import-") as tmp:
        staged = Path(tmp) / "bars.csv"
        frame.to_csv(staged, index=False, float_format="%.10g")
        cmd = [sys.executable, "-m", "qcore", "data", "import", str(staged), "--to", str(to), "--mode", mode]
        if overwrite:
            cmd.append("--overwrite")
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        message = (done.stderr.strip() or done.stdout.strip()).splitlines()
        raise QcoreError(f"qcore data import failed: {message[-1] if message else f'exit {done.returncode}'}")
    out = proc.manifest()
    out["store"] = str(Path(to).resolve())
    out["imported"] = done.stdout.strip()
    return out
