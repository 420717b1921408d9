"""Sweep schedulers on Ray Tune (``qcore sweep --scheduler asha``): each sweep point is a Tune trial running the
workflow (:func:`qcore.sweep.run_trial`) and reporting its metrics; Tune places the trials on the cluster by their
resources and its scheduler decides which run on. Ray Tune is imported only here, when a scheduled sweep starts.

A workflow run reports its metrics once, when it ends: ASHA's rungs (``grace_period``, ``reduction_factor``) stop
trials that report intermediate results, so with one report per trial every trial runs to its end and the
scheduler contributes Tune's placement, concurrency and bookkeeping, not early stopping. Trials that report per
iteration (an iterative model reporting through a future hook) are where ASHA saves time.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from qcore.errors import ConfigError, RunError

__all__ = ["AshaScheduler"]


class AshaScheduler:
    """Ray Tune with its Asynchronous Successive Halving scheduler.

    :param address: the Ray cluster (``auto``, ``local``, ``[ray://]host:port``), as the ray backend takes it.
    :param max_t: the last rung (in reports); :param grace_period: reports before a trial may be stopped;
    :param reduction_factor: the fraction of trials kept at each rung (1/reduction_factor).
    :param num_cpus: CPUs a trial reserves.
    :param max_concurrent: trials at a time (None: as many as the cluster's CPUs allow).
    """

    def __init__(self, address: str = "auto", max_t: int = 100, grace_period: int = 1, reduction_factor: float = 2,
                 num_cpus: float = 1.0, max_concurrent: int | None = None) -> None:  # fmt: skip
        from qray.backend import RayBackend

        for name, value, low in (("max_t", max_t, 1), ("grace_period", grace_period, 1)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ConfigError(f"expected a positive integer, got {value!r}", path=name)
        if (isinstance(reduction_factor, bool) or not isinstance(reduction_factor, (int, float))
                or reduction_factor <= 1):  # fmt: skip
            raise ConfigError(f"expected a number above 1, got {reduction_factor!r}", path="reduction_factor")
        if isinstance(num_cpus, bool) or not isinstance(num_cpus, (int, float)) or num_cpus <= 0:
            raise ConfigError(f"expected a positive number, got {num_cpus!r}", path="num_cpus")
        if max_concurrent is not None and (isinstance(max_concurrent, bool) or not isinstance(max_concurrent, int)
                                           or max_concurrent < 1):  # fmt: skip
            raise ConfigError(f"expected a positive integer, got {max_concurrent!r}", path="max_concurrent")
        self._backend = RayBackend(address=address)
        self.max_t, self.grace_period, self.reduction_factor = max_t, grace_period, float(reduction_factor)
        self.num_cpus, self.max_concurrent = float(num_cpus), max_concurrent

    def run(self, trials: Sequence[Any], run: Callable[[Any], Any], metric: str, mode: str) -> Iterator[Any]:
        """Run the trials as Tune trials; yield the results of those that finished (failed ones raise)."""
        self._backend._connect()
        from ray import tune
        from ray.tune.schedulers import ASHAScheduler

        by_index = {t.index: t for t in trials}

        def trainable(config: dict[str, Any]) -> None:
            result = run(by_index[config["point"]])
            tune.report({**{k: v for k, v in result.metrics.items() if k == metric}, "point": result.index,
                         "run_id": result.run_id, "metrics": result.metrics})  # fmt: skip

        scheduler = ASHAScheduler(metric=metric, mode=mode, max_t=self.max_t, grace_period=self.grace_period,
                                  reduction_factor=self.reduction_factor)  # fmt: skip
        with tempfile.TemporaryDirectory(prefix="qray-tune-") as storage:
            tuner = tune.Tuner(
                tune.with_resources(trainable, {"cpu": self.num_cpus}),
                param_space={"point": tune.grid_search(sorted(by_index))},
                tune_config=tune.TuneConfig(scheduler=scheduler, num_samples=1,
                                            max_concurrent_trials=self.max_concurrent),
                run_config=tune.RunConfig(storage_path=storage, name="sweep", verbose=0),
            )
            grid = tuner.fit()
            for k in range(len(grid)):
                res = grid[k]
                if res.error is not None:
                    raise RunError(f"sweep trial {k} failed on Ray Tune: {res.error}") from None
                yield _result(res.metrics, by_index)


def _result(reported: dict[str, Any], trials: dict[int, Any]) -> Any:
    from qcore.sweep import TrialResult

    index = int(reported["point"])
    return TrialResult(index, dict(trials[index].point), str(reported["run_id"]),
                       {str(k): float(v) for k, v in reported["metrics"].items()})  # fmt: skip
