"""Hook implementations of the backtest plugin."""

from __future__ import annotations

from typing import Any

from qcore import hookimpl


def _topk_equal_weight(**kwargs: Any) -> Any:
    """Equal weights on the top-k scores."""
    from qbacktest.topk import TopkEqualWeight

    return TopkEqualWeight(**kwargs)


@hookimpl
def qcore_register_strategies(register: Any) -> None:
    register("topk_equal_weight", _topk_equal_weight)
