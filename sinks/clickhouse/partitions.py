"""Split an insert so that no block spans more partitions than the server accepts.

ClickHouse refuses an insert block whose rows fall in more than ``max_partitions_per_insert_block``
partitions (100 by default; ``TOO_MANY_PARTS``, "Too many partitions for single INSERT block"). The
tables are partitioned by month, so a batch of a backfill out of time order (ten years of history:
120 months) is refused as a whole. :func:`split_by_partition` cuts such a batch into blocks of at
most ``limit`` partitions each, computing every row's partition from the table's own partition key
(``system.tables.partition_key``) in Arrow; a batch within the limit (a live stream: one or two
months) is sent as it is. The block also reaches the tables the source's materialized views write,
whose partitions may differ (``attribute_scores`` is partitioned on ``window_start``, its daily
rollups on the site's local ``day``, which can be the next month's): :func:`partition_keys` names
them all, and a block holds at most ``limit`` distinct combinations of them.

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
>>> t = t.append_column("day", pa.array([0, 40, 31, 70, 41], pa.date32()))  # row 2's day is February's
>>> [block["i"].to_pylist() for block in split_by_partition(t, ["toYYYYMM(at)", "toYYYYMM(day)"], limit=2)]
[[0, 2], [1, 4, 3]]
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

if TYPE_CHECKING:
    from clickhouse_connect.driver.client import Client

__all__ = ["partition_ids", "partition_key", "partition_keys", "partition_limit", "split_by_partition"]

_KEY = re.compile(r"^\s*(toYYYYMM|toYYYYMMDD|toYear|toDate|toStartOfMonth)?\(?\s*`?(\w+)`?\s*\)?\s*$")


def partition_key(client: Client, database: str, table: str) -> str:
    """The partition key expression of ``database.table`` (``""`` when it has none)."""
    rows = client.query(
        "SELECT partition_key FROM system.tables WHERE database = {db:String} AND name = {t:String}",
        parameters={"db": database, "t": table},
    ).result_rows
    return rows[0][0] if rows else ""


_VIEW_TARGET = re.compile(r"\bTO\s+`?\w+`?\.`?(\w+)`?")


def partition_keys(client: Client, database: str, table: str) -> list[str]:
    """The partition keys an insert into ``database.table`` meets: its own, then those of the tables
    its materialized views write (read as expressions of the source's columns: the views keep the
    column names)."""
    rows = client.query(
        "SELECT partition_key, dependencies_table FROM system.tables WHERE database = {db:String} AND name = {t:String}",
        parameters={"db": database, "t": table},
    ).result_rows
    if not rows:
        return []
    own, views = rows[0]
    keys = [own] if own else []
    if views:
        queries = client.query(
            "SELECT create_table_query FROM system.tables WHERE database = {db:String} AND name IN {v:Array(String)}",
            parameters={"db": database, "v": list(views)},
        ).result_rows
        for (query,) in queries:
            target = _VIEW_TARGET.search(query)
            key = partition_key(client, database, target[1]) if target else ""
            if key and key not in keys:
                keys.append(key)
    return keys


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


def split_by_partition(table: pa.Table, key: str | Sequence[str], limit: int) -> list[pa.Table]:
    """``table`` as blocks of at most ``limit`` partitions of ``key`` each (of every key of a list:
    at most ``limit`` combinations; see the module)."""
    if limit <= 0 or table.num_rows <= limit:
        return [table]
    found = [i for k in ([key] if isinstance(key, str) else key) if (i := partition_ids(table, k)) is not None]
    if not found:
        return [table]
    columns = [np.asarray(i.combine_chunks() if isinstance(i, pa.ChunkedArray) else i) for i in found]
    # One integer per combination of partitions, ordered as the combinations are.
    ids = columns[0] if len(columns) == 1 else np.unique(np.stack(columns, axis=1), axis=0, return_inverse=True)[1]
    ids = np.asarray(ids).reshape(-1)
    if len(np.unique(ids)) <= limit:
        return [table]
    order = np.argsort(ids, kind="stable")  # stable: rows of one partition keep their arrival order
    ordered = table.take(pa.array(order))
    sorted_ids = ids[order]
    firsts = np.flatnonzero(np.r_[True, sorted_ids[1:] != sorted_ids[:-1]])  # where each partition starts
    bounds = [*firsts[::limit].tolist(), table.num_rows]
    return [ordered.slice(start, end - start) for start, end in zip(bounds, bounds[1:])]
