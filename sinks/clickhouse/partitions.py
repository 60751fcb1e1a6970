"""Split an insert so that no block spans more partitions than the server accepts.

ClickHouse refuses an insert block whose rows fall in more than ``max_partitions_per_insert_block``
partitions (100 by default; ``TOO_MANY_PARTS``, "Too many partitions for single INSERT block"). The
tables are partitioned by month, so a batch of a backfill out of time order (ten years of history:
120 months) is refused as a whole. :func:`split_by_partition` cuts such a batch into blocks of at
most ``limit`` partitions each, computing every row's partition from the table's own partition key
(``system.tables.partition_key``) in Arrow; a batch within the limit (a live stream: one or two
months) is sent as it is.

The split is deterministic (partitions in ascending order, rows of a partition in arrival order), so
a retried batch sends the same blocks again and the tables' insert deduplication drops them, as it
drops an unsplit batch; a re-batched replay collapses in the ReplacingMergeTrees as before.

>>> import pyarrow as pa
>>> day = 86_400_000
>>> t = pa.table({"at": pa.array([0, 40 * day, 1, 70 * day, 41 * day], pa.timestamp("ms", tz="UTC")),
...               "i": [0, 1, 2, 3, 4]})
>>> [block["i"].to_pylist() for block in split_by_partition(t, "toYYYYMM(at)", limit=2)]
[[0, 2, 1, 4], [3]]
>>> [block["i"].to_pylist() for block in split_by_partition(t, "toYYYYMM(at)", limit=100)]
[[0, 1, 2, 3, 4]]
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

if TYPE_CHECKING:
    from clickhouse_connect.driver.client import Client

__all__ = ["partition_ids", "partition_key", "partition_limit", "split_by_partition"]

_KEY = re.compile(r"^\s*(toYYYYMM|toYYYYMMDD|toYear|toDate|toStartOfMonth)?\(?\s*`?(\w+)`?\s*\)?\s*$")


def partition_key(client: Client, database: str, table: str) -> str:
    """The partition key expression of ``database.table`` (``""`` when it has none)."""
    rows = client.query(
        "SELECT partition_key FROM system.tables WHERE database = {db:String} AND name = {t:String}",
        parameters={"db": database, "t": table},
    ).result_rows
    return rows[0][0] if rows else ""


def partition_limit(client: Client) -> int:
    """The server's ``max_partitions_per_insert_block`` for this session (0: no limit)."""
    return int(client.query("SELECT getSetting('max_partitions_per_insert_block')").result_rows[0][0])


def partition_ids(table: pa.Table, key: str) -> pa.Array | None:
    """Every row's partition under ``key`` as integers, or None when it cannot tell.

    Known keys: a bare column and ``toYYYYMM``, ``toYYYYMMDD``, ``toYear``, ``toDate``,
    ``toStartOfMonth`` of a date or time column. None for any other expression, or when the column
    is not in the batch (every row then takes its default: one partition).
    """
    match = _KEY.match(key or "")
    if match is None or match[2] not in table.column_names:
        return None
    function, column = match[1], table.column(match[2])
    if function is None:
        return column
    if not (pa.types.is_timestamp(column.type) or pa.types.is_date(column.type)):
        return None
    year = pc.year(column)
    if function == "toYear":
        return year
    month = pc.add(pc.multiply(year, 100), pc.month(column))
    if function in ("toYYYYMM", "toStartOfMonth"):
        return month
    return pc.add(pc.multiply(month, 100), pc.day(column))  # a day, whatever its form


def split_by_partition(table: pa.Table, key: str, limit: int) -> list[pa.Table]:
    """``table`` as blocks of at most ``limit`` partitions of ``key`` each (see the module)."""
    if limit <= 0 or table.num_rows <= limit:
        return [table]
    ids = partition_ids(table, key)
    if ids is None or pc.count_distinct(ids).as_py() <= limit:
        return [table]
    if isinstance(ids, pa.ChunkedArray):
        ids = ids.combine_chunks()
    order = pc.sort_indices(ids)  # stable: rows of one partition keep their arrival order
    ordered = table.take(order)
    sorted_ids = np.asarray(pc.take(ids, order))
    firsts = np.flatnonzero(np.r_[True, sorted_ids[1:] != sorted_ids[:-1]])  # where each partition starts
    bounds = [*firsts[::limit].tolist(), table.num_rows]
    return [ordered.slice(start, end - start) for start, end in zip(bounds, bounds[1:])]
