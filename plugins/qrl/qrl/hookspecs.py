"""Hook specification the qrl plugin adds to the kernel (through ``qcore_addhooks``).

Other plugins implement :func:`qrl_register_components` to add simulators/environments, interpreters, rewards,
baselines or algorithms by name; :func:`qrl.registry.components` collects them.
"""

from __future__ import annotations

from typing import Any

import pluggy

hookspec = pluggy.HookspecMarker("qcore")


@hookspec
def qrl_register_components(register: Any) -> None:
    """Register RL components: ``register(kind, name, factory)``.

    Kinds: ``env`` (a factory ``(data, **kwargs) -> gymnasium.Env``), ``state_interpreter``,
    ``action_interpreter``, ``reward``, ``baseline`` and ``algorithm`` (``(env_spec, **kwargs) -> Algorithm``).
    """
