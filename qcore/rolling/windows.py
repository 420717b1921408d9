"""Rolling windows: the train/valid/test segments of each retraining window, from a calendar. Pure: no data read.

Semantics (the ``rolling:`` section of a workflow, :class:`qcore.config.RollingConfig`):

- **Step.** An integer, or ``Nd``, is N bars of the calendar (for daily bars, trading days). ``NW``, ``NM``,
  ``NQ`` and ``NY`` are calendar periods: the first test window starts on the test segment's first trading day and
  every later one on the first trading day of a period (weeks start on Monday), N periods apart, so windows follow
  the calendar's months (Qlib #1288) whatever the number of trading days in them.
- **Test windows.** Window k tests ``[S_k, S_{k+1} - 1]``. In bar steps this is exactly Qlib's ``RollingGen``:
  ``S_k = S_0 + k * step`` and the test end is ``S_k + step - 1`` (None when past the calendar), windows being
  generated while ``S_k`` is not after the test segment's end; so the last window may test past that end. What a
  window *predicts* (:attr:`Window.predict`) is its test span cut to the test segment, so the windows' predictions
  tile the test segment without overlap.
- **Train and valid.** Every other segment moves by as many bars as the test start moved (``S_k - S_0``):
  ``sliding`` moves both ends, ``expanding`` keeps the train start and moves its end (valid always slides), as
  Qlib's ``RollingGen(rtype=...)`` does.
- **Gap.** ``gap: N`` leaves N bars between the last train (and valid) day and the first test day, so a label that
  looks N bars ahead never reads the test span: each segment's ends are cut to at most ``S_0 - N - 1``. Qlib's
  ``trunc_days`` is ``gap + 1`` (``Ref($close, -2)/Ref($close, -1) - 1`` looks 2 bars ahead: ``gap: 2``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

import attrs
import numpy as np
import pandas as pd

__all__ = ["PERIOD_UNITS", "WINDOW_TYPES", "Step", "Window", "parse_step", "rolling_windows"]

#: Train window types: the train start stays (``expanding``) or moves with the test window (``sliding``).
WINDOW_TYPES = ("expanding", "sliding")
#: Step units: bars (``d``, or a plain integer) and calendar periods.
PERIOD_UNITS = {"W": "W", "M": "M", "Q": "Q", "Y": "Y"}
_STEP = re.compile(r"^\s*(\d+)\s*([dDWMQY]?)\s*$")


class WindowError(ValueError):
    """A rolling setup that gives no usable window (the message says why); the config layer places it."""


@attrs.frozen
class Step:
    """How far one window is from the next: ``count`` bars (``unit == "bar"``) or ``count`` calendar periods."""

    count: int
    unit: str = "bar"

    def __str__(self) -> str:
        return str(self.count) if self.unit == "bar" else f"{self.count}{self.unit}"


def parse_step(value: object) -> Step:
    """``40`` or ``"40d"`` (bars), ``"1W"``, ``"1M"``, ``"3M"``, ``"1Q"``, ``"1Y"``; raise :class:`WindowError`."""
    if isinstance(value, bool):
        raise WindowError(f"expected a number of bars or a period such as 20d, 1W, 1M, got {value!r}")
    if isinstance(value, int):
        count, unit = value, "bar"
    else:
        match = _STEP.match(str(value)) if isinstance(value, str) else None
        if match is None:
            raise WindowError(f"expected a number of bars or a period such as 20d, 1W, 1M, got {value!r}")
        count, letter = int(match.group(1)), match.group(2)
        unit = "bar" if letter in ("", "d", "D") else letter
    if count < 1:
        raise WindowError(f"the step must be at least 1, got {count}")
    return Step(count, unit)


@attrs.frozen
class Window:
    """One retraining window.

    :ivar index: its position, from 0.
    :ivar segments: name → ``(start, end)`` as Qlib's ``RollingGen`` gives them (an end past the calendar is None).
    :ivar predict: the part of its test span it contributes to the joined signal (inside the test segment).
    """

    index: int
    segments: Mapping[str, tuple[pd.Timestamp, pd.Timestamp | None]]
    predict: tuple[pd.Timestamp, pd.Timestamp]

    @property
    def name(self) -> str:
        """``window-000``, ``window-001``...: how runs, tags and checkpoint files name it."""
        return f"window-{self.index:03d}"

    @property
    def train(self) -> tuple[pd.Timestamp, pd.Timestamp]:
        """The train segment (the span its processors are fitted on)."""
        start, end = self.segments["train"]
        assert end is not None
        return start, end

    def dataset_segments(self) -> dict[str, tuple[pd.Timestamp, pd.Timestamp]]:
        """The segments its dataset is built with: train and valid as generated, test cut to :attr:`predict`."""
        out: dict[str, tuple[pd.Timestamp, pd.Timestamp]] = {}
        for name, (start, end) in self.segments.items():
            if name == "test":
                out[name] = self.predict
            else:
                assert end is not None
                out[name] = (start, end)
        return out

    def describe(self) -> dict[str, list[str | None]]:
        """Its segments as ISO dates (None for an open end), for params, tags and golden files."""
        return {name: [str(start.date()), None if end is None else str(end.date())]
                for name, (start, end) in self.segments.items()}  # fmt: skip


def _aligned(calendar: pd.DatetimeIndex, start: pd.Timestamp, end: pd.Timestamp) -> tuple[int, int]:
    """Calendar indices of the first trading day on/after ``start`` and the last one on/before ``end``."""
    return int(calendar.searchsorted(start, "left")), int(calendar.searchsorted(end, "right")) - 1


def _test_starts(calendar: pd.DatetimeIndex, first: int, last: int, step: Step) -> list[int]:
    """Indices of each window's first test day, from ``first`` while not after ``last``."""
    if step.unit == "bar":
        return list(range(first, last + 1, step.count))
    ordinals = calendar.to_period(PERIOD_UNITS[step.unit]).asi8
    base = int(ordinals[first])
    starts = [first]
    target = base + step.count
    while True:
        nxt = int(np.searchsorted(ordinals, target, "left"))  # period ordinals ascend with the calendar
        if nxt > last or nxt >= len(calendar):
            return starts
        starts.append(nxt)
        target = int(ordinals[nxt]) - (int(ordinals[nxt]) - base) % step.count + step.count


def _test_end(calendar: pd.DatetimeIndex, starts: list[int], k: int, step: Step) -> int | None:
    """Index of window ``k``'s last test day (None when past the calendar, as Qlib gives it)."""
    if step.unit == "bar":
        end = starts[k] + step.count - 1
        return end if end < len(calendar) else None
    if k + 1 < len(starts):
        return starts[k + 1] - 1
    ordinals = calendar.to_period(PERIOD_UNITS[step.unit]).asi8
    base = int(ordinals[starts[0]])
    own = int(ordinals[starts[k]])
    limit = own - (own - base) % step.count + step.count  # the first period of the next window
    return int(np.searchsorted(ordinals, limit, "left")) - 1


def rolling_windows(
    calendar: Sequence[pd.Timestamp] | pd.DatetimeIndex,
    segments: Mapping[str, tuple[object, object]],
    step: Step | int | str,
    window: str = "expanding",
    gap: int = 0,
) -> list[Window]:
    """The windows that roll ``segments`` (``train`` and ``test`` required, ``valid`` optional) over ``calendar``.

    See the module docstring for the rules; with a bar step and ``gap = trunc_days - 1`` the segments equal Qlib
    0.9.7's ``RollingGen(step, rtype=window, trunc_days=...)`` on the same calendar. Raise :class:`WindowError` when
    the segments leave no window (a test segment outside the calendar, a gap that eats the train segment).
    """
    cal = pd.DatetimeIndex(calendar)
    if not len(cal):
        raise WindowError("the calendar is empty")
    if window not in WINDOW_TYPES:
        raise WindowError(f"expected one of {', '.join(WINDOW_TYPES)}, got {window!r}")
    if gap < 0:
        raise WindowError(f"the gap must be 0 or more bars, got {gap}")
    step = step if isinstance(step, Step) else parse_step(step)
    for name in ("train", "test"):
        if name not in segments:
            raise WindowError(f"rolling needs a {name!r} segment")
    bounds = {name: _aligned(cal, pd.Timestamp(s), pd.Timestamp(e)) for name, (s, e) in segments.items()}
    first, last = bounds["test"]
    last = min(last, len(cal) - 1)
    if first > last:
        raise WindowError("the test segment holds no trading day of the calendar")
    for name, (lo, hi) in bounds.items():
        if name == "test":
            continue
        lo, hi = min(lo, first - gap - 1), min(hi, first - gap - 1)
        if lo < 0 or hi < lo:
            raise WindowError(f"the {name} segment has no trading day left before the test segment with a gap of "
                              f"{gap} bars")  # fmt: skip
        bounds[name] = (lo, hi)
    starts = _test_starts(cal, first, last, step)
    test_last_day = cal[last]
    out = []
    for k, start in enumerate(starts):
        shift = start - first
        segs: dict[str, tuple[pd.Timestamp, pd.Timestamp | None]] = {}
        for name, (lo, hi) in bounds.items():
            if name == "test":
                end = _test_end(cal, starts, k, step)
                segs[name] = (cal[start], None if end is None else cal[end])
                continue
            lo = lo if (name == "train" and window == "expanding") else lo + shift
            segs[name] = (cal[lo], cal[hi + shift])
        test_end = segs["test"][1]
        predict_end = test_last_day if test_end is None else min(test_end, test_last_day)
        out.append(Window(k, segs, (cal[start], predict_end)))
    return out
