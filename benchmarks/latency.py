"""Hot-alert latency through a real broker: produce → flow → alert topic → subscriber.

A driver process produces simulated feedback to a fresh feedback topic at a fixed rate (default
2,000 events/s for 60 s) while the flow runs in this process (following the topic, warehouse on
chDB in a temporary directory, alerts and dead letters to Kafka). The driver also consumes the
alert topic (assign(), no group) and measures, for every hot alert, the time from the ``produce()``
of the response that triggered it to the alert being consumed (one clock: the driver's). The driver
is a separate process so that its Python does not compete with the flow for the GIL. Prints p50/p95/p99/max; ``--plot FILE`` writes
a histogram (HTML, or PNG with kaleido).

    python benchmarks/latency.py                      # Tansu started on a free port
    python benchmarks/latency.py --brokers localhost:9094 --rate 5000 --seconds 30

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
from boucle.sources.kafka_source import KafkaFeedbackSource, _RawPartition  # noqa: E402
from boucle.sources.simulator import Simulator  # noqa: E402

console = Console()


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
    listening.wait(30)  # the subscriber has fetched once: its start-up is not counted as latency
    ready.wait()
    producer = Producer(producer_config([bootstrap], None, **{"linger.ms": "5"}))
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


def consume(bootstrap: str, topic: str, partitions: int, sent_at: dict, latencies: list, stop: threading.Event,
            fetch_wait_ms: str = "100", listening: threading.Event | None = None) -> None:
    consumer = Consumer({
        "bootstrap.servers": bootstrap, "group.id": "boucle-latency", "enable.auto.commit": "false",
        "fetch.wait.max.ms": fetch_wait_ms, "fetch.min.bytes": "1",
    })
    consumer.assign([TopicPartition(topic, p, -2) for p in range(partitions)])
    while not stop.is_set():
        batch = consumer.consume(500, 0.05)
        if listening is not None and consumer.assignment():
            listening.set()
        for msg in batch:
            if msg.error() is not None:
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
    parser.add_argument("--plot", type=Path, help="write a latency histogram (.html or .png)")
    args = parser.parse_args(argv)

    from kafka_broker import Broker, start_broker, unique_topic

    tmp = Path(tempfile.mkdtemp(prefix="boucle-latency-"))
    broker = Broker(args.brokers) if args.brokers else start_broker(tmp)
    broker.wait_ready()
    settings = load_settings()
    feedback, alerts, dlq = (unique_topic(f"bench.{n}") for n in ("feedback", "alerts", "dlq"))
    for future in broker.admin.create_topics([NewTopic(t, args.partitions, 1) for t in (feedback, alerts, dlq)]).values():
        future.result(15)
    kafka = settings.kafka.model_copy(update={
        "brokers": broker.bootstrap, "feedback_topic": feedback,
        "librdkafka": {**settings.kafka.librdkafka, "fetch.wait.max.ms": args.fetch_wait_ms},
    })

    count = int(args.rate * args.seconds)
    warehouse = None
    if not args.no_warehouse:
        from boucle.sinks.background import BackgroundSink
        from boucle.sinks.clickhouse.sink import ClickHouseSink

        # As `boucle run --source kafka` does: inserts on a thread, epochs wait for them.
        warehouse = BackgroundSink(ClickHouseSink(settings.warehouse.model_copy(update={"path": str(tmp / "chdb")})))
    stop_flow = threading.Event()
    outputs = FlowOutputs(
        warehouse=warehouse,
        alerts=[KafkaAlertSink([broker.bootstrap], alerts)],
        dead_letters=[KafkaDeadLetterSink([broker.bootstrap], dlq)],
    )
    flow = build_flow(settings, StoppableKafkaSource(kafka, stop=stop_flow, linger_ms=args.linger_ms), outputs, wall_clock=args.wall_clock)
    flow_error: list[BaseException] = []
    outputs.prepare()  # as `boucle run` does

    pauses = GcPauses()

    def run_flow() -> None:
        try:
            with throughput_gc(), pauses:  # as `boucle run` does
                run_main(flow)
        except BaseException as exc:  # noqa: BLE001 - reported below
            flow_error.append(exc)

    ctx = multiprocessing.get_context("spawn")
    results, ready = ctx.Queue(), ctx.Event()
    driver = ctx.Process(
        target=drive,
        args=(broker.bootstrap, feedback, alerts, args.partitions, args.rate, count, results, ready, args.fetch_wait_ms,
              not args.compressed_time),
    )
    driver.start()
    flow_thread = threading.Thread(target=run_flow, name="flow")
    flow_thread.start()
    time.sleep(1.0)  # the flow assigns its partitions (it reads from the beginning anyway)
    console.print(f"producing {count:,} simulated events at {args.rate:g}/s to {feedback} on {broker.bootstrap}…")
    ready.set()
    result = results.get()
    driver.join(30)
    stop_flow.set()
    flow_thread.join(120)
    if not args.brokers:
        broker.stop()
    if flow_error:
        raise flow_error[0]
    latencies, produce_s, count = result["latencies"], result["produce_s"], result["count"]
    if not latencies:
        console.print("[red]no alerts measured[/]")
        return 1

    values = sorted(ms for _, ms in latencies)
    table = Table(title=f"Hot-alert latency, produce → alert consumed ({args.rate:g} events/s for {args.seconds:g} s)")
    for column in ("events", "achieved rate", "alerts", "p50 ms", "p95 ms", "p99 ms", "max ms", "mean ms"):
        table.add_column(column, justify="right")
    table.add_row(
        f"{count:,}", f"{count / produce_s:,.0f}/s", f"{len(values):,}", f"{pct(values, .5):.0f}",
        f"{pct(values, .95):.0f}", f"{pct(values, .99):.0f}", f"{values[-1]:.0f}", f"{statistics.fmean(values):.0f}",
    )
    console.print(table)
    console.print(f"p99 by {SEGMENT_S} s of the run (drift shows the broker or the flow falling behind): " + ", ".join(
        f"{pct(segment, .99):.0f}" for segment in segments(latencies)
    ) + " ms")
    console.print(f"flow garbage collection: {pauses.summary()}")
    if args.plot:
        import plotly.express as px

        fig = px.histogram(x=values, nbins=100, labels={"x": "latency (ms)"}, title=table.title)
        fig.write_html(args.plot) if args.plot.suffix == ".html" else fig.write_image(args.plot)
        console.print(f"plot → {args.plot}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
