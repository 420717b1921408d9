"""Hook implementations of the RL plugin; tianshou and torch are imported only by the trainer."""

from __future__ import annotations

from typing import Any

from qcore import hookimpl


def _twap(**kwargs: Any) -> Any:
    """TWAP baseline execution: equal lots over the window's steps."""
    from qrl.twap import TwapExecutor

    return TwapExecutor(**kwargs)


@hookimpl
def qcore_register_executors(register: Any) -> None:
    register("twap", _twap)
