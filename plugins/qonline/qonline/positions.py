"""The current positions file the online ``orders`` step starts from, and the account it becomes.

A CSV or Parquet table, one row per holding (or per lot of one):

- ``instrument`` (required): the store's symbol; the row ``CASH`` (any case) gives the cash in ``amount``;
- ``amount`` (adjusted shares, the unit of the store and of the backtest's positions) or ``shares`` (real shares,
  converted with the day's ``$factor``): one of the two, non-negative;
- ``price`` (optional): the valuation price (adjusted); default the day's close (the last close within 30 days
  for a name suspended that day);
- ``count_day`` (optional): bars the name has been held (Qlib's column; a strategy's ``hold_thresh`` reads it);
  default 1 (held at the day's close);
- ``bought`` (optional): the date a lot was bought; under a T+N market (``settlement_days``) a lot is sellable
  from the N-th bar after it, so with T+1 a lot bought on the day is sellable the next day.

:class:`OnlinePosition` / :class:`OnlineAccount` hold it for the strategy: they satisfy the kernel's
:class:`qcore.trading.Position` / :class:`qcore.trading.Account` and add what signal strategies read of a held
name (``instruments()``, ``count(name)``).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import pandas as pd

from qcore.errors import DataError

CASH_ROW = "CASH"
COLUMNS = ("instrument", "amount", "shares", "price", "count_day", "bought")


@attrs.frozen
class Lot:
    """One row of the positions file.

    :ivar amount: adjusted shares (None when the row gives real ``shares``).
    :ivar shares: real shares (None when the row gives ``amount``).
    """

    instrument: str
    amount: float | None
    shares: float | None
    price: float | None
    count_day: int | None
    bought: pd.Timestamp | None
    where: str


@attrs.frozen
class PositionsFile:
    """A parsed positions file: its lots, its cash row (None when absent) and the file's SHA-256."""

    path: Path
    lots: tuple[Lot, ...]
    cash: float | None
    digest: str


def _where(path: Path, k: int, csv: bool) -> str:
    return f"{path}: line {k + 2}" if csv else f"{path}: row {k}"


def _number(value: Any, where: str, column: str, *, integer: bool = False) -> float | None:
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise DataError(f"{where}: {column} {value!r} is not a number") from None
    if not math.isfinite(number) or number < 0:
        raise DataError(f"{where}: {column} must be a finite number >= 0, got {value!r}")
    if integer and number != int(number):
        raise DataError(f"{where}: {column} must be a whole number, got {value!r}")
    return number


def read_positions(path: str | Path) -> PositionsFile:
    """Read and check a positions file (CSV, or Parquet by its ``.parquet``/``.pq`` suffix)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"the positions file {path} does not exist")
    data = path.read_bytes()
    csv = path.suffix.lower() not in (".parquet", ".pq")
    try:
        frame = pd.read_csv(path, dtype={"instrument": str, "bought": str}) if csv else pd.read_parquet(path)
    except Exception as exc:  # any reader failure is the file's problem, named with it
        raise DataError(f"cannot read the positions file {path}: {exc}") from None
    frame.columns = [str(c).strip().lower() for c in frame.columns]
    unknown = sorted(set(frame.columns) - set(COLUMNS))
    if unknown:
        raise DataError(f"{path}: unknown column(s) {', '.join(unknown)} (expected {', '.join(COLUMNS)})")
    if "instrument" not in frame.columns or not ({"amount", "shares"} & set(frame.columns)):
        raise DataError(f"{path}: needs the columns instrument and amount (or shares)")
    lots: list[Lot] = []
    cash: float | None = None
    for k, row in enumerate(frame.to_dict("records")):
        where = _where(path, k, csv)
        name = row.get("instrument")
        if not isinstance(name, str) or not name.strip():
            raise DataError(f"{where}: instrument is empty")
        name = name.strip()
        amount = _number(row.get("amount"), where, "amount")
        shares = _number(row.get("shares"), where, "shares")
        if name.upper() == CASH_ROW:
            if cash is not None:
                raise DataError(f"{where}: a second CASH row")
            if amount is None:
                raise DataError(f"{where}: the CASH row gives the cash in amount")
            cash = amount
            continue
        if (amount is None) == (shares is None):
            raise DataError(f"{where}: give exactly one of amount and shares for {name}")
        count = _number(row.get("count_day"), where, "count_day", integer=True)
        bought_text = row.get("bought")
        bought = None
        if (isinstance(bought_text, str) and bought_text.strip()) or isinstance(bought_text, pd.Timestamp):
            try:
                bought = pd.Timestamp(bought_text).normalize()
            except ValueError:
                raise DataError(f"{where}: bought {bought_text!r} is not a date") from None
        lots.append(Lot(name.upper(), amount, shares, _number(row.get("price"), where, "price"),
                        None if count is None else int(count), bought, where))  # fmt: skip
    return PositionsFile(path, tuple(lots), cash, hashlib.sha256(data).hexdigest())


class Holding:
    """One held name: adjusted amount, valuation price, bars held and the amount locked by settlement."""

    __slots__ = ("amount", "count", "locked", "price")

    def __init__(self, amount: float, price: float, count: int, locked: float) -> None:
        self.amount = amount
        self.price = price
        self.count = count
        self.locked = locked


class OnlinePosition:
    """Cash and holdings at the close of the day the orders are for the next of (a :class:`qcore.trading.Position`)."""

    def __init__(self, cash: float, holdings: dict[str, Holding]) -> None:
        self.cash = float(cash)
        self.holdings = holdings

    def __contains__(self, instrument: object) -> bool:
        return instrument in self.holdings

    def __iter__(self) -> Iterator[str]:
        return iter(self.holdings)

    def __len__(self) -> int:
        return len(self.holdings)

    def instruments(self) -> list[str]:
        """Held names in the file's order."""
        return list(self.holdings)

    def amount(self, instrument: str) -> float:
        """Adjusted shares held (0 when not held)."""
        holding = self.holdings.get(instrument)
        return holding.amount if holding is not None else 0.0

    def sellable(self, instrument: str) -> float:
        """What may be sold on the next bar: the amount less the lots settlement still locks."""
        holding = self.holdings.get(instrument)
        return max(holding.amount - holding.locked, 0.0) if holding is not None else 0.0

    def price(self, instrument: str) -> float:
        """The valuation price."""
        return self.holdings[instrument].price

    def count(self, instrument: str) -> int:
        """Bars the name has been held."""
        holding = self.holdings.get(instrument)
        return holding.count if holding is not None else 0

    def stock_value(self) -> float:
        """Σ amount × price."""
        return sum(h.amount * h.price for h in self.holdings.values())

    def value(self) -> float:
        """Holdings plus cash."""
        return self.stock_value() + self.cash

    def amounts(self) -> dict[str, float]:
        """``{instrument: amount}``."""
        return {name: h.amount for name, h in self.holdings.items()}

    def weights(self, only_stock: bool = False) -> dict[str, float]:
        """Each holding's share of the total value (of the holdings' value with ``only_stock``)."""
        total = self.stock_value() if only_stock else self.value()
        return {name: h.amount * h.price / total for name, h in self.holdings.items()} if total else {}


@attrs.define
class OnlineAccount:
    """The account of one decision (a :class:`qcore.trading.Account`)."""

    init_cash: float
    position: OnlinePosition
