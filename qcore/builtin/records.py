"""The signal record: stores a run's predictions and the raw label of the predicted segment."""

from __future__ import annotations

from typing import Any

from qcore.context import RecordOutput, RunContext
from qcore.errors import RunError


class SignalRecord:
    """Predictions as ``pred.parquet`` (column ``score``) and the raw label as ``label.parquet`` (Qlib's
    ``SignalRecord``); the label is what the signal is later analysed against."""

    def __init__(self, **_ignored: Any) -> None:
        # Qlib's SignalRecord takes model/dataset placeholders (<MODEL>, <DATASET>): the run supplies both.
        pass

    def generate(self, context: RunContext) -> RecordOutput:
        """Store ``context.state.pred`` and ``context.state.label``."""
        pred = context.state.pred
        if pred is None:
            raise RunError("the signal record needs a model's predictions: add a model section")
        artifacts: dict[str, Any] = {"pred": pred.rename("score").to_frame()}
        label = context.state.label
        if label is not None:
            artifacts["label"] = label.rename("label").to_frame()
        return RecordOutput(metrics={"signal.rows": float(len(pred))}, artifacts=artifacts)
