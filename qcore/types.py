"""Value types passed between the kernel and plugins.

They are plain data with no behaviour tied to any plugin: a data provider returns a :class:`Panel`, a universe is
a mapping of :class:`Span` tuples, a market adapter describes its rules with :class:`CostSchedule` and the
:class:`~qcore.protocols.MarketRules` protocol.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from types import MappingProxyType
from typing import TYPE_CHECKING

import attrs

if TYPE_CHECKING:  # numpy and pandas are imported where used, so importing these types stays cheap
    import numpy as np
    import pandas as pd

#: The index names of every frame qcore returns: one row per (datetime, instrument).
INDEX_NAMES = ("datetime", "instrument")


def _timestamp(value: object) -> pd.Timestamp:
    """``pd.Timestamp(value)``, importing pandas on first use."""
    import pandas as pd

    return pd.Timestamp(value)


def _datetime_index(value: object) -> pd.DatetimeIndex:
    """``pd.DatetimeIndex(value)``, importing pandas on first use."""
    import pandas as pd

    return pd.DatetimeIndex(value)


@attrs.frozen
class Span:
    """An inclusive date range during which an instrument belongs to a universe (or has data)."""

    start: pd.Timestamp = attrs.field(converter=_timestamp)
    end: pd.Timestamp = attrs.field(converter=_timestamp)

    def __attrs_post_init__(self) -> None:
        if self.end < self.start:
            raise ValueError(f"span ends ({self.end.date()}) before it starts ({self.start.date()})")

    def clip(self, start: pd.Timestamp | None, end: pd.Timestamp | None) -> Span | None:
        """This span cut to ``[start, end]``, or ``None`` when nothing is left."""
        lo = self.start if start is None else max(self.start, _timestamp(start))
        hi = self.end if end is None else min(self.end, _timestamp(end))
        return Span(lo, hi) if lo <= hi else None


#: Instruments of a universe (a market such as ``all`` or ``csi300``) with their membership spans.
Universe = Mapping[str, tuple[Span, ...]]


def clip_universe(universe: Universe, start: object = None, end: object = None) -> dict[str, tuple[Span, ...]]:
    """Keep only the parts of each membership span inside ``[start, end]``; drop instruments left with none."""
    lo = None if start is None else _timestamp(start)
    hi = None if end is None else _timestamp(end)
    out: dict[str, tuple[Span, ...]] = {}
    for inst, spans in universe.items():
        kept = tuple(s for s in (span.clip(lo, hi) for span in spans) if s is not None)
        if kept:
            out[inst] = kept
    return out


def membership_mask(universe: Universe, dates: pd.DatetimeIndex, instruments: Sequence[str]) -> np.ndarray:
    """A boolean ``(len(dates), len(instruments))`` array: True where the instrument is a member on that date."""
    import numpy as np

    mask = np.zeros((len(dates), len(instruments)), dtype=bool)
    values = dates.values
    for j, inst in enumerate(instruments):
        for span in universe.get(inst, ()):
            lo = np.searchsorted(values, span.start.to_datetime64(), side="left")
            hi = np.searchsorted(values, span.end.to_datetime64(), side="right")
            mask[lo:hi, j] = True
    return mask


@attrs.frozen(eq=False)
class Panel:
    """Fields on a time × instrument grid: ``data[field]`` is an array of shape ``(len(dates), len(instruments))``.

    Rows are calendar dates (suspended days included, as NaN); columns are instruments. A panel is what a data
    provider returns and what the expression engine computes on, whole, without per-instrument loops.
    """

    dates: pd.DatetimeIndex = attrs.field(converter=_datetime_index)
    instruments: tuple[str, ...] = attrs.field(converter=tuple)
    data: Mapping[str, np.ndarray] = attrs.field(factory=dict)

    def __attrs_post_init__(self) -> None:
        shape = (len(self.dates), len(self.instruments))
        for name, values in self.data.items():
            if values.shape != shape:
                raise ValueError(f"panel field {name!r} has shape {values.shape}, expected {shape}")

    @property
    def fields(self) -> tuple[str, ...]:
        """Field names in insertion order."""
        return tuple(self.data)

    @property
    def shape(self) -> tuple[int, int]:
        """``(number of dates, number of instruments)``."""
        return (len(self.dates), len(self.instruments))

    def __getitem__(self, field: str) -> np.ndarray:
        try:
            return self.data[field]
        except KeyError:
            raise KeyError(f"panel has no field {field!r} (fields: {', '.join(self.data)})") from None

    def __iter__(self) -> Iterator[str]:
        return iter(self.data)

    def to_frame(self, mask: np.ndarray | None = None, *, order: str = "datetime") -> pd.DataFrame:
        """A long frame with one column per field.

        :param mask: optional boolean ``(T, N)`` array; only cells where it is True become rows. Without it every
            cell of the grid is a row.
        :param order: ``"datetime"`` for index (datetime, instrument) sorted by date, ``"instrument"`` for index
            (instrument, datetime) sorted by instrument, as Qlib's ``D.features`` returns.
        """
        import numpy as np
        import pandas as pd

        t, n = self.shape
        if order == "datetime":
            rows = np.ones((t, n), dtype=bool) if mask is None else mask
            ti, ii = np.nonzero(rows)
            index = pd.MultiIndex(
                levels=[self.dates, pd.Index(self.instruments, dtype=object)], codes=[ti, ii],
                names=list(INDEX_NAMES), verify_integrity=False,
            )
            columns = {name: values[ti, ii] for name, values in self.data.items()}
        elif order == "instrument":
            rows = np.ones((n, t), dtype=bool) if mask is None else mask.T
            ii, ti = np.nonzero(rows)
            index = pd.MultiIndex(
                levels=[pd.Index(self.instruments, dtype=object), self.dates], codes=[ii, ti],
                names=["instrument", "datetime"], verify_integrity=False,
            )
            columns = {name: values[ti, ii] for name, values in self.data.items()}
        else:
            raise ValueError(f"order must be 'datetime' or 'instrument', got {order!r}")
        return pd.DataFrame(columns, index=index)


@attrs.frozen
class StampDuty:
    """A stamp-duty rate on sells effective from ``since`` (inclusive) until the next entry."""

    since: pd.Timestamp = attrs.field(converter=_timestamp)
    rate: float = attrs.field(converter=float)


@attrs.frozen
class CostSchedule:
    """Trading costs of a market.

    :ivar commission: broker commission rate on traded value, both sides.
    :ivar min_commission: the least commission charged on one order.
    :ivar stamp_duty: sell-side stamp-duty rates over time, oldest first.
    :ivar transfer_fee: exchange transfer fee rate, both sides.
    """

    commission: float = 0.0
    min_commission: float = 0.0
    stamp_duty: tuple[StampDuty, ...] = ()
    transfer_fee: float = 0.0

    def stamp_duty_on(self, date: object) -> float:
        """The stamp-duty rate on a sell on ``date``."""
        ts = _timestamp(date)
        rate = 0.0
        for entry in self.stamp_duty:
            if entry.since <= ts:
                rate = entry.rate
        return rate

    def cost(self, value: float, *, sell: bool, date: object) -> float:
        """The total cost of one order of traded ``value`` on ``date``."""
        value = abs(float(value))
        if value == 0.0:
            return 0.0
        fee = max(value * self.commission, self.min_commission) + value * self.transfer_fee
        if sell:
            fee += value * self.stamp_duty_on(date)
        return fee


#: :attr:`Resample.rule` values: each day's last valid value, or the value of the bar at a time of day.
RESAMPLE_RULES = ("last", "at")


@attrs.frozen
class Resample:
    """How a column evaluated on intraday bars becomes one value per day (Qlib's multi-frequency handlers, whose
    ``inst_processors`` turn each instrument's 1-minute frame into daily rows).

    :ivar freq: the bars the column's expression is evaluated on (``1min``), through the same store.
    :ivar rule: ``last``: each day's last non-NaN value (pandas' ``resample("1d").last()``); ``at``: the value of the
        bar stamped ``at`` (``"14:56"``), NaN kept; a day without that bar has no row.
    :ivar at: the bar's time of day, ``HH:MM``, for the ``at`` rule (None otherwise).

    A day's row is stamped with the date (midnight), the stamp of the day calendar.
    """

    freq: str = attrs.field(validator=attrs.validators.instance_of(str))
    rule: str = attrs.field(default="last", validator=attrs.validators.in_(RESAMPLE_RULES))
    at: str | None = None

    def __attrs_post_init__(self) -> None:
        import re

        if (self.rule == "at") != (self.at is not None):
            raise ValueError("the 'at' rule needs a time of day, and only it takes one")
        if self.at is not None:
            match = re.fullmatch(r"(\d{2}):(\d{2})", self.at)
            if match is None or int(match[1]) > 23 or int(match[2]) > 59:
                raise ValueError(f"expected a time of day HH:MM, got {self.at!r}")


def _resample_map(value: Mapping[str, Resample]) -> Mapping[str, Resample]:
    for name, rule in dict(value).items():
        if not isinstance(rule, Resample):
            raise TypeError(f"resample[{name!r}] must be a Resample, got {type(rule).__name__}")
    return MappingProxyType(dict(value))


#: The column groups of a dataset frame, and the joins that combine the files of :class:`StaticFiles`.
COLUMN_GROUPS = ("feature", "label")
STATIC_JOINS = ("outer", "inner")


def _group_files(value: Mapping[str, str]) -> Mapping[str, str]:
    files = dict(value)
    for group, path in files.items():
        if group not in COLUMN_GROUPS:
            raise ValueError(f"unknown column group {group!r} (groups: {', '.join(COLUMN_GROUPS)})")
        if not isinstance(path, str) or not path:
            raise ValueError(f"the {group} group needs a file path, got {path!r}")
    return MappingProxyType(files)


@attrs.frozen
class StaticFiles:
    """Columns read from files instead of evaluated from the store (Qlib's ``StaticDataLoader``): features made
    elsewhere, or precomputed once. :mod:`qcore.static_frames` reads them.

    :ivar groups: column group (``feature``, ``label``) → a file whose columns become that group's.
    :ivar frame: instead of ``groups``, one file whose columns are ``(group, name)`` pairs already.
    :ivar join: how the rows of the group files combine: ``outer`` (every row of any file, as Qlib) or ``inner``.

    Files are Parquet, Feather/Arrow IPC, CSV (first two columns the index) or pickled pandas frames (read with
    :mod:`qcore.safe_pickle`); rows are ``(datetime, instrument)`` (either order).
    """

    groups: Mapping[str, str] = attrs.field(factory=dict, converter=_group_files)
    frame: str | None = None
    join: str = attrs.field(default="outer", validator=attrs.validators.in_(STATIC_JOINS))

    def __attrs_post_init__(self) -> None:
        if bool(self.groups) == (self.frame is not None):
            raise ValueError("give either files per column group or one frame file, not both or neither")
        if self.frame is None and "feature" not in self.groups:
            raise ValueError("the files need a feature group")

    @property
    def paths(self) -> tuple[str, ...]:
        """Every file, in group order."""
        return (self.frame,) if self.frame is not None else tuple(self.groups.values())


@attrs.frozen
class FeatureSet:
    """Named feature and label expressions, as a feature-set plugin defines them (``alpha158``...).

    :ivar features: output column name → expression, in column order.
    :ivar labels: label column name → expression (``LABEL0`` → ``Ref($close, -2)/Ref($close, -1) - 1``).
    :ivar resample: column name → :class:`Resample`, for columns evaluated on intraday bars and resampled to days
        (Qlib's multi-frequency handlers); every other column is evaluated at the dataset's frequency.
    :ivar static: columns read from files (:class:`StaticFiles`) instead of evaluated; a set has either
        expressions or files. Its column names are known once the files are read.
    """

    features: Mapping[str, str] = attrs.field(factory=dict, converter=lambda m: MappingProxyType(dict(m)))
    labels: Mapping[str, str] = attrs.field(factory=dict, converter=lambda m: MappingProxyType(dict(m)))
    resample: Mapping[str, Resample] = attrs.field(factory=dict, converter=_resample_map)
    static: StaticFiles | None = attrs.field(default=None, validator=attrs.validators.optional(
        attrs.validators.instance_of(StaticFiles)))

    def __attrs_post_init__(self) -> None:
        if self.static is not None and (self.features or self.labels or self.resample):
            raise ValueError("a feature set reads its columns from files or evaluates expressions, not both")
        clash = set(self.features) & set(self.labels)
        if clash:
            raise ValueError(f"names used for both a feature and a label: {', '.join(sorted(clash))}")
        unknown = set(self.resample) - set(self.features) - set(self.labels)
        if unknown:
            raise ValueError(f"resample names columns that are not in the set: {', '.join(sorted(unknown))}")
