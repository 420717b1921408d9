"""Strategies of the backtest plugin."""

from qbacktest.strategies.execution import SBBEMA, TWAP, VWAP, AlmgrenChriss
from qbacktest.strategies.replay import OrderReplay
from qbacktest.strategies.topk_dropout import TopkDropout
from qbacktest.strategies.weight import SoftTopk, TargetWeight

__all__ = ["SBBEMA", "TWAP", "VWAP", "AlmgrenChriss", "OrderReplay", "SoftTopk", "TargetWeight", "TopkDropout"]
