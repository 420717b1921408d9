"""``EnhancedIndexing``: Qlib's ``EnhancedIndexingStrategy`` on this plugin's optimiser and risk-data reader.

For the bar of trade date ``T`` (information date ``T−1``):

- risk data of ``T−1`` (``riskmodel_root/YYYYMMDD``); a missing day means no decision (Qlib skips it with a
  warning; ``missing_risk: error`` makes it an error);
- scores of ``T−1``'s window; names of the risk universe without a score get the day's lowest score (Qlib);
- current weights = holdings over the account value, divided by ``risk_degree``;
- benchmark weights of ``T−1`` (``$<market>_weight`` unless ``benchmark`` says otherwise), 0 outside; the weight
  of benchmark names outside the risk universe is dropped without rescaling the rest (Qlib);
- names with no volume on ``T−1`` (suspended, or unknown to the store) are held where they are (must-hold);
  blacklisted names are sold (must-sell, which wins);
- the optimiser's weights above 0 are the target; with ``optimizer_kwargs.long_short`` every non-zero weight is,
  the negative ones limited to the names the backtest may lend on the bar (``backtest.short.eligible``; a run
  without ``backtest.short`` enabled is refused at reset).

``diagnostics`` keeps, per decided bar, the solve status, Qlib's objective, any fallback taken, the names held
(``shorts`` of them negative), the ``gross`` and ``net`` weight, and the target's ex-ante tracking error
``√(v'Σ_b v + Σσ²d²)`` with its factor and specific parts, in the risk data's units (:mod:`qportfolio.tracking`);
``exposures`` the target's active factor exposures ``v`` per bar.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from qcore.errors import ConfigError, DataError
from qcore.trading import Step, TradingInfra
from qportfolio.benchmark import BenchmarkWeights
from qportfolio.optimizer.enhanced import EnhancedIndexingOptimizer
from qportfolio.risk.riskdata import RiskData
from qportfolio.strategies.base import WeightStrategyBase, check_names, drop_qlib_infra

logger = logging.getLogger("qportfolio.strategy")

MISSING_RISK = ("skip", "error")


class EnhancedIndexing(WeightStrategyBase):
    """Track a benchmark with an active view, under a factor risk model (see the module doc).

    :param signal: the scores.
    :param riskmodel_root: the risk-data folder (``qcore risk build`` writes one; Qlib's work too).
    :param market: the benchmark's market: weights default to its ``$<market>_weight`` field (Qlib's default
        market, csi500, is kept).
    :param benchmark: where the benchmark weights come from instead (see :mod:`qportfolio.benchmark`).
    :param name_mapping: table → file name inside each day's folder (Qlib's).
    :param optimizer_kwargs: :class:`~qportfolio.optimizer.enhanced.EnhancedIndexingOptimizer` arguments.
    :param turn_limit: accepted for Qlib's configs; unused, as in Qlib (use ``optimizer_kwargs.delta``).
    :param verbose: log each bar's holdings.
    :param missing_risk: ``skip`` (Qlib) or ``error`` for a bar whose information date has no risk data.
    :param risk_degree: share of the account value invested.
    :param order_generator: ``without_interact`` (Qlib's default) or ``with_interact``.
    """

    def __init__(
        self,
        *,
        signal: Any = None,
        riskmodel_root: str,
        market: str = "csi500",
        benchmark: Any = None,
        name_mapping: Mapping[str, str] | None = None,
        optimizer_kwargs: Mapping[str, Any] | None = None,
        turn_limit: float | None = None,
        verbose: bool = False,
        missing_risk: str = "skip",
        risk_degree: float = 0.95,
        order_generator: Any = "without_interact",
        **qlib_kwargs: Any,
    ) -> None:
        generator = qlib_kwargs.pop("order_generator_cls_or_obj", order_generator)
        drop_qlib_infra(qlib_kwargs, "EnhancedIndexing")
        super().__init__(signal=signal, risk_degree=risk_degree, order_generator=generator)
        if not isinstance(riskmodel_root, str) or not riskmodel_root:
            raise ConfigError("expected the risk-data folder", path="riskmodel_root")
        if missing_risk not in MISSING_RISK:
            raise ConfigError(f"expected one of {', '.join(MISSING_RISK)}, got {missing_risk!r}",
                              path="missing_risk")  # fmt: skip
        if optimizer_kwargs is not None and not isinstance(optimizer_kwargs, Mapping):
            raise ConfigError(f"expected a mapping, got {optimizer_kwargs!r}", path="optimizer_kwargs")
        check_names(optimizer_kwargs or {}, EnhancedIndexingOptimizer, "optimizer_kwargs")
        try:
            self.optimizer = EnhancedIndexingOptimizer(**dict(optimizer_kwargs or {}))
        except ConfigError as exc:
            raise ConfigError(exc.message, path=f"optimizer_kwargs.{exc.path}".rstrip(".")) from None
        except TypeError as exc:
            raise ConfigError(str(exc), path="optimizer_kwargs") from None
        self.riskdata = RiskData(riskmodel_root, name_mapping)
        self.market = market
        self.benchmark = BenchmarkWeights.from_spec(benchmark, market, key="benchmark")
        self.turn_limit = turn_limit
        self.verbose = bool(verbose)
        self.missing_risk = missing_risk
        self._volume: np.ndarray | None = None
        self._exposures: list[pd.Series] = []

    def instruments(self) -> list[str]:
        """Scored names and the names of a benchmark file."""
        return sorted(set(super().instruments()) | set(self.benchmark.instruments))

    def reset(self, infra: TradingInfra) -> None:
        """Check the risk data against the run's bars, prepare the benchmark weights and the volumes."""
        super().reset(infra)
        self._exposures = []
        root = self.riskdata.root
        if not root.is_dir():
            raise DataError("the risk-data folder does not exist (build it with `qcore risk build`)", path=str(root))
        days = self.riskdata.days
        if days.empty:
            raise DataError("the risk-data folder holds no YYYYMMDD day folder", path=str(root))
        calendar = infra.calendar.calendar
        first = infra.calendar.offset
        infos = calendar[max(first - 1, 0) : first + len(infra.bars) - 1]
        covered = infos.isin(days)
        if not covered.any():
            raise DataError(f"no risk data for any information date of the backtest ({infos[0].date()}.."
                            f"{infos[-1].date()}); the folder holds {days[0].date()}..{days[-1].date()}",
                            path=str(root))  # fmt: skip
        if not covered.all():
            logger.warning("%d of %d bars have no risk data for their information date: %s (first: %s)",
                           int((~covered).sum()), len(infos),
                           "an error" if self.missing_risk == "error" else "no trading then, as in Qlib",
                           infos[~covered][0].date())  # fmt: skip
        self.check_shorting(getattr(self.optimizer, "long_short", None))
        self.benchmark.bind(infra.provider, infra.operators)
        self.benchmark.prepare(list(infos))
        self._volume = None
        field = getattr(infra.exchange, "field", None)
        if callable(field):
            self._volume = np.asarray(field("$volume"), dtype=np.float64)

    def _tradable(self, step: Step, names: list[str], info: pd.Timestamp) -> np.ndarray:
        """Whether each name traded (volume > 0) on the information date."""
        assert self.infra is not None
        exchange = self.infra.exchange
        out = np.zeros(len(names), dtype=bool)
        t = step.index - 1
        missing: list[int] = []
        for i, name in enumerate(names):
            j = exchange.col(name)
            if j is not None and self._volume is not None and t >= 0:
                out[i] = self._volume[t, j] > 0
            else:
                missing.append(i)
        if missing and self.infra.provider is not None:
            known = self.infra.provider.universe("all")
            asked = [names[i] for i in missing if names[i] in known]
            if asked:
                panel = self.infra.provider.load(["volume"], asked, info, info)
                vol = dict(zip(panel.instruments, panel["volume"][-1] if len(panel.dates) else [], strict=False))
                for i in missing:
                    out[i] = bool(vol.get(names[i], np.nan) > 0)
        return out

    def target_weights(self, step: Step) -> dict[str, float] | None:
        """The optimiser's weights for ``step`` (None: no decision)."""
        info, scores = self.scores_for(step)
        if info is None:
            return None
        found = self.riskdata.get(info)
        if found is None:
            if self.missing_risk == "error":
                raise DataError(f"no risk data for {info.date()}", path=str(self.riskdata.root))
            logger.warning("no risk data for %s: no trading on %s", info.date(), step.start.date())
            return None
        if scores is None or scores.isna().all():
            logger.warning("no score for %s: no trading on %s", info.date(), step.start.date())
            return None
        risk, blacklist = found
        names = risk.instruments
        r = scores.reindex(names).fillna(scores.min()).to_numpy(np.float64)
        w0 = self.current_weights(names)
        wb = self.benchmark.at(info).reindex(names).fillna(0.0).to_numpy(np.float64)
        if not wb.sum() > 0:
            raise DataError(f"{info.date()}: no benchmark weight falls on the risk data's {len(names)} names")
        hold = ~self._tradable(step, names, info)
        sell = np.array([n in blacklist for n in names], dtype=bool)
        F = risk.exposures.to_numpy(np.float64)
        cov_b = risk.factor_cov.to_numpy(np.float64)
        var_u = risk.specific_risk.to_numpy(np.float64) ** 2
        long_short = getattr(self.optimizer, "long_short", None) is not None
        extra = {"shortable": self.shortable(step, names)} if long_short else {}
        w = self.optimizer(r, F, cov_b, var_u, w0, wb, hold, sell, factor_names=list(risk.exposures.columns),
                           **extra)  # fmt: skip
        self._record(step, w, wb, F, cov_b, var_u, list(risk.exposures.columns))
        target = {name: float(x) for name, x in zip(names, w, strict=True) if (x != 0 if long_short else x > 0)}
        if self.verbose:
            logger.info("%s: %d names, total weight %.6f", step.start.date(), len(target), float(w.sum()))
        return target

    def _record(self, step: Step, w: np.ndarray, wb: np.ndarray, F: np.ndarray, cov_b: np.ndarray,
                var_u: np.ndarray, factors: list[str]) -> None:  # fmt: skip
        from qportfolio.tracking import active_risk

        risk = active_risk(w, wb, F, cov_b, var_u)
        info = self.optimizer.last
        self._records.append({
            "datetime": step.start, "status": info.status if info else "",
            "objective": info.objective if info else np.nan, "fallback": info.fallback if info else None,
            "names": int((w != 0).sum()), "shorts": int((w < 0).sum()), "gross": float(np.abs(w).sum()),
            "net": float(w.sum()), "ex_ante_te": risk.te, "ex_ante_factor_te": risk.factor_te,
            "ex_ante_specific_te": risk.specific_te,
        })  # fmt: skip
        self._exposures.append(pd.Series(risk.exposures, index=factors, name=step.start))

    @property
    def exposures(self) -> pd.DataFrame:
        """The target portfolio's active factor exposures ``F'(w − wb)``, one row per decided bar."""
        return pd.DataFrame(self._exposures) if self._exposures else pd.DataFrame()
