"""Rewards of the portfolio environment (kind ``rl_portfolio_reward``), named in ``env_kwargs.reward``.

A reward sees one step's :class:`StepOutcome` (portfolio value before and after, the value traded) and returns a
number; the environment multiplies it by ``reward_scale``. :meth:`PortfolioReward.reset` starts an episode.

- ``log_growth`` (default): ``log(after / before)``.
- ``differential_sharpe``: Moody & Saffell's differential Sharpe ratio of the step's return against exponential
  moving estimates of the first two moments (rate ``eta``).
- ``drawdown_penalty``: log growth less ``penalty`` × the step's increase of the drawdown from the episode's peak.
- ``turnover_penalty``: log growth less ``penalty`` × the value traded as a share of the value before.
"""

from __future__ import annotations

import math
from typing import Protocol, runtime_checkable

import attrs


@attrs.frozen
class StepOutcome:
    """What one step of the portfolio environment did: ``before``/``after`` values and the value ``traded``."""

    before: float
    after: float
    traded: float = 0.0

    @property
    def log_growth(self) -> float:
        """``log(after / before)`` (0 when a value is not positive)."""
        return math.log(self.after / self.before) if self.before > 0 and self.after > 0 else 0.0


@runtime_checkable
class PortfolioReward(Protocol):
    """A portfolio-environment reward."""

    def reset(self, value: float) -> None:
        """Start an episode at portfolio value ``value``."""
        ...

    def __call__(self, step: StepOutcome) -> float:
        """The reward of ``step``."""
        ...


class LogGrowth:
    """``log(after / before)``."""

    def reset(self, value: float) -> None:
        """Nothing to reset."""

    def __call__(self, step: StepOutcome) -> float:
        return step.log_growth


class DifferentialSharpe:
    """Moody & Saffell's differential Sharpe ratio ``(B ΔA − ½ A ΔB) / (B − A²)^{3/2}`` of the step's simple return,
    with ``A``, ``B`` exponential moving averages (rate ``eta``) of the returns and their squares (0 while the
    variance estimate is not positive)."""

    def __init__(self, eta: float = 0.05) -> None:
        if not 0.0 < eta < 1.0:
            raise ValueError(f"eta must be in (0, 1), got {eta}")
        self.eta = float(eta)
        self.a = self.b = 0.0

    def reset(self, value: float) -> None:
        self.a = self.b = 0.0

    def __call__(self, step: StepOutcome) -> float:
        r = step.after / step.before - 1.0 if step.before > 0 else 0.0
        da, db = r - self.a, r * r - self.b
        var = self.b - self.a * self.a
        out = (self.b * da - 0.5 * self.a * db) / var ** 1.5 if var > 1e-12 else 0.0
        self.a += self.eta * da
        self.b += self.eta * db
        return float(out)


class DrawdownPenalty:
    """Log growth less ``penalty`` × the increase of the drawdown from the episode's peak value."""

    def __init__(self, penalty: float = 1.0) -> None:
        if penalty < 0:
            raise ValueError(f"penalty must be >= 0, got {penalty}")
        self.penalty = float(penalty)
        self.peak = self.drawdown = 0.0

    def reset(self, value: float) -> None:
        self.peak, self.drawdown = float(value), 0.0

    def __call__(self, step: StepOutcome) -> float:
        self.peak = max(self.peak, step.after)
        drawdown = 1.0 - step.after / self.peak if self.peak > 0 else 0.0
        worse = max(drawdown - self.drawdown, 0.0)
        self.drawdown = drawdown
        return step.log_growth - self.penalty * worse


class TurnoverPenalty:
    """Log growth less ``penalty`` × the value traded over the value before the step."""

    def __init__(self, penalty: float = 0.001) -> None:
        if penalty < 0:
            raise ValueError(f"penalty must be >= 0, got {penalty}")
        self.penalty = float(penalty)

    def reset(self, value: float) -> None:
        """Nothing to reset."""

    def __call__(self, step: StepOutcome) -> float:
        turnover = step.traded / step.before if step.before > 0 else 0.0
        return step.log_growth - self.penalty * turnover
