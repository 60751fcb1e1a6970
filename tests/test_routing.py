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
