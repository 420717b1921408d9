"""Qlib's Alpha158 and Alpha360 feature sets, and a small point-in-time fundamental one, as
:class:`qcore.types.FeatureSet` values.

The names, column order and expression texts are those of Qlib 0.9.7 (``Alpha158DL.get_feature_config`` with the
``Alpha158`` handler's configuration, and ``Alpha360DL.get_feature_config``), so a frame evaluated from these sets
lines up column by column with what Qlib's handlers return before processors run.

Alpha158 takes the generator's configuration groups as keyword arguments, with Qlib's meaning:

- ``kbar={}``: the 9 candlestick features;
- ``price={"windows": [...], "feature": [...]}``: ``$f/$close`` (window 0) or ``Ref($f, d)/$close``;
  defaults when the group is given: windows ``0..4``, features ``OPEN HIGH LOW CLOSE VWAP``;
- ``volume={"windows": [...]}``: ``Ref($volume, d)/($volume+1e-12)``; default windows ``0..4``;
- ``rolling={"windows": [...], "include": [...], "exclude": [...]}``: 29 operator groups per window; default
  windows ``5 10 20 30 60``, every group. Group keys are the feature-name prefixes, except ``MIN``'s, which is ``LOW``.

A group is on when its keyword is given (``None`` leaves it off). With no group keyword at all the set is Qlib's
default ``Alpha158`` handler config: ``kbar``, ``price`` (window 0; OPEN HIGH LOW VWAP) and ``rolling`` (defaults).
As in Qlib, giving any group replaces that default entirely: ``alpha158(rolling={"windows": [5]})`` is the 29
rolling features of window 5 and nothing else. ``config={...}`` passes the same groups as one dict.

``label`` is what Qlib's handlers take: a pair ``(expressions, names)``, a list of expressions (Qlib then names the
columns by the expressions themselves), a single expression, or a mapping name → expression. The default is
``LABEL0 = Ref($close, -2)/Ref($close, -1) - 1``. ``label=None`` (or an empty list) gives no label.

This module imports nothing heavy; the plugin's factories import it on first use.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from qcore.errors import ConfigError
from qcore.types import FeatureSet


class FeatureSetError(ConfigError):
    """A feature-set argument is invalid; ``path`` is the argument's key (``rolling.windows``), relative to the
    feature set's ``kwargs``. A ``ValueError``, as before."""


class FeatureSetArgumentError(ConfigError, TypeError):
    """An unexpected or wrongly typed feature-set argument (also a ``TypeError``, as Python's own would be)."""

#: Qlib's default label of the Alpha158/Alpha360 handlers.
DEFAULT_LABEL: Mapping[str, str] = {"LABEL0": "Ref($close, -2)/Ref($close, -1) - 1"}

#: The ``Alpha158`` handler's generator config (Qlib's default).
ALPHA158_DEFAULT_CONFIG: Mapping[str, Mapping[str, Any]] = {
    "kbar": {},
    "price": {"windows": [0], "feature": ["OPEN", "HIGH", "LOW", "VWAP"]},
    "rolling": {},
}

GROUPS = ("kbar", "price", "volume", "rolling")

_KBAR: tuple[tuple[str, str], ...] = (
    ("KMID", "($close-$open)/$open"),
    ("KLEN", "($high-$low)/$open"),
    ("KMID2", "($close-$open)/($high-$low+1e-12)"),
    ("KUP", "($high-Greater($open, $close))/$open"),
    ("KUP2", "($high-Greater($open, $close))/($high-$low+1e-12)"),
    ("KLOW", "(Less($open, $close)-$low)/$open"),
    ("KLOW2", "(Less($open, $close)-$low)/($high-$low+1e-12)"),
    ("KSFT", "(2*$close-$high-$low)/$open"),
    ("KSFT2", "(2*$close-$high-$low)/($high-$low+1e-12)"),
)

# Rolling groups in Qlib's order: (include/exclude key, column prefix, expression template with {d} = window).
_UP = "Sum(Greater($close-Ref($close, 1), 0), {d})"
_DOWN = "Sum(Greater(Ref($close, 1)-$close, 0), {d})"
_MOVE = "(Sum(Abs($close-Ref($close, 1)), {d})+1e-12)"
_VUP = "Sum(Greater($volume-Ref($volume, 1), 0), {d})"
_VDOWN = "Sum(Greater(Ref($volume, 1)-$volume, 0), {d})"
_VMOVE = "(Sum(Abs($volume-Ref($volume, 1)), {d})+1e-12)"
_WV = "Abs($close/Ref($close, 1)-1)*$volume"
_ROLLING: tuple[tuple[str, str, str], ...] = (
    ("ROC", "ROC", "Ref($close, {d})/$close"),
    ("MA", "MA", "Mean($close, {d})/$close"),
    ("STD", "STD", "Std($close, {d})/$close"),
    ("BETA", "BETA", "Slope($close, {d})/$close"),
    ("RSQR", "RSQR", "Rsquare($close, {d})"),
    ("RESI", "RESI", "Resi($close, {d})/$close"),
    ("MAX", "MAX", "Max($high, {d})/$close"),
    ("LOW", "MIN", "Min($low, {d})/$close"),
    ("QTLU", "QTLU", "Quantile($close, {d}, 0.8)/$close"),
    ("QTLD", "QTLD", "Quantile($close, {d}, 0.2)/$close"),
    ("RANK", "RANK", "Rank($close, {d})"),
    ("RSV", "RSV", "($close-Min($low, {d}))/(Max($high, {d})-Min($low, {d})+1e-12)"),
    ("IMAX", "IMAX", "IdxMax($high, {d})/{d}"),
    ("IMIN", "IMIN", "IdxMin($low, {d})/{d}"),
    ("IMXD", "IMXD", "(IdxMax($high, {d})-IdxMin($low, {d}))/{d}"),
    ("CORR", "CORR", "Corr($close, Log($volume+1), {d})"),
    ("CORD", "CORD", "Corr($close/Ref($close,1), Log($volume/Ref($volume, 1)+1), {d})"),
    ("CNTP", "CNTP", "Mean($close>Ref($close, 1), {d})"),
    ("CNTN", "CNTN", "Mean($close<Ref($close, 1), {d})"),
    ("CNTD", "CNTD", "Mean($close>Ref($close, 1), {d})-Mean($close<Ref($close, 1), {d})"),
    ("SUMP", "SUMP", f"{_UP}/{_MOVE}"),
    ("SUMN", "SUMN", f"{_DOWN}/{_MOVE}"),
    ("SUMD", "SUMD", f"({_UP}-{_DOWN})/{_MOVE}"),
    ("VMA", "VMA", "Mean($volume, {d})/($volume+1e-12)"),
    ("VSTD", "VSTD", "Std($volume, {d})/($volume+1e-12)"),
    ("WVMA", "WVMA", f"Std({_WV}, {{d}})/(Mean({_WV}, {{d}})+1e-12)"),
    ("VSUMP", "VSUMP", f"{_VUP}/{_VMOVE}"),
    ("VSUMN", "VSUMN", f"{_VDOWN}/{_VMOVE}"),
    ("VSUMD", "VSUMD", f"({_VUP}-{_VDOWN})/{_VMOVE}"),
)

#: The include/exclude keys of the rolling groups, in column order.
ROLLING_KEYS: tuple[str, ...] = tuple(key for key, _, _ in _ROLLING)

_ALPHA360_FIELDS = ("close", "open", "high", "low", "vwap")


def alpha158(*, config: Mapping[str, Any] | None = None, label: Any = DEFAULT_LABEL, **groups: Any) -> FeatureSet:
    """Qlib's Alpha158: 158 features (default config) and the ``LABEL0`` label; see the module docstring."""
    unknown = sorted(set(groups) - set(GROUPS))
    if unknown:
        raise FeatureSetArgumentError(
            f"alpha158() got unexpected arguments: {', '.join(unknown)} (groups: {', '.join(GROUPS)})", path=unknown[0]
        )
    if config is not None:
        if groups:
            raise FeatureSetArgumentError("alpha158(): pass the groups either in config or as keywords, not both",
                                          path="config")
        if not isinstance(config, Mapping):
            raise FeatureSetArgumentError(f"alpha158 config must be a mapping of groups, not {config!r}",
                                          path="config")
        groups = dict(config)
        unknown = sorted(set(map(str, groups)) - set(GROUPS))
        if unknown:
            raise FeatureSetError(
                f"alpha158 config: unknown groups {', '.join(unknown)} (groups: {', '.join(GROUPS)})", path="config"
            )
    elif not groups:
        groups = dict(ALPHA158_DEFAULT_CONFIG)
    features: dict[str, str] = {}
    add = _adder(features)
    if groups.get("kbar") is not None:
        for name, expression in _KBAR:
            add(name, expression)
    if groups.get("price") is not None:
        price = _group(groups["price"], "price", ("windows", "feature"))
        windows = _windows(price.get("windows", range(5)), "price", minimum=0)
        for field in _names(price.get("feature", ("OPEN", "HIGH", "LOW", "CLOSE", "VWAP")), "price feature",
                            "price.feature"):
            low = field.lower()
            for d in windows:
                add(f"{field.upper()}{d}", f"Ref(${low}, {d})/$close" if d != 0 else f"${low}/$close")
    if groups.get("volume") is not None:
        volume = _group(groups["volume"], "volume", ("windows",))
        for d in _windows(volume.get("windows", range(5)), "volume", minimum=0):
            add(f"VOLUME{d}", f"Ref($volume, {d})/($volume+1e-12)" if d != 0 else "$volume/($volume+1e-12)")
    if groups.get("rolling") is not None:
        rolling = _group(groups["rolling"], "rolling", ("windows", "include", "exclude"))
        windows = _windows(rolling.get("windows", (5, 10, 20, 30, 60)), "rolling", minimum=1)
        include = rolling.get("include")
        include = None if include is None else set(_keys(include, "include"))
        exclude = set(_keys(rolling.get("exclude") or (), "exclude"))
        for key, prefix, template in _ROLLING:
            if key in exclude or (include is not None and key not in include):
                continue
            for d in windows:
                add(f"{prefix}{d}", template.format(d=d))
    return _feature_set(features, label, "alpha158")


def alpha360(*, label: Any = DEFAULT_LABEL) -> FeatureSet:
    """Qlib's Alpha360: the last 60 days of prices (over today's close) and volume (over today's volume), + label."""
    features: dict[str, str] = {}
    for field in _ALPHA360_FIELDS:
        for i in range(59, 0, -1):
            features[f"{field.upper()}{i}"] = f"Ref(${field}, {i})/$close"
        features[f"{field.upper()}0"] = f"${field}/$close"
    for i in range(59, 0, -1):
        features[f"VOLUME{i}"] = f"Ref($volume, {i})/($volume+1e-12)"
    features["VOLUME0"] = "$volume/($volume+1e-12)"
    return _feature_set(features, label, "alpha360")


#: The fundamental feature set: point-in-time report figures as known on each day (``P``), over the raw price
#: (``$close/$factor``: Qlib's adjusted close over its adjustment factor; report figures are per raw share).
FUNDAMENTAL: Mapping[str, str] = {
    "EP": "P(Mean($$eps_q, 4)*4)/($close/$factor)",  # earnings yield, on the last four quarters' mean
    "BP": "P($$bps_q)/($close/$factor)",  # book-to-price
    "ROE": "P($$roe_q)",  # the latest quarter's return on equity
    "ROED4": "P($$roe_q - Ref($$roe_q, 4))",  # its change over four quarters
    "REVG": "P($$revenue_q/Ref($$revenue_q, 4) - 1)",  # revenue growth, year on year
}


def fundamental(*, label: Any = DEFAULT_LABEL) -> FeatureSet:
    """Value, quality and growth from point-in-time reports (:data:`FUNDAMENTAL`), + label (Alpha158's by default).

    Needs a store with period data (``$$eps_q``, ``$$bps_q``, ``$$roe_q``, ``$$revenue_q``: ``qcore data synth``
    writes them, ``qcore data import-pit`` imports them); on a store without any, evaluation stops with an error
    that says so. Each figure is the latest revision published on or before the day, so nothing leaks from later.
    """
    return _feature_set(dict(FUNDAMENTAL), label, "fundamental")


def labels_of(label: Any) -> dict[str, str]:
    """Label columns from any of the forms Qlib's handlers accept (see the module docstring)."""
    if label is None:
        return {}
    if isinstance(label, str):
        return {label: label}
    if isinstance(label, Mapping):
        return {str(k): str(v) for k, v in label.items()}
    if isinstance(label, bytes) or not isinstance(label, Iterable):
        raise FeatureSetArgumentError(
            f"label must be an expression, a list of them, (expressions, names) or a mapping, not {label!r}",
            path="label",
        )
    items = list(label)
    if not items:
        return {}
    if len(items) == 2 and all(isinstance(x, (list, tuple)) for x in items):
        exprs, names = (list(x) for x in items)
        if len(exprs) != len(names):
            raise FeatureSetError(f"label: {len(exprs)} expressions but {len(names)} names", path="label")
        return dict(zip(map(str, names), map(str, exprs)))
    if all(isinstance(x, str) for x in items):
        return {x: x for x in items}
    raise FeatureSetArgumentError(
        f"label must be an expression, a list of them, (expressions, names) or a mapping, not {label!r}", path="label"
    )


def _feature_set(features: dict[str, str], label: Any, what: str) -> FeatureSet:
    if not features:
        raise FeatureSetError(f"{what}: the configuration selects no feature")
    return FeatureSet(features=features, labels=labels_of(label))


def _adder(features: dict[str, str]) -> Any:
    def add(name: str, expression: str) -> None:
        if name in features:
            raise FeatureSetError(f"alpha158: the configuration gives two features named {name!r}")
        features[name] = expression

    return add


def _group(value: Any, name: str, keys: Sequence[str]) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise FeatureSetArgumentError(
            f"alpha158 {name} group must be a mapping (use {{}} for the defaults), not {value!r}", path=name
        )
    unknown = sorted(set(map(str, value)) - set(keys))
    if unknown:
        raise FeatureSetError(
            f"alpha158 {name} group: unknown keys {', '.join(unknown)} (keys: {', '.join(keys)})", path=name
        )
    return value


def _windows(value: Iterable[Any], name: str, *, minimum: int) -> list[int]:
    windows = list(_as_list(value, f"{name} windows", f"{name}.windows"))
    for d in windows:
        if isinstance(d, bool) or not isinstance(d, int) or d < minimum:
            raise FeatureSetError(f"alpha158 {name} windows must be integers >= {minimum}, got {d!r}",
                                  path=f"{name}.windows")
    return windows


def _names(value: Any, what: str, path: str) -> list[str]:
    names = _as_list(value, what, path)
    for n in names:
        if not isinstance(n, str) or not n.isidentifier():
            raise FeatureSetError(f"alpha158 {what} must be field names such as 'OPEN', got {n!r}", path=path)
    return names


def _keys(value: Any, what: str) -> list[str]:
    keys = _as_list(value, f"rolling {what}", f"rolling.{what}")
    unknown = [k for k in keys if k not in ROLLING_KEYS]
    if unknown:
        hint = " (MIN's key is 'LOW', as in Qlib)" if "MIN" in unknown else ""
        raise FeatureSetError(
            f"alpha158 rolling {what}: unknown groups {', '.join(map(str, unknown))}{hint}; "
            f"groups: {' '.join(ROLLING_KEYS)}",
            path=f"rolling.{what}",
        )
    return keys


def _as_list(value: Any, what: str, path: str) -> list[Any]:
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Iterable):
        raise FeatureSetArgumentError(f"alpha158 {what} must be a list, not {value!r}", path=path)
    return list(value)
