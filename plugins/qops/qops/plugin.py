"""Hook implementations: every Qlib operator plus cross-sectional ones, computed by whole-panel kernels."""

from __future__ import annotations

from typing import Any

from qcore import hookimpl


@hookimpl
def qcore_register_operators(register: Any) -> None:
    from qops.elementwise import OPERATORS as ELEMENTWISE
    from qops.rolling import OPERATORS as ROLLING

    for operator in (*ELEMENTWISE, *ROLLING):
        register(operator.name, operator, description=operator.description)
