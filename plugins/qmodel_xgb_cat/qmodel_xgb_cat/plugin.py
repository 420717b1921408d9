"""Hook implementations: the XGBoost and CatBoost models under qcore names and Qlib's class names.

Nothing heavy is imported here: a factory imports its model module (and XGBoost or CatBoost) when a model is built,
so listing components loads neither. Each factory has a ``check_kwargs(kwargs)`` attribute (the kernel's
convention): it builds the model once, which reads no data and runs the booster's own parameter parser on a few rows,
so misspelt names and bad values are refused at ``qcore validate``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

from qcore import Registrar, hookimpl
from qcore.errors import OptionalDependencyError

INSTALL = "pip install qmodel-xgb-cat (it pulls {package})"

#: registry name, module, class, the package it needs, Qlib's class name, description.
MODELS = (
    ("xgboost", "qmodel_xgb_cat.xgb", "XGBModel", "xgboost", "XGBModel",
     "XGBoost trees, early-stopped on the valid segment (Qlib's XGBModel)."),
    ("catboost", "qmodel_xgb_cat.cat", "CatBoostModel", "catboost", "CatBoostModel",
     "CatBoost trees, early-stopped on the valid segment (Qlib's CatBoostModel)."),
)


def _factory(name: str, module: str, class_name: str, package: str, description: str) -> Callable[..., Any]:
    """A factory that imports the booster and the model class only when called, with its ``check_kwargs``."""

    def factory(**kwargs: Any) -> Any:
        try:
            importlib.import_module(package)
        except ImportError as exc:
            raise OptionalDependencyError(f"the {name} model", package, INSTALL.format(package=package)) from exc
        return getattr(importlib.import_module(module), class_name)(**kwargs)

    def check_kwargs(kwargs: Mapping[str, Any]) -> None:
        factory(**kwargs)

    factory.__name__ = f"_{name}"
    factory.__doc__ = description
    factory.check_kwargs = check_kwargs  # type: ignore[attr-defined]
    return factory


@hookimpl
def qcore_register_models(register: Registrar) -> None:
    """Register ``xgboost`` (``XGBModel``) and ``catboost`` (``CatBoostModel``)."""
    for name, module, class_name, package, qlib_name, description in MODELS:
        register(name, _factory(name, module, class_name, package, description), aliases=(qlib_name,),
                 description=description)
