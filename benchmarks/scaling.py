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
(medians, with ranges); the floor is ``orjson.loads`` over the same bytes in one process, and in
N processes at once (the machine's own speedup for pure CPU work, the figure to read the flow's
against). The CPU the runs use (all their threads, chDB's included, start-up left out) gives the
cores one process keeps busy and the CPU per event: N processes cannot beat (cores less the
broker's share) / (cores one process keeps busy), and a CPU per event that grows with N is work
the cluster adds (items exchanged between processes, smaller batches per worker).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic
from rich.console import Console
from rich.table import Table

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO / "tests")]

from _floor import loads_seconds  # noqa: E402
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


def _children_cpu() -> float:
    """CPU seconds (user + system) of this process's finished children, all their threads (chDB's too)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _run(bootstrap: str, topic: str, processes: int, workdir: Path) -> tuple[float, float]:
    """Wall seconds and CPU seconds of one ``boucle run --source kafka --to-end`` over ``topic``."""
    workdir.mkdir(parents=True, exist_ok=True)
    env = isolated_run_env(workdir, topic, "boucle.p{process}.chdb")
    command = [sys.executable, "-m", "boucle.flows.cli", "run", "--source", "kafka", "--to-end", "--no-progress",
               "--brokers", bootstrap, "--topic", topic]
    if processes > 1:
        command += ["--processes", str(processes)]
    started, cpu = time.perf_counter(), _children_cpu()
    done = subprocess.run(command, env=env, cwd=workdir, capture_output=True, text=True)
    wall, cpu = time.perf_counter() - started, _children_cpu() - cpu
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} exited {done.returncode}: {done.stderr[-2000:]}")
    return wall, cpu


def _loads_rate(payload: list[bytes], rates) -> None:
    """Puts on ``rates`` this process's ``orjson.loads`` rate over ``payload`` (messages/s), timed on
    a second pass: the first copies the forked pages it touches."""
    loads_seconds(payload)
    rates.put(len(payload) / loads_seconds(payload))


def _loads_rate_together(payload: list[bytes], processes: int) -> float:
    """``orjson.loads`` over ``payload`` in ``processes`` processes at once: their summed rate.

    The machine's own speedup for pure CPU work (1 vs N of these) is the floor the flow's speedup
    is read against: vCPUs shared with a host seldom give N times one.
    """
    ctx = multiprocessing.get_context("fork")  # the payload is inherited, not pickled
    rates = ctx.Queue()
    workers = [ctx.Process(target=_loads_rate, args=(payload, rates)) for _ in range(processes)]
    for worker in workers:
        worker.start()
    total = sum(rates.get() for _ in workers)
    for worker in workers:
        worker.join()
    return total


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
            cores: dict[int, list[float]] = {1: [], args.processes: []}
            cpu_us: dict[int, list[float]] = {1: [], args.processes: []}
            for repeat in range(args.repeat):
                for processes in rates:
                    base, base_cpu = _run(bootstrap, empty, processes, root / f"empty-{repeat}-{processes}")
                    cpu = broker.cpu_seconds() if broker is not None else None
                    wall, flow_cpu = _run(bootstrap, topic, processes, root / f"run-{repeat}-{processes}")
                    if cpu is not None:
                        broker_share[processes].append((broker.cpu_seconds() - cpu) / wall)
                    rates[processes].append(len(messages) / max(wall - base, 1e-3))
                    # what the events cost, start-up left out: cores kept busy, CPU per event
                    cores[processes].append((flow_cpu - base_cpu) / max(wall - base, 1e-3))
                    cpu_us[processes].append((flow_cpu - base_cpu) * 1e6 / len(messages))
                    console.print(f"repeat {repeat + 1}: {processes} process(es) {wall:.1f} s"
                                  f" (start-up {base:.1f} s) → {rates[processes][-1]:,.0f} events/s")
            payload = [m[1] for m in messages]
            floors: dict[int, list[float]] = {1: [], args.processes: []}
            for _ in range(args.repeat):
                for processes in floors:
                    floors[processes].append(_loads_rate_together(payload, processes))
        finally:
            if broker is not None:
                broker.stop()

    one, many = rates[1], rates[args.processes]
    speedup = statistics.median(many) / statistics.median(one)
    table = Table(title=f"Scaling: 1 vs {args.processes} processes, {args.partitions} partitions (median of {args.repeat})")
    for column in ("variant", "events/s (range)", "cores busy (flow + chDB)", "CPU µs/event", "broker CPU share"):
        table.add_column(column, justify="right")
    for processes, values in rates.items():
        share = statistics.median(broker_share[processes]) if broker is not None else float("nan")
        table.add_row(f"{processes} process(es)", _median_range(values), f"{statistics.median(cores[processes]):.2f}",
                      f"{statistics.median(cpu_us[processes]):.0f}",
                      f"{share:.0%}" if broker is not None else "external")
    for processes, values in floors.items():
        table.add_row(f"floor: orjson.loads, {processes} process(es) at once", _median_range(values), "", "", "")
    console.print(table)
    machine_speedup = statistics.median(floors[args.processes]) / statistics.median(floors[1])
    # N processes at one process's CPU per event, on every core this machine has, less the broker's
    machine = os.cpu_count() or 1
    ceiling = (machine - statistics.median(broker_share[args.processes] or [0.0])) / statistics.median(cores[1])
    console.print(f"speedup {args.processes} processes / 1: {speedup:.2f}; ceiling on this machine "
                  f"({machine} cores less the broker's share, over the {statistics.median(cores[1]):.2f} cores one "
                  f"process keeps busy): {min(ceiling, args.processes):.2f}; the machine's own speedup "
                  f"for pure CPU work (the floor in {args.processes} processes at once): {machine_speedup:.2f}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({
            "speedup": round(speedup, 3), "machine_speedup": round(machine_speedup, 3), "events": len(messages), "processes": args.processes,
            "partitions": args.partitions,
            "one": {"events_per_s": statistics.median(one), "min": min(one), "max": max(one)},
            "many": {"events_per_s": statistics.median(many), "min": min(many), "max": max(many)},
            "floor": {"events_per_s": statistics.median(floors[1]),
                      "events_per_s_together": statistics.median(floors[args.processes]),
                      "speedup": round(machine_speedup, 3)},
            "cores_busy": {str(k): statistics.median(v) for k, v in cores.items()},
            "cpu_us_per_event": {str(k): statistics.median(v) for k, v in cpu_us.items()},
            "ceiling": round(min(ceiling, args.processes), 3),
            "broker_cpu_share": {str(k): statistics.median(v) for k, v in broker_share.items()} if broker is not None else None,
        }, indent=2))


if __name__ == "__main__":
    main()
