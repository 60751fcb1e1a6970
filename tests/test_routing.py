"""The routing that :mod:`operators.routing` plans on is bytewax's own.

:func:`~operators.routing.worker_of` reimplements the hash bytewax 0.21 routes keyed items with;
if a bytewax release routes otherwise, these tests say so (the flow's results stay right: only the
even share of regions over workers is lost).
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading

import bytewax.operators as op
import pytest
from bytewax.dataflow import Dataflow
from bytewax.testing import TestingSink, TestingSource, cluster_main

from boucle.operators.routing import siphash13, spread, worker_of

KEYS = [f"store-{i:04d}" for i in range(30)] + [
    "ile-de-france", "auvergne-rhone-alpes", "provence", "hauts-de-france", "belgium", "uk-south", "région-é"]


def test_siphash13_is_the_hash_cpython_gives_bytes_without_a_seed():
    # CPython hashes bytes with SipHash-1-3 too (PYTHONHASHSEED=0: zero keys); b"" is special-cased to 0.
    data = [bytes(range(n)) for n in range(1, 20)] + [k.encode() + b"\xff" for k in KEYS]
    code = "import sys; print(' '.join(str(hash(bytes.fromhex(h)) % 2**64) for h in sys.argv[1:]))"
    out = subprocess.run([sys.executable, "-c", code, *(d.hex() for d in data)], capture_output=True, text=True,
                         env={**os.environ, "PYTHONHASHSEED": "0"}, check=True).stdout.split()
    assert [siphash13(d) for d in data] == [int(h) for h in out]


@pytest.mark.parametrize("workers", [2, 3])
def test_bytewax_routes_each_key_to_the_worker_predicted(workers):
    seen: list[tuple[str, str]] = []
    flow = Dataflow("routing")
    items = op.input("in", flow, TestingSource([(k, 1) for k in KEYS]))
    # A keyed step's logic runs on the worker its key routes to: note that worker's thread.
    marked = op.stateful_map("where", items, lambda state, _: (state, threading.current_thread().name))
    op.output("out", marked, TestingSink(seen))
    cluster_main(flow, [], 0, worker_count_per_proc=workers)
    observed = {frozenset(k for k, t in seen if t == thread) for thread in {t for _, t in seen}}
    predicted = {frozenset(k for k in KEYS if worker_of(k, workers) == w) for w in range(workers)} - {frozenset()}
    assert len(seen) == len(KEYS) and observed == predicted


def test_the_demo_regions_are_shared_three_and_three():
    regions = {r: 8 for r in ["ile-de-france", "auvergne-rhone-alpes", "provence", "hauts-de-france", "belgium",
                              "uk-south"]}
    by_hash = sorted(sum(worker_of(r, 2) == w for r in regions) for w in range(2))
    keys = spread(regions, 2)
    planned = sorted(sum(worker_of(keys[r], 2) == w for r in regions) for w in range(2))
    assert by_hash == [2, 4] and planned == [3, 3]


@pytest.mark.parametrize("workers", [2, 3])
def test_a_sink_partition_per_worker_writes_what_its_worker_holds(workers):
    """bytewax places the i-th sorted partition of a fixed-partitioned sink on worker i, so the
    warehouse's per-worker partitions (BackgroundSink.over) write items without moving them."""
    from boucle.sinks.background import BackgroundSink

    written: list[tuple[int, str, int]] = []  # (partition's index, key, thread that held it)
    built: dict[int, int] = {}  # partition's index -> the worker thread it was built on (its owner)

    class Recording:
        def __init__(self, index: int) -> None:
            self.index = index

        def write_batch(self, items):
            written.extend((self.index, key, thread) for key, thread in items)

        def close(self):
            pass

    class Inner:
        def build(self, step_id, worker_index, worker_count):
            built[worker_index] = threading.get_ident()  # (called by build_part, on the owner)
            return Recording(worker_index)

    flow = Dataflow("sink_routing")
    items = op.input("in", flow, TestingSource([(k, 1) for k in KEYS]))
    held = op.stateful_map("hold", items, lambda state, _: (state, threading.get_ident()))
    keyed = op.map("rekey", held, lambda kv: (kv[0], kv))
    op.output("out", keyed, BackgroundSink(Inner()).over(workers, lambda key: worker_of(key, workers)))
    cluster_main(flow, [], 0, worker_count_per_proc=workers)
    assert len(written) == len(KEYS) and len(set(built.values())) == workers
    # Every item was written by the partition built on the worker thread that held it.
    assert all(built[index] == holder for index, _, holder in written)
