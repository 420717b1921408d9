"""Hook implementations of the Ray plugin: the ``ray`` execution backend and ``qcore cluster``. Ray itself is
imported only when a backend connects or a cluster command runs."""

from __future__ import annotations

from typing import Any

from qcore import Registrar, hookimpl, lazy


@hookimpl
def qcore_register_execution_backends(register: Registrar) -> None:
    """Register the Ray backend."""
    register("ray", lazy("qray.backend:RayBackend",
                         description="Tasks on a Ray cluster (address: auto | local | ray://host:port; per-task "
                                     "num_cpus/num_gpus/memory; ray.put for panels; retries)."))  # fmt: skip


@hookimpl
def qcore_register_commands(cli: Any, kernel: Any) -> None:
    """``qcore cluster up|status|down``."""
    from qray.cluster import cluster_group

    cli.add_command(cluster_group)
