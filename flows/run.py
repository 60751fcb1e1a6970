"""Run the feedback flow with its outputs, a progress bar and a summary at the end.

Recovery (``RunOptions.recovery_dir``): bytewax keeps, per epoch, the input offsets and the state
of every stateful step in SQLite partitions under that directory; an empty directory is
initialised automatically (the equivalent of ``python -m bytewax.recovery DIR N``). A restart
with the same directory resumes from the last committed epoch: what came after it is read and
processed again, so outputs are at-least-once. They stay exactly-once *in effect*: alerts carry
deterministic ids (the same evidence gives the same ``alert_id``) and warehouse tables are
ReplacingMergeTrees keyed by natural keys, with insert deduplication for retried blocks.
"""

from __future__ import annotations

import gc
import signal
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from bytewax.inputs import Source
from bytewax.recovery import RecoveryConfig, init_db_dir
from bytewax.run import cli_main
from bytewax.testing import run_main
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)

from boucle.config.settings import Settings
from boucle.flows.cluster import Cluster
from boucle.flows.feedback_flow import FlowOutputs, build_flow
from boucle.flows.loop import LoopSources
from boucle.flows.rows import dimension_rows
from boucle.flows.stats import RunStats
from boucle.sinks.background import BackgroundSink
from boucle.sinks.clickhouse.client import connect
from boucle.sinks.clickhouse.query import optimize_final
from boucle.sinks.clickhouse.schema import warehouse_tables
from boucle.sinks.clickhouse.sink import ClickHouseSink
from boucle.sinks.console import ConsoleAlertSink
from boucle.sinks.jsonl import JsonlSink

__all__ = [
    "RunOptions",
    "default_outputs",
    "kafka_outputs",
    "prepare_recovery_dir",
    "run_flow",
    "throughput_gc",
    "warehouse_counts",
]


@dataclass
class RunOptions:
    workers: int = 1
    recovery_dir: Path | None = None
    progress: bool = True
    total: int | None = None  # expected messages, for the progress bar
    bounded: bool = True  # the input ends: compact the warehouse at the end
    wall_clock: bool | None = None
    epoch_interval: timedelta | None = None  # bytewax's default (10 s) when None
    cluster: Cluster = Cluster()  # this process's place in a cluster of processes (flows/cluster.py)

    @property
    def total_workers(self) -> int:
        return self.workers * self.cluster.processes


def prepare_recovery_dir(path: Path, partitions: int = 1) -> RecoveryConfig:
    """The recovery config for ``path``, creating and initialising it when empty or missing."""
    path.mkdir(parents=True, exist_ok=True)
    if not any(path.iterdir()):
        init_db_dir(path, max(1, partitions))
    return RecoveryConfig(str(path))


@contextmanager
def throughput_gc():
    """Collect garbage less often while the flow runs.

    Every event allocates a handful of dicts that die young; with CPython's default threshold
    (700 allocations) the collector scans the young generation hundreds of times per batch, which
    measured as a quarter of the flow's time. The flow holds no reference cycles worth chasing.
    """
    before = gc.get_threshold()
    gc.freeze()  # settings, compiled rules and imported modules are never garbage
    gc.set_threshold(50_000, 20, 20)  # gen2 still runs every ~20M allocations: no unbounded growth live
    try:
        yield
    finally:
        gc.set_threshold(*before)
        gc.unfreeze()


def default_outputs(settings: Settings, console: Console) -> FlowOutputs:
    """Warehouse, console and JSONL outputs.

    The warehouse writes on a background thread (:class:`sinks.background.BackgroundSink`): the
    insert itself runs in ClickHouse's C++ code without the GIL, so it overlaps with the flow's
    Python work instead of stalling it (alerts of a live stream included); epochs still wait for
    the inserts.
    """
    out = settings.outputs
    return FlowOutputs(
        warehouse=BackgroundSink(ClickHouseSink(settings.warehouse, dimensions=dimension_rows(settings))),
        alerts=[ConsoleAlertSink(out.console, console), JsonlSink(out.alerts_jsonl)],
        dead_letters=[JsonlSink(out.dead_letters_jsonl)],
    )


def kafka_outputs(settings: Settings, console: Console) -> FlowOutputs:
    """The default outputs plus alerts and dead letters published to Kafka (``settings.kafka``)."""
    from boucle.sinks.kafka import KafkaAlertSink, KafkaDeadLetterSink
    from boucle.sources.kafka_health import client_logging

    kafka = settings.kafka
    wait_s = kafka.timeouts.unreachable_after.total_seconds()  # an epoch waits this long for its records
    outputs = default_outputs(settings, console)
    outputs.alerts.append(KafkaAlertSink(
        kafka.broker_list(), kafka.alerts_topic, kafka.alerts_topic_template, kafka.librdkafka,
        flush_timeout=wait_s, **client_logging(kafka),
    ))
    outputs.dead_letters.append(KafkaDeadLetterSink(
        kafka.broker_list(), kafka.dlq_topic, kafka.librdkafka, flush_timeout=wait_s, **client_logging(kafka),
    ))
    return outputs


def run_flow(
    settings: Settings,
    source: Source,
    options: RunOptions,
    console: Console | None = None,
    outputs: FlowOutputs | None = None,
    loop: LoopSources | None = None,
) -> RunStats:
    console = console or Console()
    stats = RunStats()
    stats.watch_scales(settings.questions())
    outputs = outputs or default_outputs(settings, console)
    flow = build_flow(
        settings, source, outputs, stats, wall_clock=options.wall_clock, loop=loop, live=not options.bounded,
        workers=options.total_workers,
    )
    recovery = None
    if options.recovery_dir is not None:
        recovery = prepare_recovery_dir(options.recovery_dir, options.total_workers)

    outputs.prepare()

    def execute() -> None:
        with throughput_gc():
            cluster = options.cluster
            if cluster.is_cluster:
                cli_main(
                    flow,
                    workers_per_process=options.workers,
                    process_id=cluster.process_id,
                    addresses=list(cluster.addresses),
                    epoch_interval=options.epoch_interval,
                    recovery_config=recovery,
                )
            elif options.workers == 1:
                run_main(flow, epoch_interval=options.epoch_interval, recovery_config=recovery)
            else:
                cli_main(
                    flow,
                    workers_per_process=options.workers,
                    epoch_interval=options.epoch_interval,
                    recovery_config=recovery,
                )

    with _interrupts_noticed() as interrupted:
        try:
            if options.progress:
                _with_progress(execute, stats, options.total, console)
            else:
                execute()
        except BaseException as exc:
            if not (interrupted.is_set() or isinstance(exc, KeyboardInterrupt)):
                raise
            outputs.drain()  # alerts already made still reach their topic
            if isinstance(exc, KeyboardInterrupt):
                raise
            # Ctrl-C landed inside a step (e.g. a sink's flush) and bytewax reports that step's failure.
            raise KeyboardInterrupt from exc
    stats.finish()
    if options.bounded and outputs.warehouse is not None:
        optimize_final(connect(settings.warehouse), settings.warehouse.database)  # every table, rollups too
    return stats


@contextmanager
def _interrupts_noticed():
    """An event set by Ctrl-C (SIGINT) for the block, which still raises KeyboardInterrupt as usual."""
    noticed = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield noticed
        return
    previous = signal.getsignal(signal.SIGINT)

    def on_interrupt(signum, frame):
        noticed.set()
        if callable(previous):
            previous(signum, frame)
        else:
            raise KeyboardInterrupt

    signal.signal(signal.SIGINT, on_interrupt)
    try:
        yield noticed
    finally:
        signal.signal(signal.SIGINT, previous)


def _with_progress(execute, stats: RunStats, total: int | None, console: Console) -> None:
    columns = [
        TextColumn("[bold]boucle[/] events"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[detail]}"),
        TimeElapsedColumn(),
    ]
    done = threading.Event()
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task("run", total=total, detail="")

        def refresh() -> None:
            while True:
                finished = done.wait(0.25)  # a UI refresh period, not synchronisation
                progress.update(
                    task,
                    completed=stats.read,
                    detail=f"{stats.rejected} dead-lettered · {sum(stats.alerts_by_kind.values())} alerts",
                )
                if finished:
                    return

        refresher = threading.Thread(target=refresh, name="progress", daemon=True)
        refresher.start()
        try:
            execute()
        finally:
            done.set()
            refresher.join()


def warehouse_counts(settings: Settings) -> dict[str, int]:
    """Rows per warehouse table (plain ``count()``: exact after a bounded run's compaction)."""
    client = connect(settings.warehouse)
    db = settings.warehouse.database
    return {t: int(client.command(f"SELECT count() FROM {db}.{t}")) for t in warehouse_tables()}
