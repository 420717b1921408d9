"""Qlib's ``MTSDatasetH`` (memory-augmented time-series dataset) over any qcore dataset: the sampler TRA reads.

Built once from the dataset's processed learning data (``learn``, as Qlib's — every segment, test included),
rows ordered by instrument then date:

- a sample is the ``seq_len`` rows of its instrument ending at it (fewer at an instrument's start: zeros in front),
  or with ``input_size`` its own row reshaped to ``(steps, input_size)`` (Alpha360's layout);
- a **memory** holds, per sample (``memory_mode="sample"``) or per date (``"daily"``), the latest normalised loss of
  each of the ``num_states`` predictors; a sample's **state** is the memory over its window with the last
  ``horizon`` rows left out (their labels are not known yet when the sample is predicted); a day's state is the
  memory of the ``seq_len`` dates ending ``horizon`` dates before it;
- training batches: ``batch_size > 0`` samples at random (``shuffle``) cut into batches, the short last one dropped
  with ``drop_last``; ``batch_size < 0``: ``-batch_size`` whole dates per batch, each date down-sampled to
  ``n_samples`` stocks when given. Evaluation always goes date by date, in order, every stock.

Missing feature values are 0 (as Qlib's). ``horizon=0`` is guessed from the label's expression, as Qlib
does (``Ref($close, -2) / Ref($close, -1) - 1`` → 2, the furthest ``Ref(..., -n)``; the expression is the dataset's
``label_expressions`` entry, else the label's name); a label whose expression is unknown needs ``horizon`` given.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

import attrs
import numpy as np
import pandas as pd

from qcore.errors import ConfigError, QcoreError
from qcore.protocols import Dataset
from qmodel_zoo._base import check_choice, check_known, check_number

#: ``MTSDatasetH``'s arguments (besides ``handler`` and ``segments``) and Qlib's defaults.
MTS_DEFAULTS: dict[str, Any] = {"seq_len": 60, "horizon": 0, "num_states": 0, "memory_mode": "sample",
                                "batch_size": -1, "n_samples": None, "shuffle": True, "drop_last": False,
                                "input_size": None}
_REF = re.compile(r"Ref\s*\(.*?,\s*-\s*(\d+)\s*\)")


@attrs.frozen
class MTSSettings:
    """Checked ``MTSDatasetH`` arguments; see the module docstring."""

    seq_len: int = 60
    horizon: int = 0
    num_states: int = 0
    memory_mode: str = "sample"
    batch_size: int = -1
    n_samples: int | None = None
    shuffle: bool = True
    drop_last: bool = False
    input_size: int | None = None

    @classmethod
    def parse(cls, given: Mapping[str, Any] | None, path: str = "sampler") -> MTSSettings:
        """Settings from a mapping of ``MTSDatasetH`` arguments (None values take Qlib's defaults); errors name
        ``<path>.<key>``."""
        if given is None:
            given = {}
        if not isinstance(given, Mapping):
            raise ConfigError(f"{path} must be a mapping of MTSDatasetH arguments, got {given!r}", path=path)
        try:
            check_known("MTSDatasetH", given, MTS_DEFAULTS)
            values = {k: (MTS_DEFAULTS[k] if given.get(k) is None else given[k]) for k in MTS_DEFAULTS}
            check_number("seq_len", values["seq_len"], low=1, integer=True)
            check_number("horizon", values["horizon"], low=0, integer=True)
            check_number("num_states", values["num_states"], low=0, integer=True)
            check_choice("memory_mode", values["memory_mode"], ("sample", "daily"))
            check_number("batch_size", values["batch_size"], integer=True)
            if values["batch_size"] == 0:
                raise ConfigError("batch_size must not be 0 (> 0: samples per batch; < 0: dates per batch)",
                                  path="batch_size")
            if values["memory_mode"] == "daily" and values["batch_size"] > 0:
                raise ConfigError("daily memory needs daily sampling (batch_size < 0)", path="batch_size")
            for key in ("n_samples", "input_size"):
                if values[key] is not None:
                    check_number(key, values[key], low=1, integer=True)
            for key in ("shuffle", "drop_last"):
                if not isinstance(values[key], bool):
                    raise ConfigError(f"{key} must be true or false, got {values[key]!r}", path=key)
            if values["horizon"] and values["horizon"] >= values["seq_len"] and values["memory_mode"] == "sample":
                raise ConfigError(f"horizon={values['horizon']} leaves no memory in a seq_len={values['seq_len']} "
                                  "window", path="horizon")
        except ConfigError as exc:
            raise ConfigError(exc.message, path=f"{path}.{exc.path}" if exc.path else path) from None
        return cls(**{k: (int(v) if isinstance(v, int | np.integer) and not isinstance(v, bool) else v)
                      for k, v in values.items()})


def guess_horizon(label_name: str) -> int:
    """The furthest future row a label expression reads (``Ref(x, -n)`` → n); 0 when it names none."""
    return max((int(n) for n in _REF.findall(str(label_name))), default=0)


@attrs.frozen
class Batch:
    """One batch: inputs, memory states, labels, sample rows, and for daily batches the dates and their sizes."""

    data: np.ndarray
    state: np.ndarray
    label: np.ndarray
    rows: np.ndarray
    days: np.ndarray
    counts: list[int] | None


class MemoryDataset:
    """The memory-augmented view of a dataset (see the module docstring)."""

    def __init__(self, dataset: Dataset, settings: MTSSettings, segments: list[str],
                 feature_names: list[str] | None = None) -> None:
        parts = [dataset.xy(segment, "learn") for segment in segments]
        features = pd.concat([p[0] for p in parts])
        labels = [p[1] for p in parts]
        if any(label is None for label in labels):
            raise QcoreError("TRA's memory needs labels in every segment it reads (Qlib's MTSDatasetH reads the "
                             "learning data)")
        label = pd.concat(labels).reindex(features.index) if labels else None
        keep = ~features.index.duplicated()
        features, label = features[keep], label[keep]
        self.feature_names = [str(c) for c in features.columns] if feature_names is None else list(feature_names)
        missing = [n for n in self.feature_names if n not in features.columns]
        if missing:
            raise QcoreError(f"the dataset lacks {len(missing)} feature(s) the model was fitted on: {missing[0]}")
        dates = features.index.get_level_values("datetime")
        names = features.index.get_level_values("instrument")
        inst_codes, _ = pd.factorize(names, sort=True)
        day_codes, self.days = pd.factorize(dates, sort=True)
        order = np.lexsort((day_codes, inst_codes))
        self.index = features.index[order]
        x = features.loc[:, self.feature_names].to_numpy(dtype=np.float32)[order]
        self.x = np.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0)
        self.y = label.to_numpy(dtype=np.float32)[order]
        self.day = day_codes[order]
        inst = inst_codes[order]
        first = np.r_[True, inst[1:] != inst[:-1]]
        self.inst_start = np.maximum.accumulate(np.where(first, np.arange(len(inst)), 0))
        by_day = np.argsort(self.day, kind="stable")
        bounds = np.searchsorted(self.day[by_day], np.arange(len(self.days) + 1))
        self.day_rows = [by_day[bounds[d] : bounds[d + 1]] for d in range(len(self.days))]
        horizon = settings.horizon
        if horizon == 0 and settings.num_states > 0:
            expressions = getattr(dataset, "label_expressions", None) or {}
            horizon = guess_horizon(str(expressions.get(label.name, label.name)))
            if horizon == 0:
                raise QcoreError(f"cannot guess the label's horizon from {label.name!r}: give the sampler's "
                                 "horizon (how many days ahead the label looks), or the memory would leak labels")
        self.settings = attrs.evolve(settings, horizon=horizon)
        if settings.input_size is not None and len(self.feature_names) % settings.input_size:
            raise QcoreError(f"input_size={settings.input_size} does not divide the {len(self.feature_names)} "
                             "features of a row")
        width = max(settings.num_states, 1)
        self.memory = np.zeros((len(self.x) if settings.memory_mode == "sample" else len(self.days), width),
                               dtype=np.float32)
        self._segments = {s: self._bounds(dataset, s) for s in segments}

    def _bounds(self, dataset: Dataset, segment: str) -> tuple[int, int]:
        segments = getattr(dataset, "segments", None)
        if isinstance(segments, Mapping) and segment in segments:
            bounds = segments[segment]
            start, end = (bounds.start, bounds.end) if hasattr(bounds, "start") else bounds
        else:
            dates = dataset.xy(segment, "learn")[0].index.get_level_values("datetime")
            start, end = dates.min(), dates.max()
        lo = int(self.days.searchsorted(pd.Timestamp(start), "left"))
        hi = int(self.days.searchsorted(pd.Timestamp(end), "right"))
        return lo, hi

    @property
    def input_width(self) -> int:
        """Features per step of a sample."""
        return self.settings.input_size or len(self.feature_names)

    def has_segment(self, segment: str) -> bool:
        """Whether the view was built with ``segment``."""
        return segment in self._segments

    def segment_days(self, segment: str) -> range:
        """Date positions of ``segment``."""
        lo, hi = self._segments[segment]
        return range(lo, hi)

    def segment_rows(self, segment: str) -> np.ndarray:
        """Sample rows of ``segment``, in the dataset's (instrument, date) order."""
        lo, hi = self._segments[segment]
        return np.flatnonzero((self.day >= lo) & (self.day < hi))

    def clear_memory(self) -> None:
        """Forget every stored loss."""
        self.memory[:] = 0

    def assign(self, batch: Batch, losses: np.ndarray) -> None:
        """Store the normalised per-state losses of a batch (per sample, or per date with daily memory)."""
        target = batch.rows if self.settings.memory_mode == "sample" else batch.days
        self.memory[target] = losses

    def _windows(self, source: np.ndarray, rows: np.ndarray) -> np.ndarray:
        offsets = np.arange(-self.settings.seq_len + 1, 1)
        t = rows[:, None] + offsets[None, :]
        out = source[np.clip(t, 0, None)]
        out[t < self.inst_start[rows][:, None]] = 0
        return out

    def batch(self, rows: np.ndarray, days: np.ndarray | None = None, counts: list[int] | None = None) -> Batch:
        """The batch of the given sample rows (and, for daily batches, their dates and per-date counts)."""
        s = self.settings
        if s.input_size:
            data = np.ascontiguousarray(self.x[rows].reshape(len(rows), s.input_size, -1).transpose(0, 2, 1))
        else:
            data = self._windows(self.x, rows)
        if s.memory_mode == "sample":
            state = self._windows(self.memory, rows)
            if s.horizon:
                state = state[:, : -s.horizon]
        else:
            state = np.zeros((len(days), s.seq_len, self.memory.shape[1]), dtype=np.float32)
            for i, d in enumerate(days):
                part = self.memory[max(d - s.seq_len - s.horizon, 0) : max(d - s.horizon, 0)]
                if len(part):
                    state[i, s.seq_len - len(part) :] = part
        day_array = np.asarray([] if days is None else days, dtype=np.int64)
        return Batch(data, np.ascontiguousarray(state), self.y[rows], rows, day_array, counts)

    def train_batches(self, segment: str, rng: np.random.Generator) -> Iterator[Batch]:
        """The training batches of one epoch (see the module docstring)."""
        s = self.settings
        if s.batch_size > 0:
            rows = self.segment_rows(segment)
            if s.shuffle:
                rows = rows[rng.permutation(len(rows))]
            for i in range(0, len(rows), s.batch_size):
                if s.drop_last and i + s.batch_size > len(rows):
                    break
                yield self.batch(rows[i : i + s.batch_size])
            return
        days = np.asarray(self.segment_days(segment))
        if s.shuffle:
            days = days[rng.permutation(len(days))]
        size = -s.batch_size
        for i in range(0, len(days), size):
            if s.drop_last and i + size > len(days):
                break
            chosen, parts = days[i : i + size], []
            for d in chosen:
                rows = self.day_rows[d]
                if s.n_samples and s.n_samples < len(rows):
                    rows = np.sort(rng.choice(rows, s.n_samples, replace=False))
                parts.append(rows)
            yield self.batch(np.concatenate(parts), chosen, [len(p) for p in parts])

    def eval_batches(self, days: range) -> Iterator[Batch]:
        """One batch per date of ``days``, in order, every stock."""
        for d in days:
            rows = self.day_rows[d]
            if len(rows):
                yield self.batch(rows, np.asarray([d]), [len(rows)])
