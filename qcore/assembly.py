"""Building a run's components from its config: each error names the config key that asked for the component.

:func:`build_component` builds any registered component (``kernel.create``), :func:`build_processor` a dataset
processor (checked against its protocol), :func:`dataset_engine` the run's one expression engine; the runner, the
checks and the rolling step share them.
"""

from __future__ import annotations

from typing import Any

from qcore.config import ComponentSpec, WorkflowConfig
from qcore.context import RunContext
from qcore.errors import ComponentContractError, ConfigError, QcoreError
from qcore.kernel import Kernel
from qcore.registry import missing_members


def relocate(config: WorkflowConfig, error: ConfigError, prefix: str) -> ConfigError:
    """``error`` raised by a component about its own arguments (``path`` relative to them, no file yet), placed at
    ``prefix`` of the config with the file's line. An error that already names its file is returned as it is."""
    if error.source is not None:
        return error
    path = f"{prefix}.{error.path}" if error.path else prefix
    return config.error(error.message, path)


def build_component(config: WorkflowConfig, kernel: Kernel, kind: str, spec: ComponentSpec, path: str) -> Any:
    """``kernel.create(kind, spec.name, **spec.kwargs)``; an error building it names the config key.

    A :class:`ConfigError` with a path relative to the arguments is placed under ``<path>.kwargs``; an unexpected
    exception (a ``TypeError`` from a wrong argument type...) becomes a :class:`ConfigError` at ``path``.
    """
    try:
        return kernel.create(kind, spec.name, **spec.kwargs)
    except ConfigError as exc:
        raise relocate(config, exc, f"{path}.kwargs") from None
    except QcoreError:
        raise
    except Exception as exc:
        raise config.error(f"cannot build {kind} {spec.name!r} from its arguments: {type(exc).__name__}: {exc}",
                           path) from exc  # fmt: skip


def build_processor(kernel: Kernel, spec: ComponentSpec, fit_start: Any, fit_end: Any) -> Any:
    """A processor built from ``spec`` (:func:`qcore.dataset.make_processor` passes the fit window to a factory
    that takes it), checked against :class:`qcore.protocols.Processor`."""
    from qcore.dataset import make_processor

    entry = kernel.registry("processor").entry(spec.name)
    processor = make_processor(entry.factory, spec.kwargs, fit_start, fit_end)
    protocol = kernel.kind("processor").resolve_protocol()
    missing = missing_members(processor, protocol) if protocol is not None else []
    if missing:
        wanted = " or ".join(f"{p.__module__}.{p.__qualname__}"
                             for p in (protocol if isinstance(protocol, tuple) else (protocol,)))  # fmt: skip
        raise ComponentContractError("processor", entry.name, entry.plugin, type(processor).__qualname__, wanted,
                                     missing)  # fmt: skip
    return processor


def dataset_engine(context: RunContext) -> Any:
    """The run's expression engine for its dataset (one per run, kept in ``context.state.engine``), reading a
    field the store lacks as NaN unless ``data.missing_fields`` is ``error``."""
    from qcore.expr.engine import ExpressionEngine

    engine = context.state.engine
    if engine is None:
        config = context.config
        missing = config.data.missing_fields or "nan"
        engine = ExpressionEngine(context.provider, context.kernel.registry("operator"), freq=config.data.freq,
                                  missing_fields=missing)  # fmt: skip
        context.state.engine = engine
    return engine


def start_tracking(context: RunContext) -> None:
    """Let the run's recorder worker begin (see :class:`qcore.tracking.BackgroundRun`); no-op for other runs."""
    start = getattr(context.run, "start", None)
    if callable(start):
        start()
