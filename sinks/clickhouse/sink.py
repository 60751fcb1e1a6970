"""The warehouse output: a bytewax ``DynamicSink`` whose items are :class:`~sinks.batch.TableBatch`.

Every ``write_batch`` call writes synchronously: items of the same table and columns are merged
into one insert, and nothing is held back for a later call. bytewax output is at-least-once, so a
buffer kept across calls would be lost on a crash after bytewax considered it delivered; batch
upstream instead (``op.collect`` up to ``warehouse.batch_rows`` / ``flush_interval``).

All workers of the process share one client (see :mod:`sinks.clickhouse.client`); when the first
partition is built, the schema is made ready and the dimension rows given (``sites``,
``questions``, built by the flow from the config: data the run writes) are synced (idempotent).
"Ready" depends on ``warehouse.auto_migrate`` (:meth:`~config.settings.Warehouse.migrates_on_run`):
pending migrations and the retention TTL are applied (embedded chDB by default), or the schema is
only checked and a missing migration stops the run with one line saying to run ``boucle db migrate``
(a ClickHouse server by default: its schema is changed by whoever runs the migrations, not by
every engine that starts). A retention that differs from the tables' TTL is then a warning.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING

from bytewax.outputs import DynamicSink, StatelessSinkPartition

from boucle.config.redact import redact_url
from boucle.sinks.batch import TableBatch
from boucle.sinks.clickhouse.client import connect
from boucle.sinks.clickhouse.schema import (
    apply_retention,
    check_schema,
    migrate,
    retention_changes,
    sync_dimensions,
)
from boucle.sinks.clickhouse.writer import TableWriter, warm_up_arrow

if TYPE_CHECKING:
    from boucle.config.settings import Warehouse

__all__ = ["ClickHouseSink", "merge_batches"]

logger = logging.getLogger(__name__)


def merge_batches(items: list[TableBatch]) -> list[TableBatch]:
    """One batch per ``(table, columns)``, rows kept in arrival order.

    >>> a = TableBatch("alerts", ("alert_id",), [("a",)])
    >>> b = TableBatch("alerts", ("alert_id",), [("b",)])
    >>> [(m.table, m.rows) for m in merge_batches([a, b])]
    [('alerts', [('a',), ('b',)])]
    """
    groups: dict[tuple[str, tuple[str, ...]], list[TableBatch]] = {}
    for item in items:
        if not isinstance(item, TableBatch):
            raise TypeError(f"ClickHouseSink expects TableBatch items, got {type(item).__name__}")
        if len(item):
            groups.setdefault((item.table, item.columns), []).append(item)
    return [TableBatch.concat(batches) for batches in groups.values()]


class _Partition(StatelessSinkPartition[TableBatch]):
    def __init__(self, sink: ClickHouseSink, writer: TableWriter):
        self._sink = sink
        self._writer = writer

    def write_batch(self, items: list[TableBatch]) -> None:
        for batch in merge_batches(items):
            written = self._writer.insert(batch)
            self._sink._count(batch.table, written)


class ClickHouseSink(DynamicSink[TableBatch]):
    """Writes :class:`TableBatch` items into ``warehouse`` (chDB or a ClickHouse server).

    ``rows_written`` counts rows sent per table by all workers of this process (a replayed row
    counts again; the tables collapse it).
    """

    def __init__(
        self, warehouse: Warehouse, *, max_retry_seconds: float = 300.0, dimensions: Sequence[TableBatch] = ()
    ):
        self.warehouse = warehouse
        self.dimensions = tuple(dimensions)  # rows of the dimension tables, synced at start
        self.max_retry_seconds = max_retry_seconds
        self.rows_written: dict[str, int] = {}
        self._lock = threading.Lock()
        self._schema_ready = False

    def prepare(self) -> None:
        """Connect, migrate and warm up now (see :func:`sinks.prepare_sinks`); idempotent."""
        client = connect(self.warehouse, max_retry_seconds=self.max_retry_seconds)
        warehouse, db = self.warehouse, self.warehouse.database
        with self._lock:
            if not self._schema_ready:
                if warehouse.migrates_on_run():
                    migrate(client, db)
                    apply_retention(client, db, warehouse.retention)
                else:
                    check_schema(client, db, redact_url(warehouse.url or warehouse.path))
                    differ = [table for table, _ in retention_changes(client, db, warehouse.retention)]
                    if differ:
                        logger.warning(
                            "warehouse.retention (%s) differs from the TTL of %s; `boucle db migrate` applies it",
                            warehouse.retention or "unlimited", ", ".join(differ),
                        )
                sync_dimensions(client, db, self.dimensions)
                self._schema_ready = True
        warm_up_arrow()

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _Partition:
        self.prepare()
        client = connect(self.warehouse, max_retry_seconds=self.max_retry_seconds)
        writer = TableWriter(client, self.warehouse.database, max_retry_seconds=self.max_retry_seconds)
        return _Partition(self, writer)

    def _count(self, table: str, rows: int) -> None:
        with self._lock:
            self.rows_written[table] = self.rows_written.get(table, 0) + rows
