"""The ``qcore mine`` config: a small YAML file read with the kernel's line-numbered reader, checked whole before
any data is read (every error names its key and line).

.. code-block:: yaml

    data:
      provider: {name: qlib_bin, kwargs: {provider_uri: data/synth_cn}}
      universe: csi300
      label: Ref($close, -2)/Ref($close, -1) - 1
      spans: {train: [2016-01-01, 2018-12-31], valid: [2019-01-01, 2019-12-31], test: [2020-01-01, 2020-12-31]}
    search:
      proposer: {name: genetic, kwargs: {crossover: 0.5}}
      seed: 0
      population: 60
      generations: 6
      fields: [close, open, high, low, volume]   # default: every field of the store
      operators: [Mean, Std, Ref, Delta, Div, Sub, CSRank]   # default: every operator that fits the grammar
      windows: [5, 10, 20]
      max_depth: 4
      max_size: 10
    fitness: {metric: rank_ic, complexity_penalty: 0.0005, max_correlation: 0.7}
    # or metric: ls_return / ls_sharpe — the daily long–short book of the top and bottom `quantile` (0.2) after
    # `cost` (0.001) per unit traded
    selection: {keep: 10, valid_keep_ratio: 0.5, alpha: 0.05}
    library: mined.json
    if_exists: append     # or replace (start the library afresh), reuse (mine nothing when it exists)

The same keys form a workflow's ``mine:`` section (:mod:`qmine.section`), where ``data`` may be left out.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import attrs
import pandas as pd

from qcore.dates import DateError, parse_date
from qcore.errors import ConfigError
from qcore.yamldoc import interpolate, read_yaml

METRICS = ("rank_ic", "ic", "rank_icir", "icir", "ls_return", "ls_sharpe")
#: Metrics of the long–short book (scored after costs; negative values are kept, not mirrored).
BOOK_METRICS = ("ls_return", "ls_sharpe")
DEFAULT_LABEL = "Ref($close, -2)/Ref($close, -1) - 1"
_SECTIONS = {
    "data": ("provider", "universe", "label", "spans"),
    "search": ("proposer", "seed", "population", "generations", "fields", "operators", "windows", "max_depth",
               "max_size"),
    "fitness": ("metric", "complexity_penalty", "max_correlation", "quantile", "cost"),
    "selection": ("keep", "valid_keep_ratio", "alpha"),
}
#: What a run does with a library file that already exists: add to it, start it afresh, or use it as it is.
IF_EXISTS = ("append", "replace", "reuse")


@attrs.frozen
class MineConfig:
    """A checked ``qcore mine`` config (see the module docstring for the keys and defaults).

    In a workflow's ``mine:`` section, ``provider``, ``universe`` and ``spans`` may be left out (None/empty here)
    and are taken from the workflow's ``data`` and ``dataset`` sections when the run starts.

    :ivar if_exists: ``append`` (the default of ``qcore mine``), ``replace`` (the default of a ``mine:``
        section) or ``reuse`` (mine nothing when the library exists).
    :ivar prefix: the key path of the config inside its file (``mine.`` for a workflow section).
    :ivar source: the file the config came from.
    """

    provider: str | None
    provider_kwargs: Mapping[str, Any]
    universe: str | None
    label: str
    spans: Mapping[str, tuple[pd.Timestamp, pd.Timestamp]]
    proposer: str
    proposer_kwargs: Mapping[str, Any]
    seed: int
    population: int
    generations: int
    fields: tuple[str, ...] | None
    operators: tuple[str, ...] | None
    windows: tuple[int, ...]
    max_depth: int
    max_size: int
    metric: str
    complexity_penalty: float
    max_correlation: float
    keep: int
    valid_keep_ratio: float
    alpha: float
    library: Path
    if_exists: str = "append"
    prefix: str = ""
    #: the long–short book's quantile and cost per unit traded (``ls_*`` metrics).
    quantile: float = 0.2
    cost: float = 0.001
    source: str = ""
    fail: Callable[[str, str], ConfigError] | None = attrs.field(default=None, eq=False, repr=False)

    def error(self, message: str, path: str) -> ConfigError:
        """The :class:`ConfigError` to raise about the value at ``path`` (its line when the file gave one)."""
        where = f"{self.prefix}{path}"
        return self.fail(message, where) if self.fail is not None else ConfigError(message, path=where)


class _Reader:
    def __init__(self, data: Mapping[str, Any], fail: Callable[[str, str], ConfigError], prefix: str = "") -> None:
        self.data = data
        self.fail = fail
        self.prefix = prefix

    def error(self, message: str, path: str) -> ConfigError:
        return self.fail(message, f"{self.prefix}{path}")

    def section(self, name: str, required: bool = True) -> dict[str, Any]:
        value = self.data.get(name)
        if value is None:
            if required:
                raise self.error(f"missing section {name!r}", name)
            return {}
        if not isinstance(value, dict):
            raise self.error("expected a mapping", name)
        unknown = sorted(set(value) - set(_SECTIONS[name]))
        if unknown:
            raise self.error(f"unknown key {unknown[0]!r}; allowed: {', '.join(_SECTIONS[name])}",
                             f"{name}.{unknown[0]}")  # fmt: skip
        return value

    def number(self, body: Mapping[str, Any], path: str, default: Any, kind: type, lo: float, hi: float) -> Any:
        key = path.rpartition(".")[2]
        value = body.get(key, default)
        if isinstance(value, bool) or not isinstance(value, (int, float) if kind is float else int):
            raise self.error(f"expected {'a number' if kind is float else 'an integer'}, got {value!r}", path)
        if not lo <= value <= hi:
            raise self.error(f"must be between {lo} and {hi}, got {value!r}", path)
        return kind(value)

    def names(self, body: Mapping[str, Any], path: str) -> tuple[str, ...] | None:
        value = body.get(path.rpartition(".")[2])
        if value is None:
            return None
        if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
            raise self.error("expected a non-empty list of names", path)
        return tuple(v.lstrip("$") for v in value)

    def component(self, value: Any, path: str, default: str | None = None) -> tuple[str, dict[str, Any]]:
        if value is None and default is not None:
            return default, {}
        if isinstance(value, str):
            return value, {}
        if isinstance(value, dict) and isinstance(value.get("name"), str) and set(value) <= {"name", "kwargs"}:
            kwargs = value.get("kwargs") or {}
            if not isinstance(kwargs, dict):
                raise self.error("kwargs must be a mapping", f"{path}.kwargs")
            return value["name"], dict(kwargs)
        raise self.error("expected a name or {name: ..., kwargs: {...}}", path)

    def spans(self, value: Any) -> dict[str, tuple[pd.Timestamp, pd.Timestamp]]:
        if not isinstance(value, dict) or not {"train", "valid"} <= set(value) or set(value) - {"train", "valid",
                                                                                               "test"}:
            raise self.error("expected {train: [first, last], valid: [first, last]} and optionally test",
                                 "data.spans")  # fmt: skip
        out: dict[str, tuple[pd.Timestamp, pd.Timestamp]] = {}
        for name in ("train", "valid", "test"):
            if name not in value:
                continue
            item, path = value[name], f"data.spans.{name}"
            if not isinstance(item, list) or len(item) != 2:
                raise self.error("expected [first, last]", path)
            try:
                first, last = parse_date(item[0], path), parse_date(item[1], path)
            except DateError as exc:
                raise self.error(str(exc), path) from None
            if first > last:
                raise self.error(f"first day {first.date()} is after last day {last.date()}", path)
            out[name] = (first, last)
        order = [out[n] for n in ("train", "valid", "test") if n in out]
        for (_, end), (start, _) in itertools.pairwise(order):
            if start <= end:
                raise self.error("spans must follow each other without overlap (train, valid, test)",
                                     "data.spans")  # fmt: skip
        return out


def load_config(path: str | Path) -> MineConfig:
    """Read and check a mine config (``${VAR:-default}`` filled from the environment, as in workflows);
    ``library`` is resolved against the config's folder."""
    doc = interpolate(read_yaml(path))
    return build_config(doc.data, doc.error, base=Path(path).resolve().parent, source=str(doc.source))


def build_config(data: Mapping[str, Any], fail: Callable[[str, str], ConfigError], *, base: Path,
                 source: str = "", prefix: str = "", section: bool = False) -> MineConfig:  # fmt: skip
    """Check a mine config given as a mapping; ``fail(message, key path)`` makes each error (with its line).

    :param base: the folder a relative ``library`` is resolved against.
    :param prefix: the config's key path in its file (``mine.``), put before every key in errors.
    :param section: a workflow's ``mine:`` section: ``data`` and its ``provider``, ``universe`` and ``spans`` may
        be left out (the workflow's are used), ``if_exists`` defaults to ``replace``.
    """
    r = _Reader(data, fail, prefix)
    allowed = [*_SECTIONS, "library", "if_exists"]
    unknown = sorted(set(data) - set(allowed))
    if unknown:
        raise r.error(f"unknown section {unknown[0]!r}; allowed: {', '.join(allowed)}", unknown[0])
    body, search = r.section("data", not section), r.section("search")
    fitness, selection = r.section("fitness", False), r.section("selection", False)
    provider: str | None
    provider_kwargs: dict[str, Any]
    if section and body.get("provider") is None:
        provider, provider_kwargs = None, {}
    else:
        provider, provider_kwargs = r.component(body.get("provider"), "data.provider")
    for key in ("universe", "label"):
        if key in body and not (isinstance(body[key], str) and body[key].strip()):
            raise r.error("expected a non-empty string", f"data.{key}")
    proposer, proposer_kwargs = r.component(search.get("proposer"), "search.proposer", "genetic")
    windows = search.get("windows", [5, 10, 20, 60])
    if not isinstance(windows, list) or not windows or not all(
            isinstance(w, int) and not isinstance(w, bool) and 1 <= w <= 250 for w in windows):
        raise r.error("expected a non-empty list of integers between 1 and 250", "search.windows")
    metric = fitness.get("metric", "rank_ic")
    if metric not in METRICS:
        raise r.error(f"metric must be one of {', '.join(METRICS)}, got {metric!r}", "fitness.metric")
    library = data.get("library")
    if not isinstance(library, str) or not library:
        raise r.error("missing 'library': the factor library file to write (.json)", "library")
    if_exists = data.get("if_exists", "replace" if section else "append")
    if if_exists not in IF_EXISTS:
        raise r.error(f"if_exists must be one of {', '.join(IF_EXISTS)}, got {if_exists!r}", "if_exists")
    lib_path = Path(library).expanduser()
    if not lib_path.is_absolute():
        lib_path = base / lib_path
    spans = r.spans(body.get("spans")) if not section or body.get("spans") is not None else {}
    return MineConfig(
        provider=provider, provider_kwargs=provider_kwargs,
        universe=body.get("universe", None if section else "csi300"), label=body.get("label", DEFAULT_LABEL),
        spans=spans,
        proposer=proposer, proposer_kwargs=proposer_kwargs,
        seed=r.number(search, "search.seed", 0, int, 0, 2**32 - 1),
        population=r.number(search, "search.population", 50, int, 2, 100_000),
        generations=r.number(search, "search.generations", 5, int, 1, 10_000),
        fields=r.names(search, "search.fields"), operators=r.names(search, "search.operators"),
        windows=tuple(windows),
        max_depth=r.number(search, "search.max_depth", 4, int, 1, 12),
        max_size=r.number(search, "search.max_size", 12, int, 1, 100),
        metric=metric,
        complexity_penalty=r.number(fitness, "fitness.complexity_penalty", 0.0005, float, 0.0, 1.0),
        max_correlation=r.number(fitness, "fitness.max_correlation", 0.7, float, 0.0, 1.0),
        quantile=r.number(fitness, "fitness.quantile", 0.2, float, 0.01, 0.5),
        cost=r.number(fitness, "fitness.cost", 0.001, float, 0.0, 0.1),
        keep=r.number(selection, "selection.keep", 10, int, 1, 10_000),
        valid_keep_ratio=r.number(selection, "selection.valid_keep_ratio", 0.5, float, 0.0, 1.0),
        alpha=r.number(selection, "selection.alpha", 0.05, float, 1e-9, 0.5),
        library=lib_path, if_exists=if_exists, prefix=prefix, source=source, fail=fail,
    )  # fmt: skip
