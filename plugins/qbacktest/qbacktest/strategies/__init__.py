"""Strategies of the backtest plugin."""

from qbacktest.strategies.replay import OrderReplay
from qbacktest.strategies.topk_dropout import TopkDropout
from qbacktest.strategies.weight import SoftTopk, TargetWeight

__all__ = ["OrderReplay", "SoftTopk", "TargetWeight", "TopkDropout"]
