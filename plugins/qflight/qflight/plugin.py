"""qcore hooks of qflight: the ``qlib_flight`` data provider and the ``qcore serve`` command.

Importing this module is cheap: pyarrow.flight is imported only when a provider or the server is built.
"""

from __future__ import annotations

import os
from typing import Any

from qcore import Registrar, hookimpl


def open_qlib_flight(
    uri: str | None = None,
    token_file: str | os.PathLike[str] | None = None,
    evaluate: str = "local",
    cache: bool = True,
    cache_dir: str | os.PathLike[str] | None = None,
    tls_root_cert: str | os.PathLike[str] | None = None,
    timeout: float = 600.0,
    provider_uri: str | None = None,
) -> Any:
    """A store served by ``qcore serve`` at ``uri`` (``grpc://host:port``; ``provider_uri`` is the same, for
    commands' ``--provider-uri``); ``evaluate: server`` computes expressions on the server."""
    from qcore.errors import DataError
    from qflight.client import FlightProvider

    location = uri or provider_uri
    if not location:
        raise DataError("qlib_flight needs the data server's uri (grpc://HOST:PORT)")
    return FlightProvider(location, token_file=token_file, evaluate=evaluate, cache=cache, cache_dir=cache_dir,
                          tls_root_cert=tls_root_cert, timeout=timeout)  # fmt: skip


@hookimpl
def qcore_register_data_providers(register: Registrar) -> None:
    register("qlib_flight", open_qlib_flight, aliases=("flight",),
             description="a store served by `qcore serve` (uri: grpc://host:port, token_file), read over Arrow "
                         "Flight with a local read-through cache")  # fmt: skip


@hookimpl
def qcore_register_commands(cli: Any, kernel: Any) -> None:
    from qflight.cli import serve_command

    cli.add_command(serve_command)
