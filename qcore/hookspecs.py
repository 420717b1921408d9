"""Hook specifications: every way a plugin extends qcore.

A plugin is a module (or object) with functions named after these specs and marked with
:data:`qcore.hookimpl`. It is found through the ``qcore`` entry-point group, or registered directly for tests.
A hookimpl may take any subset of the spec's arguments, by name; arguments with default values are not passed.

Registration hooks follow the "register callback" style: the plugin receives a ``register`` callable bound to its
own name and adds named *factories* to it (``register("lightgbm", LGBModel)``). Factories are built only when a
config asks for them, so heavy imports belong inside them, never at plugin import time.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    import click

    from qcore.config import WorkflowConfig
    from qcore.context import RunContext, RunResult
    from qcore.kernel import Kernel
    from qcore.registry import KindRegistrar, Registrar
    from qcore.reporting import ComparedRun, ReportSection
    from qcore.yamldoc import Document

#: Marks a hook specification. Plugins that add hooks of their own use it too (``from qcore import hookspec``).
hookspec = pluggy.HookspecMarker("qcore")

# -------------------------------------------------------------------------
# Bootstrap
# -------------------------------------------------------------------------


@hookspec(historic=True)
def qcore_addhooks(pluginmanager: pluggy.PluginManager) -> None:
    """Add hook specifications of a plugin's own (``pluginmanager.add_hookspecs(module)``).

    Called when the plugin is registered, so other plugins can implement its hooks.

    :param pluginmanager: the plugin manager of the kernel being built.

    .. note:: This hook is historic and cannot be implemented as a wrapper.
    """


@hookspec
def qcore_register_kinds(register_kind: KindRegistrar) -> None:
    """Declare component kinds (``rl_algorithm``, ``risk_model``...): each gets a registry like the built-in kinds.

    Called once when plugins are loaded, before any component is registered. Each kind names the hook that fills
    it; a plugin may specify that hook itself (``qcore_addhooks``), else the kernel adds ``hook_name(register)``.
    Its components are then listed by ``qcore list KIND``, owned, checked for clashes and built by
    ``kernel.create(KIND, name)``. The kernel's own kinds are declared through this hook too.

    :param register_kind: ``register_kind(name, hook_name, description="", aliases=(), protocol=None)`` or
        ``register_kind(KindSpec(...))``.
    """


@hookspec
def qcore_register_commands(cli: click.Group, kernel: Kernel) -> None:
    """Add subcommands (or command groups) to the ``qcore`` command line.

    :param cli: the root click group; call ``cli.add_command(...)`` or decorate with ``@cli.command()``.
    :param kernel: the loaded kernel, for commands that need registries.
    """


# -------------------------------------------------------------------------
# Component registration: called once per kernel, after every plugin is loaded
# -------------------------------------------------------------------------


@hookspec
def qcore_register_data_providers(register: Registrar) -> None:
    """Register data provider factories.

    A factory takes keyword arguments from the config (``provider_uri``...) and returns an object that satisfies
    :class:`qcore.protocols.DataProvider`.

    :param register: ``register(name, factory, aliases=(), description="", override=False)``.
    """


@hookspec
def qcore_register_market_rules(register: Registrar) -> None:
    """Register market rules: lot size, settlement (T+N), price limits by board and date, cost schedule.

    A factory returns an object that satisfies :class:`qcore.protocols.MarketRules`. A market adapter usually
    registers a data provider and its market rules together.

    :param register: ``register(name, factory, ...)``.
    """


@hookspec
def qcore_register_operators(register: Registrar) -> None:
    """Register expression operators (``Mean``, ``Ref``, ``CSRank``...).

    The kernel knows no operator by name: every operator usable in an expression comes from this hook. The
    registered object describes the operator's arguments and computes it on whole panels; see
    :mod:`qcore.expr`.

    :param register: ``register(name, operator, ...)``.
    """


@hookspec
def qcore_register_feature_sets(register: Registrar) -> None:
    """Register named feature sets (``alpha158``...): factories returning ``(names, expressions)`` and a label.

    :param register: ``register(name, factory, ...)``.
    """


@hookspec
def qcore_register_processors(register: Registrar) -> None:
    """Register dataset processors (normalisation, NaN handling, filtering) by name.

    :param register: ``register(name, factory, ...)``.
    """


@hookspec
def qcore_register_models(register: Registrar) -> None:
    """Register model factories. A model has ``fit(dataset)`` and ``predict(dataset, segment)``.

    :param register: ``register(name, factory, ...)``.
    """


@hookspec
def qcore_register_reweighters(register: Registrar) -> None:
    """Register reweighters: factories of :class:`qcore.protocols.Reweighter` (sample weights for training).

    A workflow picks one with ``reweighter:`` (Qlib's ``task.reweighter``); the model's ``fit`` receives it as the
    ``reweighter`` keyword.

    :param register: ``register(name, factory, ...)``.
    """


@hookspec
def qcore_register_strategies(register: Registrar) -> None:
    """Register trading strategies, which turn signals and positions into orders or target weights.

    :param register: ``register(name, factory, ...)``.
    """


@hookspec
def qcore_register_exchanges(register: Registrar) -> None:
    """Register exchange factories: each builds a :class:`qcore.trading.Exchange` on a grid of bars and instruments
    (``factory(provider, instruments, dates, *, market_rules=None, exchange_kwargs=None, region="cn", quoted=None)``),
    for a runner that decides outside a backtest loop (the online routine's orders).

    :param register: ``register(name, factory, ...)``.
    """


@hookspec
def qcore_register_executors(register: Registrar) -> None:
    """Register executors, which carry a strategy's decisions out against a simulated (or real) exchange.

    :param register: ``register(name, factory, ...)``.
    """


@hookspec
def qcore_register_recorders(register: Registrar) -> None:
    """Register experiment recorders; a factory returns a :class:`qcore.protocols.Recorder`.

    :param register: ``register(name, factory, ...)``.
    """


@hookspec
def qcore_register_records(register: Registrar) -> None:
    """Register workflow records: steps that run after a model predicts (signal, signal analysis, backtest).

    A factory takes the record's config kwargs and returns a :class:`qcore.protocols.Record`:
    ``generate(context) -> RecordOutput`` (:mod:`qcore.context`), which reads what earlier steps left in
    ``context.state`` (a :class:`qcore.context.RunState`), and optionally ``check(context)``.

    :param register: ``register(name, factory, ...)``.
    """


@hookspec
def qcore_register_config_sections(register: Registrar) -> None:
    """Register the top-level workflow sections a plugin owns (``backtest:``), under the section's key.

    A factory takes no arguments and returns a :class:`qcore.protocols.ConfigSection`, which parses the section
    with the document's line-numbered errors and lists the components it names. A key no loaded plugin registers
    (and not one of the kernel's own) is an unknown key.

    :param register: ``register(key, factory, ...)``.
    """


@hookspec
def qcore_register_execution_backends(register: Registrar) -> None:
    """Register execution backends: where independent tasks (a rolling run's windows...) run.

    A factory takes its keyword arguments from the config (``backend:``, or ``rolling.backend``) and returns a
    :class:`qcore.backends.ExecutionBackend` (``submit``/``map`` with per-task resources and retries, ``put``/``get``
    of large read-only arrays, ``shutdown``). The kernel registers ``serial`` and ``processes``; a cluster plugin
    registers its own (Ray...).

    :param register: ``register(name, factory, ...)``.
    """


# -------------------------------------------------------------------------
# Workflows: configs, defaults and what a run prints
# -------------------------------------------------------------------------


@hookspec(firstresult=True)
def qcore_translate_config(document: Document) -> Document | None:
    """Translate a workflow document of a foreign format (a Qlib ``qrun`` YAML) into qcore's form.

    Called once per loaded config, after interpolation and before ``--set`` overrides and validation; the first
    non-None result is used, and None from every plugin leaves the document as it is. Keep the source and line
    map (and add ``origins``) so later errors name the keys and lines the user wrote.

    :param document: the parsed, interpolated document.
    :return: the translated document, or None when the document is not of this plugin's format.
    """


@hookspec
def qcore_default_records(config: WorkflowConfig) -> Sequence[str]:
    """Records (registry names) a workflow runs when its config has no ``records`` section.

    Results are used in plugin order (built-ins first, then plugins by name; ``tryfirst``/``trylast`` move an
    implementation), a name given twice runs once.

    :param config: the validated workflow (its ``records`` still empty).
    :return: record names, in the order they should run (empty when the plugin adds none).
    """


@hookspec
def qcore_run_summary(config: WorkflowConfig, result: RunResult) -> Sequence[tuple[str, str]]:
    """Rows ``qcore run`` prints for a finished run: ``(label, formatted value)``, such as ``("IC", "0.0302")``.

    Rows are printed in plugin order (as :func:`qcore_default_records`), as one aligned table.

    :param config: the workflow that ran.
    :param result: its metrics and artifacts.
    :return: rows for what this plugin produced (empty when it produced nothing).
    """


@hookspec
def qcore_run_hints(config: WorkflowConfig, result: RunResult) -> Sequence[str]:
    """Where to look after a run: lines ``qcore run`` prints below the summary (a report's path, the command that
    browses the runs).

    :param config: the workflow that ran.
    :param result: its metrics and artifacts (name → stored path).
    :return: lines, in order (empty when the plugin has nothing to point at).
    """


# -------------------------------------------------------------------------
# Run lifecycle
# -------------------------------------------------------------------------


@hookspec
def qcore_before_run(context: RunContext) -> None:
    """Called after the run's components are resolved and its recorder run is open, before any step.

    :param context: the run's config, kernel and tracking run.
    """


@hookspec
def qcore_after_run(context: RunContext, result: RunResult) -> None:
    """Called after every step finished, before the recorder run is closed.

    :param context: the run's config, kernel and tracking run.
    :param result: metrics and artifacts the run produced.
    """


@hookspec
def qcore_on_run_error(context: RunContext, error: BaseException) -> None:
    """Called when a step raised, before the recorder run is closed as failed and the error propagates.

    :param context: the run's config, kernel and tracking run.
    :param error: the exception.
    """


# -------------------------------------------------------------------------
# Reports
# -------------------------------------------------------------------------


@hookspec
def qcore_render_comparison(runs: Sequence[ComparedRun]) -> Sequence[ReportSection]:
    """Sections of the page ``qcore runs compare A B --html OUT`` writes: the runs' curves side by side.

    The kernel's page already lists the runs and tables their metrics and differing parameters; a plugin adds
    what it can draw from the runs' artifacts (``run.artifacts``: artifact name → local file), one line per run
    (``run.label``). Sections carry inline SVG/CSS only (:mod:`qcore.reporting`). Results are placed in plugin
    order (as :func:`qcore_default_records`).

    :param runs: the compared runs, in the order given on the command line.
    :return: sections (empty when the plugin has nothing to draw for these runs).
    """
