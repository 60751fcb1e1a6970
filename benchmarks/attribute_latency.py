"""Attribute-alert latency: wall-clock time from the arrival of the response that made the evidence
sufficient to the alert's emission.

The simulated stream (with its labelled incidents) is fed to the whole embedded flow at a fixed
rate, like a live source; the source records when each response arrives, an alert sink records
when each attribute or regional alert comes out. An alert's ``event_time`` is the event time of
the response that first raised its trigger, which identifies the arrival to compare with.

    .venv/bin/python benchmarks/attribute_latency.py --rate 2000 --days 28
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import datetime, timedelta, timezone

import numpy as np
from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition
from bytewax.outputs import DynamicSink, StatelessSinkPartition
from bytewax.testing import run_main
from rich.console import Console
from rich.table import Table

from boucle.config.loader import load_settings
from boucle.flows.feedback_flow import FlowOutputs, build_flow
from boucle.flows.run import throughput_gc
from boucle.operators.decode import Decoder, Feedback
from boucle.sinks.clickhouse.sink import ClickHouseSink
from boucle.sources.simulator import Simulator


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class _PacedPartition(StatefulSourcePartition):
    def __init__(self, messages, times, arrivals, rate: float, batch: int) -> None:
        self.messages, self.times, self.arrivals = messages, times, arrivals
        self.rate, self.batch, self.i = rate, batch, 0
        self.start = time.monotonic()

    def next_batch(self):
        if self.i >= len(self.messages):
            raise StopIteration
        due = int((time.monotonic() - self.start) * self.rate)  # messages due by now at the fixed rate
        end = min(len(self.messages), max(due, self.i), self.i + self.batch)
        now = _now_ms()
        for j in range(self.i, end):
            if self.times[j] is not None:
                self.arrivals.setdefault(self.times[j], now)
        out, self.i = self.messages[self.i : end], end
        return out

    def next_awake(self):
        next_due = self.start + (self.i + 1) / self.rate
        return datetime.now(timezone.utc) + timedelta(seconds=max(0.0, next_due - time.monotonic()))

    def snapshot(self):
        return self.i


class PacedSource(FixedPartitionedSource):
    def __init__(self, messages, times, arrivals, rate: float, batch: int = 500) -> None:
        self.args = (messages, times, arrivals, rate, batch)

    def list_parts(self):
        return ["paced"]

    def build_part(self, step_id, for_part, resume_state):
        return _PacedPartition(*self.args)


class _Stamp(StatelessSinkPartition):
    def __init__(self, out) -> None:
        self.out = out

    def write_batch(self, items) -> None:
        now = _now_ms()
        self.out.extend((item, now) for item in items if item["kind"] in ("attribute", "regional_incident"))


class StampSink(DynamicSink):
    def __init__(self) -> None:
        self.out: list = []

    def build(self, step_id, worker_index, worker_count):
        return _Stamp(self.out)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", help="settings file (default: config/boucle.toml)")
    parser.add_argument("--rate", type=float, default=2000, help="responses per second fed to the flow (default 2000)")
    parser.add_argument("--days", type=float, default=28, help="simulated days (default 28)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    console = Console()

    settings = load_settings(args.config)
    with tempfile.TemporaryDirectory(prefix="boucle-attr-latency-") as tmp:
        warehouse = settings.warehouse.model_copy(update={"path": f"{tmp}/chdb", "url": None})
        settings = settings.model_copy(update={"warehouse": warehouse})
        simulator = Simulator(settings, seed=args.seed, days=args.days)
        messages = list(simulator.messages())
        decoder = Decoder(settings)
        times = [e.ts_ms if isinstance(e := decoder.decode(m), Feedback) else None for m in messages]
        arrivals: dict[int, int] = {}
        sink = StampSink()
        flow = build_flow(
            settings,
            PacedSource(messages, times, arrivals, args.rate),
            FlowOutputs(warehouse=ClickHouseSink(warehouse), alerts=[sink]),
        )
        console.print(f"feeding {len(messages):,} responses at {args.rate:,.0f}/s ({len(messages) / args.rate:.0f} s)…")
        started = time.monotonic()
        with throughput_gc():
            run_main(flow)
        elapsed = time.monotonic() - started

    latencies = []
    for alert, emitted in sink.out:
        if alert["status"] == "resolved":
            continue
        moment = datetime.fromisoformat(alert["event_time"].replace("Z", "+00:00"))
        arrived = arrivals.get(round(moment.timestamp() * 1000))
        if arrived is not None:
            latencies.append(emitted - arrived)
    table = Table(title=f"Attribute-alert latency: arrival of the deciding response → alert emitted ({args.rate:,.0f}/s)")
    for column in ("alerts", "matched", "p50 ms", "p95 ms", "p99 ms", "max ms", "achieved rate"):
        table.add_column(column, justify="right")
    if latencies:
        p50, p95, p99 = np.percentile(latencies, [50, 95, 99])
        table.add_row(
            str(len(sink.out)), str(len(latencies)), f"{p50:.0f}", f"{p95:.0f}", f"{p99:.0f}",
            f"{max(latencies):.0f}", f"{len(messages) / elapsed:,.0f}/s",
        )
    console.print(table)


if __name__ == "__main__":
    main()
