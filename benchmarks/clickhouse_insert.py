"""Insert rate of :class:`~sinks.clickhouse.writer.TableWriter`: 20k-row ``feedback`` batches.

Run ``python -m sinks.clickhouse.bench [--batches 10] [--rows 20000] [--path DIR]``; it writes
into a fresh embedded chDB (a temporary directory unless ``--path``) and prints rows/s for
Arrow conversion + insert, as the sink does them.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time

__all__ = ["feedback_batch", "main"]

COLUMNS = (
    "event_id", "occurred_at", "received_at", "site_id", "region", "channel", "journey_stage",
    "scores", "attributes", "comment", "language", "customer_id", "consent_contact", "late", "origin",
)


def feedback_batch(n: int, seed: int):
    """A realistic ``feedback`` TableBatch of ``n`` rows."""
    from boucle.sinks.batch import TableBatch

    rng = random.Random(seed)
    t0 = 1_790_000_000_000 + seed * n * 1000
    attributes = ("waiting_time", "staff_friendliness", "staff_competence", "cleanliness")
    rows = [
        (
            f"{seed:04d}-{i:08d}-4c1e-9a7b-5d2f1e0c3b6a", t0 + i * 1000, t0 + i * 1000 + 40,
            f"store-{rng.randrange(48):04d}", f"region-{rng.randrange(6)}",
            rng.choice(("store", "web", "app", "email")), "purchase",
            {"nps": rng.randrange(11), "csat": rng.randrange(1, 6), "ces": rng.randrange(1, 8)},
            {a: rng.randrange(1, 6) for a in attributes[: rng.randrange(1, 5)]},
            "Très bien accueilli, mais l'attente en caisse était longue.", "fr",
            f"cust-{rng.randrange(10**6)}", rng.randrange(2), 0, f"simulator:0:{seed * n + i}",
        )
        for i in range(n)
    ]
    return TableBatch("feedback", COLUMNS, rows)


def main(argv: list[str] | None = None) -> float:
    from boucle.config.settings import Warehouse
    from boucle.sinks.clickhouse.client import close_all, connect
    from boucle.sinks.clickhouse.schema import init_schema
    from boucle.sinks.clickhouse.writer import TableWriter

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=10)
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--path", default=None)
    args = parser.parse_args(argv)
    path = args.path or tempfile.mkdtemp(prefix="boucle-bench-") + "/wh.chdb"
    warehouse = Warehouse(path=path, database="bench")
    client = connect(warehouse)
    init_schema(client, warehouse.database)
    writer = TableWriter(client, warehouse.database)
    writer.insert(feedback_batch(100, 10**4))  # warm-up: DESCRIBE cache, first Arrow conversions
    batches = [feedback_batch(args.rows, seed) for seed in range(args.batches)]
    timings = []
    for batch in batches:
        start = time.perf_counter()
        writer.insert(batch)
        timings.append(time.perf_counter() - start)
    total = sum(timings)
    rate = args.rows * args.batches / total
    median = sorted(timings)[len(timings) // 2]
    print(f"{args.batches} x {args.rows} feedback rows into chDB: {total:.3f}s, {rate:,.0f} rows/s "
          f"(median batch {median * 1000:.1f} ms = {args.rows / median:,.0f} rows/s)")
    close_all()
    return rate


if __name__ == "__main__":
    main()
