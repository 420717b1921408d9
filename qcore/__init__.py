"""qcore: a plugin-based kernel for quantitative investment research.

Import is cheap: no plugin is loaded until a :class:`~qcore.kernel.Kernel` is built, and even the names below are
imported on first use (``qcore --help`` needs none of them). Plugins mark their hook functions with
:data:`hookimpl`; the hooks are specified in :mod:`qcore.hookspecs`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from qcore.api import evaluate, load_kernel, open_provider, run
    from qcore.kernel import Kernel
    from qcore.plugins import hookimpl, hookspec
    from qcore.registry import KindSpec, Registrar, lazy

    __version__: str

__all__ = [
    "Kernel",
    "KindSpec",
    "Registrar",
    "__version__",
    "evaluate",
    "hookimpl",
    "hookspec",
    "lazy",
    "load_kernel",
    "open_provider",
    "run",
]

#: Public name → the module that defines it, imported on first access.
_LAZY = {
    "Kernel": "qcore.kernel",
    "evaluate": "qcore.api",
    "hookimpl": "qcore.plugins",
    "hookspec": "qcore.plugins",
    "KindSpec": "qcore.registry",
    "Registrar": "qcore.registry",
    "lazy": "qcore.registry",
    "load_kernel": "qcore.api",
    "open_provider": "qcore.api",
    "run": "qcore.api",
}


def _installed_version() -> str:
    """The installed distribution's version (``importlib.metadata`` is slow to import, so it is read on demand)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("qcore")
    except PackageNotFoundError:  # running from a source tree that was not installed
        return "0.0.0+unknown"


def __getattr__(name: str) -> Any:
    if name == "__version__":
        value: Any = _installed_version()
    else:
        module = _LAZY.get(name)
        if module is None:
            raise AttributeError(f"module 'qcore' has no attribute {name!r}")
        import importlib

        value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups are plain attribute reads
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
