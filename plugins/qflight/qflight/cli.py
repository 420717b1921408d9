"""``qcore serve``: serve a store over Arrow Flight, or (``--check``) test a client's connection and token.

Arguments are checked here before anything starts; errors are the kernel's types, printed as one line by ``qcore``.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import sys

import click


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _read_pem(path: str, option: str) -> bytes:
    from qcore.errors import ArgumentError

    try:
        return open(os.path.expanduser(path), "rb").read()
    except OSError as exc:
        raise ArgumentError(f"cannot read {path}: {exc.strerror or exc}", option=option) from None


def _check(uri: str, token_file: str | None, tls_root_cert: str | None) -> None:
    import time

    from qflight.client import FlightProvider

    started = time.perf_counter()
    provider = FlightProvider(uri, token_file=token_file, tls_root_cert=tls_root_cert, cache=False, timeout=30)
    info = provider.info()
    took = time.perf_counter() - started
    click.echo(f"ok: {uri} serves {info['name']} (data version {info['version']}, freqs {', '.join(info['freqs'])}, "
               f"markets {', '.join(info['markets'])}) to user {info['user']} in {took * 1000:.0f} ms")


@click.command("serve")
@click.option("--store", default=None, type=click.Path(file_okay=False), help="The store to serve (read-only).")
@click.option("--provider", "provider_name", default="qlib_bin", show_default=True,
              help="The data provider that opens --store.")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to bind; anything but loopback needs --token-file.")
@click.option("--port", default=8815, show_default=True, type=click.IntRange(0, 65535), help="Port (0: a free one).")
@click.option("--token-file", default=None, type=click.Path(dir_okay=False),
              help="Bearer tokens, one a line (user:token or token); reloaded when it changes. With --check: this "
                   "client's token.")
@click.option("--tls-cert", default=None, type=click.Path(dir_okay=False), help="TLS certificate (PEM).")
@click.option("--tls-key", default=None, type=click.Path(dir_okay=False), help="TLS private key (PEM).")
@click.option("--expr-cache", default=None, type=click.Path(file_okay=False),
              help="A folder for the server's expression cache (server-side evaluation).")
@click.option("--max-cells", default=2_000_000_000, show_default=True, type=click.IntRange(1),
              help="Largest answer, in rows x instruments x columns.")
@click.option("--max-instruments", default=20_000, show_default=True, type=click.IntRange(1),
              help="Most symbols listed in one request.")
@click.option("--max-expressions", default=2_000, show_default=True, type=click.IntRange(1),
              help="Most expressions in one request.")
@click.option("--max-seconds", default=300.0, show_default=True, type=click.FloatRange(0, min_open=True),
              help="Longest one server-side evaluation may run; past it its worker process is stopped and the client "
                   "gets an error naming the limit.")
@click.option("--workers", default=2, show_default=True, type=click.IntRange(1, 64),
              help="Worker processes for server-side evaluation (evaluations that run at once).")
@click.option("--batch-cells", default=1 << 20, show_default=True, type=click.IntRange(1),
              help="About how many cells one streamed record batch holds.")
@click.option("--grace", default=10.0, show_default=True, type=click.FloatRange(0),
              help="Seconds open calls get to end after SIGTERM.")
@click.option("--check", is_flag=True, help="Do not serve: test that --uri answers and accepts --token-file.")
@click.option("--uri", default=None, help="With --check: the server (grpc://HOST:PORT or grpc+tls://HOST:PORT).")
@click.option("--tls-root-cert", default=None, type=click.Path(dir_okay=False),
              help="With --check: the certificate (or CA) to trust for grpc+tls://.")
@click.pass_context
def serve_command(ctx: click.Context, store: str | None, provider_name: str, host: str, port: int,
                  token_file: str | None, tls_cert: str | None, tls_key: str | None, expr_cache: str | None,
                  max_cells: int, max_instruments: int, max_expressions: int, max_seconds: float, workers: int,
                  batch_cells: int, grace: float, check: bool, uri: str | None,
                  tls_root_cert: str | None) -> None:  # fmt: skip
    """Serve a store read-only over Arrow Flight (calendar, instruments, raw fields, server-side expressions)."""
    from qcore.errors import ArgumentError

    if check:
        if not uri:
            raise ArgumentError("--check needs --uri grpc://HOST:PORT", option="--uri")
        _check(uri, token_file, tls_root_cert)
        return
    if not store:
        raise ArgumentError("give the store to serve", option="--store")
    if (tls_cert is None) != (tls_key is None):
        raise ArgumentError("TLS needs both --tls-cert and --tls-key", option="--tls-cert")
    if not _is_loopback(host) and token_file is None:
        raise ArgumentError(f"binding {host} (not loopback) needs --token-file: anyone who reaches the port could "
                            "read the store", option="--host")  # fmt: skip
    _serve(ctx, store, provider_name, host, port, token_file, tls_cert, tls_key, expr_cache, max_cells,
           max_instruments, max_expressions, max_seconds, workers, batch_cells, grace)  # fmt: skip


def _serve(ctx: click.Context, store: str, provider_name: str, host: str, port: int, token_file: str | None,
           tls_cert: str | None, tls_key: str | None, expr_cache: str | None, max_cells: int, max_instruments: int,
           max_expressions: int, max_seconds: float, workers: int, batch_cells: int,
           grace: float) -> None:  # fmt: skip
    from qcore.cli import get_kernel, plugin_selection
    from qcore.errors import ArgumentError
    from qflight.auth import BearerAuthFactory, TokenFile
    from qflight.requests import Limits
    from qflight.server import DataServer, logger, serve_until_signalled
    from qflight.workers import EvaluationPool, WorkerSetup

    tls = (_read_pem(tls_cert, "--tls-cert"), _read_pem(tls_key, "--tls-key")) if tls_cert and tls_key else None
    tokens = TokenFile(token_file) if token_file else None
    kernel = get_kernel(ctx)
    provider = kernel.create("data_provider", provider_name, provider_uri=store)
    provider.calendar("day")  # a folder that is no store fails here, naming what is missing
    operators = {name: kernel.registry("operator").get(name)
                 for name in kernel.registry("operator").names(include_aliases=True)}  # fmt: skip
    if not logger.handlers and not logging.getLogger().handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    scheme = "grpc+tls" if tls else "grpc"
    limits = Limits(max_cells=max_cells, max_instruments=max_instruments, max_expressions=max_expressions)
    # evaluations run in worker processes that open the same store with the same plugins (and can be stopped)
    setup = WorkerSetup(plugin_selection(ctx), provider_name, {"provider_uri": store},
                        os.path.abspath(os.path.expanduser(expr_cache)) if expr_cache else None)
    try:
        middleware = {"auth": BearerAuthFactory(tokens)} if tokens else None
        server = DataServer(provider, operators, lambda name: kernel.create("feature_set", name),
                            f"{scheme}://{host}:{port}", middleware=middleware, tls=tls, limits=limits,
                            batch_cells=batch_cells, name=os.path.basename(os.path.abspath(store)))
    except OSError as exc:  # pyarrow raises an OSError subclass when it cannot bind
        raise ArgumentError(f"cannot serve on {host}:{port}: {exc}", option="--port") from None
    server.pool = EvaluationPool(setup, size=workers, max_seconds=max_seconds)
    if tokens is None:
        logger.warning("no --token-file: every client that reaches %s:%s may read the store", host, server.port)
    elif tls is None and not _is_loopback(host):
        logger.warning("tokens travel in clear text without TLS: give --tls-cert and --tls-key")
    # the one line on stdout: scripts and tests read the address (the port when --port 0) from it
    click.echo(f"serving {os.path.abspath(store)} at {scheme}://{host}:{server.port} (pid {os.getpid()})", nl=True)
    sys.stdout.flush()
    clean = serve_until_signalled(server, grace)
    logger.info("stopped%s", "" if clean else f" (calls still open after {grace:g} s were cut)")
    for h in logger.handlers:
        h.flush()
    if not clean:
        os._exit(0)

