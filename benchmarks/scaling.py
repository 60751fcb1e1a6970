"""Scaling over processes: the same Kafka input read by 1 and by N processes of one bytewax cluster.

The simulated feedback is produced to a fresh topic of ``--partitions`` partitions on a local
broker (Tansu, or ``--brokers``) before any clock starts. Then, ``--repeat`` times each, ``boucle run
--source kafka --to-end`` reads it all with 1 process and with ``--processes N``: events/s = events /
wall time of the run, less the same command's wall time on an empty topic (start-up: imports,
schema, cluster handshake), measured in the same repeat. The broker's CPU share (its CPU seconds
over the run's wall time, from /proc) is printed beside: on a 2-core machine it competes with the
flow. No ClickHouse server exists here, so each process writes an embedded chDB of its own
(``warehouse.path`` with ``{process}``, see README, Several processes): the same inserts, split.

    python benchmarks/scaling.py                       # demo, 28 days at volume 2, 1 vs 2 processes
    python benchmarks/scaling.py --processes 2 --repeat 3 --json var/scaling.json

``--json PATH`` writes ``{"speedup": s, "events": n, "one": {...}, "many": {...}, "floor": {...}}``
(medians, with ranges); the floor is ``orjson.loads`` over the same bytes on one core.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic
from rich.console import Console
from rich.table import Table

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO / "tests")]

from kafka_broker import isolated_run_env, start_broker, unique_topic  # noqa: E402

from boucle.config.loader import load_settings  # noqa: E402
from boucle.sources.simulator import Simulator  # noqa: E402

console = Console()


def _produce(bootstrap: str, topic: str, partitions: int, messages: list[tuple[bytes | None, bytes]]) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_topics([NewTopic(topic, partitions, 1)]).values():
        future.result(30)
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 50, "compression.type": "lz4"})
    for key, value in messages:
        while True:
            try:
                producer.produce(topic, value, key)
                break
            except BufferError:
                producer.poll(0.1)
        producer.poll(0)
    if producer.flush(60):
        raise RuntimeError("the broker did not take every message")


def _run(bootstrap: str, topic: str, processes: int, workdir: Path) -> float:
    """Wall seconds of one ``boucle run --source kafka --to-end`` over ``topic``."""
    workdir.mkdir(parents=True, exist_ok=True)
    env = isolated_run_env(workdir, topic, "boucle.p{process}.chdb")
    command = [sys.executable, "-m", "boucle.flows.cli", "run", "--source", "kafka", "--to-end", "--no-progress",
               "--brokers", bootstrap, "--topic", topic]
    if processes > 1:
        command += ["--processes", str(processes)]
    started = time.perf_counter()
    done = subprocess.run(command, env=env, cwd=workdir, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} exited {done.returncode}: {done.stderr[-2000:]}")
    return wall


def _median_range(values: list[float]) -> str:
    return f"{statistics.median(values):,.0f} ({min(values):,.0f}-{max(values):,.0f})"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--processes", type=int, default=2, help="the cluster's size (default 2)")
    parser.add_argument("--partitions", type=int, default=4, help="feedback topic partitions (default 4)")
    parser.add_argument("--days", type=float, default=28.0, help="simulated days of the demo (default 28)")
    parser.add_argument("--volume-scale", type=float, default=2.0, help="demo volumes times this (default 2)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--repeat", type=int, default=3, help="runs of each variant (median and range)")
    parser.add_argument("--brokers", help="an external broker (default: a Tansu started here)")
    parser.add_argument("--json", type=Path, help="write the medians here")
    args = parser.parse_args(argv)

    simulator = Simulator(load_settings(None), seed=args.seed, days=args.days, volume_scale=args.volume_scale)
    messages = [(m.key, m.value) for m in simulator.messages()]
    console.print(f"{len(messages):,} simulated events (demo, {args.days:g} days, volume x{args.volume_scale:g})")

    with tempfile.TemporaryDirectory(prefix="boucle-scaling-") as tmp:
        root = Path(tmp)
        broker = None if args.brokers else start_broker(root, own=True)
        bootstrap = args.brokers or broker.bootstrap
        try:
            topic, empty = unique_topic("boucle.scaling"), unique_topic("boucle.scaling-empty")
            _produce(bootstrap, topic, args.partitions, messages)
            _produce(bootstrap, empty, args.partitions, [])
            rates: dict[int, list[float]] = {1: [], args.processes: []}
            broker_share: dict[int, list[float]] = {1: [], args.processes: []}
            for repeat in range(args.repeat):
                for processes in rates:
                    base = _run(bootstrap, empty, processes, root / f"empty-{repeat}-{processes}")
                    cpu = broker.cpu_seconds() if broker is not None else None
                    wall = _run(bootstrap, topic, processes, root / f"run-{repeat}-{processes}")
                    if cpu is not None:
                        broker_share[processes].append((broker.cpu_seconds() - cpu) / wall)
                    rates[processes].append(len(messages) / max(wall - base, 1e-3))
                    console.print(f"repeat {repeat + 1}: {processes} process(es) {wall:.1f} s"
                                  f" (start-up {base:.1f} s) → {rates[processes][-1]:,.0f} events/s")
            payload = [m[1] for m in messages]
            floors = []
            for _ in range(args.repeat):
                started = time.perf_counter()
                for value in payload:
                    try:
                        orjson.loads(value)
                    except orjson.JSONDecodeError:  # the simulator's malformed share: parsed as far as it goes
                        pass
                floors.append(len(payload) / (time.perf_counter() - started))
        finally:
            if broker is not None:
                broker.stop()

    one, many = rates[1], rates[args.processes]
    speedup = statistics.median(many) / statistics.median(one)
    table = Table(title=f"Scaling: 1 vs {args.processes} processes, {args.partitions} partitions (median of {args.repeat})")
    for column in ("variant", "events/s (range)", "broker CPU share"):
        table.add_column(column, justify="right")
    for processes, values in rates.items():
        share = statistics.median(broker_share[processes]) if broker is not None else float("nan")
        table.add_row(f"{processes} process(es)", _median_range(values), f"{share:.0%}" if broker is not None else "external")
    table.add_row("floor: orjson.loads, 1 core", _median_range(floors), "")
    console.print(table)
    console.print(f"speedup {args.processes} processes / 1: {speedup:.2f}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({
            "speedup": round(speedup, 3), "events": len(messages), "processes": args.processes,
            "partitions": args.partitions,
            "one": {"events_per_s": statistics.median(one), "min": min(one), "max": max(one)},
            "many": {"events_per_s": statistics.median(many), "min": min(many), "max": max(many)},
            "floor": {"events_per_s": statistics.median(floors)},
            "broker_cpu_share": {str(k): statistics.median(v) for k, v in broker_share.items()} if broker is not None else None,
        }, indent=2))


if __name__ == "__main__":
    main()
