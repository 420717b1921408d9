"""Hyper-parameter sweeps of a workflow: one recorded run per parameter point, on an execution backend.

A sweep is a set of config keys, each with values (a grid) or a distribution (random search), given on the command
line (``qcore sweep CONFIG --grid model.kwargs.alpha=0.1,1,10 [--random N --seed S]``) or in the config's
``sweep:`` section::

    sweep:
      grid:
        model.kwargs.alpha: [0.1, 1.0, 10.0]
        model.kwargs.estimator: [ridge, lasso]
        # or a distribution (random search only): {uniform: [0.01, 1]}, {loguniform: [1e-4, 1]}, {randint: [1, 10]}
      random: 4          # sample 4 points (grid values without repetition) instead of the whole grid
      seed: 0
      metric: signal.IC  # the run metric to rank points by
      mode: max          # or min
      scheduler: NAME    # a sweep_scheduler a plugin provides (Ray Tune's ASHA with Ray); none: every point runs

Every point is the workflow with ``key=value`` overrides (as ``--set`` gives them), validated here before any run
starts, then run as a task of the backend (``backend`` / ``--backend``), recorded by the workflow's recorder under
a name that says its point. The result is a table (a row per point: the values, the metric, the run id) and the
best point.
"""

from __future__ import annotations

import itertools
import json
import math
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

import attrs
import numpy as np
import pandas as pd

from qcore.errors import ConfigError, RunError

__all__ = ["DISTRIBUTIONS", "Param", "SweepResult", "SweepScheduler", "SweepSpec", "Trial", "TrialResult",
           "parse_grid_option", "parse_section", "points", "run_sweep", "run_trial"]  # fmt: skip

#: Distributions a random search samples from: name -> (low, high) checks.
DISTRIBUTIONS = ("uniform", "loguniform", "randint")
_SECTION_KEYS = ("grid", "random", "seed", "metric", "mode", "scheduler")
MAX_POINTS = 10_000


@attrs.frozen
class Param:
    """One swept key: its values (a grid), or a distribution ``(name, low, high)`` (random search only)."""

    key: str
    values: tuple[Any, ...] = ()
    distribution: tuple[str, float, float] | None = None


@attrs.frozen
class SweepSpec:
    """What to sweep and how to rank the points."""

    params: tuple[Param, ...]
    random: int | None = None
    seed: int = 0
    metric: str = "signal.IC"
    mode: str = "max"
    scheduler: str | None = None


def _scalar(text: str) -> Any:
    """A value written on the command line, read as YAML reads it (``0.1`` a float, ``ridge`` a string)."""
    from qcore.yamldoc import parse_value

    return parse_value(text)


def _distribution(key: str, name: str, bounds: Any, path: str) -> Param:
    if name not in DISTRIBUTIONS:
        raise ConfigError(f"unknown distribution {name!r} ({', '.join(DISTRIBUTIONS)})", path=path)
    if (not isinstance(bounds, (list, tuple)) or len(bounds) != 2
            or any(isinstance(b, bool) or not isinstance(b, (int, float)) for b in bounds)):  # fmt: skip
        raise ConfigError(f"{name} takes [low, high] numbers, got {bounds!r}", path=path)
    low, high = float(bounds[0]), float(bounds[1])
    if not low < high or (name == "loguniform" and low <= 0) or not all(map(math.isfinite, (low, high))):
        raise ConfigError(f"{name} needs finite low < high{' and low > 0' if name == 'loguniform' else ''}, "
                          f"got {list(bounds)!r}", path=path)  # fmt: skip
    if name == "randint" and not (low.is_integer() and high.is_integer()):
        raise ConfigError(f"randint takes integer bounds, got {list(bounds)!r}", path=path)
    return Param(key, (), (name, low, high))


def _check_key(key: Any, path: str) -> str:
    if not isinstance(key, str) or not key.strip() or any(not part for part in key.split(".")):
        raise ConfigError(f"expected a config key such as model.kwargs.alpha, got {key!r}", path=path)
    if key.split(".")[0] == "sweep":
        raise ConfigError("a sweep cannot sweep its own section", path=path)
    return key.strip()


def parse_grid_option(text: str) -> Param:
    """``--grid KEY=V1,V2,...`` or ``--grid KEY=uniform(LOW,HIGH)`` (also ``loguniform``, ``randint``)."""
    key, sep, values = text.partition("=")
    if not sep or not values.strip():
        raise ConfigError(f"--grid {text!r} must look like key.path=v1,v2 or key.path=uniform(low,high)",
                          path="--grid")  # fmt: skip
    key = _check_key(key.strip(), "--grid")
    body = values.strip()
    for name in DISTRIBUTIONS:
        if body.startswith(f"{name}(") and body.endswith(")"):
            bounds = [_scalar(b.strip()) for b in body[len(name) + 1 : -1].split(",")]
            return _distribution(key, name, bounds, "--grid")
    items = [v.strip() for v in body.split(",")]
    if any(not v for v in items):
        raise ConfigError(f"--grid {text!r} has an empty value", path="--grid")
    return Param(key, tuple(dict.fromkeys(_scalar(v) for v in items)))


def parse_section(section: Any, error: Callable[[str, str], Exception] | None = None) -> SweepSpec:
    """The ``sweep:`` section as a :class:`SweepSpec`; ``error(message, path)`` builds the error at a key (a
    workflow config's :meth:`~qcore.config.WorkflowConfig.error`, with the file and line)."""

    def fail(message: str, path: str) -> Exception:
        return error(message, path) if error is not None else ConfigError(message, path=path)

    if not isinstance(section, Mapping):
        raise fail(f"expected a mapping ({', '.join(_SECTION_KEYS)})", "sweep")
    unknown = [k for k in section if k not in _SECTION_KEYS]
    if unknown:
        raise fail(f"unknown key {unknown[0]!r} ({', '.join(_SECTION_KEYS)})", f"sweep.{unknown[0]}")
    grid = section.get("grid")
    if not isinstance(grid, Mapping) or not grid:
        raise fail("expected a mapping of config keys to lists of values", "sweep.grid")
    params = []
    for key, values in grid.items():
        path = f"sweep.grid.{key}"
        try:
            key = _check_key(key, path)
            if isinstance(values, Mapping):
                if len(values) != 1:
                    raise ConfigError(f"a distribution is one of {', '.join(DISTRIBUTIONS)}: [low, high]", path=path)
                ((name, bounds),) = values.items()
                params.append(_distribution(key, str(name), bounds, path))
            elif isinstance(values, list) and values:
                params.append(Param(key, tuple(_unique(values))))
            else:
                raise ConfigError(f"expected a non-empty list of values or a distribution, got {values!r}", path=path)
        except ConfigError as exc:
            raise fail(exc.message, path) from None
    return _spec(params, section.get("random"), section.get("seed", 0), section.get("metric", "signal.IC"),
                 section.get("mode", "max"), section.get("scheduler"), fail, "sweep.")  # fmt: skip


def _unique(values: Sequence[Any]) -> list[Any]:
    seen: list[Any] = []
    for v in values:
        if not any(type(v) is type(s) and v == s for s in seen):
            seen.append(v)
    return seen


def _spec(params: Sequence[Param], random: Any, seed: Any, metric: Any, mode: Any, scheduler: Any,
          fail: Callable[[str, str], Exception], prefix: str) -> SweepSpec:  # fmt: skip
    keys = [p.key for p in params]
    if len(set(keys)) != len(keys):
        duplicate = next(k for k in keys if keys.count(k) > 1)
        raise fail(f"{duplicate!r} is swept twice", f"{prefix}grid")
    if random is not None and (isinstance(random, bool) or not isinstance(random, int)
                               or not 1 <= random <= MAX_POINTS):  # fmt: skip
        raise fail(f"expected a number of points from 1 to {MAX_POINTS}, got {random!r}", f"{prefix}random")
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**32:
        raise fail(f"expected a seed from 0 to 2**32-1, got {seed!r}", f"{prefix}seed")
    if not isinstance(metric, str) or not metric:
        raise fail(f"expected a metric name such as signal.IC, got {metric!r}", f"{prefix}metric")
    if mode not in ("max", "min"):
        raise fail(f"expected max or min, got {mode!r}", f"{prefix}mode")
    if scheduler is not None and (not isinstance(scheduler, str) or not scheduler):
        raise fail(f"expected a scheduler name, got {scheduler!r}", f"{prefix}scheduler")
    ranged = [p.key for p in params if p.distribution is not None]
    if ranged and random is None:
        raise fail(f"{ranged[0]!r} has a distribution: a grid needs values (sample with random: N)", f"{prefix}grid")
    return SweepSpec(tuple(params), random, seed, metric, mode, scheduler)


def make_spec(params: Sequence[Param], *, random: int | None = None, seed: int = 0, metric: str = "signal.IC",
              mode: str = "max", scheduler: str | None = None) -> SweepSpec:  # fmt: skip
    """A :class:`SweepSpec` from command-line values, checked (errors name the options)."""

    def fail(message: str, path: str) -> Exception:
        return ConfigError(message, path=path)

    if not params:
        raise ConfigError("give at least one --grid KEY=V1,V2 (or a sweep: section)", path="--grid")
    return _spec(params, random, seed, metric, mode, scheduler, fail, "--")


def points(spec: SweepSpec) -> list[dict[str, Any]]:
    """The points to run: the whole grid in order, or ``random`` points (distinct grid points without repetition;
    distributions sampled) drawn with ``seed``."""
    if spec.random is None:
        combos = list(itertools.product(*(p.values for p in spec.params)))
        if len(combos) > MAX_POINTS:
            raise ConfigError(f"the grid has {len(combos)} points (at most {MAX_POINTS}); sample with --random N")
        return [dict(zip((p.key for p in spec.params), combo)) for combo in combos]
    rng = np.random.default_rng(spec.seed)
    if all(p.distribution is None for p in spec.params):
        sizes = [len(p.values) for p in spec.params]
        total = math.prod(sizes)
        picks = rng.choice(total, size=min(spec.random, total), replace=False)
        out = []
        for flat in picks:
            point, rest = {}, int(flat)
            for p, size in zip(reversed(spec.params), reversed(sizes)):
                rest, k = divmod(rest, size)
                point[p.key] = p.values[k]
            out.append({p.key: point[p.key] for p in spec.params})
        return out
    return [{p.key: _draw(p, rng) for p in spec.params} for _ in range(spec.random)]


def _draw(param: Param, rng: np.random.Generator) -> Any:
    if param.distribution is None:
        return param.values[int(rng.integers(len(param.values)))]
    name, low, high = param.distribution
    if name == "uniform":
        return float(rng.uniform(low, high))
    if name == "loguniform":
        return float(math.exp(rng.uniform(math.log(low), math.log(high))))
    return int(rng.integers(int(low), int(high) + 1))


def overrides_of(point: Mapping[str, Any]) -> tuple[str, ...]:
    """``key=value`` overrides for a point (values written as JSON, which YAML reads back as they were)."""
    return tuple(f"{key}={json.dumps(value)}" for key, value in point.items())


def describe(point: Mapping[str, Any]) -> str:
    """A point as text: ``alpha=0.1 estimator=ridge`` (each key's last part)."""
    return " ".join(f"{key.rsplit('.', 1)[-1]}={value}" for key, value in point.items())


# -- running -------------------------------------------------------------------------------------------------------


@attrs.frozen
class Trial:
    """One point's run: the workflow (a path or a mapping), its overrides, the plugins and the run's name."""

    index: int
    point: dict[str, Any]
    config: Any
    overrides: tuple[str, ...]
    plugins: tuple[str, ...]
    run_name: str


@attrs.frozen
class TrialResult:
    """What a trial's run gave: its id and metrics."""

    index: int
    point: dict[str, Any]
    run_id: str
    metrics: dict[str, float]


#: Per process: plugin selection -> kernel (a worker loads its kernel once).
_KERNELS: dict[Any, Any] = {}


def _selection(workflow: Any, plugins: Sequence[str]) -> Any:
    """The workflow's ``plugins:`` selection, then ``-p`` names (as ``qcore run`` loads its kernel)."""
    from qcore.plugins import PluginSelection

    return workflow.plugins.then(PluginSelection.parse(plugins))


def _kernel(selection: Any) -> Any:
    if selection not in _KERNELS:
        from qcore.kernel import Kernel

        _KERNELS[selection] = Kernel.load(selection)
    return _KERNELS[selection]


def _workflow(trial: Trial) -> Any:
    from qcore.config import WorkflowDocument, read_workflow
    from qcore.yamldoc import Document, deep_copy

    if isinstance(trial.config, Mapping):
        return WorkflowDocument(Document(deep_copy(dict(trial.config))), trial.overrides)
    return read_workflow(trial.config, trial.overrides)


def validate_trial(trial: Trial) -> tuple[Any, Any]:
    """The trial's validated config and its kernel (an error names the point)."""
    from qcore.checks import check_arguments, check_names
    from qcore.errors import QcoreError

    try:
        workflow = _workflow(trial)
        kernel = _kernel(_selection(workflow, trial.plugins))
        config = workflow.validate(kernel)
        check_names(config, kernel)
        check_arguments(config, kernel)
        return config, kernel
    except QcoreError as exc:
        exc.add_note(f"in sweep point {trial.index} ({describe(trial.point)})")
        raise


def run_trial(trial: Trial) -> TrialResult:
    """Task: run the trial's workflow (recorded under its name) and return its metrics."""
    from qcore.runner import run_workflow

    config, kernel = validate_trial(trial)
    result = run_workflow(config, kernel, run_name=trial.run_name)
    metrics = {k: float(v) for k, v in result.metrics.items()
               if isinstance(v, (int, float)) and not isinstance(v, bool)}  # fmt: skip
    return TrialResult(trial.index, dict(trial.point), str(result.run_id), metrics)


@runtime_checkable
class SweepScheduler(Protocol):
    """Runs a sweep's trials itself (a plugin's ``sweep_scheduler`` component, Ray Tune's ASHA for one): it may
    stop unpromising trials early; it yields the results of the trials it let finish."""

    def run(self, trials: Sequence[Trial], run: Callable[[Trial], TrialResult], metric: str,
            mode: str) -> Iterator[TrialResult]:  # fmt: skip
        """Run ``run(trial)`` for the trials it chooses and yield their results."""
        ...


def _scheduler(kernel: Any, name: str) -> Any:
    """The ``sweep_scheduler`` component ``name``, or a :class:`ConfigError` when no plugin provides the kind."""
    if "sweep_scheduler" not in {kind.name for kind in kernel.kinds()}:
        raise ConfigError(f"scheduler {name!r}: no loaded plugin provides sweep schedulers (the Ray plugin of "
                          "this repository does once installed)", path="scheduler")  # fmt: skip
    return kernel.create("sweep_scheduler", name)


@attrs.frozen
class SweepResult:
    """A finished sweep: a row per point (its values, the metric, the run id) and the best row's position."""

    table: pd.DataFrame
    metric: str
    mode: str
    best: int | None

    @property
    def best_point(self) -> dict[str, Any] | None:
        """The best point's values (None when no point has the metric)."""
        if self.best is None:
            return None
        row = self.table.loc[self.best]
        return {k: row[k] for k in self.table.columns if k not in ("point", self.metric, "run_id")}


def _table(results: Sequence[TrialResult], spec: SweepSpec) -> SweepResult:
    rows = []
    for res in sorted(results, key=lambda r: r.index):
        if spec.metric not in res.metrics:
            import difflib

            close = difflib.get_close_matches(spec.metric, list(res.metrics), n=3)
            hint = f"did you mean {' or '.join(map(repr, close))}? " if close else ""
            raise RunError(f"the runs record no metric {spec.metric!r} ({hint}point {res.index} records "
                           f"{len(res.metrics)}: {', '.join(sorted(res.metrics)[:8])}...); choose one with "
                           "--metric")  # fmt: skip
        rows.append({"point": res.index, **res.point, spec.metric: res.metrics[spec.metric], "run_id": res.run_id})
    table = pd.DataFrame(rows).set_index("point", drop=False)
    values = table[spec.metric].astype(float)
    best = None
    if values.notna().any():
        best = int(values.idxmax() if spec.mode == "max" else values.idxmin())
    return SweepResult(table, spec.metric, spec.mode, best)


def run_sweep(
    config: str | os.PathLike[str] | Mapping[str, Any],
    spec: SweepSpec,
    *,
    overrides: Sequence[str] = (),
    plugins: Sequence[str] = (),
    backend: Any = None,
    kernel: Any = None,
    name: str = "sweep",
    retries: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> SweepResult:
    """Run the workflow ``config`` once per point of ``spec`` and rank the points by ``spec.metric``.

    :param overrides: ``--set`` overrides applied to every point before its own.
    :param backend: the execution backend the trials run on (None: ``serial`` in this process); not shut down here.
    :param kernel: a kernel loaded with ``plugins`` (the trials run in this process reuse it).
    :param name: the runs are named ``{name}-{point:03d} key=value...``.
    """
    from qcore.backends import SerialBackend

    plugins = tuple(plugins)
    config = os.fspath(config) if isinstance(config, os.PathLike) else config
    if kernel is not None:
        base = Trial(-1, {}, config, tuple(overrides), plugins, name)
        _KERNELS.setdefault(_selection(_workflow(base), plugins), kernel)
    trials = [Trial(i, point, config, (*overrides, *overrides_of(point)), plugins,
                    f"{name}-{i:03d} {describe(point)}")
              for i, point in enumerate(points(spec))]  # fmt: skip
    for trial in trials:  # every point's config checked before any run starts
        validate_trial(trial)
    backend = backend if backend is not None else SerialBackend()
    results: list[TrialResult] = []
    if spec.scheduler is not None:
        scheduler = _scheduler(validate_trial(trials[0])[1], spec.scheduler)
        for res in scheduler.run(trials, run_trial, spec.metric, spec.mode):
            results.append(res)
            if progress is not None:
                progress(len(results), len(trials))
    else:
        labels = [f"sweep point {t.index} ({describe(t.point)})" for t in trials]
        for _, res in backend.map(run_trial, trials, retries=retries, labels=labels):
            results.append(res)
            if progress is not None:
                progress(len(results), len(trials))
    if not results:
        raise RunError("no sweep point finished")
    return _table(results, spec)
