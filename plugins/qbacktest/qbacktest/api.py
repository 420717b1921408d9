"""Running a backtest from a :class:`~qbacktest.config.BacktestSpec`: components come from the kernel's registries."""

from __future__ import annotations

import inspect
from typing import Any

import pandas as pd

from qbacktest.backtest import BacktestResult, run_backtest
from qbacktest.config import BacktestSpec
from qbacktest.signal import Signal


def _accepts(factory: Any, name: str) -> bool:
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        return False
    return name in params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())


def build_market_rules(kernel: Any, spec: BacktestSpec, provider_uri: Any = None) -> Any:
    """The market rules of ``spec`` (None in Qlib-compatible mode); ``provider_uri`` is passed when accepted."""
    if spec.exchange_kwargs is not None or spec.market_rules is None:
        return None
    kwargs = dict(spec.market_rules.kwargs)
    factory = kernel.registry("market_rules").get(spec.market_rules.name)
    if provider_uri is not None and "provider_uri" not in kwargs and _accepts(factory, "provider_uri"):
        kwargs["provider_uri"] = provider_uri
    return kernel.create("market_rules", spec.market_rules.name, **kwargs)


def backtest_from_spec(
    spec: BacktestSpec,
    provider: Any,
    kernel: Any,
    *,
    signal: Signal | pd.Series | pd.DataFrame | None = None,
    provider_uri: Any = None,
) -> BacktestResult:
    """Build the strategy (with ``signal`` as its ``signal`` argument), the executor and the exchange; run."""
    kwargs = dict(spec.strategy.kwargs)
    if signal is not None and "signal" not in kwargs and _accepts(kernel.registry("strategy").get(spec.strategy.name),
                                                                  "signal"):  # fmt: skip
        kwargs["signal"] = signal
    strategy = kernel.create("strategy", spec.strategy.name, **kwargs)
    executor = kernel.create("executor", spec.executor.name, **dict(spec.executor.kwargs))
    return run_backtest(
        provider,
        strategy,
        executor,
        start=spec.start,
        end=spec.end,
        account=spec.account,
        benchmark=spec.benchmark,
        exchange_kwargs=spec.exchange_kwargs,
        market_rules=build_market_rules(kernel, spec, provider_uri),
        codes=spec.codes,
        region=spec.region,
        kernel=kernel,
    )
