"""A test plugin (load it with ``-p tests.kernel.workflow_probe`` or ``plugins: [tests.kernel.workflow_probe]``) that
takes part in a workflow only through the kernel's hooks: a ``probe:`` config section, a default record, a summary
row, a hint, a foreign config format, and a recorder without a location."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import attrs

from qcore import hookimpl
from qcore.config import ComponentSpec, Reader, WorkflowConfig
from qcore.context import RecordOutput, RunContext, RunResult
from qcore.registry import Registrar
from qcore.yamldoc import Document


@attrs.frozen
class Probe:
    """The parsed ``probe:`` section."""

    level: int
    record: ComponentSpec


class ProbeSection:
    """``probe: {level: 0..9, record: <a record>}``."""

    def parse(self, value: Any, reader: Reader, path: str) -> Probe:
        body = reader.mapping(value, path, ("level", "record"), required=("level",))
        level = reader.integer(body["level"], f"{path}.level", 0, 9)
        record = reader.component(body.get("record") or "probe_record", f"{path}.record")
        return Probe(level, record)

    def components(self, parsed: Probe, path: str) -> list[tuple[str, str, ComponentSpec]]:
        return [(f"{path}.record", "record", parsed.record)]


class ProbeRecord:
    """Logs ``probe.level`` (the section's level, 0 without one) and leaves a value for later records."""

    def generate(self, context: RunContext) -> RecordOutput:
        probe = context.config.sections.get("probe")
        context.state.extra["probe"] = "seen"
        return RecordOutput(metrics={"probe.level": float(probe.level if probe else 0)},
                            artifacts={"probe": {"level": probe.level if probe else 0}})  # fmt: skip


class NoLocationRecorder:
    """A recorder that keeps runs nowhere in particular (it takes no ``uri``)."""

    def __init__(self, verbose: bool = False) -> None:
        self.verbose = verbose

    def start_run(self, experiment: str, run_name: str | None = None) -> Any:
        raise NotImplementedError

    def list_runs(self, experiment: str | None = None) -> list[dict[str, Any]]:
        return []

    def get_run(self, run_id: str) -> dict[str, Any]:
        return {}


@hookimpl
def qcore_register_config_sections(register: Registrar) -> None:
    register("probe", ProbeSection)


@hookimpl
def qcore_register_records(register: Registrar) -> None:
    register("probe_record", ProbeRecord)


@hookimpl
def qcore_register_recorders(register: Registrar) -> None:
    register("nowhere", NoLocationRecorder)


@hookimpl
def qcore_default_records(config: WorkflowConfig) -> Sequence[str]:
    # "signal" is the kernel's own default too: it must run once
    return ["signal", "probe_record"] if "probe" in config.sections else []


@hookimpl
def qcore_run_summary(config: WorkflowConfig, result: RunResult) -> Sequence[tuple[str, str]]:
    return [("Probe level", f"{result.metrics['probe.level']:.1f}")] if "probe.level" in result.metrics else []


@hookimpl
def qcore_run_hints(config: WorkflowConfig, result: RunResult) -> Sequence[str]:
    return [f"probe: {result.artifacts['probe']}"] if "probe" in result.artifacts else []


@hookimpl
def qcore_translate_config(document: Document) -> Document | None:
    """``probe_format: {store_kwargs: ..., level: N}`` is a foreign format: a toy store and a probe section."""
    data = document.data
    if not isinstance(data, dict) or "probe_format" not in data:
        return None
    body = data["probe_format"]
    translated = {"data": {"provider": {"name": "toy", "kwargs": body.get("store_kwargs", {})}},
                  "probe": {"level": body.get("level")}}  # fmt: skip
    return attrs.evolve(document, data=translated, origins={"probe": "probe_format", "data": "probe_format"})
