"""Hook implementations: every Qlib operator plus cross-sectional ones (whole-panel kernels), dataset processors and
feature sets."""

from __future__ import annotations

from typing import Any

from qcore import hookimpl


@hookimpl
def qcore_register_operators(register: Any) -> None:
    from qops.elementwise import OPERATORS as ELEMENTWISE
    from qops.rolling import OPERATORS as ROLLING

    for operator in (*ELEMENTWISE, *ROLLING):
        register(operator.name, operator, description=operator.description)


@hookimpl
def qcore_register_processors(register: Any) -> None:
    from qops.processors import PROCESSORS

    for processor in PROCESSORS:
        register(processor.__name__, processor)


def _alpha158(**config: Any) -> Any:
    """Qlib's Alpha158 feature set (158 features + LABEL0; Qlib's generator config knobs)."""
    from qops.features import alpha158

    return alpha158(**config)


def _alpha360(**config: Any) -> Any:
    """Qlib's Alpha360 feature set (60 days of normalised prices and volume + LABEL0)."""
    from qops.features import alpha360

    return alpha360(**config)


@hookimpl
def qcore_register_feature_sets(register: Any) -> None:
    register("alpha158", _alpha158, aliases=("Alpha158",), description=_alpha158.__doc__)
    register("alpha360", _alpha360, aliases=("Alpha360",), description=_alpha360.__doc__)
