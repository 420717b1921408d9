"""Hook implementations of the RL plugin; tianshou, torch and gymnasium are imported only inside factories."""

from __future__ import annotations

from typing import Any

from qcore import KindSpec, Registrar, hookimpl, lazy
from qcore.registry import KindRegistrar

#: The component kinds qrl declares; other plugins fill them through the hooks of :mod:`qrl.hookspecs`.
KINDS: tuple[KindSpec, ...] = (
    KindSpec("rl_env", "qrl_register_envs", "RL environments built from data and env_kwargs.", ("rl_envs",),
             "gymnasium:Env"),
    KindSpec("rl_state_interpreter", "qrl_register_state_interpreters", "Execution-env observations.",
             ("rl_state_interpreters",)),
    KindSpec("rl_action_interpreter", "qrl_register_action_interpreters", "Execution-env actions to amounts.",
             ("rl_action_interpreters",)),
    KindSpec("rl_reward", "qrl_register_rewards", "Execution-env rewards.", ("rl_rewards",)),
    KindSpec("rl_portfolio_reward", "qrl_register_portfolio_rewards", "Portfolio-env rewards (env_kwargs.reward).",
             ("rl_portfolio_rewards",), "qrl.portfolio.rewards:PortfolioReward"),
    KindSpec("rl_baseline", "qrl_register_baselines", "Baselines an RL policy is evaluated against, by env.",
             ("rl_baselines",)),
    KindSpec("rl_algorithm", "qrl_register_algorithms", "RL algorithms (tianshou 2) for an env's spaces.",
             ("rl_algorithms",), "tianshou.algorithm:Algorithm"),
)


@hookimpl
def qcore_addhooks(pluginmanager: Any) -> None:
    from qrl import hookspecs

    pluginmanager.add_hookspecs(hookspecs)


@hookimpl
def qcore_register_kinds(register_kind: KindRegistrar) -> None:
    for spec in KINDS:
        register_kind(spec)


@hookimpl
def qcore_register_strategies(register: Registrar) -> None:
    register("rl_policy", lazy("qrl.portfolio.strategy:RLPolicyStrategy",
                               description="A trained portfolio policy as a weight strategy (``checkpoint``, "
                                           "``deterministic``, ``risk_degree``, ``order_generator``)."))  # fmt: skip
    register("rl_execution", lazy("qrl.execution.strategy:RLExecutionStrategy",
                                  description="A trained order-execution policy as the inner strategy of a nested "
                                              "executor (``checkpoint``, ``deterministic``, ``price_field``)."),
             aliases=("RLExecution", "SAOEIntStrategy"))  # fmt: skip


@hookimpl
def qcore_register_feature_sets(register: Registrar) -> None:
    register("finrl", lazy("qrl.meta.indicators:finrl",
                           description="FinRL's indicators (MACD, Bollinger bands, RSI-30, CCI-30, DX-30, SMA-30/60) "
                                       "as expressions; kwargs indicators=[...], label."))


@hookimpl
def qcore_register_commands(cli: Any, kernel: Any) -> None:
    from qrl.cli import rl

    cli.add_command(rl)


@hookimpl
def qrl_register_envs(register: Registrar) -> None:
    register("execution", lazy("qrl.envs:make_execution_env", description="Liquidate or buy an order over a day's "
                                                                           "minute bars."))  # fmt: skip
    register("portfolio", lazy("qrl.envs:make_portfolio_env", description="Daily allocation over a basket with "
                                                                          "lots and costs."))  # fmt: skip
    register("stock_trading", lazy("qrl.envs:make_stock_trading_env",
                                   description="FinRL's share-count stock trading under the market's rules."))


@hookimpl
def qrl_register_state_interpreters(register: Registrar) -> None:
    register("recent_bars", lazy("qrl.execution.interpreters:RecentBarsState",
                                 description="The last ``window`` deal prices and the order's progress."))


@hookimpl
def qrl_register_action_interpreters(register: Registrar) -> None:
    register("categorical", lazy("qrl.execution.interpreters:CategoricalAction",
                                 description="Discrete action k trades k / (n - 1) * max_multiple TWAP slices."))
    register("continuous", lazy("qrl.execution.interpreters:ContinuousAction",
                                description="Action a in [0, 1] trades a * max_multiple TWAP slices."))


@hookimpl
def qrl_register_rewards(register: Registrar) -> None:
    register("pa_penalty", lazy("qrl.execution.reward:PriceAdvantageReward",
                                description="Price advantage over TWAP (bps) less a penalty on concentrated trading."))


@hookimpl
def qrl_register_portfolio_rewards(register: Registrar) -> None:
    for name, cls, text in (("log_growth", "LogGrowth", "log(after / before) (the default)."),
                            ("differential_sharpe", "DifferentialSharpe", "Moody & Saffell's differential Sharpe "
                                                                          "ratio (eta)."),
                            ("drawdown_penalty", "DrawdownPenalty", "Log growth less penalty x drawdown increase."),
                            ("turnover_penalty", "TurnoverPenalty", "Log growth less penalty x turnover.")):
        register(name, lazy(f"qrl.portfolio.rewards:{cls}", description=text))


@hookimpl
def qrl_register_baselines(register: Registrar) -> None:
    register("execution", lazy("qrl.execution.baselines:baselines", description="TWAP and VWAP."))
    daily = "Buy-and-hold, equal weight, minimum variance (train split), random and cash."
    register("portfolio", lazy("qrl.baselines:daily_baselines", description=daily))
    register("stock_trading", lazy("qrl.baselines:daily_baselines", description=daily))


@hookimpl
def qrl_register_algorithms(register: Registrar) -> None:
    register("ppo", lazy("qrl.algorithms:build_ppo", description="PPO (discrete or continuous actions)."))
    register("a2c", lazy("qrl.algorithms:build_a2c", description="A2C (discrete or continuous actions)."))
    register("dqn", lazy("qrl.algorithms:build_dqn", description="Double DQN (discrete actions)."))
    register("sac", lazy("qrl.algorithms:build_sac", description="SAC with twin critics (continuous actions)."))
    register("td3", lazy("qrl.algorithms:build_td3", description="TD3 (continuous actions)."))
    register("ddpg", lazy("qrl.algorithms:build_ddpg", description="DDPG (continuous actions)."))
