"""The ``online:`` section of a workflow: where the online set lives and which model serves it.

.. code-block:: yaml

    online:
      folder: online/lightgbm   # predictions/, and later orders/, live here
      model: models/latest      # optional: a model folder written by qcore.modelio; default: the rolling run's
                                # checkpoint (its latest window that may serve the date)
"""

from __future__ import annotations

from typing import Any

import attrs


@attrs.frozen
class OnlineConfig:
    """The parsed ``online:`` section.

    :ivar folder: the online folder (``predictions/D.parquet``...); None: the command line must give one.
    :ivar model: a saved model folder (:mod:`qcore.modelio`) to serve instead of the rolling checkpoint's windows.
    """

    folder: str | None = None
    model: str | None = None


class OnlineSection:
    """The ``online`` config section (registered as a ``config_section``)."""

    def parse(self, value: Any, reader: Any, path: str) -> OnlineConfig:
        """Check the keys (``folder``, ``model``), each a non-empty string."""
        body = reader.mapping(value, path, ("folder", "model"))
        folder = reader.string(body["folder"], f"{path}.folder") if body.get("folder") is not None else None
        model = reader.string(body["model"], f"{path}.model") if body.get("model") is not None else None
        return OnlineConfig(folder=folder, model=model)

    def components(self, parsed: OnlineConfig, path: str) -> list[tuple[str, str, Any]]:
        """The section names no component."""
        return []
