"""Hook implementations of the Ray plugin: the ``ray`` execution backend and ``qcore cluster``. Ray itself is
imported only when a backend connects or a cluster command runs."""

from __future__ import annotations

from typing import Any

from qcore import KindSpec, Registrar, hookimpl, lazy
from qcore.registry import KindRegistrar

KINDS: tuple[KindSpec, ...] = (
    KindSpec("sweep_scheduler", "qray_register_sweep_schedulers",
             "Sweep schedulers: run the points of `qcore sweep --scheduler NAME` (Ray Tune).",
             ("sweep_schedulers",), "qcore.sweep:SweepScheduler"),
)  # fmt: skip


@hookimpl
def qcore_register_kinds(register_kind: KindRegistrar) -> None:
    """Declare the ``sweep_scheduler`` kind."""
    for spec in KINDS:
        register_kind(spec)


@hookimpl
def qray_register_sweep_schedulers(register: Registrar) -> None:
    """Ray Tune's ASHA."""
    register("asha", lazy("qray.tune:AshaScheduler",
                          description="Ray Tune with ASHA (address, max_t, grace_period, reduction_factor, num_cpus, "
                                      "max_concurrent); every point a Tune trial."))  # fmt: skip


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
