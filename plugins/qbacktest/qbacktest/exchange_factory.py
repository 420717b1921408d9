"""The ``exchange`` component qbacktest registers: its :class:`~qbacktest.exchange.Exchange` built from market rules
(qcore's native mode) or Qlib's ``exchange_kwargs``, for runners that decide outside a backtest loop (the online
routine's orders for the next day)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from qbacktest.exchange import Exchange


def build_exchange(
    provider: Any,
    instruments: Sequence[str],
    dates: pd.DatetimeIndex,
    *,
    market_rules: Any = None,
    exchange_kwargs: Mapping[str, Any] | None = None,
    region: str = "cn",
    quoted: set[str] | None = None,
    provider_uri: Any = None,
    kernel: Any,
) -> Exchange:
    """The exchange a backtest would build on ``dates`` × ``instruments``.

    :param market_rules: a market-rules object, a registry name, or ``(name, kwargs)`` (native mode; default
        ``cn``); ignored when ``exchange_kwargs`` is given.
    :param exchange_kwargs: Qlib's exchange arguments (Qlib-compatible mode, with ``region``'s defaults).
    :param quoted: the names that get quotes (default: all of ``instruments``).
    :param provider_uri: passed to a market-rules factory that takes it (ST spans, listing dates of the store).
    """
    from qbacktest.api import _accepts
    from qbacktest.backtest import _qlib_kwargs

    operators = kernel.registry("operator")
    dates = pd.DatetimeIndex(dates)
    if exchange_kwargs is not None:
        return Exchange.qlib(provider, operators, list(instruments), dates, quoted=quoted,
                             **_qlib_kwargs(exchange_kwargs, region))  # fmt: skip
    rules = "cn" if market_rules is None else market_rules
    if isinstance(rules, (str, tuple)):
        name, kwargs = (rules, {}) if isinstance(rules, str) else (rules[0], dict(rules[1]))
        factory = kernel.registry("market_rules").get(name)
        if provider_uri is not None and "provider_uri" not in kwargs and _accepts(factory, "provider_uri"):
            kwargs["provider_uri"] = provider_uri
        rules = kernel.create("market_rules", name, **kwargs)
    return Exchange.from_rules(provider, operators, rules, list(instruments), dates, quoted=quoted)
