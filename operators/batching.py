"""Gather rows per table into large inserts: ``max_rows`` rows or ``max_wait``, whichever first.

A warehouse insert has a fixed cost, so small batches would bound the throughput; the buffer is
operator state, so bytewax snapshots it and a crash loses nothing that was not yet written.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import bytewax.operators as op
from bytewax.dataflow import Stream, operator
from bytewax.operators import StatefulBatchLogic

from boucle.sinks.batch import TableBatch

__all__ = ["batch_rows"]


class _Buffer(StatefulBatchLogic):
    def __init__(self, max_rows: int, max_wait: timedelta, snapshot) -> None:
        self.max_rows = max_rows
        self.max_wait = max_wait
        self.pending: list[TableBatch] = list(snapshot or ())
        self.rows = sum(len(b) for b in self.pending)
        self.due: datetime | None = datetime.now(timezone.utc) + max_wait if self.pending else None

    def on_batch(self, values: list[TableBatch]):
        for batch in values:
            if len(batch):
                self.pending.append(batch)
                self.rows += len(batch)
        if self.pending and self.due is None:
            self.due = datetime.now(timezone.utc) + self.max_wait
        return (self._flush() if self.rows >= self.max_rows else []), StatefulBatchLogic.RETAIN

    def on_notify(self):
        return self._flush(), StatefulBatchLogic.RETAIN

    def on_eof(self):
        return self._flush(), StatefulBatchLogic.RETAIN

    def notify_at(self) -> datetime | None:
        return self.due

    def snapshot(self):
        return tuple(self.pending)

    def _flush(self) -> list[TableBatch]:
        if not self.pending:
            return []
        groups: dict[tuple[str, tuple[str, ...]], list[TableBatch]] = {}
        for batch in self.pending:
            groups.setdefault((batch.table, batch.columns), []).append(batch)
        self.pending, self.rows, self.due = [], 0, None
        return [TableBatch.concat(batches) for batches in groups.values()]


@operator
def batch_rows(
    step_id: str, up: Stream[TableBatch], max_rows: int, max_wait: timedelta
) -> Stream[TableBatch]:
    keyed = op.key_on("by_table", up, lambda batch: batch.table)
    merged = op.stateful_batch("buffer", keyed, lambda snap: _Buffer(max_rows, max_wait, snap))
    return op.map("unkey", merged, lambda kv: kv[1])
