"""The plugin's risk models by name, for the places that build one without a kernel (strategies, ``qcore risk``).

Names are those the plugin registers in the ``risk_model`` kind; Qlib's class names build the same estimators
with Qlib's default of percent units (``scale_return=True``). Anything else may be given as
``"package.module:Class"``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from qcore.errors import ConfigError

#: name → (target, description): what the plugin registers.
RISK_MODELS: dict[str, tuple[str, str]] = {
    "sample": ("qportfolio.risk.base:CovarianceEstimator", "Sample covariance X'X/N (NaN: ignore, mask or fill)."),
    "shrink": ("qportfolio.risk.shrink:ShrinkCovEstimator",
               "Shrinkage (Ledoit-Wolf or OAS intensity; constant variance, constant correlation or single-factor "
               "target)."),
    "poet": ("qportfolio.risk.poet:POETCovEstimator", "POET: principal components plus thresholded residuals."),
    "structured": ("qportfolio.risk.structured:StructuredCovEstimator",
                   "Statistical factor model (PCA or factor analysis) with factor decomposition."),
    "fundamental": ("qportfolio.risk.fundamental:FundamentalRiskModel",
                    "Industry and style factors from expressions, EWMA factor covariance and specific risk."),
}  # fmt: skip
#: Qlib's class names → ours; built with Qlib's percent units by default.
QLIB_NAMES = {"RiskModel": "sample", "ShrinkCovEstimator": "shrink", "POETCovEstimator": "poet",
              "StructuredCovEstimator": "structured"}  # fmt: skip
ALIASES = {"sample": ("covariance",), "shrink": ("shrinkage", "ledoit_wolf"), "structured": ("pca", "statistical"),
           "fundamental": ("factor", "barra")}  # fmt: skip


def _qlib(name: str, kwargs: dict[str, Any]) -> Any:
    from qcore.registry import resolve

    kwargs.setdefault("scale_return", True)
    return resolve(RISK_MODELS[name][0])(**kwargs)


def qlib_risk_model(**kwargs: Any) -> Any:
    """Qlib's ``RiskModel`` (sample covariance, percent units by default)."""
    return _qlib("sample", kwargs)


def qlib_shrink(**kwargs: Any) -> Any:
    """Qlib's ``ShrinkCovEstimator`` (percent units by default)."""
    return _qlib("shrink", kwargs)


def qlib_poet(**kwargs: Any) -> Any:
    """Qlib's ``POETCovEstimator`` (percent units by default)."""
    return _qlib("poet", kwargs)


def qlib_structured(**kwargs: Any) -> Any:
    """Qlib's ``StructuredCovEstimator`` (percent units by default)."""
    return _qlib("structured", kwargs)


QLIB_FACTORIES = {"RiskModel": "qportfolio.risk.registry:qlib_risk_model",
                  "ShrinkCovEstimator": "qportfolio.risk.registry:qlib_shrink",
                  "POETCovEstimator": "qportfolio.risk.registry:qlib_poet",
                  "StructuredCovEstimator": "qportfolio.risk.registry:qlib_structured"}  # fmt: skip


def parse_spec(spec: Any, key: str) -> tuple[str, dict[str, Any]]:
    """``(name, kwargs)`` from a name or ``{name, kwargs}``."""
    if isinstance(spec, str):
        return spec, {}
    if isinstance(spec, Mapping) and "name" in spec and set(spec) <= {"name", "kwargs"}:
        kwargs = spec.get("kwargs") or {}
        if not isinstance(kwargs, Mapping):
            raise ConfigError(f"expected a mapping, got {kwargs!r}", path=f"{key}.kwargs")
        return str(spec["name"]), dict(kwargs)
    raise ConfigError(f"expected a risk model name or {{name, kwargs}}, got {spec!r}", path=key)


def make_risk_model(spec: Any, key: str = "risk_model", **defaults: Any) -> Any:
    """Build a risk model from a name or ``{name, kwargs}`` (``defaults`` fill kwargs not given)."""
    from qcore.registry import resolve

    name, kwargs = parse_spec(spec, key)
    for k, v in defaults.items():
        kwargs.setdefault(k, v)
    canonical = next((n for n, aliases in ALIASES.items() if name in aliases), name)
    if canonical in RISK_MODELS:
        target = RISK_MODELS[canonical][0]
    elif canonical in QLIB_FACTORIES:
        target = QLIB_FACTORIES[canonical]
    elif ":" in name:
        target = name
    else:
        import difflib

        known = sorted([*RISK_MODELS, *QLIB_FACTORIES])
        close = difflib.get_close_matches(name, known, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ConfigError(f"unknown risk model {name!r}{hint} (available: {', '.join(known)})", path=key)
    try:
        factory = resolve(target)
    except Exception as exc:
        raise ConfigError(f"cannot import risk model {target!r}: {exc}", path=key) from None
    try:
        return factory(**kwargs)
    except ConfigError as exc:
        raise ConfigError(exc.message, path=f"{key}.kwargs.{exc.path}" if exc.path else key) from None
    except TypeError as exc:
        raise ConfigError(f"invalid arguments of risk model {name!r}: {exc}", path=f"{key}.kwargs") from None
