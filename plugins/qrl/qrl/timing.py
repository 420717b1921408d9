"""When an environment's decision trades, relative to the data it observed (``env_kwargs.timing``).

``next_close`` (the default) matches the backtest: the ``rl_policy`` strategy decides bar ``t`` on the data of bar
``t - 1`` and the backtest executes it on bar ``t`` (at its close with close deal prices). ``next_open`` executes at
the next bar's open. ``same_close`` executes at the price just observed: optimistic, since no backtest (and no
trader) can trade at a close it has only just seen; kept to reproduce earlier results.
"""

from __future__ import annotations

#: The execution timings, the default first.
TIMINGS = ("next_close", "next_open", "same_close")
#: The timing that matches the backtest.
DEFAULT_TIMING = TIMINGS[0]
