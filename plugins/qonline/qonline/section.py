"""The ``online:`` section of a workflow: where the online set lives, which model serves it, the exchange its
orders are decided against and the drift thresholds that flag a retrain.

.. code-block:: yaml

    online:
      folder: online/lightgbm   # predictions/, orders/, monitor/, log.jsonl live here
      model: models/latest      # optional: a model folder written by qcore.modelio; default: the rolling run's
                                # checkpoint (its latest window that may serve the date)
      exchange: backtest        # optional: the registered exchange component the orders are decided against
      drift:                    # optional (these are the defaults)
        ic_window: 20           # days of realised labels the rolling IC is computed over
        ic_min: 0.0             # a rolling IC below this flags a retrain
        psi_max: 0.25           # a feature whose PSI (train span vs the recent window) exceeds this flags one
        psi_window: 20          # days of the recent window
        bins: 10                # PSI bins (quantiles of the train span)
"""

from __future__ import annotations

import math
from typing import Any

import attrs


@attrs.frozen
class DriftConfig:
    """Drift thresholds (see the module docstring)."""

    ic_window: int = 20
    ic_min: float = 0.0
    psi_max: float = 0.25
    psi_window: int = 20
    bins: int = 10


@attrs.frozen
class OnlineConfig:
    """The parsed ``online:`` section.

    :ivar folder: the online folder (``predictions/D.parquet``...); None: the command line must give one.
    :ivar model: a saved model folder (:mod:`qcore.modelio`) to serve instead of the rolling checkpoint's windows.
    :ivar exchange: the ``exchange`` component the orders are decided against (None: ``backtest``).
    :ivar drift: the drift thresholds.
    """

    folder: str | None = None
    model: str | None = None
    exchange: str | None = None
    drift: DriftConfig = DriftConfig()


def _number(reader: Any, value: Any, path: str, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise reader.fail(f"expected a number, got {value!r}", path)
    if not low <= value <= high:
        raise reader.fail(f"expected a number in {low}..{high}, got {value}", path)
    return float(value)


class OnlineSection:
    """The ``online`` config section (registered as a ``config_section``)."""

    def parse(self, value: Any, reader: Any, path: str) -> OnlineConfig:
        """Check the keys (``folder``, ``model``, ``exchange``: non-empty strings; ``drift``: its thresholds)."""
        body = reader.mapping(value, path, ("folder", "model", "exchange", "drift"))
        strings = {key: reader.string(body[key], f"{path}.{key}") if body.get(key) is not None else None
                   for key in ("folder", "model", "exchange")}  # fmt: skip
        drift = DriftConfig()
        if body.get("drift") is not None:
            d = reader.mapping(body["drift"], f"{path}.drift", ("ic_window", "ic_min", "psi_max", "psi_window", "bins"))
            where = f"{path}.drift"
            drift = DriftConfig(
                ic_window=reader.integer(d.get("ic_window", 20), f"{where}.ic_window", 2, 10_000),
                ic_min=_number(reader, d.get("ic_min", 0.0), f"{where}.ic_min", -1.0, 1.0),
                psi_max=_number(reader, d.get("psi_max", 0.25), f"{where}.psi_max", 0.0, 1e6),
                psi_window=reader.integer(d.get("psi_window", 20), f"{where}.psi_window", 1, 10_000),
                bins=reader.integer(d.get("bins", 10), f"{where}.bins", 2, 1000),
            )
        return OnlineConfig(drift=drift, **strings)

    def components(self, parsed: OnlineConfig, path: str) -> list[tuple[str, str, Any]]:
        """The exchange, when the section names one."""
        if parsed.exchange is None:
            return []
        from qcore.config import ComponentSpec

        return [(f"{path}.exchange", "exchange", ComponentSpec(parsed.exchange))]
