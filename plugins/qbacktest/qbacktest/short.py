"""Short selling in the backtest: the ``short:`` backtest option and the rules it gives the exchange and account.

Off by default (Qlib cannot hold negative amounts either): a sell beyond the sellable holding is then cut to it,
and a weight strategy's negative target weight is an error naming the option. Switched on, with ::

    short: {enabled: true, borrow_rate: 0.08, margin: 0.5, eligible: [SH600000, SZ000001], max_gross: 2.0}

- a sell may go beyond the holding into a negative amount for the names in ``eligible`` (a list of codes, or an
  expression such as ``$short_eligible``, non-zero on the bars a name may be lent: the A-share securities-lending
  list; ``null`` lets every quoted name be shorted);
- ``margin`` is the margin requirement: a short sale is cut so that the account's value stays at least
  ``margin ×`` the gross value of its short holdings (the holdings at their last prices);
- ``borrow_rate`` is the annual lending fee on the short holdings' value, charged at every daily bar end as
  ``value × borrow_rate / days_per_year`` (cash falls, the report's ``cost`` rises);
- ``max_gross`` bounds a weight strategy's ``Σ|w|`` (its ``|Σw|`` is bounded by 1, as for long-only weights).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from qcore.errors import ConfigError

#: The keys of the ``short:`` option.
SHORT_KEYS = ("enabled", "borrow_rate", "margin", "eligible", "max_gross", "days_per_year")


def _number(value: Any, key: str, *, low: float, high: float | None = None, low_open: bool = False) -> float:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if ok and (value < low or (low_open and value == low) or (high is not None and value > high)):
        ok = False
    if not ok:
        bounds = f"{'>' if low_open else '>='} {low}" + (f" and <= {high}" if high is not None else "")
        raise ConfigError(f"expected a number {bounds}, got {value!r}", path=f"backtest.short.{key}")
    return float(value)


@attrs.frozen
class ShortSelling:
    """The short-selling rules of a run.

    :ivar enabled: whether sells may go below zero (False: Qlib's long-only account).
    :ivar borrow_rate: annual lending fee on the short value (0.08 = 8% a year).
    :ivar margin: required account value per unit of gross short value (0.5: 50%).
    :ivar eligible: codes that may be shorted, an expression (non-zero where lendable), or None for every name.
    :ivar max_gross: the largest ``Σ|w|`` a weight strategy may target.
    :ivar days_per_year: bars per year the borrow rate is spread over.
    """

    enabled: bool = False
    borrow_rate: float = 0.0
    margin: float = 0.5
    eligible: tuple[str, ...] | str | None = None
    max_gross: float = 2.0
    days_per_year: int = 252

    @classmethod
    def parse(cls, value: Any) -> ShortSelling:
        """``None``/``False`` (off), ``True`` (on, defaults), a mapping of :data:`SHORT_KEYS`, or a ShortSelling.

        :raises ConfigError: an unknown key or a value out of range (the path names it).
        """
        if isinstance(value, ShortSelling):
            return value
        if value is None or value is False:
            return cls()
        if value is True:
            return cls(enabled=True)
        if not isinstance(value, Mapping):
            raise ConfigError(f"expected a mapping ({', '.join(SHORT_KEYS)}) or a boolean, got {value!r}",
                              path="backtest.short")  # fmt: skip
        unknown = sorted(map(str, set(value) - set(SHORT_KEYS)))
        if unknown:
            raise ConfigError(f"unknown key {unknown[0]!r} ({', '.join(SHORT_KEYS)})",
                              path=f"backtest.short.{unknown[0]}")  # fmt: skip
        enabled = value.get("enabled", True)
        if not isinstance(enabled, bool):
            raise ConfigError(f"expected true or false, got {enabled!r}", path="backtest.short.enabled")
        eligible = value.get("eligible")
        if isinstance(eligible, str):
            if not eligible.strip():
                raise ConfigError("expected a list of codes or an expression", path="backtest.short.eligible")
        elif isinstance(eligible, Sequence):
            if not all(isinstance(c, str) and c.strip() for c in eligible):
                raise ConfigError("expected a list of instrument codes", path="backtest.short.eligible")
            eligible = tuple(eligible)
        elif eligible is not None:
            raise ConfigError(f"expected a list of codes, an expression or null, got {eligible!r}",
                              path="backtest.short.eligible")  # fmt: skip
        days = value.get("days_per_year", 252)
        if not (isinstance(days, int) and not isinstance(days, bool) and days > 0):
            raise ConfigError(f"expected a positive integer, got {days!r}", path="backtest.short.days_per_year")
        return cls(
            enabled=enabled,
            borrow_rate=_number(value.get("borrow_rate", 0.0), "borrow_rate", low=0.0, high=10.0),
            margin=_number(value.get("margin", 0.5), "margin", low=0.0, low_open=True, high=10.0),
            eligible=eligible,
            max_gross=_number(value.get("max_gross", 2.0), "max_gross", low=0.0, low_open=True, high=100.0),
            days_per_year=days,
        )

    @property
    def daily_rate(self) -> float:
        """The borrow fee of one daily bar, as a share of the short value."""
        return self.borrow_rate / self.days_per_year
