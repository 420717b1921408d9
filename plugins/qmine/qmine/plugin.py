"""Hook implementations of qmine: the ``factor_proposer`` kind with ``genetic``, ``random_search`` and ``llm``, the
``mined`` feature set, the ``mine:`` workflow section (mined before the run's dataset is built) and ``qcore mine``.
Nothing heavy is imported by loading the plugin."""

from __future__ import annotations

from typing import Any

from qcore import KindSpec, Registrar, hookimpl, lazy
from qcore.registry import KindRegistrar

KINDS: tuple[KindSpec, ...] = (
    KindSpec("factor_proposer", "qmine_register_proposers",
             "Factor proposers: suggest candidate expressions for `qcore mine` from the history of scored ones.",
             ("factor_proposers", "proposers"), "qmine.proposers:FactorProposer"),
)  # fmt: skip


@hookimpl
def qcore_register_kinds(register_kind: KindRegistrar) -> None:
    for spec in KINDS:
        register_kind(spec)


@hookimpl
def qmine_register_proposers(register: Registrar) -> None:
    register("genetic", lazy("qmine.proposers:GeneticProposer",
                             description="Genetic programming: tournament selection, crossover, subtree/point/"
                                         "window/hoist mutation (seeded)."))  # fmt: skip
    register("random_search", lazy("qmine.proposers:RandomProposer", description="Baseline: fresh random typed trees."))
    register("llm", lazy("qmine.llm:LLMProposer",
                         description="Asks an OpenAI-compatible chat endpoint (url, model, api_key_env/api_key_file); "
                                     "replies go through the safe parser; failures fall back to genetic."))


@hookimpl
def qcore_register_feature_sets(register: Registrar) -> None:
    register("mined", lazy("qmine.library:mined", description="The factors of a `qcore mine` library "
                                                             "(kwargs: library=PATH) + LABEL0."))


@hookimpl
def qcore_register_config_sections(register: Registrar) -> None:
    register("mine", lazy("qmine.section:MineSection",
                          description="Mine factors when the run starts (`qcore mine` keys; data from the workflow)."))


@hookimpl
def qcore_before_run(context: Any) -> None:
    parsed = context.config.sections.get("mine")
    if parsed is not None:
        from qmine.section import run_section

        run_section(parsed, context)


@hookimpl
def qcore_register_commands(cli: Any, kernel: Any) -> None:
    from qmine.cli import mine_command

    cli.add_command(mine_command)
