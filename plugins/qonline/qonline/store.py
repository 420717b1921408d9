"""The online folder: ``predictions/YYYY-MM-DD.parquet`` (column ``score`` by ``(datetime, instrument)``) and,
written after it as the marker of a finished day, ``predictions/YYYY-MM-DD.json`` (the date, the model that
served it, the store's data version, the row count); ``orders/YYYY-MM-DD.{csv,parquet}`` (the orders for the next
bar), ``orders/YYYY-MM-DD.targets.{csv,parquet}`` and their marker ``orders/YYYY-MM-DD.json``;
``monitor/YYYY-MM-DD.json`` (drift); ``models/drift-YYYY-MM-DD/`` (drift models, :mod:`qonline.early`);
``log.jsonl`` (one line per step run, append-only). Each file but the log is
written atomically; a log line is one ``write`` to a file opened for appending."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from qcore.atomic import atomic_path, write_text

PREDICTIONS = "predictions"
ORDERS = "orders"
MONITOR = "monitor"
LOG = "log.jsonl"


class OnlineFolder:
    """The files of one online set, under ``root``."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    def _prediction(self, date: pd.Timestamp, suffix: str) -> Path:
        return self.root / PREDICTIONS / f"{date.date()}{suffix}"

    def prediction_meta(self, date: pd.Timestamp) -> dict[str, Any] | None:
        """The marker of ``date``'s prediction, None when that day is not finished (or its marker is unreadable)."""
        try:
            body = json.loads(self._prediction(date, ".json").read_text())
        except (OSError, ValueError):
            return None
        if not isinstance(body, dict) or not self._prediction(date, ".parquet").is_file():
            return None
        return body

    def read_prediction(self, date: pd.Timestamp) -> pd.Series:
        """The stored scores of ``date``."""
        return pd.read_parquet(self._prediction(date, ".parquet"))["score"]

    def write_prediction(self, date: pd.Timestamp, pred: pd.Series, meta: Mapping[str, Any]) -> Path:
        """Store ``date``'s scores, then its marker; returns the Parquet file's path."""
        path = self._prediction(date, ".parquet")
        with atomic_path(path) as tmp:
            pred.rename("score").to_frame().to_parquet(tmp)
        body = {"date": str(date.date()), "rows": len(pred), **meta}
        write_text(self._prediction(date, ".json"), json.dumps(body, indent=1, sort_keys=True) + "\n")
        return path

    def prediction_dates(self) -> list[pd.Timestamp]:
        """The dates with a finished prediction, in order."""
        folder = self.root / PREDICTIONS
        if not folder.is_dir():
            return []
        dates = []
        for path in folder.glob("*.json"):
            try:
                date = pd.Timestamp(path.stem)
            except ValueError:
                continue
            if self.prediction_meta(date) is not None:
                dates.append(date)
        return sorted(dates)

    # -- orders, monitor, log ---------------------------------------------------------------------------------

    def orders_path(self, date: pd.Timestamp, suffix: str) -> Path:
        """``orders/DATE<suffix>`` (``.csv``, ``.parquet``, ``.targets.csv``, ``.targets.parquet``, ``.json``)."""
        return self.root / ORDERS / f"{date.date()}{suffix}"

    def orders_meta(self, date: pd.Timestamp) -> dict[str, Any] | None:
        """The marker of ``date``'s orders (None when absent, unreadable or its tables are missing)."""
        body = _read_json(self.orders_path(date, ".json"))
        if body is None or not all(self.orders_path(date, s).is_file() for s in _ORDER_FILES):
            return None
        return body

    def write_orders(self, date: pd.Timestamp, orders: pd.DataFrame, targets: pd.DataFrame,
                     meta: Mapping[str, Any]) -> Path:  # fmt: skip
        """Store the orders and target positions (CSV and Parquet each), then the marker; returns the CSV's path."""
        for frame, stem in ((orders, ""), (targets, ".targets")):
            with atomic_path(self.orders_path(date, f"{stem}.csv")) as tmp:
                frame.to_csv(tmp, index=False, date_format="%Y-%m-%d")
            with atomic_path(self.orders_path(date, f"{stem}.parquet")) as tmp:
                frame.to_parquet(tmp, index=False)
        write_text(self.orders_path(date, ".json"), json.dumps(dict(meta), indent=1, sort_keys=True) + "\n")
        return self.orders_path(date, ".csv")

    def read_orders(self, date: pd.Timestamp) -> pd.DataFrame:
        """The stored orders of ``date``."""
        return pd.read_parquet(self.orders_path(date, ".parquet"))

    def monitor_path(self, date: pd.Timestamp) -> Path:
        """``monitor/DATE.json``."""
        return self.root / MONITOR / f"{date.date()}.json"

    def read_monitor(self, date: pd.Timestamp) -> dict[str, Any] | None:
        """The stored drift report of ``date`` (None when absent)."""
        return _read_json(self.monitor_path(date))

    def write_monitor(self, date: pd.Timestamp, body: Mapping[str, Any]) -> Path:
        """Store ``date``'s drift report."""
        path = self.monitor_path(date)
        write_text(path, json.dumps(dict(body), indent=1, sort_keys=True) + "\n")
        return path

    def log(self, step: str, **body: Any) -> None:
        """Append one line to ``log.jsonl``: the step, the UTC time and ``body``."""
        from datetime import UTC, datetime

        line = json.dumps({"step": step, "time": datetime.now(UTC).isoformat(timespec="seconds"), **body},
                          sort_keys=True, default=str)  # fmt: skip
        self.root.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.root / LOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, (line + "\n").encode())
        finally:
            os.close(fd)

    def read_log(self) -> list[dict[str, Any]]:
        """Every line of ``log.jsonl`` (unreadable lines skipped)."""
        path = self.root / LOG
        if not path.is_file():
            return []
        out = []
        for line in path.read_text().splitlines():
            try:
                body = json.loads(line)
            except ValueError:
                continue
            if isinstance(body, dict):
                out.append(body)
        return out


_ORDER_FILES = (".csv", ".parquet", ".targets.csv", ".targets.parquet")


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        body = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return body if isinstance(body, dict) else None
