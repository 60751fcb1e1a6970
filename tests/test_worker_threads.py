"""A cluster's worker threads keep their Python thread state (flows.worker_threads)."""

from __future__ import annotations

import threading

import bytewax.operators as op
from bytewax.dataflow import Dataflow
from bytewax.run import cli_main
from bytewax.testing import TestingSink, TestingSource

from boucle.flows.worker_threads import KeepThreadState


def _fresh_thread_states(keep: bool) -> dict[int, int]:
    """Per worker thread: how many times a ``threading.local`` was found empty by a step."""
    local, fresh, out = threading.local(), {}, []

    def look(x: int) -> int:
        if not hasattr(local, "seen"):
            local.seen = True
            ident = threading.get_ident()
            fresh[ident] = fresh.get(ident, 0) + 1
        return x

    flow = Dataflow("thread_states")
    if keep:
        op.input("worker_thread_state", flow, KeepThreadState())
    items = op.input("input", flow, TestingSource(range(2_000), batch_size=10))
    op.output("out", op.map("look", items, look), TestingSink(out))
    cli_main(flow, workers_per_process=2)  # worker threads bytewax starts, as in a cluster
    assert sorted(out) == list(range(2_000))
    return fresh


def test_a_worker_thread_keeps_its_thread_state_from_batch_to_batch():
    assert set(_fresh_thread_states(keep=True).values()) == {1}


def test_without_it_bytewax_gives_each_call_a_new_thread_state():
    # What the module works around: if bytewax keeps thread states itself one day, this fails
    # and KeepThreadState can go.
    assert max(_fresh_thread_states(keep=False).values()) > 100
