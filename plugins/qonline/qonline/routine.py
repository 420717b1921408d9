"""The online routine's steps over an :class:`~qonline.store.OnlineFolder`: predict one date, replay a span of
dates (``simulate``), and what the folder holds (``status``). Each step is idempotent: a date whose stored
prediction came from the same model and data version is not predicted again (unless forced)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import attrs
import pandas as pd

from qcore.config import WorkflowConfig
from qcore.kernel import Kernel
from qonline.serving import ServedModel, data_version, online_feature_set, predict_date, serving_model
from qonline.store import OnlineFolder


@attrs.frozen
class Predicted:
    """One date of the routine: where its scores are, the model that served it, and whether it was computed now
    (False: the stored prediction was already up to date)."""

    date: pd.Timestamp
    path: Path
    model: str
    rows: int
    computed: bool


def predict(config: WorkflowConfig, kernel: Kernel, provider: Any, folder: OnlineFolder, date: pd.Timestamp,
            *, force: bool = False, served: ServedModel | None = None) -> tuple[Predicted, ServedModel]:  # fmt: skip
    """Predict ``date`` (for the next bar) into ``folder``, unless it already holds that prediction."""
    version = data_version(provider)
    served = served or serving_model(config, kernel, provider, date, folder=folder.root)
    meta = folder.prediction_meta(date)
    path = folder.root / "predictions" / f"{date.date()}.parquet"
    if not force and meta is not None and meta.get("model") == served.source and meta.get("data_version") == version:
        return Predicted(date, path, served.source, int(meta.get("rows", 0)), False), served
    pred, served = predict_date(config, kernel, provider, date, served)
    path = folder.write_prediction(date, pred, {"model": served.source, "data_version": version})
    return Predicted(date, path, served.source, len(pred), True), served


def simulate(config: WorkflowConfig, kernel: Kernel, provider: Any, folder: OnlineFolder, start: pd.Timestamp,
             end: pd.Timestamp, *, force: bool = False) -> tuple[list[Predicted], pd.Series]:  # fmt: skip
    """Replay :func:`predict` on every trading day of ``[start, end]``, in order; returns each day and the joined
    signal (the stored scores of every day)."""
    calendar = provider.calendar(config.data.freq)
    days = calendar[(calendar >= start) & (calendar <= end)]
    done: list[Predicted] = []
    cache: dict[str, ServedModel] = {}
    for day in days:
        served = serving_model(config, kernel, provider, day, cache=cache, folder=folder.root)
        step, _ = predict(config, kernel, provider, folder, day, force=force, served=served)
        done.append(step)
    parts = [folder.read_prediction(step.date) for step in done]
    signal = pd.concat(parts).sort_index() if parts else pd.Series(dtype="float64", name="score")
    return done, signal


def status(folder: OnlineFolder, provider: Any = None, freq: str = "day") -> dict[str, Any]:
    """What the online folder holds: prediction dates, the last one's model and data version; with the store,
    its data version and last bar, and how many bars the predictions are behind it."""
    dates = folder.prediction_dates()
    body: dict[str, Any] = {"folder": str(folder.root), "predictions": len(dates)}
    if dates:
        last = folder.prediction_meta(dates[-1]) or {}
        body.update(first_prediction=str(dates[0].date()), last_prediction=str(dates[-1].date()),
                    model=last.get("model"), prediction_data_version=last.get("data_version"))  # fmt: skip
    orders_dir, monitor_dir = folder.root / "orders", folder.root / "monitor"
    marks = sorted(p.stem for p in orders_dir.glob("*.json")) if orders_dir.is_dir() else []
    if marks:
        last_orders = folder.orders_meta(pd.Timestamp(marks[-1])) or {}
        body.update(last_orders=marks[-1], orders_for=last_orders.get("trade_date"),
                    orders=last_orders.get("orders"))  # fmt: skip
    reports = sorted(p.stem for p in monitor_dir.glob("*.json")) if monitor_dir.is_dir() else []
    if reports:
        report = folder.read_monitor(pd.Timestamp(reports[-1])) or {}
        body.update(last_monitor=reports[-1], rolling_ic=(report.get("ic") or {}).get("rolling"),
                    retrain_flagged=report.get("retrain"))  # fmt: skip
    from qonline.early import early_models

    drift_models = [m.path.name for m in early_models(folder.root)]
    if drift_models:
        body["drift_models"] = ", ".join(drift_models)
    if provider is not None:
        calendar = provider.calendar(freq)
        body["data_version"] = data_version(provider)
        if len(calendar):
            body["store_last_bar"] = str(calendar[-1].date())
            if dates:
                body["bars_behind"] = int((calendar > dates[-1]).sum())
    return body


@attrs.frozen
class Ordered:
    """The orders step of one date: where the orders are, how many, and whether they were computed now."""

    date: pd.Timestamp
    trade_date: pd.Timestamp
    path: Path
    orders: int
    blocked: int
    computed: bool


def orders(config: WorkflowConfig, kernel: Kernel, provider: Any, folder: OnlineFolder, date: pd.Timestamp,
           positions_path: str | Path, *, cash: float | None = None, force: bool = False) -> Ordered:  # fmt: skip
    """Decide the orders for the bar after ``date`` from its stored prediction and the positions file
    (:mod:`qonline.orders`); not again when the same inputs (positions file, cash, prediction, strategy) already
    produced the stored orders."""
    import hashlib
    import json

    from qcore.errors import DataError
    from qonline.orders import decide, trading_setup
    from qonline.positions import read_positions
    from qonline.serving import trading_day

    trading_day(provider, config.data.freq, date)
    meta = folder.prediction_meta(date)
    if meta is None:
        raise DataError(f"no prediction for {date.date()} in {folder.root / 'predictions'} (run `qcore online "
                        "predict` first)")  # fmt: skip
    positions = read_positions(positions_path)
    inputs = {"positions": positions.digest, "cash": cash, "prediction": {k: meta.get(k) for k in
              ("model", "data_version", "rows")}, "setup": trading_setup(config).describe()}  # fmt: skip
    digest = hashlib.sha256(json.dumps(inputs, sort_keys=True, default=str).encode()).hexdigest()
    stored = folder.orders_meta(date)
    if not force and stored is not None and stored.get("inputs") == digest:
        folder.log("orders", date=str(date.date()), computed=False)
        return Ordered(date, pd.Timestamp(stored["trade_date"]), folder.orders_path(date, ".csv"),
                       int(stored.get("orders", 0)), len(stored.get("blocked", [])), False)  # fmt: skip
    plan = decide(config, kernel, provider, date, folder.read_prediction(date), positions, cash)
    body = {"date": str(date.date()), "trade_date": str(plan.trade_date.date()), "inputs": digest,
            "positions_file": str(positions.path), "orders": len(plan.orders), "blocked": list(plan.blocked),
            "cash": plan.cash, "value": plan.value, "model": meta.get("model"), **inputs["setup"]}  # fmt: skip
    path = folder.write_orders(date, plan.orders, plan.targets, body)
    folder.log("orders", date=str(date.date()), computed=True, orders=len(plan.orders), blocked=len(plan.blocked))
    return Ordered(date, plan.trade_date, path, len(plan.orders), len(plan.blocked), True)


class _UpTo:
    """A read-only view of a store that ends at ``last``: labels are realised only by the bars that have arrived."""

    def __init__(self, inner: Any, last: pd.Timestamp) -> None:
        self._inner = inner
        self._last = last

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    @property
    def version(self) -> str:
        return f"{data_version(self._inner)}@{self._last.date()}"

    def calendar(self, freq: str = "day") -> pd.DatetimeIndex:
        calendar = self._inner.calendar(freq)
        return calendar[calendar < self._last + pd.Timedelta(days=1)]

    def load(self, fields: Any, instruments: Any, start: object = None, end: object = None, freq: str = "day") -> Any:
        last = self.calendar(freq)[-1]
        end = last if end is None else min(pd.Timestamp(end), last)
        return self._inner.load(fields, instruments, start, end, freq)


def monitor(config: WorkflowConfig, kernel: Kernel, provider: Any, folder: OnlineFolder, date: pd.Timestamp, *,
            force: bool = False) -> tuple[Path, dict[str, Any], bool]:  # fmt: skip
    """Drift on ``date`` (:mod:`qonline.drift`): rolling IC of the stored predictions against the labels realised
    by ``date``, PSI of each feature between the serving model's train span and the last ``psi_window`` bars.
    Written to ``monitor/DATE.json``; not again for the same predictions, model and data. Returns the path, the
    report and whether it was computed now."""
    import hashlib
    import json

    from qcore.errors import DataError
    from qonline.drift import assess, daily_ic, evaluate, feature_psi, recent_days
    from qonline.section import DriftConfig
    from qonline.serving import trading_day

    trading_day(provider, config.data.freq, date)
    drift = getattr(config.sections.get("online"), "drift", None) or DriftConfig()
    dates = [d for d in folder.prediction_dates() if d <= date]
    if not dates:
        raise DataError(f"no prediction up to {date.date()} in {folder.root / 'predictions'} (run `qcore online "
                        "predict` first)")  # fmt: skip
    served = serving_model(config, kernel, provider, date, folder=folder.root)
    use = dates[-(drift.ic_window + 20):]
    metas = [folder.prediction_meta(d) or {} for d in use]
    inputs = {"dates": [str(d.date()) for d in use], "preds": [(m.get("model"), m.get("data_version")) for m in metas],
              "data_version": data_version(provider), "model": served.source, "drift": attrs.asdict(drift)}  # fmt: skip
    digest = hashlib.sha256(json.dumps(inputs, sort_keys=True, default=str).encode()).hexdigest()
    stored = folder.read_monitor(date)
    if not force and stored is not None and stored.get("inputs") == digest:
        folder.log("monitor", date=str(date.date()), computed=False, retrain=stored.get("retrain"))
        return folder.monitor_path(date), stored, False
    assert config.dataset is not None
    feature_set = online_feature_set(config, kernel)
    view = _UpTo(provider, date)
    score = pd.concat([folder.read_prediction(d) for d in use]).sort_index()
    if feature_set.labels:
        name, expr = next(iter(feature_set.labels.items()))
        label = evaluate(config, kernel, view, {name: expr}, use[0], date)[name]
        ic = daily_ic(score, label)
    else:
        ic = pd.Series(dtype="float64")
    calendar = view.calendar(config.data.freq)
    first, last = recent_days(calendar, date, drift.psi_window)
    frame = evaluate(config, kernel, view, feature_set.features, min(served.fit_start, first), date)
    times = frame.index.get_level_values("datetime")
    train = frame[(times >= served.fit_start) & (times <= served.fit_end)]
    recent = frame[(times >= first) & (times <= last)]
    report = assess(ic, feature_psi(train, recent, drift.bins), ic_window=drift.ic_window, ic_min=drift.ic_min,
                    psi_max=drift.psi_max)  # fmt: skip
    body = {"date": str(date.date()), "model": served.source, "inputs": digest,
            "train_span": [str(served.fit_start.date()), str(served.fit_end.date())],
            "recent_window": [str(first.date()), str(last.date())], **report}  # fmt: skip
    path = folder.write_monitor(date, body)
    folder.log("monitor", date=str(date.date()), computed=True, retrain=body["retrain"], flags=len(body["flags"]))
    return path, body, True


def _source_digest(source: Path) -> str:
    """SHA-256 over the source's files (names and bytes, in name order)."""
    import hashlib

    digest = hashlib.sha256()
    files = [source] if source.is_file() else sorted(p for p in source.rglob("*") if p.is_file())
    for path in files:
        digest.update(str(path.relative_to(source) if path != source else path.name).encode() + b"\0")
        digest.update(path.read_bytes())
    return digest.hexdigest()


def store_folder(config: WorkflowConfig) -> str:
    """The store the workflow reads (``data.provider.kwargs.provider_uri``)."""
    from qcore.errors import ConfigError

    uri = config.data.provider.kwargs.get("provider_uri")
    if not isinstance(uri, str) or not uri:
        raise ConfigError("online update appends to a local store: data.provider needs kwargs.provider_uri",
                          source=config.source)  # fmt: skip
    return uri


@attrs.frozen
class Updated:
    """The update step: the store, its data version before and after, the last bar, and whether bars were
    imported now (False: this source was already imported into this version of the store)."""

    store: str
    before: str | None
    after: str | None
    last_bar: pd.Timestamp | None
    computed: bool


def run_qcore(argv: list[str]) -> None:
    """Run a ``qcore`` command line in this process (errors raised, not printed)."""
    from qcore.cli import cli

    cli.main(args=argv, prog_name="qcore", standalone_mode=False)


def update(config: WorkflowConfig, kernel: Kernel, folder: OnlineFolder, source: str | Path,
           run_import: Any = run_qcore, *, import_args: tuple[str, ...] = ()) -> Updated:  # fmt: skip
    """Append ``source``'s bars to the workflow's store with the registered ``qcore data import --mode update``
    (atomic and locked by the importer); ``run_import(argv)`` runs a ``qcore`` command line. A source already
    imported (same files, and the store still at the version that import left) is not imported again."""
    from qcore.errors import DataError

    source = Path(source)
    if not source.exists():
        raise DataError(f"the update source {source} does not exist")
    store = store_folder(config)

    def opened() -> Any:
        return kernel.create("data_provider", config.data.provider.name, **dict(config.data.provider.kwargs))

    before = opened()
    version = data_version(before)
    digest = _source_digest(source)
    for entry in reversed(folder.read_log()):
        if entry.get("step") == "update" and entry.get("computed"):
            if entry.get("source_digest") == digest and entry.get("after") == version and version is not None:
                folder.log("update", source=str(source), source_digest=digest, computed=False, after=version)
                return Updated(store, version, version, _last(before, config.data.freq), False)
            break
    run_import(["data", "import", str(source), "--to", store, "--mode", "update", "--freq", config.data.freq,
                *import_args])  # fmt: skip
    after = opened()
    updated = Updated(store, version, data_version(after), _last(after, config.data.freq), True)
    folder.log("update", source=str(source), source_digest=digest, computed=True, before=version,
               after=updated.after, last_bar=str(updated.last_bar.date()) if updated.last_bar is not None else None)
    return updated


def _last(provider: Any, freq: str) -> pd.Timestamp | None:
    calendar = provider.calendar(freq)
    return pd.Timestamp(calendar[-1]) if len(calendar) else None


@attrs.frozen
class Retrained:
    """The retrain step: the windows the schedule wants up to the store's last bar, those trained now, and why."""

    due: tuple[str, ...]
    trained: tuple[str, ...]
    reason: str
    run_id: str | None = None


def retrain(config: WorkflowConfig, kernel: Kernel, provider: Any, folder: OnlineFolder, *,
            date: pd.Timestamp | None = None, force: bool = False) -> Retrained:  # fmt: skip
    """Train the rolling windows the schedule has made due (a window whose predicted span has started by the
    store's last bar and that the checkpoint lacks) through the workflow's rolling run: finished windows are read
    back from the checkpoint, the run is recorded by the workflow's recorder. When none is due and the latest
    monitor report (dated before ``date``, when given: the day's own report waits for the next day's routine) flags
    drift while the schedule's latest window serves, that window moved forward to the flag date is trained
    (:mod:`qonline.early`), once per flag. ``force`` runs the rolling run anyway.
    """
    from qcore.errors import ConfigError
    from qcore.rolling.checkpoint import Checkpoint
    from qcore.rolling.windows import WindowError, rolling_windows
    from qcore.runner import run_workflow

    rolling, spec = config.rolling, config.dataset
    if rolling is None or spec is None:
        raise ConfigError("online retrain needs the workflow's rolling and dataset sections", source=config.source)
    if rolling.checkpoint is None:
        raise config.error("online retraining needs a fixed rolling.checkpoint folder (the default one is keyed "
                           "by the data version, so every update would retrain every window)", "rolling")  # fmt: skip
    calendar = provider.calendar(config.data.freq)
    try:
        windows = rolling_windows(calendar, spec.segments, rolling.step, rolling.window, rolling.gap)
    except WindowError as exc:
        raise config.error(str(exc), "rolling") from None
    checkpoint = Checkpoint(rolling.checkpoint)
    started = [w for w in windows if w.predict[0] <= calendar[-1]]
    due = tuple(w.name for w in started if checkpoint.load(w) is None)
    drift, flagged = "", None
    reports = sorted((folder.root / "monitor").glob("*.json")) if (folder.root / "monitor").is_dir() else []
    if date is not None:
        reports = [p for p in reports if p.stem < str(date.date())]
    if reports:
        last = folder.read_monitor(pd.Timestamp(reports[-1].stem)) or {}
        if last.get("retrain"):
            from qonline.drift import summary

            flagged = pd.Timestamp(last["date"])
            drift = f"; drift flagged on {last.get('date')}: {summary(last)}"
    if not due and not force and flagged is not None and started and flagged >= started[-1].predict[0]:
        from qonline.early import early_models, train_early

        done = [m for m in early_models(folder.root) if m.flagged == flagged]
        if not done:
            early = train_early(config, kernel, provider, folder.root, started[-1], flagged)
            reason = f"drift: {started[-1].name} moved to train up to {early.train[1].date()}{drift}"
            folder.log("retrain", computed=True, due=[], trained=[early.path.name], reason=reason)
            return Retrained((), (early.path.name,), reason)
        drift += f" (its drift model {done[0].path.name} is trained)"
    if not due and not force:
        if started:
            nxt = f"{started[-1].name} is trained; the next starts {rolling.step} bar(s)/period(s) after " \
                f"{started[-1].segments['test'][0].date()}"  # fmt: skip
        else:
            nxt = f"the first window starts on {windows[0].predict[0].date()}"
        reason = f"no window due ({nxt}){drift}"
        folder.log("retrain", computed=False, reason=reason)
        return Retrained((), (), reason)
    result = run_workflow(config, kernel, run_name="online-retrain")
    trained = tuple(w.name for w in started if w.name in due and checkpoint.load(w) is not None)
    reason = (f"schedule: {', '.join(due)} due" if due else "forced") + drift
    folder.log("retrain", computed=True, due=list(due), trained=list(trained), run_id=result.run_id, reason=reason)
    return Retrained(due, trained, reason, result.run_id)
