"""Qlib's data loaders as feature sets: ``QlibDataLoader`` (explicit feature and label expressions with their
column names) and ``StaticDataLoader`` (columns read from files).

A Qlib config that builds its handler from a loader (``DataHandlerLP`` with ``data_loader: {class:
QlibDataLoader, kwargs: {config: {feature: ..., label: ...}}}``) names its columns itself; this module turns that
``config`` into a :class:`~qcore.types.FeatureSet`. Each group is a list of expressions (each named by itself) or
``[expressions, names]``, as in Qlib; a bare list instead of a mapping is the ``feature`` group. A
``StaticDataLoader``'s ``config`` names a file per group (or one file with both groups); the set carries them as
:class:`~qcore.types.StaticFiles`, read when the dataset is built (:mod:`qcore.static_frames`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from qcore.errors import ConfigError, DataError
from qcore.types import STATIC_JOINS, FeatureSet, StaticFiles

#: The groups a loader config may hold: the dataset frames have a ``feature`` and a ``label`` column group.
GROUPS = ("feature", "label")


def _fields(value: Any, path: str) -> dict[str, str]:
    """One group's ``[exprs]`` or ``[exprs, names]`` as name → expression."""
    if (isinstance(value, list | tuple) and len(value) == 2 and all(isinstance(v, list | tuple) for v in value)):
        exprs, names = value
        if len(exprs) != len(names):
            raise ConfigError(f"{len(exprs)} expressions but {len(names)} names", path=path)
    elif isinstance(value, list | tuple) and value:
        exprs = names = value
    else:
        raise ConfigError("expected a list of expressions or [expressions, names]", path=path)
    for i, (expr, name) in enumerate(zip(exprs, names, strict=True)):
        if not isinstance(expr, str) or not expr.strip():
            raise ConfigError(f"expected an expression, got {expr!r}", path=f"{path}.{i}")
        if not isinstance(name, str) or not name.strip():
            raise ConfigError(f"expected a column name, got {name!r}", path=f"{path}.{i}")
    if len(set(names)) != len(names):
        dup = next(n for n in names if list(names).count(n) > 1)
        raise ConfigError(f"column name {dup!r} is given twice", path=path)
    return dict(zip(names, exprs, strict=True))


def qlib_data_loader(config: Any = None, freq: str = "day", **unsupported: Any) -> FeatureSet:
    """The feature set of a ``QlibDataLoader`` ``config`` (``{feature: ..., label: ...}``).

    ``freq`` must be ``day`` (the dataset's frequency is the workflow's ``data.freq``). Qlib's ``filter_pipe``,
    ``swap_level`` and ``inst_processors`` are refused by name: dynamic instrument filters and per-instrument
    Python callbacks have no equivalent here.
    """
    if unsupported:
        key = sorted(unsupported)[0]
        raise ConfigError(f"QlibDataLoader option {key!r} is not supported (qcore supports: config, freq)",
                          path=f"{key}")
    if freq != "day":
        raise ConfigError(f"QlibDataLoader freq {freq!r} is not supported here: a dataset reads the workflow's "
                          "frequency (day)", path="freq")
    if isinstance(config, list | tuple):
        config = {"feature": config}
    if not isinstance(config, Mapping) or "feature" not in config:
        raise ConfigError("expected config: {feature: [...], label: [...]}", path="config")
    extra = [g for g in config if g not in GROUPS]
    if extra:
        raise ConfigError(f"unsupported column group {extra[0]!r} (groups: {', '.join(GROUPS)})",
                          path=f"config.{extra[0]}")
    features = _fields(config["feature"], "config.feature")
    labels = _fields(config["label"], "config.label") if config.get("label") is not None else {}
    clash = sorted(set(features) & set(labels))
    if clash:
        raise ConfigError(f"{clash[0]!r} names both a feature and a label", path="config.label")
    return FeatureSet(features, labels)


def static_data_loader(config: Any = None, join: str = "outer", **unsupported: Any) -> FeatureSet:
    """The feature set of a ``StaticDataLoader`` ``config``: ``{feature: FILE, label: FILE}`` (each file's columns
    become that group's) or one ``FILE`` whose columns are ``(group, name)`` pairs; ``join`` combines the groups'
    rows (``outer``, Qlib's default, or ``inner``).

    Relative paths are read from the current folder, as Qlib reads them. Each file must exist and have a supported
    type (Parquet, Feather/Arrow, CSV, pickled pandas frame) now, before any data is read; the files are read when
    the dataset is built.
    """
    import os

    from qcore.static_frames import check_file

    if unsupported:
        key = sorted(unsupported)[0]
        raise ConfigError(f"StaticDataLoader option {key!r} is not supported (qcore supports: config, join)", path=key)
    if join not in STATIC_JOINS:
        raise ConfigError(f"unsupported join {join!r} (choose from: {', '.join(STATIC_JOINS)})", path="join")
    if isinstance(config, str) and config.strip():
        files: dict[str, str] = {"": config}
    elif isinstance(config, Mapping) and config:
        files = dict(config)
        extra = [g for g in files if g not in GROUPS]
        if extra:
            raise ConfigError(f"unsupported column group {extra[0]!r} (groups: {', '.join(GROUPS)})",
                              path=f"config.{extra[0]}")
        if "feature" not in files:
            raise ConfigError("expected a file for the feature group: config: {feature: FILE, label: FILE}",
                              path="config")
    else:
        raise ConfigError("expected config: {feature: FILE, label: FILE} or one FILE with (group, name) columns",
                          path="config")
    resolved = {}
    for group, path in files.items():
        where = f"config.{group}" if group else "config"
        if not isinstance(path, str) or not path.strip():
            raise ConfigError(f"expected a file path, got {path!r}", path=where)
        given = os.path.expanduser(path.strip())
        full = os.path.abspath(given)
        try:
            check_file(full)
        except DataError as exc:
            looked = "" if os.path.isabs(given) else (f" (looked for {full}: relative paths are read from the "
                                                      "current folder, as in Qlib)")
            raise ConfigError(f"{path}: {exc.message}{looked}", path=where) from None
        resolved[group] = full
    if "" in resolved:
        return FeatureSet(static=StaticFiles(frame=resolved[""], join=join))
    return FeatureSet(static=StaticFiles(resolved, join=join))
