"""Reading Qlib's own workflow YAMLs (``qrun`` configs) as qcore workflows.

A Qlib config has ``qlib_init`` and ``task: {model, dataset, record}`` with ``class``/``module_path``/``kwargs``
entries, plus anchor-holding top-level keys (``market``, ``data_handler_config``, ``port_analysis_config``...).
:func:`translate` maps it onto qcore's sections; Qlib class names are registry names or aliases (``LGBModel``,
``Alpha158``, ``TopkDropoutStrategy``, ``SignalRecord``...), so ``module_path`` is not needed. Anything qcore does
not support is an error naming the key, never silently dropped.
"""

from __future__ import annotations

from typing import Any

from qcore.config import Document
from qcore.errors import ConfigError

#: ``qlib_init`` keys that only tune Qlib's own caching and parallelism: accepted and ignored.
_IGNORED_INIT = ("kernels", "expression_cache", "dataset_cache", "mount_path", "auto_mount", "logging_level",
                 "joblib_backend", "maxtasksperchild", "flask_server", "flask_port", "redis_host", "redis_port")
_INIT_KEYS = ("provider_uri", "region", "exp_manager", *_IGNORED_INIT)
_HANDLER_KEYS = ("start_time", "end_time", "fit_start_time", "fit_end_time", "instruments", "infer_processors",
                 "learn_processors", "label", "freq", "process_type", "drop_raw")
_REGIONS = {"cn": "cn"}
_LEARN_DEFAULT = [{"name": "DropnaLabel", "kwargs": {}}, {"name": "CSZScoreNorm", "kwargs": {"fields_group": "label"}}]
#: Processors Qlib's handlers use when a config gives none (``qlib/contrib/data/handler.py``).
_HANDLER_DEFAULTS: dict[str, tuple[list[dict[str, Any]], list[dict[str, Any]]]] = {
    "Alpha158": ([], _LEARN_DEFAULT),
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
        raise _fail(doc, f"expected a mapping, got {type(value).__name__}", path)
    return value


def _component(doc: Document, value: Any, path: str, allowed_kwargs: tuple[str, ...] | None = None) -> dict[str, Any]:
    """``{class, module_path, kwargs}`` → ``{name, kwargs}`` (``module_path`` is only checked for type)."""
    body = _mapping(doc, value, path)
    unknown = set(body) - {"class", "module_path", "kwargs"}
    if unknown:
        raise _fail(doc, f"unsupported key(s) {', '.join(sorted(map(str, unknown)))}", path)
    if not isinstance(body.get("class"), str):
        raise _fail(doc, "expected a 'class' name", f"{path}.class")
    kwargs = body.get("kwargs") or {}
    _mapping(doc, kwargs, f"{path}.kwargs")
    if allowed_kwargs is not None:
        extra = [k for k in kwargs if k not in allowed_kwargs]
        if extra:
            raise _fail(doc, f"unsupported key(s) {', '.join(map(str, extra))} (qcore supports: "
                             f"{', '.join(allowed_kwargs)})", f"{path}.kwargs.{extra[0]}")
    return {"name": body["class"], "kwargs": dict(kwargs)}


def _processors(doc: Document, items: Any, path: str) -> list[dict[str, Any]]:
    if items is None:
        return []
    if not isinstance(items, list):
        raise _fail(doc, "expected a list of processors", path)
    return [_component(doc, item, f"{path}.{i}") for i, item in enumerate(items)]


def _label(doc: Document, value: Any, path: str) -> dict[str, str]:
    """Qlib's ``label``: a list of expressions (named by themselves) or ``[[exprs], [names]]``."""
    if isinstance(value, list) and len(value) == 2 and all(isinstance(v, list) for v in value):
        exprs, names = value
        if len(exprs) != len(names):
            raise _fail(doc, "label expressions and names differ in length", path)
        return dict(zip(names, exprs))
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return {v: v for v in value}
    raise _fail(doc, "expected a list of label expressions or [expressions, names]", path)


def _dataset(doc: Document, value: Any, path: str) -> dict[str, Any]:
    body = _component(doc, value, path)
    if body["name"] not in ("DatasetH", "TSDatasetH"):
        raise _fail(doc, f"unsupported dataset class {body['name']!r} (supported: DatasetH, TSDatasetH)",
                    f"{path}.class")
    kwargs = body["kwargs"]
    extra = [k for k in kwargs if k not in ("handler", "segments", "step_len")]
    if extra:
        raise _fail(doc, f"unsupported key(s) {', '.join(extra)}", f"{path}.kwargs.{extra[0]}")
    handler = _component(doc, kwargs.get("handler"), f"{path}.kwargs.handler", _HANDLER_KEYS)
    hk = handler["kwargs"]
    features_kwargs: dict[str, Any] = {}
    if "label" in hk:
        features_kwargs["label"] = _label(doc, hk["label"], f"{path}.kwargs.handler.kwargs.label")
    default_infer, default_learn = _HANDLER_DEFAULTS.get(handler["name"], ([], []))
    where = f"{path}.kwargs.handler.kwargs"
    dataset: dict[str, Any] = {
        "features": {"name": handler["name"], "kwargs": features_kwargs},
        "segments": kwargs.get("segments"),
        "infer_processors": (
            _processors(doc, hk["infer_processors"], f"{where}.infer_processors")
            if "infer_processors" in hk else [dict(p) for p in default_infer]
        ),
        "learn_processors": (
            _processors(doc, hk["learn_processors"], f"{where}.learn_processors")
            if "learn_processors" in hk else [dict(p) for p in default_learn]
        ),
    }
    if hk.get("instruments") is not None:
        dataset["instruments"] = hk["instruments"]
    if hk.get("fit_start_time") is not None:
        dataset["fit_start"] = hk["fit_start_time"]
    if hk.get("fit_end_time") is not None:
        dataset["fit_end"] = hk["fit_end_time"]
    return dataset


def _backtest(doc: Document, value: Any, path: str) -> dict[str, Any]:
    body = _mapping(doc, value, path)
    unknown = set(body) - {"strategy", "backtest", "executor"}
    if unknown:
        raise _fail(doc, f"unsupported key(s) {', '.join(sorted(unknown))}", path)
    strategy = _component(doc, body.get("strategy"), f"{path}.strategy")
    strategy["kwargs"].pop("signal", None)  # <MODEL>/<DATASET> placeholders: the run supplies the predictions
    out: dict[str, Any] = {"strategy": strategy}
    if "executor" in body:
        out["executor"] = _component(doc, body["executor"], f"{path}.executor")
    options = _mapping(doc, body.get("backtest") or {}, f"{path}.backtest")
    renames = {"start_time": "start", "end_time": "end", "exchange_kwargs": "exchange"}
    for key, item in options.items():
        target = renames.get(key, key)
        if target not in ("start", "end", "account", "benchmark", "exchange", "pos_type"):
            raise _fail(doc, f"unsupported backtest key {key!r}", f"{path}.backtest.{key}")
        out[target] = item
    return out


def translate(doc: Document) -> Document:
    """A Qlib workflow document as a qcore workflow document (same source and line map)."""
    data = doc.data
    init = _mapping(doc, data.get("qlib_init") or {}, "qlib_init")
    for key in init:
        if key not in _INIT_KEYS:
            raise _fail(doc, f"unsupported qlib_init key {key!r}", f"qlib_init.{key}")
    if "provider_uri" not in init:
        raise _fail(doc, "missing required key 'provider_uri'", "qlib_init")
    region = init.get("region", "cn")
    if region not in _REGIONS:
        raise _fail(doc, f"unsupported region {region!r} (supported: {', '.join(_REGIONS)})", "qlib_init.region")
    if "sys" in data:
        raise _fail(doc, "'sys' (extra import paths) is not supported: install your code as a plugin instead", "sys")
    task = _mapping(doc, data.get("task"), "task")
    unknown = set(task) - {"model", "dataset", "record"}
    if unknown:
        raise _fail(doc, f"unsupported task key(s) {', '.join(sorted(unknown))}", "task")
    out: dict[str, Any] = {
        "experiment": data.get("experiment_name", "workflow"),
        "data": {
            "provider": {"name": "qlib_bin", "kwargs": {"provider_uri": init["provider_uri"]}},
            "market_rules": _REGIONS[region],
        },
        "model": _component(doc, task.get("model"), "task.model"),
        "dataset": _dataset(doc, task.get("dataset"), "task.dataset"),
    }
    if isinstance(out["dataset"].get("instruments"), str):
        out["data"]["universe"] = out["dataset"]["instruments"]
    records = []
    for i, item in enumerate(task.get("record") or []):
        record = _component(doc, item, f"task.record.{i}")
        if record["name"] == "PortAnaRecord":
            config = record["kwargs"].pop("config", None)
            if config is None:
                raise _fail(doc, "PortAnaRecord needs kwargs.config", f"task.record.{i}.kwargs")
            out["backtest"] = _backtest(doc, config, f"task.record.{i}.kwargs.config")
        record["kwargs"] = {k: v for k, v in record["kwargs"].items() if k not in ("model", "dataset")}
        records.append(record)
    if records:
        out["records"] = records
    return Document(out, doc.lines, doc.source)
