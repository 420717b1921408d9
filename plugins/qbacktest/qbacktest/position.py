"""Holdings and cash of an account, with an optional T+N sellable ledger and delayed cash settlement.

Amounts are adjusted shares; a holding's ``price`` is the last close it was valued at (the deal price on the bar
it was bought). Bookkeeping follows Qlib's ``Position``: a buy adds ``value / price`` shares and takes
``value + cost`` from the cash; a sell removes ``value / price`` shares (the holding disappears when that is the
whole amount, within ``numpy.isclose``) and adds ``value - cost``.

With ``allow_short`` (a run whose ``short:`` option is on) a sell may leave a negative amount (a short holding,
valued at ``amount × price`` < 0, its proceeds in the cash) and a buy of a short holding covers it; the holding
disappears when the cover brings it to zero.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from qbacktest.exchange import _isclose


class Holding:
    """One instrument held: amount, valuation price, weight, bars held, and amounts not yet sellable."""

    __slots__ = ("amount", "count", "counts", "locked", "price", "weight")

    def __init__(self, amount: float, price: float) -> None:
        self.amount = amount
        self.price = price
        self.weight = 0.0
        self.count = 0
        #: bar counts of the inner levels of a nested run, by frequency (None until one is counted)
        self.counts: dict[str, int] | None = None
        #: ``[release_bar, amount]`` lots bought recently (T+N); sellable from ``release_bar`` on
        self.locked: list[list[float]] = []

    def sellable(self) -> float:
        """The amount that may be sold now (0 for a short holding: selling more of it is a new short sale)."""
        if not self.locked:
            return self.amount if self.amount > 0 else 0.0
        return max(self.amount - sum(lot[1] for lot in self.locked), 0.0)

    def as_dict(self) -> dict[str, float]:
        """``amount``, ``price``, ``weight``, ``count_day`` (Qlib's field names)."""
        return {"amount": self.amount, "price": self.price, "weight": self.weight, "count_day": float(self.count)}


class Position:
    """Cash plus holdings in insertion order.

    :param cash: starting cash.
    :param holdings: starting holdings ``{instrument: amount}`` or ``{instrument: {"amount", "price"}}``.
    :param settlement_days: bars before bought shares can be sold (1 for T+1).
    """

    def __init__(
        self,
        cash: float,
        holdings: Mapping[str, Any] | None = None,
        *,
        settlement_days: int = 0,
    ) -> None:
        if settlement_days < 0:
            raise ValueError(f"settlement_days must be >= 0, got {settlement_days}")
        self.cash = float(cash)
        self.cash_delay = 0.0
        self.settle_cash = False
        self.settlement_days = settlement_days
        #: whether sells may leave negative amounts (short holdings)
        self.allow_short = False
        self.holdings: dict[str, Holding] = {}
        for name, spec in (holdings or {}).items():
            if isinstance(spec, Mapping):
                amount, price = float(spec["amount"]), spec.get("price")
            else:
                amount, price = float(spec), None
            self.holdings[name] = Holding(amount, float("nan") if price is None else float(price))

    # -- queries ----------------------------------------------------------------------------------------------

    def __contains__(self, instrument: object) -> bool:
        return instrument in self.holdings

    def __iter__(self) -> Iterator[str]:
        return iter(self.holdings)

    def __len__(self) -> int:
        return len(self.holdings)

    def instruments(self) -> list[str]:
        """Held instruments, in the order they were first bought."""
        return list(self.holdings)

    def amount(self, instrument: str) -> float:
        """The amount held (0 when not held)."""
        holding = self.holdings.get(instrument)
        return holding.amount if holding is not None else 0.0

    def sellable(self, instrument: str) -> float:
        """The amount that may be sold on this bar (T+N locks excluded)."""
        holding = self.holdings.get(instrument)
        return holding.sellable() if holding is not None else 0.0

    def price(self, instrument: str) -> float:
        """The valuation price of a holding."""
        return self.holdings[instrument].price

    def count(self, instrument: str) -> int:
        """Bars the instrument has been held at bar ends."""
        holding = self.holdings.get(instrument)
        return holding.count if holding is not None else 0

    def short_value(self) -> float:
        """The gross value of the short holdings, ``Σ −amount × price`` over negative amounts (>= 0)."""
        value = 0.0
        for holding in self.holdings.values():
            if holding.amount < 0:
                value -= holding.amount * holding.price
        return value

    def stock_value(self) -> float:
        """Σ amount × price over the holdings (short holdings count negative)."""
        value = 0.0
        for holding in self.holdings.values():
            value += holding.amount * holding.price
        return value

    def value(self) -> float:
        """Holdings plus cash (settled and pending)."""
        return self.stock_value() + (self.cash + self.cash_delay)

    def amounts(self) -> dict[str, float]:
        """``{instrument: amount}``."""
        return {name: h.amount for name, h in self.holdings.items()}

    def weights(self, only_stock: bool = False) -> dict[str, float]:
        """Each holding's value over the total value (over the holdings' value with ``only_stock``)."""
        total = self.stock_value() if only_stock else self.value()
        return {name: h.amount * h.price / total for name, h in self.holdings.items()}

    # -- changes ----------------------------------------------------------------------------------------------

    def buy(self, instrument: str, value: float, cost: float, price: float, bar: int = 0) -> None:
        """Add ``value / price`` shares bought at ``price`` and pay ``value + cost``."""
        amount = value / price
        holding = self.holdings.get(instrument)
        locked = amount
        if holding is None:
            holding = self.holdings[instrument] = Holding(amount, price)
        elif holding.amount < 0:  # covering a short holding: only what goes beyond zero is a new long lot
            before = holding.amount
            holding.amount += amount
            if _isclose(amount, -before):
                del self.holdings[instrument]
                locked = 0.0
            else:
                locked = max(holding.amount, 0.0)
        else:
            holding.amount += amount
        if self.settlement_days > 0 and locked > 0:
            holding.locked.append([bar + self.settlement_days, locked])
        self.cash -= value + cost

    def sell(self, instrument: str, value: float, cost: float, price: float) -> None:
        """Remove ``value / price`` shares and receive ``value - cost`` (into pending cash while settling)."""
        amount = value / price
        holding = self.holdings.get(instrument)
        if holding is None:
            if not self.allow_short:
                raise KeyError(f"{instrument} is not held")
            self.holdings[instrument] = Holding(-amount, price)
        elif _isclose(holding.amount, amount):
            del self.holdings[instrument]
        else:
            holding.amount -= amount
            if holding.amount < -1e-5 and not self.allow_short:
                raise ValueError(f"sold {amount} of {instrument} holding only {holding.amount + amount}")
        proceeds = value - cost
        if self.settle_cash:
            self.cash_delay += proceeds
        else:
            self.cash += proceeds

    def settle_start(self) -> None:
        """From now on, sell proceeds wait in pending cash until :meth:`settle_commit`."""
        self.settle_cash = True

    def settle_commit(self) -> None:
        """Move pending cash into cash."""
        self.cash += self.cash_delay
        self.cash_delay = 0.0
        self.settle_cash = False

    def release(self, next_bar: int) -> None:
        """Make lots whose release bar is ``<= next_bar`` sellable."""
        for holding in self.holdings.values():
            if holding.locked:
                holding.locked = [lot for lot in holding.locked if lot[0] > next_bar]

    def copy(self) -> Position:
        """An independent copy (strategies simulate their sells on one)."""
        other = Position.__new__(Position)
        other.cash = self.cash
        other.cash_delay = self.cash_delay
        other.settle_cash = self.settle_cash
        other.settlement_days = self.settlement_days
        other.allow_short = self.allow_short
        other.holdings = {}
        for name, h in self.holdings.items():
            c = Holding(h.amount, h.price)
            c.weight, c.count, c.locked = h.weight, h.count, [list(lot) for lot in h.locked]
            c.counts = dict(h.counts) if h.counts else None
            other.holdings[name] = c
        return other
