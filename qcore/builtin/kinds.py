"""The kernel's own component kinds: the one table that ``qcore_register_kinds`` declares them from.

Plugins declare kinds of their own through the same hook (see :class:`qcore.registry.KindSpec`), so a built-in
kind and a plugin's kind differ only in who declared them.
"""

from __future__ import annotations

from qcore.registry import KindSpec

BUILTIN_KINDS: tuple[KindSpec, ...] = (
    KindSpec("data_provider", "qcore_register_data_providers", "Market data stores (calendar, universes, fields).",
             ("data_providers", "providers", "provider", "data"), "qcore.protocols:DataProvider"),
    KindSpec("market_rules", "qcore_register_market_rules", "Lot size, settlement, price limits and costs.",
             ("markets", "market"), "qcore.protocols:MarketRules"),
    KindSpec("operator", "qcore_register_operators", "Expression operators (Mean, Ref, CSRank...).",
             ("operators", "ops")),
    KindSpec("feature_set", "qcore_register_feature_sets", "Named feature sets (alpha158...) and their label.",
             ("feature_sets", "features")),
    KindSpec("processor", "qcore_register_processors", "Dataset processors (normalisation, NaN handling...).",
             ("processors",), "qcore.protocols:Processor"),
    KindSpec("model", "qcore_register_models", "Models: fit(dataset), predict(dataset, segment), save, restore.",
             ("models",), "qcore.protocols:Model"),
    KindSpec("reweighter", "qcore_register_reweighters",
             "Sample weights for training (reweight(index)), passed to models whose fit takes a reweighter.",
             ("reweighters",), "qcore.protocols:Reweighter"),
    KindSpec("strategy", "qcore_register_strategies",
             "Trading strategies: orders (generate_trade_decision) or target weights (target_weights) per bar.",
             ("strategies",), "qcore.trading:Strategy|qcore.trading:WeightStrategy"),
    KindSpec("exchange", "qcore_register_exchanges",
             "Exchanges (quotes, tradability, lots, fees) a strategy decides against outside a backtest loop.",
             ("exchanges",), "qcore.trading:Exchange"),
    KindSpec("executor", "qcore_register_executors", "Executors: carry a strategy's decisions out on an exchange.",
             ("executors",), "qcore.trading:Executor"),
    KindSpec("recorder", "qcore_register_recorders", "Experiment recorders (runs, params, metrics, artifacts).",
             ("recorders",), "qcore.protocols:Recorder"),
    KindSpec("record", "qcore_register_records", "Workflow records: steps that run after a model predicts.",
             ("records",), "qcore.protocols:Record"),
    KindSpec("config_section", "qcore_register_config_sections",
             "Top-level workflow sections that plugins own, parsed and checked like the kernel's own.",
             ("config_sections", "sections"), "qcore.protocols:ConfigSection"),
    KindSpec("execution_backend", "qcore_register_execution_backends",
             "Where independent tasks (rolling windows) run: serially, in local processes, on a cluster.",
             ("execution_backends", "backends"), "qcore.backends:ExecutionBackend"),
)
