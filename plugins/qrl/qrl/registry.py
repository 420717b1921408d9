"""Plugin-local registry of RL components, filled through the ``qrl_register_components`` hook."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from qcore.errors import UnknownComponentError

KINDS = ("env", "state_interpreter", "action_interpreter", "reward", "baseline", "algorithm")


class RLComponents:
    """Named factories by kind; ``create(kind, name, **kwargs)`` builds one."""

    def __init__(self) -> None:
        self._factories: dict[str, dict[str, Callable[..., Any]]] = {kind: {} for kind in KINDS}

    def register(self, kind: str, name: str, factory: Callable[..., Any]) -> None:
        """Add ``factory`` as ``name`` of ``kind``; a name may be registered once per kind."""
        if kind not in self._factories:
            raise ValueError(f"unknown RL component kind {kind!r}; kinds: {', '.join(KINDS)}")
        if name in self._factories[kind]:
            raise ValueError(f"RL {kind} {name!r} is registered twice")
        self._factories[kind][name] = factory

    def names(self, kind: str) -> list[str]:
        """Registered names of ``kind``, sorted."""
        return sorted(self._factories[kind])

    def get(self, kind: str, name: str) -> Callable[..., Any]:
        """The factory ``name`` of ``kind``; an unknown name raises :class:`UnknownComponentError`."""
        try:
            return self._factories[kind][name]
        except KeyError:
            raise UnknownComponentError(f"RL {kind}", name, self.names(kind)) from None

    def create(self, kind: str, name: str, /, **kwargs: Any) -> Any:
        """Build ``name`` of ``kind`` with ``kwargs``."""
        return self.get(kind, name)(**kwargs)


def components(kernel: Any | None = None) -> RLComponents:
    """The RL components of every plugin of ``kernel`` (or only qrl's own built-ins without a kernel)."""
    out = RLComponents()
    if kernel is None:
        from qrl import plugin

        plugin.qrl_register_components(out.register)
        return out
    kernel.pm.hook.qrl_register_components(register=out.register)  # spec added by qrl's qcore_addhooks
    return out
