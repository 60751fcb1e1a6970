"""Memory per (site, attribute) series: build many detector states, feed them, measure.

    python -m benchmarks.memory                       # 10,000 sites x 10 attributes, 20 updates each
    python -m benchmarks.memory --sites 1000 --updates 50

For :class:`detectors.AttributeWatch` (everything the attribute-alert operator keeps per series)
and for each of its parts, prints the bytes per series measured with ``tracemalloc`` (live Python
heap) and the pickled size (what a bytewax snapshot stores), against the 8 KB budget.
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
    pickled = sum(len(pickle.dumps(det)) for det in sample) / len(sample)
    return {
        "series": n_series,
        "updates": updates,
        "heap": heap / n_series,
        "pickled": pickled,
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
    for column in ("detector", "series", "updates each", "heap B/series (tracemalloc)",
                   "pickled B/series", "µs/update (traced)", "within budget"):
        table.add_column(column, justify="left" if column == "detector" else "right")
    for name, r in results.items():
        ok = r["heap"] <= BUDGET and r["pickled"] <= BUDGET
        table.add_row(name, f"{r['series']:,}", str(r["updates"]), f"{r['heap']:,.0f}", f"{r['pickled']:,.0f}",
                      f"{r['us_per_update']:.1f}", "[green]yes[/]" if ok else "[red]NO[/]")
    Console(width=140).print(table)
    return results


if __name__ == "__main__":
    main()
