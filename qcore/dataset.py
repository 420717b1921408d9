"""Datasets: features and labels of a universe, split into named segments, with fitted processors.

A :class:`PanelDataset` evaluates a feature set once over the whole span of its segments (the engine handles the
warm-up), or reads it from files (a set with :attr:`~qcore.types.FeatureSet.static` files), then applies processors
the way Qlib's ``DataHandlerLP`` does: *infer* processors (normalisation, filling) are fitted on the fit window and
applied to all data; *learn* processors (dropping rows without a label, label normalisation) are applied on top for
training. Frames have two-level columns ``("feature" | "label", name)`` as in Qlib, and rows indexed
``(datetime, instrument)``.

:meth:`PanelDataset.ts_view` gives the time-series view recurrent models read: for each row, the ``step_len``
rows of the same instrument ending there, taken from one dense array without copying it per sample.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import attrs
import numpy as np
import pandas as pd

from qcore.errors import ConfigError, DataError, QcoreError
from qcore.protocols import Processor
from qcore.types import FeatureSet

#: ``data_key`` values: raw values, after infer processors, after infer and learn processors.
DATA_KEYS = ("raw", "infer", "learn")


@attrs.frozen
class Segment:
    """An inclusive date range of a dataset."""

    start: pd.Timestamp = attrs.field(converter=pd.Timestamp)
    end: pd.Timestamp = attrs.field(converter=pd.Timestamp)


def _segments(value: Mapping[str, Sequence[Any]]) -> dict[str, Segment]:
    """Named ``[start, end]`` pairs as segments; a malformed pair or date is a :class:`ConfigError` naming it."""
    from qcore.dates import parse_date

    if not isinstance(value, Mapping):
        raise ConfigError(f"segments must map names to [start, end], got {type(value).__name__}",
                          path="dataset.segments")
    out = {}
    for name, bounds in value.items():
        path = f"dataset.segments.{name}"
        if isinstance(bounds, (str, bytes)) or not isinstance(bounds, Sequence) or len(bounds) != 2:
            shown = repr(bounds) if len(repr(bounds)) <= 80 else f"{repr(bounds)[:80]}..."
            raise ConfigError(f"segment {name!r} must be [start, end], got {shown}", path=path)
        segment = Segment(parse_date(bounds[0], f"{path}.0"), parse_date(bounds[1], f"{path}.1"))
        if segment.end < segment.start:
            raise ConfigError(f"segment {name!r} ends before it starts", path=path)
        out[name] = segment
    if not out:
        raise ConfigError("a dataset needs at least one segment", path="dataset.segments")
    return out


def _check_segments_have_data(engine: Any, instruments: str | Sequence[str], segments: Mapping[str, Segment]) -> None:
    """Every segment holds trading days of the store and members of the universe; checked before evaluating.

    Only an engine with a ``provider`` (an :class:`~qcore.expr.engine.ExpressionEngine`) can be checked.
    """
    provider = getattr(engine, "provider", None)
    if provider is None:
        return
    calendar = provider.calendar(getattr(engine, "freq", "day"))
    for name, segment in segments.items():
        path = f"dataset.segments.{name}"
        lo = int(calendar.searchsorted(segment.start, "left"))
        hi = int(calendar.searchsorted(segment.end, "right"))
        if hi <= lo:
            span = f"{calendar[0].date()} to {calendar[-1].date()}" if len(calendar) else "nothing (it is empty)"
            raise ConfigError(
                f"segment {name!r} ({segment.start.date()} .. {segment.end.date()}) has no trading day in the "
                f"store, whose calendar runs from {span}",
                path=path,
            )
        if hasattr(engine, "universe") and not engine.universe(instruments, calendar[lo], calendar[hi - 1]):
            raise ConfigError(
                f"segment {name!r} ({segment.start.date()} .. {segment.end.date()}) has no member of "
                f"{instruments if isinstance(instruments, str) else 'the given instruments'}",
                path=path,
            )


def make_processor(factory: Callable[..., Any], kwargs: Mapping[str, Any], fit_start: Any, fit_end: Any) -> Any:
    """Build a processor, passing ``fit_start_time``/``fit_end_time`` when its factory takes them (as Qlib does)."""
    params = dict(kwargs)
    try:
        signature = inspect.signature(factory)
    except (TypeError, ValueError):
        signature = None
    if signature is not None:
        accepted = signature.parameters
        for key, value in (("fit_start_time", fit_start), ("fit_end_time", fit_end)):
            if key in accepted and params.get(key) is None:
                params[key] = value
    return factory(**params)


def _date_rows(frame: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
    """The rows of ``frame`` dated within ``[start, end]``.

    Dataset frames are sorted by date, so the rows are one contiguous run: a positional slice, which pandas gives
    as a view of the same memory (no copy of a frame that may hold hundreds of megabytes). Frames that are not
    sorted by date fall back to a boolean selection (a copy).
    """
    dates = frame.index.get_level_values("datetime")
    if dates.is_monotonic_increasing:
        lo = int(dates.searchsorted(start, "left"))
        hi = int(dates.searchsorted(end, "right"))
        return frame.iloc[lo:hi]
    return frame[(dates >= start) & (dates <= end)]


def _column_group(frame: pd.DataFrame, group: str) -> pd.DataFrame:
    """The columns of ``group`` (level 0) with the group level dropped, as ``frame[group]`` gives them.

    A group whose columns sit side by side (as :func:`build_dataset` lays them out) is taken as a positional slice,
    a view rather than the copy ``frame[group]`` makes of a single-dtype frame.
    """
    where = np.flatnonzero(frame.columns.get_level_values(0) == group)
    if len(where) == 0 or where[-1] - where[0] + 1 != len(where):
        return frame[group]
    part = frame.iloc[:, where[0] : where[-1] + 1]
    return part.set_axis(part.columns.get_level_values(1), axis=1, copy=False)


def _describe(component: Any) -> str:
    """A stable text of a component's type and settings (for :attr:`PanelDataset.fingerprint`)."""
    kind = f"{type(component).__module__}.{type(component).__qualname__}"
    settings = getattr(component, "__dict__", None)
    if settings is None:
        return f"{kind}({component!r})"
    return f"{kind}({sorted((str(k), repr(v)) for k, v in settings.items())})"


def dataset_fingerprint(*parts: object) -> str:
    """A digest of ``parts`` (their ``repr``), used to key caches of what is derived from a dataset."""
    import hashlib

    digest = hashlib.blake2b(digest_size=16)
    for part in parts:
        digest.update(repr(part).encode())
        digest.update(b"\0")
    return digest.hexdigest()


class PanelDataset:
    """Features and labels over named segments; see the module docstring.

    :param frame: raw values, rows ``(datetime, instrument)``, columns ``(group, name)``.
    :param segments: name → ``(start, end)``.
    :param infer_processors: applied to all data, fitted on ``[fit_start, fit_end]``.
    :param learn_processors: applied after the infer processors to training data.
    :param fit_start: start of the fit window (default: the ``train`` segment's start).
    :param fit_end: end of the fit window (default: the ``train`` segment's end).
    :param lazy_learn: apply the learn processors when the ``learn`` data is first asked for, not now (a model that
        finds its training data in a cache never asks: neither the time nor the memory of that copy is spent).
    """

    def __init__(
        self,
        frame: pd.DataFrame,
        segments: Mapping[str, Sequence[Any]],
        *,
        infer_processors: Sequence[Processor] = (),
        learn_processors: Sequence[Processor] = (),
        fit_start: Any = None,
        fit_end: Any = None,
        lazy_learn: bool = False,
    ) -> None:
        if not isinstance(frame.columns, pd.MultiIndex) or frame.columns.nlevels != 2:
            raise QcoreError("dataset frames need two-level columns (group, name)")
        self.segments = _segments(segments)
        train = self.segments.get("train")
        from qcore.dates import parse_date

        self.fit_start = parse_date(fit_start, "dataset.fit_start") if fit_start is not None else (
            train.start if train else None)
        self.fit_end = parse_date(fit_end, "dataset.fit_end") if fit_end is not None else (
            train.end if train else None)
        for processor in infer_processors:
            if not processor.is_for_infer():
                raise ConfigError(f"{type(processor).__name__} cannot be an infer processor (it is for learning only)")
        self._raw = frame
        #: A token that identifies this dataset's content (data version, features, segments, processors) for
        #: caches of what is derived from it; None when it cannot be known (:func:`build_dataset` sets it).
        self.fingerprint: str | None = None
        #: label column → the expression it was evaluated from, when known (:func:`build_dataset` sets it).
        self.label_expressions: dict[str, str] = {}
        #: the data provider the frame was evaluated from, when known (:func:`build_dataset` sets it): models that
        #: need side data of the same store (an industry field, say) read it here.
        self.provider: Any = None
        self._infer = self._fit_apply(frame, infer_processors)
        self._learn_processors = tuple(learn_processors)
        self._learn: pd.DataFrame | None = None
        if not lazy_learn:
            self._learn = self._fit_apply(self._infer, self._learn_processors)

    def _fit_apply(self, frame: pd.DataFrame, processors: Sequence[Processor]) -> pd.DataFrame:
        for processor in processors:
            fit_part = frame if self.fit_start is None else _date_rows(frame, self.fit_start, self.fit_end)
            processor.fit(fit_part)
            del fit_part
            frame = processor(frame)
        return frame

    @property
    def feature_names(self) -> list[str]:
        """Feature columns after processing."""
        return list(self._infer["feature"].columns)

    def frame(self, data_key: str = "infer") -> pd.DataFrame:
        """The whole processed frame for ``data_key`` (``raw``, ``infer`` or ``learn``)."""
        if data_key not in DATA_KEYS:
            raise QcoreError(f"data_key must be one of {', '.join(DATA_KEYS)}, got {data_key!r}")
        if data_key == "learn" and self._learn is None:
            self._learn = self._fit_apply(self._infer, self._learn_processors)
        return {"raw": self._raw, "infer": self._infer, "learn": self._learn}[data_key]

    def release(self, data_key: str = "learn") -> None:
        """Let go of the ``learn`` frame, which a consumer has taken what it needs from (a model that copied its
        training matrices): its memory is freed, and the frame is computed again, identically, if asked for."""
        if data_key != "learn":
            raise QcoreError(f"only the learn frame can be released, not {data_key!r}")
        self._learn = None

    def prepare(
        self, segment: str, col_set: str | Sequence[str] = "__all", data_key: str = "infer"
    ) -> pd.DataFrame:
        """Rows of ``segment`` for the column group(s) ``col_set`` (``feature``, ``label`` or ``__all``)."""
        if segment not in self.segments:
            known = ", ".join(self.segments)
            raise QcoreError(f"unknown segment {segment!r} (segments: {known})")
        bounds = self.segments[segment]
        frame = self.frame(data_key)
        if col_set != "__all":  # pick the columns first: only they are copied when the rows are cut
            frame = _column_group(frame, col_set) if isinstance(col_set, str) else frame.loc[:, list(col_set)]
        return _date_rows(frame, bounds.start, bounds.end)

    def xy(self, segment: str, data_key: str | None = None) -> tuple[pd.DataFrame, pd.Series | None]:
        """Features and the first label of ``segment``.

        ``data_key`` defaults to ``learn`` for ``train``/``valid`` and ``infer`` otherwise, as Qlib's models use.
        """
        key = data_key or ("learn" if segment in ("train", "valid") else "infer")
        rows = self.prepare(segment, "__all", key)
        features = _column_group(rows, "feature")
        label = _column_group(rows, "label").iloc[:, 0] if "label" in rows.columns.get_level_values(0) else None
        return features, label

    def ts_view(self, segment: str, step_len: int = 30, data_key: str | None = None) -> TSView:
        """The time-series view of ``segment``: a ``step_len`` window of features ending at each row."""
        key = data_key or ("learn" if segment in ("train", "valid") else "infer")
        return TSView(self, segment, step_len, key)


class TSView:
    """Windows of ``step_len`` rows per instrument over a dense ``(dates, instruments, features)`` array.

    The dense array spans the segment plus ``step_len - 1`` earlier dates; dates missing for an instrument are NaN
    (Qlib's ``fillna_type="none"``). ``view[i]`` is a read-only view, ``view.batch(indices)`` one gathered copy.
    """

    def __init__(self, dataset: PanelDataset, segment: str, step_len: int, data_key: str) -> None:
        if step_len < 1:
            raise QcoreError(f"step_len must be >= 1, got {step_len}")
        self.step_len = step_len
        rows = dataset.prepare(segment, "__all", data_key)
        infer = dataset.frame("infer")["feature"]
        all_dates = infer.index.get_level_values("datetime").unique().sort_values()
        seg_dates = rows.index.get_level_values("datetime").unique().sort_values()
        if len(seg_dates) == 0:
            raise QcoreError(f"segment {segment!r} has no rows")
        first = max(0, int(all_dates.searchsorted(seg_dates[0])) - (step_len - 1))
        last = int(all_dates.searchsorted(seg_dates[-1]))
        dates = all_dates[first : last + 1]
        instruments = rows.index.get_level_values("instrument").unique().sort_values()
        source = infer[infer.index.get_level_values("datetime").isin(dates)]
        source = source[source.index.get_level_values("instrument").isin(instruments)]
        t_idx = dates.get_indexer(source.index.get_level_values("datetime"))
        n_idx = instruments.get_indexer(source.index.get_level_values("instrument"))
        dense = np.full((len(dates), len(instruments), source.shape[1]), np.nan, dtype=np.float32)
        dense[t_idx, n_idx] = source.to_numpy(dtype=np.float32)
        dense.flags.writeable = False
        self._dense = dense
        self.index = rows.index
        self._t = dates.get_indexer(rows.index.get_level_values("datetime"))
        self._n = instruments.get_indexer(rows.index.get_level_values("instrument"))
        features = rows["feature"].columns
        self.feature_names = list(features)
        label = rows["label"].iloc[:, 0] if "label" in rows.columns.get_level_values(0) else None
        self.label = None if label is None else label.to_numpy(dtype=np.float32)

    def __len__(self) -> int:
        return len(self._t)

    def __getitem__(self, i: int) -> np.ndarray:
        t, n = self._t[i], self._n[i]
        window = self._dense[max(0, t - self.step_len + 1) : t + 1, n]
        if window.shape[0] == self.step_len:
            return window
        pad = np.full((self.step_len - window.shape[0], window.shape[1]), np.nan, dtype=np.float32)
        return np.concatenate([pad, window])

    def batch(self, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        """Windows of the given samples as one ``(len(indices), step_len, features)`` array."""
        idx = np.asarray(indices)
        offsets = np.arange(-self.step_len + 1, 1)
        t = self._t[idx][:, None] + offsets[None, :]
        valid = t >= 0
        out = self._dense[np.clip(t, 0, None), self._n[idx][:, None]]
        out[~valid] = np.nan
        return out


def build_dataset(
    engine: Any,
    feature_set: FeatureSet,
    *,
    instruments: str | Sequence[str],
    segments: Mapping[str, Sequence[Any]],
    infer_processors: Sequence[Processor] = (),
    learn_processors: Sequence[Processor] = (),
    fit_start: Any = None,
    fit_end: Any = None,
) -> PanelDataset:
    """Evaluate ``feature_set`` with ``engine`` over the span of ``segments`` and wrap it in a dataset."""
    parsed = _segments(segments)
    _check_segments_have_data(engine, instruments, parsed)
    start = min(s.start for s in parsed.values())
    end = max(s.end for s in parsed.values())
    expressions = {**feature_set.features, **feature_set.labels}
    static = getattr(feature_set, "static", None)
    if static is not None:
        frame = _read_static(engine, static, instruments, parsed, start, end)
    else:
        frame = _evaluate(engine, feature_set, expressions, instruments, start, end)
        groups = ["feature"] * len(feature_set.features) + ["label"] * len(feature_set.labels)
        frame.columns = pd.MultiIndex.from_arrays([groups, list(expressions)])
    # described before fitting: the settings that make the processors, not what they learn from the data
    described = ([_describe(p) for p in infer_processors], [_describe(p) for p in learn_processors])
    dataset = PanelDataset(
        frame,
        segments,
        infer_processors=infer_processors,
        learn_processors=learn_processors,
        fit_start=fit_start,
        fit_end=fit_end,
        lazy_learn=True,
    )
    dataset.label_expressions = dict(feature_set.labels)
    dataset.provider = getattr(engine, "provider", None)
    version = getattr(getattr(engine, "provider", None), "version", None)
    if isinstance(version, str) and version:
        resampled = getattr(feature_set, "resample", None)  # a part of the key only when set (keys stay as they were)
        seg = sorted((name, str(s.start), str(s.end)) for name, s in parsed.items())
        extra: list[Any] = [sorted((k, repr(v)) for k, v in resampled.items())] if resampled else []
        if static is not None:
            from qcore.static_frames import fingerprint

            extra.append(fingerprint(static))
        dataset.fingerprint = dataset_fingerprint(
            version, getattr(engine, "freq", "day"), instruments if isinstance(instruments, str) else
            tuple(instruments), sorted(feature_set.features.items()), sorted(feature_set.labels.items()),
            list(expressions), seg, str(dataset.fit_start), str(dataset.fit_end), described, *extra)
    return dataset


def _read_static(engine: Any, static: Any, instruments: str | Sequence[str], segments: Mapping[str, Segment],
                 start: Any, end: Any) -> pd.DataFrame:
    """The frame of a feature set's files (:mod:`qcore.static_frames`), cut to the segments' span and to the
    members of ``instruments`` (a warning counts the rows of non-members); every segment must keep rows."""
    import warnings

    from qcore.static_frames import read_static, select_rows

    frame = read_static(static)
    files = ", ".join(static.paths)
    if len(frame) == 0:
        raise DataError("the data files hold no rows", path=files)
    dates = frame.index.get_level_values(0)
    universe = engine.universe(instruments, start, end) if hasattr(engine, "universe") else None
    if universe is not None:
        frame, dropped = select_rows(frame, universe, start, end)
        if dropped:
            who = instruments if isinstance(instruments, str) else "the given instruments"
            warnings.warn(f"{files}: {dropped} row(s) dated {start.date()} .. {end.date()} are of instruments that "
                          f"are not members of {who} on their date: left out", UserWarning, stacklevel=3)
    else:
        frame = frame.loc[start:end]
    kept = frame.index.get_level_values(0)
    for name, segment in segments.items():
        lo, hi = kept.searchsorted(segment.start, "left"), kept.searchsorted(segment.end, "right")
        if hi <= lo:
            raise ConfigError(f"segment {name!r} ({segment.start.date()} .. {segment.end.date()}) has no row in the "
                              f"data files ({files}), which run from {dates.min().date()} to {dates.max().date()}",
                              path=f"dataset.segments.{name}")  # fmt: skip
    return frame


def _evaluate(engine: Any, feature_set: FeatureSet, expressions: Mapping[str, str], instruments: str | Sequence[str],
              start: Any, end: Any) -> pd.DataFrame:
    """The frame of ``expressions``: the feature set's resampled columns (:attr:`FeatureSet.resample`) evaluated
    on their intraday bars and reduced to days (:mod:`qcore.expr.resample`), the others by ``engine``; joined on
    ``(datetime, instrument)`` (the union of the rows, as Qlib joins its column groups), columns in order."""
    resample = getattr(feature_set, "resample", None)
    if not resample:
        return engine.evaluate(expressions, instruments, start, end)
    from qcore.expr.resample import evaluate_resampled

    rules: dict[Any, dict[str, str]] = {}
    plain = {}
    for name, text in expressions.items():
        rule = resample.get(name)
        if rule is None:
            plain[name] = text
        else:
            rules.setdefault(rule, {})[name] = text
    parts = [engine.evaluate(plain, instruments, start, end)] if plain else []
    parts += [evaluate_resampled(engine, group, rule, instruments, start, end) for rule, group in rules.items()]
    frame = pd.concat(parts, axis=1, join="outer") if len(parts) > 1 else parts[0]
    if not frame.index.is_monotonic_increasing:
        frame = frame.sort_index()
    return frame.loc[:, list(expressions)].astype(np.float32, copy=False)
