"""Hot-alert latency through a real broker: produce → flow → alert topic → subscriber.

A driver process produces simulated feedback to a fresh feedback topic at a fixed rate (default
2,000 events/s for 60 s) while the flow runs in this process (following the topic, warehouse on
chDB in a temporary directory, alerts and dead letters to Kafka). The driver also consumes the
alert topic (assign(), no group) and measures, for every hot alert, the time from the ``produce()``
of the response that triggered it to the alert being consumed (one clock: the driver's). The driver
is a separate process so that its Python does not compete with the flow for the GIL. Before the
clock starts, the subscriber has received a probe on every alert partition: a live subscriber is
running long before the alert that matters, and its first fetches on a fresh topic (~0.5 s on
Tansu) are not the flow's latency.

Then the same input goes through a relay that does nothing (consume, forward one event in 61,
flush per batch): the floor the broker and the clients set on this machine, in the same run. The
table shows both, p99 per 10 s and the broker's CPU share per 10 s (Tansu started here), which
tells a flow falling behind from a broker slowing down. Prints p50/p95/p99/max; ``--plot FILE``
writes a histogram (HTML, or PNG with kaleido).

    python benchmarks/latency.py --repeat 3           # Tansu started on a free port
    python benchmarks/latency.py --brokers localhost:9094 --rate 5000 --seconds 30 --no-floor

Alerts leave the flow in the activation that produced them (the Kafka sink flushes per batch), so
bytewax's epoch length (10 s) does not add to the latency.
"""

from __future__ import annotations

import argparse
import gc
import multiprocessing
import statistics
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Optional

import orjson
from bytewax.testing import run_main
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import NewTopic
from rich.console import Console
from rich.table import Table

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from boucle.config.loader import load_settings  # noqa: E402
from boucle.config.settings import Settings  # noqa: E402
from boucle.config.times import iso_ms  # noqa: E402
from boucle.flows.feedback_flow import FlowOutputs, build_flow  # noqa: E402
from boucle.flows.run import throughput_gc  # noqa: E402
from boucle.sinks.kafka import KafkaAlertSink, KafkaDeadLetterSink, producer_config  # noqa: E402
from boucle.sources.kafka_source import KafkaFeedbackSource, _RawPartition, consumer_tuning  # noqa: E402
from boucle.sources.simulator import Simulator  # noqa: E402

console = Console(width=None if sys.stdout.isatty() else 150)  # the table is wide


class _StoppablePartition(_RawPartition):
    def __init__(self, inner: _RawPartition, stop: threading.Event) -> None:
        super().__init__(
            inner._inner, int(inner._idle.total_seconds() * 1000), int(inner._linger.total_seconds() * 1000)
        )
        self._stop = stop

    def next_batch(self):
        if self._stop.is_set():
            raise StopIteration
        return super().next_batch()


class StoppableKafkaSource(KafkaFeedbackSource):
    """Follows the topic until ``stop`` is set (then every partition ends and the flow finishes)."""

    def __init__(self, *args, stop: threading.Event, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.stop = stop

    def build_part(self, step_id, for_part, resume_state):
        return _StoppablePartition(super().build_part(step_id, for_part, resume_state), self.stop)


def _messages(settings: Settings, count: int) -> list:
    days = 7.0
    sim = Simulator(settings, days=days, volume_scale=max(1.0, count / (settings_rate(settings) * days)))
    out = []
    for message in sim.messages():
        out.append(message)
        if len(out) >= count:
            break
    return out


def settings_rate(settings: Settings) -> float:
    """Messages per simulated day at volume_scale 1 (measured on one day)."""
    return Simulator(settings, days=1).count()


class LiveClock:
    """Re-stamps simulated events with the wall clock, as live traffic is stamped.

    The simulator compresses days into seconds; produced as they are, a 60 s run would cross an
    event-time day every few seconds and make the flow do a day's end-of-day work (daily windows,
    daily detector steps) hundreds of times faster than any live stream would. An event keeps its
    lateness behind the newest simulated time (late arrivals stay late); a malformed time stays
    malformed.
    """

    def __init__(self) -> None:
        self.head_ms = None

    def restamp(self, event: dict, value: bytes) -> bytes:
        try:
            ts_ms = int(datetime.fromisoformat(event["occurred_at"].replace("Z", "+00:00")).timestamp() * 1000)
        except (KeyError, TypeError, ValueError, AttributeError):
            return value
        if self.head_ms is None or ts_ms > self.head_ms:
            self.head_ms = ts_ms
        now_ms = time.time_ns() // 1_000_000 - (self.head_ms - ts_ms)
        event["occurred_at"] = iso_ms(now_ms)
        return orjson.dumps(event)


PROBE_KEY = b"latency-probe"  # the driver's own record on the alert topic, not an alert


def drive(bootstrap: str, feedback: str, alerts: str, partitions: int, rate: float, count: int,
          results, ready, fetch_wait_ms: str = "100", live_time: bool = True) -> None:
    """Child process: produce ``count`` events at ``rate``, measure alert latencies, send them back."""
    from confluent_kafka import Producer

    settings = load_settings()
    messages = _messages(settings, count)
    clock = LiveClock()
    sent_at: dict[str, float] = {}
    latencies: list[tuple[float, float]] = []  # (sent at, latency ms)
    stop = threading.Event()
    listening = threading.Event()
    consumer = threading.Thread(
        target=consume, args=(bootstrap, alerts, partitions, sent_at, latencies, stop, fetch_wait_ms, listening)
    )
    consumer.start()
    producer = Producer(producer_config([bootstrap], None, **{"linger.ms": "5"}))
    # A live subscriber and a live source's producer are running long before the response that
    # matters: the subscriber's first fetches (~0.5 s on a fresh topic) and the producer's first
    # connection are not the flow's latency. One probe per alert partition, awaited.
    for partition in range(partitions):
        producer.produce(alerts, b"{}", PROBE_KEY, partition=partition)
    producer.flush(10)
    producer.list_topics(feedback, timeout=10)
    if not listening.wait(30):
        raise RuntimeError("the alert subscriber did not receive its probes within 30 s")
    ready.wait()
    start = time.monotonic()
    for i, message in enumerate(messages):
        delay = start + i / rate - time.monotonic()
        if delay > 0.0005:
            time.sleep(delay)
        value = message.value
        try:
            event = orjson.loads(value)
            event_id = event.get("event_id")
        except (orjson.JSONDecodeError, AttributeError):
            event, event_id = None, None
        if live_time and event is not None:
            value = clock.restamp(event, value)
        if event_id:
            sent_at[event_id] = time.time()
        while True:
            try:
                producer.produce(feedback, value, message.key)
                break
            except BufferError:
                producer.poll(0.01)
        producer.poll(0)
    producer.flush()
    produce_s = time.monotonic() - start
    deadline, last = time.monotonic() + 60, -1
    while time.monotonic() < deadline and len(latencies) != last:  # drain: no new alert for 2 s
        last = len(latencies)
        time.sleep(2.0)
    stop.set()
    consumer.join(10)
    results.put({"produce_s": produce_s, "count": len(messages), "latencies": latencies})


def _reader(bootstrap: str, topic: str, partitions: int, fetch_wait_ms: str) -> Consumer:
    """Every partition of ``topic`` from its start, no group, tuned as Boucle's own consumers are."""
    consumer = Consumer({
        "bootstrap.servers": bootstrap, "group.id": "boucle-latency", "enable.auto.commit": "false",
        **consumer_tuning, "fetch.wait.max.ms": fetch_wait_ms,
    })
    consumer.assign([TopicPartition(topic, p, -2) for p in range(partitions)])
    return consumer


FLOOR_EVERY = 61  # the relay forwards one event in 61: the share of events that raise a hot alert here


def relay(bootstrap: str, feedback: str, alerts: str, partitions: int, stop: threading.Event,
          fetch_wait_ms: str = "100") -> None:
    """The floor: what the broker and the clients cost with no flow in between.

    Consumes the feedback topic as the flow's source does, forwards one event in ``FLOOR_EVERY``
    as an alert-shaped record and flushes per batch as the alert sink does.
    """
    from confluent_kafka import Producer

    consumer = _reader(bootstrap, feedback, partitions, fetch_wait_ms)
    producer = Producer(producer_config([bootstrap], None))
    seen = 0
    while not stop.is_set():
        forwarded = False
        for msg in consumer.consume(500, 0.05):
            if msg.error() is not None:
                continue
            seen += 1
            if seen % FLOOR_EVERY == 0:
                try:
                    event_id = orjson.loads(msg.value()).get("event_id")
                except (orjson.JSONDecodeError, AttributeError):
                    continue
                producer.produce(alerts, orjson.dumps({"response": {"event_id": event_id}}), msg.key())
                forwarded = True
        if forwarded:
            producer.flush(30)
    consumer.close()


def consume(bootstrap: str, topic: str, partitions: int, sent_at: dict, latencies: list, stop: threading.Event,
            fetch_wait_ms: str = "100", listening: threading.Event | None = None) -> None:
    consumer = _reader(bootstrap, topic, partitions, fetch_wait_ms)
    probed: set[int] = set()
    while not stop.is_set():
        batch = consumer.consume(500, 0.05)
        for msg in batch:
            if msg.error() is not None:
                continue
            if msg.key() == PROBE_KEY:
                probed.add(msg.partition())
                if listening is not None and len(probed) == partitions:
                    listening.set()
                continue
            now = time.time()
            alert = orjson.loads(msg.value())
            sent = sent_at.get(alert.get("response", {}).get("event_id"))
            if sent is not None:
                latencies.append((sent, (now - sent) * 1000))
    consumer.close()


class GcPauses:
    """Records the flow process's garbage-collection pauses (a stop-the-world source of latency)."""

    def __init__(self) -> None:
        self.pauses: dict[int, list[float]] = {0: [], 1: [], 2: []}
        self._started = 0.0

    def _callback(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.pauses[info["generation"]].append((time.perf_counter() - self._started) * 1000)

    def __enter__(self) -> "GcPauses":
        gc.callbacks.append(self._callback)
        return self

    def __exit__(self, *exc) -> None:
        gc.callbacks.remove(self._callback)

    def summary(self) -> str:
        return ", ".join(
            f"gen{g}: {len(p)} pauses, max {max(p):.0f} ms" if p else f"gen{g}: none" for g, p in self.pauses.items()
        )


SEGMENT_S = 10


def segments(latencies: list[tuple[float, float]]) -> list[list[float]]:
    """Latencies (sorted) per ``SEGMENT_S`` seconds of produce time."""
    start = min(sent for sent, _ in latencies)
    by_segment: dict[int, list[float]] = {}
    for sent, ms in latencies:
        by_segment.setdefault(int((sent - start) // SEGMENT_S), []).append(ms)
    return [sorted(by_segment[k]) for k in sorted(by_segment)]


def pct(sorted_values: list[float], q: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, int(round(q * (len(sorted_values) - 1))))]


def measure(broker, unique_topic, args, count: int, runner) -> dict:
    """One run on fresh topics: ``runner(topics, stop)`` is the thread between the two topics."""
    topics = [unique_topic(f"bench.{n}") for n in ("feedback", "alerts", "dlq")]
    for future in broker.admin.create_topics([NewTopic(t, args.partitions, 1) for t in topics]).values():
        future.result(15)
    stop = threading.Event()
    between = runner(topics, stop)
    ctx = multiprocessing.get_context("spawn")
    results, ready = ctx.Queue(), ctx.Event()
    driver = ctx.Process(
        target=drive,
        args=(broker.bootstrap, topics[0], topics[1], args.partitions, args.rate, count, results, ready,
              args.fetch_wait_ms, not args.compressed_time),
    )
    driver.start()
    between.start()
    time.sleep(1.0)  # the consumers assign their partitions (they read from the beginning anyway)
    ready.set()
    shares: list[float] | None = None if broker.cpu_seconds() is None else []  # None: an external broker
    sampled = threading.Event()
    sampler = threading.Thread(target=sample_cpu, args=(broker, shares, sampled), daemon=True)
    if shares is not None:
        sampler.start()
    result = results.get()
    sampled.set()
    driver.join(30)
    stop.set()
    between.join(120)
    if shares is not None:
        sampler.join(5)
    return {**result, "broker_cpu": shares}


def sample_cpu(broker, shares: list[float], stop: threading.Event) -> None:
    """The broker's CPU share of one core per ``SEGMENT_S`` seconds (a broker started here)."""
    last, at = broker.cpu_seconds(), time.monotonic()
    while not stop.wait(SEGMENT_S):
        now, now_at = broker.cpu_seconds(), time.monotonic()
        shares.append((now - last) / (now_at - at))
        last, at = now, now_at


def measure_flow(broker, unique_topic, args, count: int, tmp: Path) -> tuple[dict, "GcPauses"]:
    """The flow between the topics, as `boucle run --source kafka` runs it."""
    settings = load_settings()
    pauses = GcPauses()
    flow_error: list[BaseException] = []

    def runner(topics: list[str], stop: threading.Event) -> threading.Thread:
        feedback, alerts, dlq = topics
        kafka = settings.kafka.model_copy(update={
            "brokers": broker.bootstrap, "feedback_topic": feedback,
            "librdkafka": {**settings.kafka.librdkafka, "fetch.wait.max.ms": args.fetch_wait_ms},
        })
        warehouse = None
        if not args.no_warehouse:
            from boucle.sinks.background import BackgroundSink
            from boucle.sinks.clickhouse.sink import ClickHouseSink

            # As `boucle run --source kafka` does: inserts on a thread, epochs wait for them.
            warehouse = BackgroundSink(ClickHouseSink(settings.warehouse.model_copy(update={"path": str(tmp / "chdb")})))
        outputs = FlowOutputs(
            warehouse=warehouse,
            alerts=[KafkaAlertSink([broker.bootstrap], alerts)],
            dead_letters=[KafkaDeadLetterSink([broker.bootstrap], dlq)],
        )
        flow = build_flow(settings, StoppableKafkaSource(kafka, stop=stop, linger_ms=args.linger_ms), outputs,
                          wall_clock=args.wall_clock)
        outputs.prepare()  # as `boucle run` does

        def run_flow() -> None:
            try:
                with throughput_gc(), pauses:  # as `boucle run` does
                    run_main(flow)
            except BaseException as exc:  # noqa: BLE001 - reported below
                flow_error.append(exc)

        return threading.Thread(target=run_flow, name="flow")

    result = measure(broker, unique_topic, args, count, runner)
    if flow_error:
        raise flow_error[0]
    return result, pauses


def summary_cells(run: dict) -> list[str]:
    values = sorted(ms for _, ms in run["latencies"])
    return [
        f"{run['count']:,}", f"{run['count'] / run['produce_s']:,.0f}/s", f"{len(values):,}",
        f"{pct(values, .5):.0f}", f"{pct(values, .95):.0f}", f"{pct(values, .99):.0f}", f"{values[-1]:.0f}",
        f"{statistics.fmean(values):.0f}",
        " ".join(f"{pct(segment, .99):.0f}" for segment in segments(run["latencies"])),
        "external" if run["broker_cpu"] is None else " ".join(f"{share:.0%}" for share in run["broker_cpu"]) or "-",
    ]


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=2000, help="events per second (default 2000)")
    parser.add_argument("--seconds", type=float, default=60, help="how long to produce (default 60)")
    parser.add_argument("--brokers", help="an existing broker (default: start Tansu on a free port)")
    parser.add_argument("--partitions", type=int, default=3)
    parser.add_argument(
        "--compressed-time", action="store_true",
        help="keep the simulator's compressed event times (a simulated week in one run: a stress test of "
        "end-of-window work) instead of stamping events with the wall clock as live traffic is",
    )
    parser.add_argument("--no-warehouse", action="store_true", help="leave chDB out of the flow")
    parser.add_argument("--wall-clock", action="store_true", help="close windows by the wall clock (live mode)")
    parser.add_argument("--linger-ms", type=int, default=0, help="source micro-batching: wait after a batch (default 0; 50 helped 30 s runs, hurt 60 s runs)")
    parser.add_argument("--fetch-wait-ms", default="100", help="consumers' fetch.wait.max.ms (default 100)")
    parser.add_argument("--no-floor", action="store_true",
                        help="skip the second run through a relay that does nothing (the broker-and-clients floor)")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each path, alternating (default 1)")
    parser.add_argument("--plot", type=Path, help="write a latency histogram (.html or .png)")
    args = parser.parse_args(argv)

    from kafka_broker import Broker, start_broker, unique_topic

    tmp = Path(tempfile.mkdtemp(prefix="boucle-latency-"))
    broker = Broker(args.brokers) if args.brokers else start_broker(tmp)
    broker.wait_ready()
    count = int(args.rate * args.seconds)
    runs: list[tuple[str, dict]] = []
    pauses = []
    try:
        for i in range(1, args.repeat + 1):
            console.print(f"[{i}/{args.repeat}] {count:,} simulated events at {args.rate:g}/s through the flow…")
            result, gc_pauses = measure_flow(broker, unique_topic, args, count, tmp)
            runs.append(("flow", result))
            pauses.append(gc_pauses)
            if not args.no_floor:
                console.print(f"[{i}/{args.repeat}] …and through a relay that does nothing (the floor)")
                runs.append(("floor", measure(broker, unique_topic, args, count, lambda topics, stop: threading.Thread(
                    target=relay, args=(broker.bootstrap, topics[0], topics[1], args.partitions, stop, args.fetch_wait_ms),
                ))))
    finally:
        if not args.brokers:
            broker.stop()
    if not all(run["latencies"] for _, run in runs):
        console.print("[red]a run measured no alerts[/]")
        return 1

    table = Table(title=f"Hot-alert latency, produce → alert consumed ({args.rate:g} events/s for {args.seconds:g} s)")
    for column in ("path", "events", "achieved rate", "alerts", "p50 ms", "p95 ms", "p99 ms", "max ms", "mean ms",
                   f"p99 by {SEGMENT_S} s, ms", f"broker CPU by {SEGMENT_S} s"):
        table.add_column(column, justify="right")
    for name, run in runs:
        table.add_row(name, *summary_cells(run))
    console.print(table)
    for name in ("flow", "floor"):
        p99s = sorted(pct(sorted(ms for _, ms in run["latencies"]), .99) for n, run in runs if n == name)
        if p99s:
            console.print(f"{name}: p99 median {statistics.median(p99s):.0f} ms (range {p99s[0]:.0f}–{p99s[-1]:.0f}, "
                          f"{len(p99s)} runs)")
    for gc_pauses in pauses:
        console.print(f"flow garbage collection: {gc_pauses.summary()}")
    if args.plot:
        import plotly.express as px

        values = [ms for name, run in runs if name == "flow" for _, ms in run["latencies"]]
        fig = px.histogram(x=values, nbins=100, labels={"x": "latency (ms)"}, title=table.title + ", flow")
        fig.write_html(args.plot) if args.plot.suffix == ".html" else fig.write_image(args.plot)
        console.print(f"plot → {args.plot}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
