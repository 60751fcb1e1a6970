"""Several processes: a 2-process bytewax cluster on loopback gives the results of one process.

The cluster test reads the same 4-partition topic of the test broker with one process and with
``boucle run --processes 2``. No ClickHouse server can exist here, so each process of the cluster
writes an embedded chDB of its own (``warehouse.path`` with ``{process}``); the union of their
rows is compared with the single process's rows, table by table (today the warehouse writer is one
partition of the sink, on one worker: every row lands in one of them).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from kafka_broker import isolated_run_env, unique_topic

from boucle.flows.cluster import Cluster, ClusterError, cluster_from, per_process_path

BOUCLE = [sys.executable, "-m", "boucle.flows.cli"]


def _boucle(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    done = subprocess.run([*BOUCLE, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"boucle {' '.join(args)} exited {done.returncode}: {done.stderr[-3000:]}"
    return done


_TABLES = {
    "feedback": "SELECT event_id FROM feedback FINAL",
    "attribute_scores": "SELECT site_id, attribute, window_length, toString(window_start) AS start, n, sum, bottom_n"
                        " FROM attribute_scores FINAL",
    "alerts": "SELECT alert_id, kind, status FROM alerts FINAL",
    "cases": "SELECT alert_id, status, sla_decided, untreated, sla_alerted FROM cases FINAL",
    "dead_letters": "SELECT reason_code, partition, offset FROM dead_letters FINAL",
}


def _rows(env: dict[str, str], cwd: Path, table: str) -> set[str]:
    out = _boucle(["query", "--format", "json", _TABLES[table]], env, cwd).stdout
    return {line for line in out.splitlines() if line.startswith("{")}


@pytest.fixture(scope="module")
def one_and_two(kafka_broker, tmp_path_factory):
    bootstrap = kafka_broker.bootstrap
    root = tmp_path_factory.mktemp("cluster")
    topic = unique_topic("boucle.cluster")
    _boucle(["simulate", "--days", "2", "--brokers", bootstrap, "--topic", topic, "--partitions", "4"],
            isolated_run_env(root, topic, "unused.chdb"), root)
    runs = {}
    for name, extra, warehouse in (("one", [], "boucle.chdb"), ("two", ["--processes", "2"], "boucle.p{process}.chdb")):
        workdir = root / name
        workdir.mkdir()
        env = isolated_run_env(workdir, f"{topic}.{name}", warehouse)
        env["BOUCLE_KAFKA__FEEDBACK_TOPIC"] = topic
        done = _boucle(["run", "--source", "kafka", "--to-end", "--no-progress", "--brokers", bootstrap, *extra],
                       env, workdir)
        runs[name] = (workdir, env, done.stdout)
    return runs


def test_a_two_process_cluster_writes_the_rows_of_one_process(one_and_two):
    (one_dir, one_env, _), (two_dir, two_env, stdout) = one_and_two["one"], one_and_two["two"]
    assert "Process 0 of a cluster of 2" in stdout and "Process 1 of a cluster of 2" in stdout
    for table in _TABLES:
        single = _rows(one_env, one_dir, table)
        split = [_rows({**two_env, "BOUCLE_WAREHOUSE__PATH": str(two_dir / f"boucle.p{i}.chdb")}, two_dir, table)
                 for i in (0, 1)]
        assert single, table
        assert split[0] | split[1] == single, table


def test_a_two_process_cluster_publishes_the_alerts_of_one_process(one_and_two):
    def alerts(paths):
        return sorted((a["alert_id"], a["status"]) for p in paths for a in map(json.loads, p.read_text().splitlines()))

    one_dir, two_dir = one_and_two["one"][0], one_and_two["two"][0]
    single = alerts([one_dir / "alerts.jsonl"])
    split = alerts([two_dir / "alerts.p0.jsonl", two_dir / "alerts.p1.jsonl"])
    assert single and split == single
    assert all((two_dir / f"alerts.p{i}.jsonl").stat().st_size for i in (0, 1)), "each process publishes its share"


def test_embedded_chdb_refuses_a_cluster_in_one_line(tmp_path):
    done = subprocess.run([*BOUCLE, "run", "--processes", "2", "--days", "1"], cwd=tmp_path, capture_output=True,
                          text=True, env={**os.environ, "BOUCLE_WAREHOUSE__PATH": str(tmp_path / "w.chdb")})
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"error: embedded chDB ({tmp_path / 'w.chdb'}) serves one process: 2 processes need a ClickHouse server"
        " (warehouse.url; see README, Several processes)"
    ]


def test_the_cluster_comes_from_the_options_or_the_pod_name(tmp_path):
    hostfile = tmp_path / "hosts"
    hostfile.write_text("boucle-0.boucle:2101\nboucle-1.boucle:2101\n")
    env = {"BYTEWAX_POD_NAME": "boucle-1", "BYTEWAX_STATEFULSET_NAME": "boucle", "BYTEWAX_HOSTFILE_PATH": str(hostfile)}
    assert cluster_from(None, None, env) == Cluster(1, ("boucle-0.boucle:2101", "boucle-1.boucle:2101"))
    assert cluster_from(None, None, {}) == Cluster()
    with pytest.raises(ClusterError, match="--process-id needs --addresses"):
        cluster_from(0, None, {})
    with pytest.raises(ClusterError, match="give this process's --process-id"):
        cluster_from(None, "a:1;b:1", {})
    assert per_process_path("var/dead.jsonl", Cluster(0, ("a:1", "b:1"))) == "var/dead.p0.jsonl"
