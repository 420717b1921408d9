"""Train / validation / test splits of an RL config (``data.splits``).

Each split is either a date range ``[first, last]`` (inclusive) or a number of consecutive trading days taken in
order from the start of the loaded data (``{train: 80, valid: 20, test: 20}``, handy for planted data); the three
use one form. Ranges are ordered ``train < valid < test`` and never overlap: training reads the train rows, picks
its best checkpoint on the valid rows and never sees a test row; results are reported on the test rows.
"""

from __future__ import annotations

from collections.abc import Mapping
from itertools import pairwise
from typing import TYPE_CHECKING, Any

import attrs
import pandas as pd

from qcore.dates import parse_date
from qcore.errors import ConfigError

if TYPE_CHECKING:
    from qcore.config import Document

#: The splits, in time order.
NAMES = ("train", "valid", "test")


@attrs.frozen
class Splits:
    """The three splits, as day counts or as date ranges.

    :ivar counts: ``(train, valid, test)`` trading days from the start of the data, or None.
    :ivar ranges: ``{split: (first, last)}`` inclusive date ranges, or None.
    """

    counts: tuple[int, int, int] | None = None
    ranges: Mapping[str, tuple[pd.Timestamp, pd.Timestamp]] | None = None

    def __attrs_post_init__(self) -> None:
        if (self.counts is None) == (self.ranges is None):
            raise ValueError("give the splits as day counts or as date ranges (exactly one)")

    @property
    def last(self) -> pd.Timestamp | None:
        """The last date of the test range (None for day counts)."""
        return None if self.ranges is None else self.ranges["test"][1]

    def rows(self, dates: pd.DatetimeIndex, min_rows: int = 1) -> dict[str, slice]:
        """The row slice of each split in ``dates``; a split with fewer than ``min_rows`` rows is a
        ``ConfigError`` at ``data.splits.<split>``."""
        dates = pd.DatetimeIndex(dates)
        out: dict[str, slice] = {}
        if self.counts is not None:
            if sum(self.counts) > len(dates):
                raise ConfigError(f"the splits need {sum(self.counts)} trading days, the data has {len(dates)}",
                                  path="data.splits")  # fmt: skip
            lo = 0
            for name, n in zip(NAMES, self.counts, strict=True):
                out[name] = slice(lo, lo + n)
                lo += n
        else:
            assert self.ranges is not None
            for name in NAMES:
                first, last = self.ranges[name]
                out[name] = slice(int(dates.searchsorted(first, "left")), int(dates.searchsorted(last, "right")))
        for name, rows in out.items():
            n = rows.stop - rows.start
            if n < min_rows:
                raise ConfigError(f"the {name} split has {n} trading day(s) in the data; it needs at least "
                                  f"{min_rows}", path=f"data.splits.{name}")  # fmt: skip
        return out

    def to_dict(self) -> dict[str, Any]:
        """The splits as written in a config (counts or ISO date pairs)."""
        if self.counts is not None:
            return dict(zip(NAMES, self.counts, strict=True))
        assert self.ranges is not None
        return {name: [str(a.date()), str(b.date())] for name, (a, b) in self.ranges.items()}


def dates_of(dates: pd.DatetimeIndex, rows: Mapping[str, slice]) -> dict[str, list[str]]:
    """``{split: [first date, last date]}`` of resolved ``rows`` (recorded in checkpoint sidecars)."""
    return {name: [str(dates[s.start].date()), str(dates[s.stop - 1].date())] for name, s in rows.items()}


def parse(doc: Document, value: Any, path: str = "data.splits") -> Splits:
    """Validate ``data.splits``: a mapping with exactly ``train``, ``valid`` and ``test``, all day counts (positive
    integers) or all ``[first, last]`` date pairs, ordered and not overlapping."""
    if not isinstance(value, Mapping):
        raise doc.error("expected a mapping {train: ..., valid: ..., test: ...}", path)
    for key in value:
        if key not in NAMES:
            raise doc.error(f"unknown split {key!r}; the splits are train, valid and test", f"{path}.{key}")
    for name in NAMES:
        if name not in value:
            raise doc.error(f"missing the {name} split (train, valid and test are all required)", path)
    if all(_is_count(value[name]) for name in NAMES):
        for name in NAMES:
            if value[name] < 1:
                raise doc.error(f"a split needs at least one day, got {value[name]}", f"{path}.{name}")
        return Splits(counts=tuple(int(value[name]) for name in NAMES))  # type: ignore[arg-type]
    ranges: dict[str, tuple[pd.Timestamp, pd.Timestamp]] = {}
    for name in NAMES:
        item = value[name]
        where = f"{path}.{name}"
        if _is_count(item):
            raise doc.error("give every split as a day count or every split as [first, last] dates, not both", where)
        if not isinstance(item, list) or len(item) != 2:
            raise doc.error("expected [first, last] dates or a number of trading days", where)
        first, last = (_date(doc, d, f"{where}.{i}") for i, d in enumerate(item))
        if first > last:
            raise doc.error(f"the range is reversed: {first.date()} is after {last.date()}", where)
        ranges[name] = (first, last)
    for before, after in pairwise(NAMES):
        if ranges[after][0] <= ranges[before][1]:
            raise doc.error(f"the {after} split must start after the {before} split ends ({ranges[before][1].date()})"
                            "; splits are ordered train < valid < test and may not overlap", f"{path}.{after}")
    return Splits(ranges=ranges)


def parse_optional(doc: Document, value: Any, path: str) -> pd.Timestamp | None:
    """An optional date of the config (``data.start``/``data.end``), errors at ``path``."""
    return None if value is None else _date(doc, value, path)


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _date(doc: Document, value: Any, path: str) -> pd.Timestamp:
    try:
        return parse_date(value, path)
    except ConfigError as exc:
        raise doc.error(exc.message, path) from None
