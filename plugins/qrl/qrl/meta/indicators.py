"""FinRL's default technical indicators as qcore expressions (feature set ``finrl``).

FinRL-Meta computes ``macd``, ``boll_ub``, ``boll_lb``, ``rsi_30``, ``cci_30``, ``dx_30``, ``close_30_sma`` and
``close_60_sma`` with stockstats; here they are expressions the engine evaluates on any store or imported panel, with
stockstats' definitions: exponential means with ``adjust=True`` (``EMA(x, N)`` is a span of N, ``EMA(x, 1/N)``
Wilder's smoothing), simple means and standard deviations (ddof 1) over the available values of the window.

- ``macd`` = EMA(close, 12) − EMA(close, 26).
- ``boll_ub`` / ``boll_lb`` = SMA(close, 20) ± 2 × std(close, 20).
- ``rsi_30`` = 100 − 100 / (1 + W(up) / W(down)), with up/down the positive/negative parts of the day's close
  change and W Wilder's smoothing over 30 days.
- ``cci_30`` = (TP − SMA(TP, 30)) / (0.015 × mean absolute deviation of TP over 30 days), TP = (high + low + close)/3.
- ``dx_30`` = 100 × |+DI − −DI| / (+DI + −DI), +DI = 100 × W(+DM) / W(TR), −DI likewise, over 30 days.
- ``close_30_sma`` / ``close_60_sma``: simple means of the close.

Prices are the store's (adjusted) fields, as FinRL computes on adjusted closes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: Wilder's smoothing factor 1/30 as the EMA operator's alpha (an N below 1 is the alpha itself).
_W30 = repr(1 / 30)
_TP = "($high + $low + $close) / 3"
_UP = "($high - Ref($high, 1))"
_DOWN = "(Ref($low, 1) - $low)"
_PDM = f"If(And(Gt({_UP}, {_DOWN}), Gt({_UP}, 0)), {_UP}, 0)"
_NDM = f"If(And(Gt({_DOWN}, {_UP}), Gt({_DOWN}, 0)), {_DOWN}, 0)"
_TR = "Greater(Greater($high - $low, Abs($high - Ref($close, 1))), Abs($low - Ref($close, 1)))"
_PDI = f"(100 * EMA({_PDM}, {_W30}) / EMA({_TR}, {_W30}))"
_NDI = f"(100 * EMA({_NDM}, {_W30}) / EMA({_TR}, {_W30}))"

#: FinRL-Meta's ``INDICATORS`` list, name → expression, in FinRL's order.
FINRL_INDICATORS: Mapping[str, str] = {
    "macd": "EMA($close, 12) - EMA($close, 26)",
    "boll_ub": "Mean($close, 20) + 2 * Std($close, 20)",
    "boll_lb": "Mean($close, 20) - 2 * Std($close, 20)",
    "rsi_30": (f"100 - 100 / (1 + EMA(Greater($close - Ref($close, 1), 0), {_W30}) / "
               f"EMA(Greater(Ref($close, 1) - $close, 0), {_W30}))"),
    "cci_30": f"({_TP} - Mean({_TP}, 30)) / (0.015 * Mad({_TP}, 30))",
    "dx_30": f"100 * Abs({_PDI} - {_NDI}) / ({_PDI} + {_NDI})",
    "close_30_sma": "Mean($close, 30)",
    "close_60_sma": "Mean($close, 60)",
}


def finrl(*, indicators: list[str] | None = None, label: Any = None) -> Any:
    """The ``finrl`` feature set: FinRL's indicators (all, or the ``indicators`` named) as features; no label
    unless one is given (RL needs none)."""
    from qcore.types import FeatureSet

    chosen = list(FINRL_INDICATORS) if indicators is None else list(indicators)
    unknown = [name for name in chosen if name not in FINRL_INDICATORS]
    if unknown or not chosen:
        raise ValueError(f"unknown FinRL indicator(s) {', '.join(unknown) or '(none chosen)'}; known: "
                         f"{', '.join(FINRL_INDICATORS)}")
    labels = {} if label is None else ({"LABEL0": label} if isinstance(label, str) else dict(label))
    return FeatureSet(features={name: FINRL_INDICATORS[name] for name in chosen}, labels=labels)


def select(names: list[str] | tuple[str, ...] | None) -> dict[str, str]:
    """Name → expression of the FinRL indicators ``names`` (all when None); an unknown name is a ``ValueError``."""
    return dict(finrl(indicators=None if names is None else list(names)).features)
