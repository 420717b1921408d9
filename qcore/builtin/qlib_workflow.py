"""The built-in plugin that reads Qlib's own workflow YAMLs (``qrun`` configs) as qcore workflows.

A Qlib config has ``qlib_init`` and ``task: {model, dataset, record}`` with ``class``/``module_path``/``kwargs``
entries, plus anchor-holding top-level keys (``market``, ``data_handler_config``, ``port_analysis_config``...).
:func:`qcore_translate_config` maps it onto qcore's sections (and leaves any other document to the next plugin).
Qlib's class names pass through as component names: plugins register them as aliases (``LGBModel``, ``Alpha158``,
``TopkDropoutStrategy``, ``SignalRecord``...), so ``module_path`` is not needed. The only names this module writes
itself are Qlib's own (its default provider ``LocalProvider``, its region codes, its handlers' default processors)
and the workflow's sections (``port_analysis_config`` becomes ``backtest:``; Qlib's ``sys`` paths stay ``sys:``, a
section this plugin owns: :mod:`qcore.builtin.qlib_sys`). Anything qcore does not support is an error naming the key,
never silently dropped.

It reads only the YAML document layer (:mod:`qcore.yamldoc`), never the workflow schema.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import attrs

from qcore.dates import DateError, parse_date
from qcore.errors import ConfigError
from qcore.plugins import hookimpl
from qcore.registry import Registrar, lazy
from qcore.yamldoc import Document

if TYPE_CHECKING:
    from qcore.context import RunContext, RunResult

#: ``qlib_init`` keys that only tune Qlib's own caching and parallelism: accepted and ignored.
_IGNORED_INIT = ("kernels", "expression_cache", "dataset_cache", "mount_path", "auto_mount", "logging_level",
                 "joblib_backend", "maxtasksperchild", "flask_server", "flask_port", "redis_host", "redis_port")
_INIT_KEYS = ("provider_uri", "region", "exp_manager", *_IGNORED_INIT)
_HANDLER_KEYS = ("start_time", "end_time", "fit_start_time", "fit_end_time", "instruments", "infer_processors",
                 "learn_processors", "label", "freq", "process_type", "drop_raw", "data_loader")
#: Qlib's handlers that read their columns from a ``data_loader`` (and have no columns of their own).
_LOADER_HANDLERS = ("DataHandlerLP", "DataHandler")
#: The loader classes a ``data_loader`` may name (each the alias of a feature set registered here).
_QLIB_LOADER = "QlibDataLoader"
_STATIC_LOADER = "StaticDataLoader"
#: ``MTSDatasetH``'s own arguments: they configure the sampler of the model that reads it (its ``sampler``).
_MTS_KEYS = ("seq_len", "horizon", "num_states", "memory_mode", "batch_size", "n_samples", "shuffle", "drop_last",
             "input_size")
_SAMPLER = "__mts_sampler__"
#: ``TSDatasetH``'s window length travels to the model as its ``step_len`` (the sequence view of the dataset).
_STEP_LEN = "__ts_step_len__"
#: Qlib's ``TSDatasetH`` default ``step_len``.
_TS_DEFAULT_STEP_LEN = 30
#: The feature set that reads a handler's column groups at their own frequencies (Qlib's multi-frequency handlers).
_MULTI_FREQ = "qlib_multi_freq"
#: Qlib's region codes (``qlib.constant.REG_CN``...), default first: a region is the name of the market rules it
#: selects, which a market adapter registers.
_REGIONS = ("cn", "us", "tw")
#: Qlib's provider of a ``provider_uri`` data directory: a market adapter registers it as an alias of its store.
_QLIB_PROVIDER = "LocalProvider"
_LEARN_DEFAULT = [{"name": "DropnaLabel", "kwargs": {}}, {"name": "CSZScoreNorm", "kwargs": {"fields_group": "label"}}]
#: Processors Qlib's handlers use when a config gives none (``qlib/contrib/data/handler.py``).
_HANDLER_DEFAULTS: dict[str, tuple[list[dict[str, Any]], list[dict[str, Any]]]] = {
    "Alpha158": ([], _LEARN_DEFAULT),
    "Avg15minHandler": ([], _LEARN_DEFAULT),  # Qlib's multi-frequency example (qcore.builtin.qlib_multi_freq)
    "Alpha360": (
        [{"name": "ProcessInf", "kwargs": {}}, {"name": "ZScoreNorm", "kwargs": {}}, {"name": "Fillna", "kwargs": {}}],
        _LEARN_DEFAULT,
    ),
}


def is_qlib_workflow(data: Any) -> bool:
    """Whether a parsed YAML document looks like a Qlib ``qrun`` config."""
    return isinstance(data, dict) and ("task" in data or "qlib_init" in data)


def _fail(doc: Document, message: str, path: str) -> ConfigError:
    return doc.error(message, path)


def _mapping(doc: Document, value: Any, path: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _fail(doc, f"expected a mapping, got {_kind(value)}", path)
    return value


def _kind(value: Any) -> str:
    return "nothing (null)" if value is None else type(value).__name__


def _component(doc: Document, value: Any, path: str, allowed_kwargs: tuple[str, ...] | None = None) -> dict[str, Any]:
    """``{class, module_path, kwargs}`` → ``{name, kwargs}`` (``module_path`` is only checked for type)."""
    body = _mapping(doc, value, path)
    unknown = set(body) - {"class", "module_path", "kwargs"}
    if unknown:
        raise _fail(doc, f"unsupported key(s) {', '.join(sorted(map(str, unknown)))}", path)
    if not isinstance(body.get("class"), str) or not body["class"].strip():
        raise _fail(doc, f"expected a 'class' name, got {body.get('class')!r}", f"{path}.class")
    if body.get("module_path") is not None and not isinstance(body["module_path"], str):
        raise _fail(doc, f"expected a module path, got {_kind(body['module_path'])}", f"{path}.module_path")
    kwargs = body.get("kwargs") or {}
    _mapping(doc, kwargs, f"{path}.kwargs")
    if allowed_kwargs is not None:
        extra = [k for k in kwargs if k not in allowed_kwargs]
        if extra:
            raise _fail(doc, f"unsupported key(s) {', '.join(map(str, extra))} (qcore supports: "
                             f"{', '.join(allowed_kwargs)})", f"{path}.kwargs.{extra[0]}")
    return {"name": body["class"], "kwargs": dict(kwargs)}


class _Origins:
    """Where each translated key came from: qcore key path → the Qlib key path it was read from."""

    def __init__(self) -> None:
        self.paths: dict[str, str] = {}

    def component(self, target: str, source: str) -> None:
        """A ``{class, kwargs}`` entry at ``source`` became ``{name, kwargs}`` at ``target``."""
        self.paths[target] = source
        self.paths[f"{target}.name"] = f"{source}.class"

    def __setitem__(self, target: str, source: str) -> None:
        self.paths[target] = source


def _processors(doc: Document, items: Any, path: str, target: str, origins: _Origins) -> list[dict[str, Any]]:
    if items is None:
        return []
    if not isinstance(items, list):
        raise _fail(doc, f"expected a list of processors, got {_kind(items)}", path)
    out = []
    for i, item in enumerate(items):
        if isinstance(item, str) and item.strip():  # Qlib accepts a bare class name: `- DropnaLabel`
            out.append({"name": item, "kwargs": {}})
            origins[f"{target}.{i}"] = origins[f"{target}.{i}.name"] = f"{path}.{i}"
            continue
        out.append(_component(doc, item, f"{path}.{i}"))
        origins.component(f"{target}.{i}", f"{path}.{i}")
    return out


def _loader(doc: Document, handler: dict[str, Any], where: str, origins: _Origins) -> dict[str, Any]:
    """A ``DataHandlerLP``'s ``data_loader`` as the feature set that names the same columns."""
    hk = handler["kwargs"]
    if handler["name"] not in _LOADER_HANDLERS:
        if "data_loader" in hk:
            raise _fail(doc, f"{handler['name']} builds its own columns and takes no data_loader (give the loader "
                             f"to {' or '.join(_LOADER_HANDLERS)})", f"{where}.kwargs.data_loader")
        return {"name": handler["name"], "kwargs": {}}
    if hk.get("data_loader") is None:
        raise _fail(doc, f"{handler['name']} needs a data_loader (a {_QLIB_LOADER} with its fields or a "
                         f"{_STATIC_LOADER} with its files)", f"{where}.kwargs")
    if "label" in hk:
        raise _fail(doc, f"{handler['name']} takes its label from the data_loader's 'label' group",
                    f"{where}.kwargs.label")
    loader_path = f"{where}.kwargs.data_loader"
    loader = _component(doc, hk["data_loader"], loader_path)
    if loader["name"] not in (_QLIB_LOADER, _STATIC_LOADER):
        raise _fail(doc, f"unsupported data_loader class {loader['name']!r} (supported: {_QLIB_LOADER}, "
                         f"{_STATIC_LOADER})", f"{loader_path}.class")
    origins.component("dataset.features", loader_path)
    origins["dataset.features.kwargs"] = f"{loader_path}.kwargs"
    return {"name": loader["name"], "kwargs": loader["kwargs"]}


def _label(doc: Document, value: Any, path: str) -> dict[str, str]:
    """Qlib's ``label``: a list of expressions (named by themselves) or ``[[exprs], [names]]``."""
    if isinstance(value, list) and len(value) == 2 and all(isinstance(v, list) for v in value):
        exprs, names = value
        if len(exprs) != len(names):
            raise _fail(doc, "label expressions and names differ in length", path)
        for i, (expr, name) in enumerate(zip(exprs, names)):
            if not isinstance(expr, str) or not expr.strip():
                raise _fail(doc, f"expected a label expression, got {expr!r}", f"{path}.0.{i}")
            if not isinstance(name, str) or not name.strip():
                raise _fail(doc, f"expected a label name, got {name!r}", f"{path}.1.{i}")
        if len(set(names)) != len(names):
            raise _fail(doc, "label names must differ", f"{path}.1")
        return dict(zip(names, exprs))
    if isinstance(value, list) and value and all(isinstance(v, str) and v.strip() for v in value):
        return {v: v for v in value}
    raise _fail(doc, "expected a list of label expressions or [expressions, names]", path)


def _dataset(doc: Document, value: Any, path: str, origins: _Origins) -> dict[str, Any]:
    body = _component(doc, value, path)
    if body["name"] not in ("DatasetH", "TSDatasetH", "MTSDatasetH"):
        raise _fail(doc, f"unsupported dataset class {body['name']!r} (supported: DatasetH, TSDatasetH, "
                         "MTSDatasetH)", f"{path}.class")
    kwargs = body["kwargs"]
    sampler_keys = _MTS_KEYS if body["name"] == "MTSDatasetH" else ()
    extra = [k for k in kwargs if k not in ("handler", "segments", "step_len", *sampler_keys)]
    if extra:
        raise _fail(doc, f"unsupported key(s) {', '.join(map(str, extra))}", f"{path}.kwargs.{extra[0]}")
    if kwargs.get("segments") is None:
        raise _fail(doc, "missing required key 'segments'", f"{path}.kwargs")
    step_len = kwargs.get("step_len")
    if step_len is not None and (isinstance(step_len, bool) or not isinstance(step_len, int) or step_len < 1):
        raise _fail(doc, f"expected a positive integer, got {step_len!r}", f"{path}.kwargs.step_len")
    where = f"{path}.kwargs.handler"
    handler_body = kwargs.get("handler")
    multi_freq = None
    if isinstance(handler_body, dict) and isinstance(handler_body.get("kwargs"), dict):
        multi_freq = _multi_freq(doc, handler_body["kwargs"], where, handler_body.get("class"))
        handler_body = {**handler_body, "kwargs": {k: v for k, v in handler_body["kwargs"].items()
                                                   if k not in ("freq", "inst_processors")}}
    handler = _component(doc, handler_body, where, _HANDLER_KEYS)
    hk = handler["kwargs"]
    for key in ("start_time", "end_time"):
        if hk.get(key) is not None:
            try:
                parse_date(hk[key], f"{where}.kwargs.{key}")
            except DateError as exc:
                raise _fail(doc, exc.message, f"{where}.kwargs.{key}") from None
    features_kwargs: dict[str, Any] = {}
    origins["dataset"] = path
    origins.component("dataset.features", where)
    origins["dataset.segments"] = f"{path}.kwargs.segments"
    features = _loader(doc, handler, where, origins)
    if "label" in hk:
        features_kwargs["label"] = _label(doc, hk["label"], f"{where}.kwargs.label")
        origins["dataset.features.kwargs.label"] = f"{where}.kwargs.label"
    default_infer, default_learn = _HANDLER_DEFAULTS.get(handler["name"], ([], []))
    dataset: dict[str, Any] = {"features": {"name": features["name"], "kwargs": {**features["kwargs"],
                                                                                 **features_kwargs}},
                               "segments": kwargs.get("segments")}
    for group, default in (("infer_processors", default_infer), ("learn_processors", default_learn)):
        origins[f"dataset.{group}"] = f"{where}.kwargs.{group}" if group in hk else where
        dataset[group] = (_processors(doc, hk[group], f"{where}.kwargs.{group}", f"dataset.{group}", origins)
                          if group in hk else [dict(p) for p in default])  # fmt: skip
    for key, target in (("instruments", "instruments"), ("fit_start_time", "fit_start"), ("fit_end_time", "fit_end")):
        if hk.get(key) is not None:
            dataset[target] = hk[key]
            origins[f"dataset.{target}"] = f"{where}.kwargs.{key}"
    if sampler_keys:  # MTSDatasetH's sampling arguments go to the model that reads them (its ``sampler``)
        dataset[_SAMPLER] = {k: kwargs[k] for k in sampler_keys if k in kwargs}
    if body["name"] == "TSDatasetH":  # the model reads step_len-day windows (Qlib's TSDataSampler; default 30)
        dataset[_STEP_LEN] = ((_TS_DEFAULT_STEP_LEN, f"{path}.class") if step_len is None
                              else (step_len, f"{path}.kwargs.step_len"))  # fmt: skip
    if multi_freq is not None:  # the handler's columns, each group at its frequency (resampled to days)
        dataset["features"] = {"name": _MULTI_FREQ, "kwargs": {"handler": dataset["features"], **multi_freq}}
        for key, source in (("handler", where), ("handler.kwargs", f"{where}.kwargs"),
                            ("freq", f"{where}.kwargs.freq"), ("inst_processors", f"{where}.kwargs.inst_processors")):
            origins[f"dataset.features.kwargs.{key}"] = source
    return dataset


def _check_minute_folders(doc: Document, uri: Any, features: dict[str, Any]) -> None:
    """A provider_uri per frequency must name a folder for each intraday frequency the handler reads (a single
    folder is checked against the store when it is opened)."""
    if features.get("name") != _MULTI_FREQ or not isinstance(uri, dict):
        return
    freq = features["kwargs"].get("freq")
    wanted = freq.values() if isinstance(freq, dict) else [freq]
    for value in wanted:
        if isinstance(value, str) and value.strip().lower() not in ("day", "1d") and value not in uri:
            raise _fail(doc, f"the handler reads {value} bars (its freq), but provider_uri has no {value!r} folder "
                             f"(it has: {', '.join(map(str, uri))})", "qlib_init.provider_uri")


def _multi_freq(doc: Document, hk: dict[str, Any], where: str, handler: Any) -> dict[str, Any] | None:
    """A handler's ``freq``/``inst_processors`` when they make it multi-frequency (``None`` for Qlib's default: day
    and no inst_processors). Each inst_processor must be one of the built-in resampling steps, named by class
    (:mod:`qcore.builtin.qlib_multi_freq`); any other is refused at its key, as is a group without its resampling
    step, or a frequency or argument qcore does not read."""
    from qcore.builtin.qlib_multi_freq import AVG15MIN, INST_PROCESSORS, avg15min_groups, group_rules

    freq, processors = hk.get("freq", "day"), hk.get("inst_processors")
    if freq in ("day", None) and not processors:  # Qlib's defaults: nothing to resample
        return None
    items: list[tuple[Any, str]] = []
    if isinstance(processors, dict):
        items = [(item, f"{where}.kwargs.inst_processors.{group}.{i}") for group, group_items in processors.items()
                 if isinstance(group_items, list) for i, item in enumerate(group_items)]  # fmt: skip
    elif isinstance(processors, list):
        items = [(item, f"{where}.kwargs.inst_processors.{i}") for i, item in enumerate(processors)]
    for item, item_path in items:
        name = item.get("class") if isinstance(item, dict) else None
        if name not in INST_PROCESSORS:
            raise _fail(doc, f"inst_processor {name!r} is not supported: inst_processors are Python callbacks Qlib "
                             "runs on each instrument's frame, which qcore does not import; built in are the "
                             f"resampling steps of Qlib's multi-frequency examples ({', '.join(INST_PROCESSORS)}, "
                             "found by class name, module_path ignored). Write other computations as an "
                             "expression or a processor", f"{item_path}.class" if isinstance(item, dict)
                        else item_path)  # fmt: skip
    groups = list(avg15min_groups()) if handler == AVG15MIN else ["feature", "label"]
    try:
        group_rules(groups, freq, processors)
    except ConfigError as exc:
        raise _fail(doc, exc.message, f"{where}.kwargs.{exc.path}") from None
    return {"freq": freq, "inst_processors": processors}


#: Qlib's records whose ``kwargs.config`` is the backtest (``port_analysis_config``): it becomes ``backtest:``.
_BACKTEST_RECORDS = ("PortAnaRecord", "MultiPassPortAnaRecord")
_BACKTEST_RENAMES = {"start_time": "start", "end_time": "end", "exchange_kwargs": "exchange"}
#: Exchange settings Qlib's older configs give flat in ``backtest`` (``..._Alpha158_multi_freq.yaml``), not in
#: ``exchange_kwargs``: read with that meaning (Qlib 0.9's ``backtest()`` itself rejects them).
_FLAT_EXCHANGE = ("limit_threshold", "deal_price", "open_cost", "close_cost", "min_cost", "trade_unit")


def _backtest(doc: Document, value: Any, path: str, origins: _Origins) -> dict[str, Any]:
    body = _mapping(doc, value, path)
    unknown = set(body) - {"strategy", "backtest", "executor"}
    if unknown:
        raise _fail(doc, f"unsupported key(s) {', '.join(sorted(map(str, unknown)))}", path)
    origins["backtest"] = path
    strategy = _component(doc, body.get("strategy"), f"{path}.strategy")
    origins.component("backtest.strategy", f"{path}.strategy")
    strategy["kwargs"].pop("signal", None)  # <MODEL>/<DATASET> placeholders: the run supplies the predictions
    out: dict[str, Any] = {"strategy": strategy}
    if body.get("executor") is not None:
        out["executor"] = _component(doc, body["executor"], f"{path}.executor")
        origins.component("backtest.executor", f"{path}.executor")
    options = _mapping(doc, body.get("backtest") or {}, f"{path}.backtest")
    for key, item in options.items():
        if key in _FLAT_EXCHANGE:  # Qlib's older flat form: exchange settings beside the backtest's own
            exchange = options.get("exchange_kwargs") or {}
            if isinstance(exchange, dict) and key in exchange:
                raise _fail(doc, f"{key!r} is given both here and in exchange_kwargs", f"{path}.backtest.{key}")
            out.setdefault("flat_exchange", {})[key] = item
            origins[f"backtest.exchange.{key}"] = f"{path}.backtest.{key}"
            continue
        if key == "verbose":  # Qlib's older flat form: logging only
            continue
        target = _BACKTEST_RENAMES.get(key, key)
        if target not in ("start", "end", "account", "benchmark", "exchange", "pos_type"):
            raise _fail(doc, f"unsupported backtest key {key!r}", f"{path}.backtest.{key}")
        out[target] = item
        origins[f"backtest.{target}"] = f"{path}.backtest.{key}"
    flat = out.pop("flat_exchange", None)
    if flat is not None:
        out["exchange"] = {**_mapping(doc, out.get("exchange") or {}, f"{path}.backtest.exchange_kwargs"), **flat}
        origins.paths.setdefault("backtest.exchange", f"{path}.backtest")
    return out


@hookimpl
def qcore_register_feature_sets(register: Registrar) -> None:
    """Qlib's loaders (``QlibDataLoader`` expressions, ``StaticDataLoader`` files) and multi-frequency handlers."""
    register("qlib_data_loader", lazy("qcore.builtin.qlib_loader:qlib_data_loader",
                                      description="Explicit feature and label expressions with their names "
                                                  "(Qlib's QlibDataLoader config)."), aliases=(_QLIB_LOADER,))
    register("static_files", lazy("qcore.builtin.qlib_loader:static_data_loader",
                                  description="Columns read from files: Parquet, Feather, CSV or pickled pandas "
                                              "frames (Qlib's StaticDataLoader config)."), aliases=(_STATIC_LOADER,))
    register(_MULTI_FREQ, lazy("qcore.builtin.qlib_multi_freq:qlib_multi_freq",
                               description="A Qlib handler with a frequency per column group: minute groups "
                                           "evaluated on 1-minute bars and resampled to days (ResampleNProcessor, "
                                           "Resample1minProcessor)."))  # fmt: skip
    register("Avg15minHandler", lazy("qcore.builtin.qlib_multi_freq:avg15min_handler",
                                     description="Qlib's multi-frequency example handler: the day's bar and the "
                                                 "means of its sixteen 15-minute blocks (6 fields)."))  # fmt: skip


@hookimpl
def qcore_register_config_sections(register: Registrar) -> None:
    """Qlib's ``sys`` section: folders appended to ``sys.path`` while a run runs (:mod:`qcore.builtin.qlib_sys`)."""
    register("sys", lazy("qcore.builtin.qlib_sys:SysSection",
                         description="Extra import paths for the run: path (as given), rel_path (relative to the "
                                     "config file), as Qlib's sys section."))  # fmt: skip


@hookimpl
def qcore_before_run(context: RunContext) -> None:
    """Append the ``sys`` section's folders to ``sys.path`` for the run."""
    from qcore.builtin.qlib_sys import append_paths

    append_paths(context.config, context.state.extra)


@hookimpl
def qcore_after_run(context: RunContext, result: RunResult) -> None:
    """Remove the folders the run appended."""
    from qcore.builtin.qlib_sys import restore

    restore(context.state.extra)


@hookimpl
def qcore_on_run_error(context: RunContext, error: BaseException) -> None:
    """Remove the folders the run appended, when it failed."""
    from qcore.builtin.qlib_sys import restore

    restore(context.state.extra)


@hookimpl
def qcore_translate_config(document: Document) -> Document | None:
    """A Qlib ``qrun`` document translated into qcore's workflow form; None for any other document."""
    return translate(document) if is_qlib_workflow(document.data) else None


def translate(doc: Document) -> Document:
    """A Qlib workflow document as a qcore workflow document (same source and line map).

    The result's :attr:`~qcore.yamldoc.Document.origins` map every translated key to the Qlib key it came from, so
    later errors name ``task.model.kwargs.num_leavs`` (and its line), not qcore's ``model.kwargs.num_leavs``.
    """
    data = doc.data
    origins = _Origins()
    init = _mapping(doc, data.get("qlib_init") or {}, "qlib_init")
    for key in init:
        if key not in _INIT_KEYS:
            raise _fail(doc, f"unsupported qlib_init key {key!r}", f"qlib_init.{key}")
    if "provider_uri" not in init:
        raise _fail(doc, "missing required key 'provider_uri'", "qlib_init")
    uri = init["provider_uri"]
    if isinstance(uri, dict):  # a folder per frequency ({day: ..., 1min: ...}): the store reads each from its own
        if "day" not in uri:
            raise _fail(doc, "a provider_uri per frequency needs a 'day' folder (the workflow's calendar and "
                             "features)", "qlib_init.provider_uri")
        for freq, folder in uri.items():
            if not isinstance(folder, str) or not folder.strip():
                raise _fail(doc, f"expected the {freq} store's folder, got {folder!r}",
                            f"qlib_init.provider_uri.{freq}")
        uri = {str(freq): folder for freq, folder in uri.items()}
    elif not isinstance(uri, str) or not uri.strip():
        raise _fail(doc, f"expected the store's folder, got {uri!r}", "qlib_init.provider_uri")
    region = init.get("region", _REGIONS[0])
    if not isinstance(region, str) or region not in _REGIONS:
        raise _fail(doc, f"unsupported region {region!r} (Qlib's regions: {', '.join(_REGIONS)})", "qlib_init.region")
    task = _mapping(doc, data.get("task"), "task")
    unknown = set(task) - {"model", "dataset", "record", "reweighter"}
    if unknown:
        raise _fail(doc, f"unsupported task key(s) {', '.join(sorted(map(str, unknown)))}", "task")
    out: dict[str, Any] = {
        "experiment": data.get("experiment_name", "workflow"),
        "data": {
            "provider": {"name": _QLIB_PROVIDER, "kwargs": {"provider_uri": uri}},
            "market_rules": region,
        },
        "model": _component(doc, task.get("model"), "task.model"),
        "dataset": _dataset(doc, task.get("dataset"), "task.dataset", origins),
    }
    _check_minute_folders(doc, init["provider_uri"], out["dataset"]["features"])
    sampler = out["dataset"].pop(_SAMPLER, None)
    ts_step_len = out["dataset"].pop(_STEP_LEN, None)
    if ts_step_len is not None and "step_len" not in out["model"]["kwargs"]:  # a model's own step_len wins
        out["model"]["kwargs"]["step_len"], origins["model.kwargs.step_len"] = ts_step_len
    if sampler is not None:
        out["model"]["kwargs"]["sampler"] = sampler
        origins["model.kwargs.sampler"] = "task.dataset.kwargs"
    if data.get("sys") is not None:  # extra import paths for the run (qcore.builtin.qlib_sys)
        out["sys"] = data["sys"]
        origins["sys"] = "sys"
    origins["experiment"] = "experiment_name"
    origins["data.provider"] = "qlib_init.provider_uri"
    origins["data.market_rules"] = "qlib_init.region"
    origins.component("model", "task.model")
    if task.get("reweighter") is not None:
        out["reweighter"] = _component(doc, task["reweighter"], "task.reweighter")
        origins.component("reweighter", "task.reweighter")
    if isinstance(out["dataset"].get("instruments"), str):
        out["data"]["universe"] = out["dataset"]["instruments"]
        origins["data.universe"] = origins.paths["dataset.instruments"]
    records = []
    backtest_config: Any = None
    items = task.get("record") or []
    if isinstance(items, dict):
        items = [items]  # Qlib accepts one record given as a mapping
    if not isinstance(items, list):
        raise _fail(doc, f"expected a list of records, got {_kind(items)}", "task.record")
    for i, item in enumerate(items):
        record = _component(doc, item, f"task.record.{i}")
        origins.component(f"records.{len(records)}", f"task.record.{i}")
        if record["name"] in _BACKTEST_RECORDS:
            config = record["kwargs"].pop("config", None)
            if config is None:
                raise _fail(doc, f"{record['name']} needs kwargs.config", f"task.record.{i}.kwargs")
            if "backtest" in out and config != backtest_config:
                raise _fail(doc, "every backtest record of a workflow trades with the same config (qcore has one "
                                 "backtest section)", f"task.record.{i}.kwargs.config")
            backtest_config = config
            out["backtest"] = _backtest(doc, config, f"task.record.{i}.kwargs.config", origins)
        record["kwargs"] = {k: v for k, v in record["kwargs"].items() if k not in ("model", "dataset")}
        records.append(record)
    if records:
        out["records"] = records
    return attrs.evolve(doc, data=out, origins={**doc.origins, **origins.paths})
