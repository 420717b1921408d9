"""qcore hooks of the China A-share adapter: the ``qlib_bin`` data provider, ``cn`` market rules, ``qcore data``.

Importing this module is cheap: the provider, rules and commands import numpy/pandas only when they are built.
"""

from __future__ import annotations

import os
from typing import Any

from qcore import Registrar, hookimpl, lazy


def open_qlib_bin(provider_uri: str | os.PathLike[str] | dict[str, str], region: str = "cn") -> Any:
    """A Qlib bin store (``~/.qlib/qlib_data/cn_data`` or one written by ``qcore data``), read as whole panels."""
    from qdata_cn.binstore import QlibBinProvider

    return QlibBinProvider(provider_uri, region=region)


#: What a command opens when it is given only a store's location (``--provider-uri``, no ``--provider``).
open_qlib_bin.default_for_uri = True  # type: ignore[attr-defined]


def open_synth_cn(
    provider_uri: str | os.PathLike[str] = "data/synth_cn",
    instruments: int = 300,
    days: int = 2500,
    seed: int = 0,
    start: str = "2015-01-05",
    region: str = "cn",
) -> Any:
    """The synthetic A-share market at ``provider_uri``, generated there first if it does not exist."""
    from pathlib import Path

    from qdata_cn.binstore import QlibBinProvider

    root = Path(provider_uri).expanduser()
    if not (root / "calendars" / "day.txt").exists():
        from qdata_cn.synth import synthesize

        synthesize(root, instruments=instruments, days=days, seed=seed, start=start)
    return QlibBinProvider(root, region=region)


#: China A-share rules: lot 100, T+1, price limits by board/ST/date, commission (min 5 CNY), stamp duty.
cn_market_rules = lazy("qdata_cn.rules:CNMarketRules",
                       description="China A-share rules: lot 100, T+1, board/ST price limits, commission and stamp "
                                   "duty")  # fmt: skip


@hookimpl
def qcore_register_data_providers(register: Registrar) -> None:
    register("qlib_bin", open_qlib_bin, aliases=("qlib", "bin", "LocalProvider"),
             description="Qlib bin store (provider_uri), read as whole panels")  # fmt: skip
    register("synth_cn", open_synth_cn,
             description="synthetic China A-share market at provider_uri, generated on first use")  # fmt: skip


@hookimpl
def qcore_register_market_rules(register: Registrar) -> None:
    register("cn", cn_market_rules, aliases=("a_share", "china"))


@hookimpl
def qcore_register_commands(cli: Any, kernel: Any) -> None:
    from qdata_cn.cli import data_group

    cli.add_command(data_group)
