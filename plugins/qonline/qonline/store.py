"""The online folder: ``predictions/YYYY-MM-DD.parquet`` (column ``score`` by ``(datetime, instrument)``) and,
written after it as the marker of a finished day, ``predictions/YYYY-MM-DD.json`` (the date, the model that
served it, the store's data version, the row count). Each file is written atomically."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from qcore.atomic import atomic_path, write_text

PREDICTIONS = "predictions"


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
