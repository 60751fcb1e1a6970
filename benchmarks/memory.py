"""Memory per (site, attribute) series: build many detector states, feed them, measure.

    python -m benchmarks.memory                       # 10,000 sites x 10 attributes, 20 updates each
    python -m benchmarks.memory --sites 1000 --updates 50

For :class:`detectors.AttributeWatch` (everything the attribute-alert operator keeps per series)
and for each of its parts, prints the bytes per series measured with ``tracemalloc`` (live Python
heap), the snapshot (``pickle.dumps(det.state())``, what the bytewax step stores for a series each
epoch it is touched) in bytes and in µs per series, and, for comparison, the detector object pickled
whole (what the snapshots held before they were plain data), against the 8 KB budget.
"""

from __future__ import annotations

import argparse
import gc
import pickle
import random
import time
import tracemalloc
from typing import Callable

from rich.console import Console
from rich.table import Table

from boucle.detectors import (
    AttributeWatch,
    DownwardTrend,
    GradualDecline,
    PeerComparison,
    SeasonalExpectation,
)

BUDGET = 8 * 1024
MINUTE = 60_000


def measure(build: Callable[[], object], n_series: int, updates: int, seed: int = 0) -> dict[str, float]:
    """Heap bytes per series (tracemalloc) and mean pickled bytes over a sample of series."""
    rng = random.Random(seed)
    ratings = [float(min(5, max(1, round(rng.gauss(3.9, 0.95))))) for _ in range(4096)]
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    started = time.perf_counter()
    series = []
    k = 0
    for s in range(n_series):
        det = build()
        t = s * 1000  # stagger the series a little
        for _ in range(updates):
            det.update(ratings[k & 4095], t)
            k += 1
            t += 17 * MINUTE
        series.append(det)
    elapsed = time.perf_counter() - started
    gc.collect()
    heap = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    sample = series[:: max(1, n_series // 500)]
    # The snapshot first: its first state() settles a pending fit (GradualDecline), as each epoch's does.
    started = time.perf_counter()
    snapshots = [pickle.dumps(det.state()) for det in sample]
    snapshot_us = (time.perf_counter() - started) / len(sample) * 1e6
    return {
        "series": n_series,
        "updates": updates,
        "heap": heap / n_series,
        "snapshot": sum(map(len, snapshots)) / len(sample),
        "snapshot_us": snapshot_us,
        "pickled": sum(len(pickle.dumps(det)) for det in sample) / len(sample),
        "us_per_update": elapsed / max(n_series * updates, 1) * 1e6,
    }


def main(argv: list[str] | None = None) -> dict[str, dict[str, float]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sites", type=int, default=10_000)
    parser.add_argument("--attributes", type=int, default=10)
    parser.add_argument("--updates", type=int, default=20, help="ratings fed to each series")
    parser.add_argument("--parts-series", type=int, default=10_000, help="series measured per part")
    args = parser.parse_args(argv)
    n = args.sites * args.attributes
    results = {
        "AttributeWatch (all)": measure(AttributeWatch, n, args.updates),
        "  SeasonalExpectation": measure(SeasonalExpectation, min(n, args.parts_series), args.updates),
        "  DownwardTrend": measure(DownwardTrend, min(n, args.parts_series), args.updates),
        "  GradualDecline": measure(GradualDecline, min(n, args.parts_series), args.updates),
        "  PeerComparison": measure(PeerComparison, min(n, args.parts_series), args.updates),
    }
    table = Table(title=f"Detector state per (site, attribute) series — budget {BUDGET:,} bytes")
    # Per series: heap (tracemalloc), snapshot = pickle.dumps(state()), the object pickled whole.
    for column in ("detector", "series", "updates", "heap B", "snapshot B", "snapshot µs", "object pickled B",
                   "µs/update (traced)", "within budget"):
        table.add_column(column, justify="left" if column == "detector" else "right")
    for name, r in results.items():
        ok = r["heap"] <= BUDGET and r["snapshot"] <= BUDGET
        table.add_row(name, f"{r['series']:,}", str(r["updates"]), f"{r['heap']:,.0f}", f"{r['snapshot']:,.0f}",
                      f"{r['snapshot_us']:.1f}", f"{r['pickled']:,.0f}", f"{r['us_per_update']:.1f}",
                      "[green]yes[/]" if ok else "[red]NO[/]")
    Console(width=160).print(table)
    return results


if __name__ == "__main__":
    main()
