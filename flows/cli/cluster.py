"""``boucle run``'s cluster options: start a local cluster, or find this process's place in one
(:mod:`flows.cluster`); a cluster that cannot start as asked is one line and exit code 2."""

from __future__ import annotations

import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Optional

import typer

from boucle.config.settings import Settings
from boucle.flows.cli.common import err, load
from boucle.flows.cluster import (
    Cluster,
    ClusterError,
    check_warehouse,
    cluster_from,
    cluster_settings,
    run_local_cluster,
    without_option,
)

__all__ = ["join_cluster"]


@contextmanager
def _cluster_errors():
    try:
        yield
    except ClusterError as exc:
        err.print(f"error: {exc}", markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None


def join_cluster(
    processes: int, process_id: Optional[int], addresses: Optional[str], workers: int, recovery_dir: Optional[Path]
) -> tuple[Settings, Cluster]:
    """This process's settings and place in its cluster. With ``processes`` > 1 this process only
    starts the local cluster (the same command, once per process) and exits with its code."""
    if processes > 1:
        if process_id is not None or addresses:
            raise typer.BadParameter("--processes starts a cluster here; --process-id/--addresses join one: not both")
        with _cluster_errors():
            check_warehouse(load(), processes)
        if recovery_dir is not None:  # once, before the processes look at it
            from boucle.flows.run import prepare_recovery_dir

            prepare_recovery_dir(recovery_dir, workers * processes)
        raise typer.Exit(run_local_cluster(without_option(sys.argv[1:], "--processes"), processes))
    with _cluster_errors():
        cluster = cluster_from(process_id, addresses)
        return cluster_settings(load(), cluster), cluster
