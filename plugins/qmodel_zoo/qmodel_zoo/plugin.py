"""Hook implementations of the model zoo; model modules are imported only when a model is built."""

from __future__ import annotations

from typing import Any

from qcore import hookimpl


def _linear(**kwargs: Any) -> Any:
    """Linear least squares (OLS, ridge) in closed form."""
    from qmodel_zoo.linear import LinearModel

    return LinearModel(**kwargs)


@hookimpl
def qcore_register_models(register: Any) -> None:
    register("linear", _linear, aliases=("LinearModel",))
