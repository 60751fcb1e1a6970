"""Latency of the BI views on a year of daily scores for a large network, in embedded chDB.

Generates (numpy → Arrow) one year of daily windows for ``--sites`` sites × ``--attributes``
questions (5,000 × 10 × 365 ≈ 18 million rows), inserts them into ``attribute_scores`` in large
blocks (the materialized views fill the daily rollups on the way), compacts as a bounded run
does, then times ``v_peer_comparison`` and ``v_leaderboard`` for one region and for all regions
(period 30 days, every row fetched; best of ``--repeat``).

    .venv/bin/python benchmarks/queries.py [--sites 5000] [--attributes 10] [--days 365] [--regions 10]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import datetime, timezone

import numpy as np
import pyarrow as pa
from rich.console import Console
from rich.table import Table

from boucle.config.settings import Region, Settings, Site, Warehouse
from boucle.flows.rows import dimension_rows
from boucle.sinks.clickhouse.client import INSERT_SETTINGS, close_all, connect
from boucle.sinks.clickhouse.query import optimize_final
from boucle.sinks.clickhouse.schema import init_schema

DB = "bench"
KINDS = ("hypermarket", "supermarket", "city")


def network(sites: int, regions: int) -> Settings:
    return Settings(
        regions=[Region(id=f"region-{r:02d}", name=f"Région {r}") for r in range(regions)],
        sites=[Site(id=f"site-{i:05d}", name=f"Site {i}", region=f"region-{i % regions:02d}", kind=KINDS[i % 3])
               for i in range(sites)],
    )


def blocks(sites: int, attributes: int, days: int, regions: int, rows_per_block: int, seed: int = 7):
    """Arrow tables of ``attribute_scores`` rows (window_length = 1 day), day-major."""
    rng = np.random.default_rng(seed)
    site_ids = pa.array([f"site-{i:05d}" for i in range(sites)], pa.binary())
    region_ids = pa.array([f"region-{r:02d}" for r in range(regions)], pa.binary())
    names = pa.array(["nps"] + [f"attribute_{a}" for a in range(attributes - 1)], pa.binary())
    start = int(datetime(2025, 11, 1, tzinfo=timezone.utc).timestamp() * 1000)
    per_day = sites * attributes
    days_per_block = max(1, rows_per_block // per_day)
    site_level = rng.normal(0, 0.3, size=(sites, attributes))
    for first in range(0, days, days_per_block):
        d = np.arange(first, min(days, first + days_per_block))
        rows = len(d) * per_day
        day = np.repeat(d, per_day)
        site = np.tile(np.repeat(np.arange(sites), attributes), len(d))
        attr = np.tile(np.arange(attributes), sites * len(d))
        n = rng.poisson(20, rows).astype(np.uint32) + 1
        mean = np.clip(3.6 + site_level[site, attr] + rng.normal(0, 0.4, rows), 1, 5)
        mean = np.where(attr == 0, np.clip(mean * 2, 0, 10), mean)  # nps on 0-10
        total = np.round(mean * n).astype(np.uint64)
        bottom = np.minimum(n, rng.binomial(n, 0.15)).astype(np.uint32)
        top = np.minimum(n - bottom, rng.binomial(n, 0.45)).astype(np.uint32)
        yield pa.Table.from_arrays(
            [
                pa.DictionaryArray.from_arrays(pa.array(site, pa.int32()), site_ids),
                pa.DictionaryArray.from_arrays(pa.array(site % regions, pa.int32()), region_ids),
                pa.DictionaryArray.from_arrays(pa.array(attr, pa.int32()), names),
                pa.array(np.full(rows, 86400, np.uint32)),
                pa.array(start + day.astype(np.int64) * 86_400_000, pa.timestamp("ms", tz="UTC")),
                pa.array(n), pa.array(total), pa.array(bottom), pa.array(top),
            ],
            names=["site_id", "region", "attribute", "window_length", "window_start", "n", "sum", "bottom_n", "top_n"],
        )


def best_of(client, sql: str, repeat: int) -> tuple[float, int]:
    times, rows = [], 0
    for _ in range(repeat):
        t = time.perf_counter()
        rows = len(client.query(sql).result_rows)
        times.append(time.perf_counter() - t)
    return min(times), rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sites", type=int, default=5000)
    parser.add_argument("--attributes", type=int, default=10, help="questions, nps included (default 10)")
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--regions", type=int, default=10)
    parser.add_argument("--period", type=int, default=30, help="period in days (default 30)")
    parser.add_argument("--block-rows", type=int, default=2_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--path", help="chDB directory (default: a temporary one)")
    args = parser.parse_args(argv)
    console = Console()

    with tempfile.TemporaryDirectory(prefix="boucle-queries-") as tmp:
        client = connect(Warehouse(path=args.path or f"{tmp}/wh", database=DB))
        init_schema(client, DB, dimensions=dimension_rows(network(args.sites, args.regions)))
        total, t0 = 0, time.perf_counter()
        for table in blocks(args.sites, args.attributes, args.days, args.regions, args.block_rows):
            client.insert_arrow("attribute_scores", table, database=DB, settings=dict(INSERT_SETTINGS))
            total += table.num_rows
        load = time.perf_counter() - t0
        t0 = time.perf_counter()
        optimize_final(client, DB)  # every table, as a bounded run ends
        compact = time.perf_counter() - t0
        daily = client.query(f"SELECT count() FROM {DB}.site_attribute_daily").result_rows[0][0]
        console.print(
            f"loaded {total:,} daily windows ({args.sites:,} sites × {args.attributes} questions × {args.days} days,"
            f" {args.regions} regions) in {load:.1f}s ({total / load:,.0f} rows/s through the materialized views);"
            f" site_attribute_daily {daily:,} rows; OPTIMIZE FINAL of every table {compact:.1f}s"
        )
        table = Table(title=f"BI views, period {args.period} days, best of {args.repeat} (chDB, embedded)")
        for column in ("view", "scope", "rows returned", "seconds"):
            table.add_column(column, justify="right" if column in ("rows returned", "seconds") else "left")
        for view in ("v_peer_comparison", "v_leaderboard"):
            for scope, where in (("one region", " AND region = 'region-03'"), ("all regions", "")):
                sql = f"SELECT * FROM {DB}.{view} WHERE period_days = {args.period}{where}"
                seconds, rows = best_of(client, sql, args.repeat)
                table.add_row(view, scope, f"{rows:,}", f"{seconds:.3f}")
        console.print(table)
        close_all()


if __name__ == "__main__":
    main()
