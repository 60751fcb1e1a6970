"""Throughput of the whole embedded flow (decode, rules, windows, chDB sink) on one worker.

The simulated messages are generated first and held in memory, so the figure is the flow's, not
the simulator's. As in `boucle run`, the outputs are prepared (the warehouse schema created)
before the clock starts: a one-time cost, not a per-event one. In the same run it times bare
``orjson.loads`` over the same bytes: the ratio says how far the flow is from the cost of merely
parsing its input.

    .venv/bin/python benchmarks/throughput.py --days 28 --volume-scale 4 --repeat 3
    .venv/bin/python benchmarks/throughput.py --profile retail --sites 5000 --json var/throughput-retail.json

``--profile`` picks the simulated network (demo, retail, reviews; see the README's network
profiles): by default the demo runs 28 days at 4 times its volumes, retail 28 days of its 2,000
sites and reviews its eight years, at their own volumes. ``--json PATH`` writes the medians:
``{"profile": ..., "full": {"events_per_s": x}, "no_attribute_alerts": {"events_per_s": y},
"floor": {"events_per_s": z}}``.

The machine's speed varies from run to run (other tenants of the host): each variant runs
``--repeat`` times and the table gives the median and the range.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from _floor import loads_seconds
from bytewax.testing import TestingSource, run_main
from rich.console import Console
from rich.table import Table

from boucle.config.loader import load_settings
from boucle.flows.feedback_flow import FlowOutputs, build_flow
from boucle.flows.run import throughput_gc
from boucle.flows.stats import RunStats
from boucle.sinks.background import BackgroundSink
from boucle.sinks.clickhouse.client import close_all, connect
from boucle.sinks.clickhouse.sink import ClickHouseSink
from boucle.sinks.jsonl import JsonlSink
from boucle.sources.simulator import Simulator
from boucle.sources.simulator.networks import PROFILES

DEFAULT_DAYS = {"demo": 28.0, "retail": 28.0}  # reviews: its own eight years


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", help="settings file (default: config/boucle.toml)")
    parser.add_argument("--profile", choices=sorted(PROFILES), default="demo", help="the simulated network (default demo)")
    parser.add_argument("--sites", type=int, default=None, help="retail/reviews: sites to generate (default: the profile's)")
    parser.add_argument("--days", type=float, default=None,
                        help="simulated days (default: 28 for demo and retail, the profile's length for reviews)")
    parser.add_argument("--volume-scale", type=float, default=None,
                        help="multiply site volumes (default: 4 for the demo, 1 otherwise)")
    parser.add_argument("--json", type=Path, default=None, help="write the medians (events/s) as JSON")
    parser.add_argument("--batch-size", type=int, default=2000, help="messages per source batch")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per variant; the table gives the median (default 3)")
    parser.add_argument(
        "--no-warehouse", action="store_true", help="leave chDB out: what the flow's Python costs without the inserts"
    )
    args = parser.parse_args(argv)
    console = Console()

    settings = load_settings(args.config)
    # chDB may still be merging in the background when the runs end: close it before the directory
    # goes, and never lose the measured figures to a cleanup error.
    with tempfile.TemporaryDirectory(prefix="boucle-bench-", ignore_cleanup_errors=True) as tmp:
        settings = settings.model_copy(
            update={"warehouse": settings.warehouse.model_copy(update={"path": f"{tmp}/chdb", "url": None})}
        )
        days = args.days if args.days is not None else DEFAULT_DAYS.get(args.profile)
        scale = args.volume_scale if args.volume_scale is not None else (4.0 if args.profile == "demo" else 1.0)
        simulator = Simulator(settings, seed=args.seed, days=days, volume_scale=scale, profile=args.profile,
                              sites=args.sites)
        settings = simulator.settings  # a generated network's registry decodes its events
        with console.status("generating messages"):
            messages = list(simulator.messages())
        n = len(messages)
        payload_bytes = sum(len(m.value) for m in messages)

        floor_runs = [loads_seconds(m.value for m in messages) for _ in range(args.repeat)]
        floor_seconds = statistics.median(floor_runs)

        results = []
        # A small warm-up run pays the one-time costs (chDB start, schema, lazy imports) untimed.
        warm = settings.model_copy(update={"warehouse": settings.warehouse.model_copy(update={"database": "bench_warmup"})})
        run_main(build_flow(warm, TestingSource(messages[:2000]), FlowOutputs(warehouse=ClickHouseSink(warm.warehouse))))
        sink = "no warehouse" if args.no_warehouse else "chDB"
        for label, attribute_alerts in (
            (f"flow: decode, hot rules, windows, {sink}", False),
            ("flow + attribute alerts (default config)", True),
        ):
            runs = []
            for attempt in range(args.repeat):
                variant = settings.model_copy(
                    update={
                        "warehouse": settings.warehouse.model_copy(update={"database": f"bench_{len(results)}_{attempt}"}),
                        "attribute_alerts": settings.attribute_alerts.model_copy(update={"enabled": attribute_alerts}),
                    }
                )
                stats = RunStats()
                outputs = FlowOutputs(
                    warehouse=None if args.no_warehouse else BackgroundSink(ClickHouseSink(variant.warehouse)),
                    alerts=[JsonlSink(f"{tmp}/alerts-{len(results)}-{attempt}.jsonl")],
                )
                flow = build_flow(variant, TestingSource(messages, batch_size=args.batch_size), outputs, stats)
                # As `boucle run` does: the warehouse schema is created before the stream starts.
                outputs.prepare()
                gc.collect()
                started = time.perf_counter()
                with console.status(f"{label}: {n:,} messages (run {attempt + 1}/{args.repeat})"), throughput_gc():
                    run_main(flow)
                seconds = time.perf_counter() - started
                stored = stats.accepted if args.no_warehouse else int(
                    connect(variant.warehouse).command(f"SELECT count() FROM {variant.warehouse.database}.feedback")
                )
                runs.append(seconds)
            results.append((label, sorted(runs), stats, stored))
        close_all()

    loads_rate = n / floor_seconds
    table = Table(title=f"Embedded flow throughput, {args.profile}, 1 worker ({n:,} messages, "
                        f"{payload_bytes / n:.0f} B each)")
    table.add_column("measure")
    table.add_column("events/s (median)", justify="right")
    table.add_column(f"range of {args.repeat}", justify="right")
    table.add_column("seconds", justify="right")
    table.add_column("ratio to orjson.loads", justify="right")
    for label, runs, _, _ in results:
        median = statistics.median(runs)
        spread = f"{n / runs[-1]:,.0f}–{n / runs[0]:,.0f}"
        table.add_row(label, f"{n / median:,.0f}", spread, f"{median:.2f}", f"{n / median / loads_rate:.3f}")
    floor_spread = f"{n / max(floor_runs):,.0f}–{n / min(floor_runs):,.0f}"
    table.add_row("bare orjson.loads over the same bytes", f"{loads_rate:,.0f}", floor_spread, f"{floor_seconds:.2f}", "1")
    console.print(table)
    if args.json:
        no_alerts, full = (statistics.median(runs) for _, runs, _, _ in results)
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({
            "profile": args.profile, "events": n, "sites": len(settings.sites), "days": simulator.days,
            "full": {"events_per_s": n / full, "ratio_to_floor": n / full / loads_rate},
            "no_attribute_alerts": {"events_per_s": n / no_alerts, "ratio_to_floor": n / no_alerts / loads_rate},
            "floor": {"events_per_s": loads_rate}, "repeat": args.repeat}, indent=2))
        console.print(f"wrote {args.json}")
    for label, _, stats, stored in results:
        console.print(
            f"{label}: accepted {stats.accepted:,}, dead-lettered {stats.rejected:,},"
            f" alerts {dict(stats.alerts_by_kind)}, window rows {stats.score_rows:,}, feedback rows stored {stored:,}"
        )
        if stored != stats.accepted:
            console.print("[red]stored feedback rows differ from accepted events[/]")
            sys.exit(1)


if __name__ == "__main__":
    main()
