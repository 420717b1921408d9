"""qcore hooks of qonline: the ``online:`` config section and the ``qcore online`` command group.

Importing this module is cheap: the serving code is imported when a command runs.
"""

from __future__ import annotations

from typing import Any

from qcore import Registrar, hookimpl
from qcore.registry import lazy

_online_section = lazy("qonline.section:OnlineSection",
                       description="Online routine: folder (predictions, orders, monitor, log), model (a "
                                   "saved model folder; default: the rolling checkpoint), exchange, drift.")


@hookimpl
def qcore_register_config_sections(register: Registrar) -> None:
    register("online", _online_section)


@hookimpl
def qcore_register_commands(cli: Any, kernel: Any) -> None:
    from qonline.cli import online_group

    cli.add_command(online_group)
