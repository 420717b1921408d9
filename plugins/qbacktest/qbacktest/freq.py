"""Bar frequencies of nested backtests: ``day`` and ``N``-minute bars, in qcore's and Qlib's spellings.

A frequency is parsed once into a :class:`Freq`: ``day``/``1d``/``1day`` are daily bars; ``30min``/``30minute``/
``30m``/``30t`` are 30-minute bars. :attr:`Freq.name` is what a store's calendar is called (``day``, ``30min``) and
:attr:`Freq.key` is Qlib's name of a level's results (``"{n}{unit}"`` of Qlib's ``Freq.parse``: ``1day``,
``30min``), which a nested run's per-level results and artifacts are keyed by (``report_normal_30min``).
"""

from __future__ import annotations

import re

import attrs
import pandas as pd

from qcore.errors import ConfigError

_PATTERN = re.compile(r"^\s*(\d*)\s*(d|day|days|min|minute|minutes|m|t)\s*$", re.IGNORECASE)


@attrs.frozen
class Freq:
    """A bar length.

    :ivar minutes: minutes per bar (0 for daily bars).
    """

    minutes: int

    @classmethod
    def parse(cls, value: object, path: str = "executor.kwargs.time_per_step") -> Freq:
        """``day``, ``1day``, ``5min``, ``30min``... (a :class:`ConfigError` at ``path`` otherwise)."""
        if isinstance(value, Freq):
            return value
        match = _PATTERN.match(str(value)) if isinstance(value, str) else None
        if match is None:
            raise ConfigError(f"unknown bar frequency {value!r} (day, or N minutes: 1min, 5min, 30min...)", path=path)
        count = int(match.group(1) or 1)
        unit = match.group(2).lower()
        if unit in ("d", "day", "days"):
            if count != 1:
                raise ConfigError(f"only one-day bars are supported, got {value!r}", path=path)
            return cls(0)
        if count < 1 or count > 240:
            raise ConfigError(f"minute bars must be 1 to 240 minutes long, got {value!r}", path=path)
        return cls(count)

    @property
    def daily(self) -> bool:
        """True for daily bars."""
        return self.minutes == 0

    @property
    def name(self) -> str:
        """The store's name of the frequency: ``day`` or ``Nmin``."""
        return "day" if self.daily else f"{self.minutes}min"

    @property
    def key(self) -> str:
        """Qlib's name of the frequency in result keys: ``1day`` or ``Nmin``."""
        return "1day" if self.daily else f"{self.minutes}min"

    @property
    def length(self) -> pd.Timedelta:
        """The nominal length of one bar (the end of a calendar's last bar is its start plus this)."""
        return pd.Timedelta(days=1) if self.daily else pd.Timedelta(minutes=self.minutes)

    def __str__(self) -> str:
        return self.name

    def finer_than(self, other: Freq) -> bool:
        """True when bars of this frequency are shorter than ``other``'s."""
        if self.daily:
            return False
        return other.daily or self.minutes < other.minutes
