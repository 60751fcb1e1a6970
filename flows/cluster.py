"""Several processes: the flow as a bytewax cluster.

bytewax runs one dataflow on a cluster of processes that exchange keyed items over TCP: every
process is started with the same flow, its own index and the addresses of all of them
(``host:port;host:port;...``, in process order). Input partitions (Kafka partitions) are spread
over all workers and each keyed step's state lives on the worker its key routes to.

Three ways to start one:

- ``boucle run --processes N``: N processes on this machine (loopback addresses picked here);
- ``boucle run --process-id I --addresses "a:2101;b:2101"``: process I of a cluster on several
  machines (run the same command with I = 0 .. N-1 on each);
- in Kubernetes, a StatefulSet whose pods are named ``NAME-0``, ``NAME-1``...: the index comes from
  the pod name, the addresses from ``BOUCLE_ADDRESSES`` or a host file (bytewax's own variables
  ``BYTEWAX_POD_NAME``, ``BYTEWAX_STATEFULSET_NAME``, ``BYTEWAX_HOSTFILE_PATH`` work too).

Embedded chDB locks its data to one process, so a cluster writes to a ClickHouse server
(``warehouse.url``); files written per process (alerts and dead-letter JSONL) get the process
index in their name, since two processes must not append to one file.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

from boucle.config.settings import Settings

PROCESS_PLACEHOLDER = "{process}"

__all__ = [
    "Cluster",
    "ClusterError",
    "check_warehouse",
    "cluster_from",
    "cluster_settings",
    "free_addresses",
    "per_process_path",
    "run_local_cluster",
    "without_option",
]


class ClusterError(ValueError):
    """A cluster that cannot be started as asked (the message is one line for the user)."""


@dataclass(frozen=True)
class Cluster:
    """This process's place in a cluster: its index and every process's ``host:port``.

    >>> c = Cluster(1, ("10.0.0.5:2101", "10.0.0.6:2101"))
    >>> c.processes, c.is_cluster
    (2, True)
    >>> Cluster().processes, Cluster().is_cluster
    (1, False)
    """

    process_id: int = 0
    addresses: tuple[str, ...] = ()

    @property
    def processes(self) -> int:
        return max(1, len(self.addresses))

    @property
    def is_cluster(self) -> bool:
        return len(self.addresses) > 1


def _pod_index(env: Mapping[str, str]) -> int | None:
    """The ordinal of a StatefulSet pod (``boucle-3`` → 3), from bytewax's variables or the host name."""
    pod, statefulset = env.get("BYTEWAX_POD_NAME"), env.get("BYTEWAX_STATEFULSET_NAME")
    if pod and statefulset and pod.startswith(statefulset + "-"):
        suffix = pod[len(statefulset) + 1:]
        return int(suffix) if suffix.isdigit() else None
    return None


def _addresses_from(text: str | None, env: Mapping[str, str]) -> tuple[str, ...]:
    if not text:
        hostfile = env.get("BYTEWAX_HOSTFILE_PATH")
        if hostfile:
            text = ";".join(line.strip() for line in Path(hostfile).read_text().splitlines() if line.strip())
    return tuple(a.strip() for a in (text or "").split(";") if a.strip())


def cluster_from(
    process_id: int | None, addresses: str | None, env: Mapping[str, str] = os.environ
) -> Cluster:
    """The cluster described by ``--process-id``/``--addresses`` or, failing them, the environment.

    >>> cluster_from(1, "a:2101;b:2101")
    Cluster(process_id=1, addresses=('a:2101', 'b:2101'))
    >>> cluster_from(None, None, {"BYTEWAX_POD_NAME": "boucle-1", "BYTEWAX_STATEFULSET_NAME": "boucle",
    ...                           "BOUCLE_ADDRESSES": "boucle-0.boucle:2101;boucle-1.boucle:2101"})
    Cluster(process_id=1, addresses=('boucle-0.boucle:2101', 'boucle-1.boucle:2101'))
    >>> cluster_from(2, "a:1;b:1")
    Traceback (most recent call last):
    ...
    boucle.flows.cluster.ClusterError: --process-id 2 is not one of the 2 addresses (0 to 1)
    """
    found = _addresses_from(addresses or env.get("BOUCLE_ADDRESSES"), env)
    if process_id is None:
        process_id = _pod_index(env)
    if process_id is None:
        if len(found) > 1:
            raise ClusterError("--addresses names a cluster: give this process's --process-id (0 = the first address)")
        return Cluster()
    if not found:
        raise ClusterError("--process-id needs --addresses HOST:PORT;HOST:PORT;... (every process, in order)")
    if not 0 <= process_id < len(found):
        raise ClusterError(f"--process-id {process_id} is not one of the {len(found)} addresses (0 to {len(found) - 1})")
    return Cluster(process_id, found)


def per_process_path(path: str, cluster: Cluster) -> str:
    """``path`` with the process index before its suffix, in a cluster; unchanged otherwise.

    >>> per_process_path("var/alerts.jsonl", Cluster(1, ("a:1", "b:1")))
    'var/alerts.p1.jsonl'
    >>> per_process_path("var/alerts.jsonl", Cluster())
    'var/alerts.jsonl'
    """
    if not cluster.is_cluster:
        return path
    p = Path(path)
    return str(p.with_name(f"{p.stem}.p{cluster.process_id}{p.suffix}"))


def check_warehouse(settings: Settings, processes: int) -> None:
    """Refuse (one line) a cluster that would share one embedded chDB between processes.

    A ``warehouse.path`` holding ``{process}`` gives each process an embedded warehouse of its own
    instead (each then holds only its share of the rows: for trials and tests, not for analysts).
    """
    warehouse = settings.warehouse
    if processes > 1 and warehouse.url is None and PROCESS_PLACEHOLDER not in warehouse.path:
        raise ClusterError(
            f"embedded chDB ({warehouse.path}) serves one process: {processes} processes need a ClickHouse"
            " server (warehouse.url; see README, Several processes)"
        )


def cluster_settings(settings: Settings, cluster: Cluster) -> Settings:
    """The settings of one process of ``cluster``: its own JSONL files and, with ``{process}`` in
    ``warehouse.path``, its own embedded warehouse (see :func:`check_warehouse`)."""
    check_warehouse(settings, cluster.processes)
    path = settings.warehouse.path.replace(PROCESS_PLACEHOLDER, str(cluster.process_id))
    if not cluster.is_cluster:
        return settings.model_copy(update={"warehouse": settings.warehouse.model_copy(update={"path": path})})
    outputs = settings.outputs.model_copy(update={
        "alerts_jsonl": per_process_path(settings.outputs.alerts_jsonl, cluster),
        "dead_letters_jsonl": per_process_path(settings.outputs.dead_letters_jsonl, cluster),
    })
    warehouse = settings.warehouse.model_copy(update={"path": path})
    return settings.model_copy(update={"outputs": outputs, "warehouse": warehouse})


def free_addresses(count: int, host: str = "127.0.0.1") -> list[str]:
    """``count`` loopback ``host:port`` addresses on ports free right now (the OS picks them)."""
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((host, 0))
            sockets.append(s)
        return [f"{host}:{s.getsockname()[1]}" for s in sockets]
    finally:
        for s in sockets:
            s.close()


def without_option(argv: Sequence[str], name: str, takes_value: bool = True) -> list[str]:
    """``argv`` without the option ``name`` (``--name V`` or ``--name=V``).

    >>> without_option(["run", "--processes", "2", "--days", "3"], "--processes")
    ['run', '--days', '3']
    >>> without_option(["run", "--processes=2"], "--processes")
    ['run']
    """
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == name:
            skip = takes_value
        elif not arg.startswith(name + "="):
            out.append(arg)
    return out


def run_local_cluster(argv: Sequence[str], processes: int) -> int:
    """Run ``boucle <argv>`` as ``processes`` processes of one cluster on loopback; their exit code.

    Process 0 keeps the terminal's progress bar; the others run without one. If one process
    fails, the others are stopped (a cluster cannot go on without a member) and its code returned.
    """
    addresses = ";".join(free_addresses(processes))
    children = []
    for index in range(processes):
        extra = ["--process-id", str(index), "--addresses", addresses]
        if index > 0:
            extra.append("--no-progress")
        children.append(subprocess.Popen([sys.executable, "-m", "boucle.flows.cli", *argv, *extra]))
    codes: dict[int, int] = {}
    try:
        while len(codes) < len(children):
            pid, status = os.wait()
            for index, child in enumerate(children):
                if child.pid == pid:
                    child.returncode = os.waitstatus_to_exitcode(status)
                    codes[index] = child.returncode
            failed = [code for code in codes.values() if code != 0]
            if failed:
                _stop(children)
                return failed[0] if failed[0] > 0 else 1
    except KeyboardInterrupt:
        _stop(children)
        raise
    return 0


def _stop(children: list[subprocess.Popen]) -> None:
    for child in children:
        if child.returncode is None and child.poll() is None:
            child.send_signal(signal.SIGTERM)
    for child in children:
        try:
            child.wait(timeout=10)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
