"""Qlib's multi-frequency handlers: column groups evaluated on 1-minute bars and resampled to days.

Qlib's two multi-frequency benchmark configs (``examples/benchmarks/LightGBM/workflow_config_lightgbm_multi_freq.yaml``
and ``..._Alpha158_multi_freq.yaml``) give their handler a frequency per column group (``freq: {label: day,
feature: 1min}``) and per-group ``inst_processors``, Python classes from the example's own files that turn each
instrument's 1-minute frame into daily rows. qcore imports no Python from a config: the two processors are built-in
resampling rules found by their class names (a ``module_path`` is ignored, as for every class), and the handler the
example defines in Python (``Avg15minHandler``) is a built-in feature set with the same columns:

- ``ResampleNProcessor(target_frq="1d")``: each day's last non-NaN value of each column (``resample("1d").last()``
  reindexed to the days the instrument has bars) → :class:`~qcore.types.Resample` ``rule="last"``;
- ``Resample1minProcessor(hour, minute)``: the value of the bar stamped ``hour:minute`` (NaN kept; a day without that
  bar has no row), stamped with the date → ``rule="at"``;
- ``Avg15minHandler``: ``close0 open0 low0 high0 volume0 vwap0`` (the day's bar, group ``feature_day``) and, per field,
  the mean of each of the day's sixteen 15-minute blocks (``close1`` = 09:30-09:44 ... ``close16`` = 14:45-14:59,
  group ``feature_15min``), label ``LABEL0``.

:func:`qlib_multi_freq` is the feature set a translated config names: it builds the handler's own feature set by
name (through the kernel) and marks the columns of each minute group with its rule; the dataset evaluates them on
the store's minute bars and resamples them (:mod:`qcore.expr.resample`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from qcore.errors import ConfigError
from qcore.types import FeatureSet, Resample

if TYPE_CHECKING:
    from qcore.kernel import Kernel

#: The handler Qlib's example defines in Python, built in here.
AVG15MIN = "Avg15minHandler"
#: Qlib's label of its handlers (``Ref($close, -2)/Ref($close, -1) - 1`` named ``LABEL0``).
_LABEL = {"LABEL0": "Ref($close, -2)/Ref($close, -1) - 1"}
_FIELDS = ("$close", "$open", "$low", "$high", "$volume", "$vwap")
#: The resampling inst_processors qcore has built in: class name → its keyword arguments.
INST_PROCESSORS: dict[str, tuple[str, ...]] = {"ResampleNProcessor": ("target_frq",),
                                                "Resample1minProcessor": ("hour", "minute")}
#: ``target_frq`` values meaning one row per day (a dataset's rows are days).
_DAY_TARGETS = ("1d", "d")
_DAY = ("day", "1d")
_MINUTE = re.compile(r"^[1-9][0-9]*min$")


def avg15min_groups(label: Any = None) -> dict[str, dict[str, str]]:
    """``Avg15minHandler``'s column groups (``feature_day``, ``feature_15min``, ``label``) as name → expression,
    in Qlib's column order: per field, ``<f>15 .. <f>1`` (``Ref(Mean(f, 15), 15 * k)``) then ``<f>16``."""
    day = {f"{field[1:]}0": field for field in _FIELDS}
    minute: dict[str, str] = {}
    for field in _FIELDS:
        name = field[1:]
        for k in range(1, 16):
            minute[f"{name}{16 - k}"] = f"Ref(Mean({field}, 15), {15 * k})"
        minute[f"{name}16"] = f"Mean({field}, 15)"
    labels = _label(label)
    return {"feature_day": day, "feature_15min": minute, "label": labels}


def _label(label: Any) -> dict[str, str]:
    if label is None:
        return dict(_LABEL)
    if isinstance(label, Mapping) and label and all(isinstance(k, str) and isinstance(v, str) for k, v in
                                                     label.items()):
        return dict(label)
    raise ConfigError("expected label: {name: expression}", path="label")


def avg15min_handler(label: Any = None) -> FeatureSet:
    """Qlib's ``Avg15minHandler`` example with every group at the dataset's frequency (Qlib's ``freq: day``);
    give ``freq: {label: day, feature_15min: 1min, feature_day: day}`` and a resampling inst_processor (in a Qlib
    config) for the 15-minute averages of its design."""
    groups = avg15min_groups(label)
    return FeatureSet({**groups["feature_day"], **groups["feature_15min"]}, groups["label"])


def _freq(value: Any, path: str) -> str:
    text = str(value).strip().lower() if isinstance(value, str) else None
    if text in _DAY:
        return "day"
    if text is None or not _MINUTE.match(text):
        raise ConfigError(f"expected a frequency (day or Nmin, such as 1min), got {value!r}", path=path)
    return text


def _integer(value: Any, low: int, high: int, path: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ConfigError(f"expected an integer from {low} to {high}, got {value!r}", path=path)
    return value


def inst_processor_rule(item: Any, freq: str, path: str) -> Resample:
    """One Qlib ``inst_processors`` entry (``{class, module_path, kwargs}``) as the :class:`Resample` rule of a
    group read at ``freq``; an unknown class or a bad argument is a :class:`ConfigError` at its key."""
    if not isinstance(item, Mapping) or not isinstance(item.get("class"), str):
        raise ConfigError("expected {class: ..., kwargs: {...}}", path=path)
    extra = sorted(set(map(str, item)) - {"class", "module_path", "kwargs"})
    if extra:
        raise ConfigError(f"unsupported key(s) {', '.join(extra)}", path=f"{path}.{extra[0]}")
    name = item["class"]
    if name not in INST_PROCESSORS:
        raise ConfigError(f"unsupported inst_processor {name!r}: Qlib runs inst_processors as Python callbacks on "
                          f"each instrument's frame, which qcore does not import; built in are "
                          f"{', '.join(INST_PROCESSORS)} (found by class name, module_path ignored)",
                          path=f"{path}.class")  # fmt: skip
    kwargs = item.get("kwargs") or {}
    if not isinstance(kwargs, Mapping):
        raise ConfigError(f"expected a mapping, got {type(kwargs).__name__}", path=f"{path}.kwargs")
    accepted = INST_PROCESSORS[name]
    for key in kwargs:
        if key not in accepted:
            raise ConfigError(f"unknown argument {key!r} of {name} (accepted: {', '.join(accepted)})",
                              path=f"{path}.kwargs.{key}")
    for key in accepted:
        if key not in kwargs:
            raise ConfigError(f"{name} needs {key!r}", path=f"{path}.kwargs")
    if name == "ResampleNProcessor":
        target = kwargs["target_frq"]
        if not isinstance(target, str) or target.strip().lower() not in _DAY_TARGETS:
            raise ConfigError(f"target_frq {target!r} is not supported: a dataset's rows are days (target_frq: 1d)",
                              path=f"{path}.kwargs.target_frq")
        return Resample(freq, "last")
    hour = _integer(kwargs["hour"], 0, 23, f"{path}.kwargs.hour")
    minute = _integer(kwargs["minute"], 0, 59, f"{path}.kwargs.minute")
    return Resample(freq, "at", f"{hour:02d}:{minute:02d}")


def group_rules(groups: list[str], freq: Any, inst_processors: Any) -> dict[str, Resample | None]:
    """Each column group's resampling (None: read at the dataset's frequency), from Qlib's handler ``freq`` (one
    frequency, or one per group) and ``inst_processors`` (one list for every group, or a list per group)."""
    if isinstance(freq, Mapping):
        unknown = [str(g) for g in freq if g not in groups]
        if unknown:
            raise ConfigError(f"freq names group {unknown[0]!r}, which the handler does not have (groups: "
                              f"{', '.join(groups)})", path=f"freq.{unknown[0]}")  # fmt: skip
        missing = [g for g in groups if g not in freq]
        if missing:
            raise ConfigError(f"freq gives no frequency for group {missing[0]!r} (groups: {', '.join(groups)})",
                              path="freq")
        freqs = {g: _freq(freq[g], f"freq.{g}") for g in groups}
    else:
        one = _freq(freq, "freq")
        freqs = dict.fromkeys(groups, one)
    if inst_processors is None:
        inst_processors = {}
    if isinstance(inst_processors, list):
        per_group = {g: (inst_processors, "inst_processors.{i}") for g in groups}
    elif isinstance(inst_processors, Mapping):
        unknown = [str(g) for g in inst_processors if g not in groups]
        if unknown:
            raise ConfigError(f"inst_processors names group {unknown[0]!r}, which the handler does not have "
                              f"(groups: {', '.join(groups)})", path=f"inst_processors.{unknown[0]}")  # fmt: skip
        per_group = {}
        for g, items in inst_processors.items():
            if not isinstance(items, list):
                raise ConfigError(f"expected a list of inst_processors, got {type(items).__name__}",
                                  path=f"inst_processors.{g}")
            per_group[g] = (items, f"inst_processors.{g}.{{i}}")
    else:
        raise ConfigError(f"expected inst_processors as a list or a mapping of groups, got "
                          f"{type(inst_processors).__name__}", path="inst_processors")  # fmt: skip
    rules: dict[str, Resample | None] = {}
    for group in groups:
        items, where = per_group.get(group, ([], ""))
        freq_path = f"freq.{group}" if isinstance(freq, Mapping) else "freq"
        if freqs[group] == "day":
            if items:
                raise ConfigError(f"group {group!r} is read at day frequency ({freq_path}): its inst_processors "
                                  "would resample nothing (give the group a minute freq)",
                                  path=where.format(i=0))  # fmt: skip
            rules[group] = None
            continue
        if len(items) != 1:
            raise ConfigError(f"group {group!r} is read at {freqs[group]}: it needs exactly one resampling "
                              f"inst_processor ({' or '.join(INST_PROCESSORS)}) to make its rows days, got "
                              f"{len(items)}", path=where.format(i=1) if items else freq_path)  # fmt: skip
        rules[group] = inst_processor_rule(items[0], freqs[group], where.format(i=0))
    return rules


def qlib_multi_freq(handler: Any = None, freq: Any = "day", inst_processors: Any = None, *,
                    kernel: Kernel | None = None) -> FeatureSet:
    """A Qlib handler read with a frequency per column group: ``handler`` (``{name, kwargs}``, a feature set such
    as ``Alpha158`` or ``Avg15minHandler``), ``freq`` and ``inst_processors`` as in Qlib's config.

    Its groups are ``feature`` and ``label`` (``Avg15minHandler``: ``feature_day``, ``feature_15min``, ``label``);
    every minute group's columns get the :class:`Resample` rule of its inst_processor. Without a kernel (argument
    checks) only the arguments are checked and an empty set is returned.
    """
    if not isinstance(handler, Mapping) or not isinstance(handler.get("name"), str):
        raise ConfigError("expected handler: {name: ..., kwargs: {...}}", path="handler")
    name, kwargs = handler["name"], dict(handler.get("kwargs") or {})
    if name == "qlib_multi_freq":
        raise ConfigError("the handler cannot be qlib_multi_freq itself", path="handler.name")
    if name == AVG15MIN:
        groups = avg15min_groups(kwargs.get("label"))
        extra = sorted(set(kwargs) - {"label"})
        if extra:
            raise ConfigError(f"unknown argument {extra[0]!r} of {AVG15MIN} (accepted: label)",
                              path=f"handler.kwargs.{extra[0]}")
    elif kernel is not None:
        try:
            inner = kernel.create("feature_set", name, **kwargs)
        except ConfigError as exc:  # the handler's own argument: placed under handler.kwargs
            if exc.source is not None:
                raise
            raise ConfigError(exc.message, path=f"handler.kwargs.{exc.path}" if exc.path else "handler.kwargs") \
                from None
        if inner.resample:
            raise ConfigError(f"{name} already resamples some of its columns: it cannot be read at another "
                              "frequency again", path="handler.name")  # fmt: skip
        groups = {"feature": dict(inner.features), "label": dict(inner.labels)}
    else:
        groups = {"feature": {}, "label": {}}
    rules = group_rules(list(groups), freq, inst_processors)
    features: dict[str, str] = {}
    resample: dict[str, Resample] = {}
    for group, columns in groups.items():
        if group != "label":
            features.update(columns)
        rule = rules[group]
        if rule is not None:
            resample.update(dict.fromkeys(columns, rule))
    return FeatureSet(features, groups["label"], resample=resample)
