#!/usr/bin/env python
"""Data-server benchmark: remote (``qcore serve`` over Arrow Flight, loopback) against local reads of one store.

    python benchmarks/bench_dataserver.py [--instruments 300] [--days 2500] [--repeat 3] [--tokens] [--json OUT]

A cached synthetic store (the checkout's ``.bench/stores/synth_<N>x<D>_s0``, built when missing) is served by a
``qcore serve`` process on 127.0.0.1 (with a bearer token when ``--tokens``). Timed, best of ``--repeat``, each in
this process, with the client's read-through cache off (so every remote read crosses the wire):

1. all fields, all instruments, the full calendar: ``QlibBinProvider.load`` locally, ``FlightProvider.load``
   remotely; throughput is the panel's bytes (float32) over the wall time;
2. Alpha158 (features and label) on all instruments: evaluated locally from the local store; evaluated on the
   server (``evaluate_feature_set``: only the frame crosses the wire); evaluated here from remote raw fields;
3. a cached remote read (the read-through cache, warm).

Every remote result is checked bit for bit against the local one. Qlib's own client/server (socket.io for
metadata, NFS for the bins, RabbitMQ/Redis behind it) is described in ``../shared/reference/scaleout.md`` and is
not run here.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from _common import ensure_store, store_path

FIELDS = ["open", "high", "low", "close", "volume", "factor", "vwap", "change", "amount"]


def best(fn: Any, repeat: int) -> tuple[float, Any]:
    """The best wall time of ``repeat`` calls and the last result."""
    times, result = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - started)
    return min(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--instruments", type=int, default=300)
    parser.add_argument("--days", type=int, default=2500)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--tokens", action="store_true", help="serve with a bearer token")
    parser.add_argument("--json", default=None, help="write the figures here")
    args = parser.parse_args()

    from qflight.client import FlightProvider

    import qcore

    store = ensure_store(store_path(args.instruments, args.days, 0), args.instruments, args.days, 0)
    tmp = Path(tempfile.mkdtemp(prefix="bench_dataserver_"))
    serve = [str(Path(sys.executable).with_name("qcore")), "serve", "--store", str(store), "--port", "0"]
    token_file = None
    if args.tokens:
        token_file = tmp / "tokens"
        token_file.write_text(f"bench:{secrets.token_hex(16)}\n")
        token_file.chmod(0o600)
        serve += ["--token-file", str(token_file)]
    server = subprocess.Popen(serve, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        uri = server.stdout.readline().split(" at ", 1)[1].split()[0]
        kernel = qcore.load_kernel()
        local = qcore.open_provider("qlib_bin", provider_uri=str(store), kernel=kernel)
        remote = FlightProvider(uri, token_file=token_file, cache=False)
        symbols = sorted(local.universe("all"))
        figures: dict[str, Any] = {"store": str(store), "instruments": len(symbols), "days": len(local.calendar())}

        t_local, a = best(lambda: local.load(FIELDS, symbols), args.repeat)
        t_remote, b = best(lambda: remote.load(FIELDS, symbols), args.repeat)
        for name in FIELDS:
            assert np.array_equal(a[name].view(np.uint32), b[name].view(np.uint32)), name
        nbytes = sum(a[name].nbytes for name in FIELDS)
        figures["raw"] = {"bytes": nbytes, "local_s": t_local, "remote_s": t_remote,
                          "local_GBps": nbytes / t_local / 1e9, "remote_GBps": nbytes / t_remote / 1e9}  # fmt: skip

        definition = kernel.create("feature_set", "alpha158")
        expressions = {**definition.features, **definition.labels}
        t_alpha_local, fa = best(lambda: qcore.evaluate(expressions, local, kernel=kernel, missing_fields="nan"),
                                 args.repeat)  # fmt: skip
        t_alpha_server, fb = best(lambda: remote.evaluate_feature_set("alpha158"), args.repeat)
        t_alpha_pulled, fc = best(lambda: qcore.evaluate(expressions, remote, kernel=kernel, missing_fields="nan"),
                                  args.repeat)  # fmt: skip
        for frame in (fb, fc):
            assert frame.index.equals(fa.index)
            assert np.array_equal(frame.to_numpy().view(np.uint32), fa.to_numpy().view(np.uint32))
        frame_bytes = fa.to_numpy().nbytes
        figures["alpha158"] = {
            "bytes": frame_bytes, "local_s": t_alpha_local, "server_side_s": t_alpha_server,
            "local_from_remote_fields_s": t_alpha_pulled, "server_side_GBps": frame_bytes / t_alpha_server / 1e9,
        }  # fmt: skip

        cached = FlightProvider(uri, token_file=token_file, cache=True, cache_dir=tmp / "cache")
        cached.load(FIELDS, symbols)
        t_cached, _ = best(lambda: cached.load(FIELDS, symbols), args.repeat)
        figures["raw"]["cached_remote_s"] = t_cached
    finally:
        server.terminate()
        server.wait(30)

    raw, alpha = figures["raw"], figures["alpha158"]
    print(f"store {figures['instruments']} instruments x {figures['days']} days ({store})")
    print(f"all fields ({raw['bytes'] / 1e6:.1f} MB): local {raw['local_s']:.3f} s ({raw['local_GBps']:.2f} GB/s), "
          f"remote {raw['remote_s']:.3f} s ({raw['remote_GBps']:.2f} GB/s), "
          f"remote cached {raw['cached_remote_s']:.3f} s")
    print(f"alpha158 ({alpha['bytes'] / 1e6:.1f} MB frame): local {alpha['local_s']:.2f} s, server-side "
          f"{alpha['server_side_s']:.2f} s ({alpha['server_side_GBps']:.2f} GB/s on the wire), local from remote "
          f"fields {alpha['local_from_remote_fields_s']:.2f} s; all bit-identical to local")
    print(f"cores: {os.cpu_count()}, python {sys.version.split()[0]}")
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
