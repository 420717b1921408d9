"""qcore: a plugin-based kernel for quantitative investment research.

Import is cheap: no plugin is loaded until a :class:`~qcore.kernel.Kernel` is built. Plugins mark their hook
functions with :data:`hookimpl`; the hooks are specified in :mod:`qcore.hookspecs`.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

from qcore.plugins import hookimpl

try:
    __version__ = version("qcore")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+unknown"

if TYPE_CHECKING:
    from qcore.api import evaluate, load_kernel, open_provider, run
    from qcore.kernel import Kernel

__all__ = ["Kernel", "__version__", "evaluate", "hookimpl", "load_kernel", "open_provider", "run"]

_LAZY = {
    "Kernel": "qcore.kernel",
    "evaluate": "qcore.api",
    "load_kernel": "qcore.api",
    "open_provider": "qcore.api",
    "run": "qcore.api",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'qcore' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
