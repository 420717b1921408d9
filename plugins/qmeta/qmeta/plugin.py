"""qcore hooks of qmeta: the ``ddgda`` reweighter and the ``qcore ddgda`` command.

Importing this module is cheap: numpy, pandas and torch are imported when a reweighter is built or a command runs.
"""

from __future__ import annotations

from typing import Any

from qcore import Registrar, hookimpl
from qcore.registry import lazy

_ddgda = lazy("qmeta.ddgda:DDGDA",
              description="DDG-DA: sample weights of each rolling window's train span, learned by a meta-model.")


@hookimpl
def qcore_register_reweighters(register: Registrar) -> None:
    register("ddgda", _ddgda)


@hookimpl
def qcore_register_commands(cli: Any, kernel: Any) -> None:
    from qmeta.cli import ddgda_command

    cli.add_command(ddgda_command)
