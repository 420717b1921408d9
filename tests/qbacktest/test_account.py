"""Position bookkeeping (Qlib's rules), the T+1 sellable ledger, delayed cash settlement and daily metrics."""

from __future__ import annotations

import numpy as np
import pytest
from qbacktest.account import Account
from qbacktest.position import Position

from qcore.trading import Direction, Fill, Order


def test_buy_and_sell_book_value_over_price() -> None:
    pos = Position(10_000.0)
    pos.buy("A", 3000.0, 5.0, 3.0)
    assert pos.amount("A") == 1000.0 and pos.price("A") == 3.0 and pos.cash == 10_000 - 3005
    pos.buy("A", 1000.0, 5.0, 4.0)  # adds shares, keeps the valuation price until the bar end
    assert pos.amount("A") == 1250.0 and pos.price("A") == 3.0
    pos.sell("A", 2000.0, 5.0, 4.0)
    assert pos.amount("A") == 750.0 and pos.cash == pytest.approx(10_000 - 3005 - 1005 + 1995)
    pos.sell("A", 750.0 * 4.0 * (1 + 1e-9), 0.0, 4.0)  # within numpy.isclose: the holding is gone
    assert "A" not in pos and len(pos) == 0
    with pytest.raises(KeyError):
        pos.sell("A", 1.0, 0.0, 1.0)


def test_t_plus_one_locks_bought_shares_until_the_next_bar() -> None:
    pos = Position(1e6, {"A": {"amount": 100.0, "price": 10.0}}, settlement_days=1)
    pos.buy("A", 1000.0, 0.0, 10.0, bar=3)
    assert pos.amount("A") == 200.0 and pos.sellable("A") == 100.0
    pos.release(3)
    assert pos.sellable("A") == 100.0
    pos.release(4)
    assert pos.sellable("A") == 200.0
    copy = pos.copy()
    copy.sell("A", 2000.0, 0.0, 10.0)
    assert pos.amount("A") == 200.0  # the copy is independent


def test_cash_settlement_delays_sell_proceeds() -> None:
    pos = Position(0.0, {"A": {"amount": 100.0, "price": 10.0}})
    pos.settle_start()
    pos.sell("A", 1000.0, 5.0, 10.0)
    assert pos.cash == 0.0 and pos.cash_delay == 995.0 and pos.value() == 995.0
    pos.settle_commit()
    assert pos.cash == 995.0 and pos.cash_delay == 0.0


class _Quotes:
    """The two arrays the account reads at a bar end."""

    def __init__(self, close: list[list[float]]) -> None:
        self.close = np.array(close)
        self.suspended = np.isnan(self.close)
        self._cols = {"A": 0, "B": 1}


def test_bar_end_prices_counts_and_gross_return() -> None:
    account = Account(10_000.0, bench=np.array([0.01, -0.02]))
    order = Order("A", 100, Direction.BUY)
    fill = Fill(order, 100.0, 50.0, 5000.0, 5.0)
    account.apply(fill, 0)
    quotes = _Quotes([[51.0, np.nan], [np.nan, np.nan]])
    account.update_bar_end(0, quotes, [fill])
    value = 10_000 - 5005 + 5100
    assert account.records[0][0] == value
    assert account.records[0][1] == pytest.approx((value - 10_000 + 5.0) / 10_000)  # gross of cost
    assert account.records[0][5] == pytest.approx(5.0 / 10_000) and account.records[0][8] == 0.01
    account.update_bar_end(1, quotes, [])  # suspended: keeps its price, still counted
    holding = account.position.holdings["A"]
    assert holding.price == 51.0 and holding.count == 2
    assert account.records[1][1] == 0.0 and account.records[1][3] == 0.0
    assert account.indicators[0][0] == 1.0 and account.indicators[0][5] == 1
    assert np.isnan(account.indicators[1][0]) and account.indicators[1][5] == 0
