"""Insert a :class:`~sinks.batch.TableBatch` as Arrow blocks, retrying while the server is away.

The Arrow type of every column is derived from its ClickHouse type (``DESCRIBE TABLE``, cached),
so the flow only follows the value conventions of :mod:`sinks.batch`:

>>> arrow_type("DateTime64(3, 'UTC')")
TimestampType(timestamp[ms, tz=UTC])
>>> arrow_type("Map(LowCardinality(String), UInt8)")
MapType(map<string, uint8>)
>>> arrow_type("Array(String)")
ListType(list<item: string>)

Every insert passes :data:`~sinks.clickhouse.client.INSERT_SETTINGS` explicitly (synchronous,
deduplicated, not collapsed on insert; see :mod:`sinks.clickhouse.client`).

Low-cardinality columns travel dictionary-encoded, which ClickHouse ingests faster.

A batch whose rows fall in more partitions than the server takes in one block (a backfill out of
time order) is split by partition (:mod:`sinks.clickhouse.partitions`). Only connection-level
failures are retried (:func:`~sinks.clickhouse.client.is_retryable`); a permanent error is a
:class:`~sinks.clickhouse.client.WarehouseError` at once, one line naming the table and the cause.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Sequence
from functools import lru_cache, partial
from typing import TYPE_CHECKING, Any, TypeVar

import pyarrow as pa

from boucle.sinks.batch import TableBatch
from boucle.sinks.clickhouse.client import (
    INSERT_SETTINGS,
    WarehouseError,
    _reason,
    client_lock,
    database_error_cause,
    with_retries,
)
from boucle.sinks.clickhouse.partitions import partition_keys, partition_limit, split_by_partition
from boucle.sinks.clickhouse.schema import table_columns

if TYPE_CHECKING:
    from clickhouse_connect.driver.client import Client

T = TypeVar("T")

__all__ = ["SchemaMismatch", "TableWriter", "arrow_type", "to_arrow", "warm_up_arrow"]


class SchemaMismatch(WarehouseError, ValueError):
    """The rows do not fit the table as it is (a column it lacks, a value of another type)."""

_SIMPLE: dict[str, pa.DataType] = {
    "String": pa.binary(),  # accepts str (UTF-8 encoded) and bytes (kept byte-exact)
    "UInt8": pa.uint8(),
    "UInt16": pa.uint16(),
    "UInt32": pa.uint32(),
    "UInt64": pa.uint64(),
    "Int8": pa.int8(),
    "Int16": pa.int16(),
    "Int32": pa.int32(),
    "Int64": pa.int64(),
    "Float32": pa.float32(),
    "Float64": pa.float64(),
    "Bool": pa.bool_(),
    "Date": pa.date32(),
}
_UNITS = {0: "s", 3: "ms", 6: "us", 9: "ns"}
_WRAPPER = re.compile(r"^(LowCardinality|Nullable)\((.*)\)$")
_DT64 = re.compile(r"^DateTime64\((\d)(?:,\s*'([^']*)')?\)$")
_DT = re.compile(r"^DateTime(?:\('([^']*)'\))?$")


def _split_args(inner: str) -> list[str]:
    """Split ``"K, V"`` at top-level commas."""
    parts, depth, start = [], 0, 0
    for i, char in enumerate(inner):
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif char == "," and depth == 0:
            parts.append(inner[start:i].strip())
            start = i + 1
    parts.append(inner[start:].strip())
    return parts


@lru_cache(maxsize=256)
def arrow_type(ch_type: str) -> pa.DataType:
    """The Arrow type used to send values of ClickHouse type ``ch_type``.

    ``String`` (plain or low-cardinality) travels as Arrow binary so that ``bytes`` stay
    byte-exact; ``str`` values are UTF-8 encoded on the way. ``DateTime64(p)`` takes integers
    counted in its own unit (epoch milliseconds for ``DateTime64(3)``), ``DateTime`` seconds.
    """
    ch_type = ch_type.strip()
    wrapped = _WRAPPER.match(ch_type)
    if wrapped:
        return arrow_type(wrapped[2])
    if ch_type in _SIMPLE:
        return _SIMPLE[ch_type]
    match = _DT64.match(ch_type)
    if match:
        return pa.timestamp(_UNITS[int(match[1])], tz=match[2] or "UTC")
    match = _DT.match(ch_type)
    if match:
        return pa.timestamp("s", tz=match[1] or "UTC")
    if ch_type.startswith("Array(") and ch_type.endswith(")"):
        return pa.list_(_string_as_text(arrow_type(ch_type[6:-1])))
    if ch_type.startswith("Map(") and ch_type.endswith(")"):
        key, value = _split_args(ch_type[4:-1])
        return pa.map_(_string_as_text(arrow_type(key)), _string_as_text(arrow_type(value)))
    raise TypeError(f"no Arrow conversion for ClickHouse type {ch_type}")


def _string_as_text(arrow: pa.DataType) -> pa.DataType:
    # Nested strings (map keys, array items) are text in our conventions.
    return pa.string() if arrow == pa.binary() else arrow


def _column(values: Sequence[Any], arrow: pa.DataType) -> pa.Array:
    if pa.types.is_map(arrow):
        # Much faster than pa.array(list_of_dicts): flatten keys/values with C-level iteration.
        offsets = pa.array([0, *itertools.accumulate(map(len, values))], pa.int32())
        keys = pa.array(list(itertools.chain.from_iterable(values)), arrow.key_type)
        items = pa.array(
            list(itertools.chain.from_iterable(map(dict.values, values))), arrow.item_type
        )
        return pa.MapArray.from_arrays(offsets, keys, items, type=arrow)
    if pa.types.is_list(arrow):
        offsets = pa.array([0, *itertools.accumulate(map(len, values))], pa.int32())
        items = pa.array(list(itertools.chain.from_iterable(values)), arrow.value_type)
        return pa.ListArray.from_arrays(offsets, items, type=arrow)
    return pa.array(values, arrow)


def to_arrow(batch: TableBatch, columns: Sequence[tuple[str, str]]) -> pa.Table:
    """``batch`` as an Arrow table typed after ``columns`` (``(name, clickhouse_type)`` pairs)."""
    types = dict(columns)
    unknown = [name for name in batch.columns if name not in types]
    if unknown:
        raise ValueError(f"table {batch.table} has no column {', '.join(unknown)}")
    arrays = []
    for name, values in zip(batch.columns, batch.data):
        ch_type = types[name]
        try:
            array = _column(values, arrow_type(ch_type))
            if ch_type.startswith("LowCardinality(") and pa.types.is_binary(array.type):
                array = array.dictionary_encode()
            arrays.append(array)
        except (pa.ArrowException, TypeError, ValueError, OverflowError) as exc:
            raise ValueError(f"{batch.table}.{name} ({ch_type}): {exc}") from exc
    return pa.Table.from_arrays(arrays, names=list(batch.columns))


@lru_cache(maxsize=1)
def warm_up_arrow() -> None:
    """Pay pyarrow's one-time cost of its first conversion (~0.2 s holding the GIL: it imports
    pandas) before the stream starts rather than in the middle of it."""
    to_arrow(TableBatch("warm_up", ("text", "tags"), [("a", ["b"])]), [("text", "LowCardinality(String)"), ("tags", "Array(String)")])


class TableWriter:
    """Writes batches into ``database`` through a shared client, one Arrow insert per block.

    A server that is down, restarting or overloaded is retried with exponential backoff for up
    to ``max_retry_seconds``; then :class:`~sinks.clickhouse.client.WarehouseError` is raised
    (rows are never dropped silently). A permanent error (the server refused the insert, or the
    rows do not fit the table: :class:`SchemaMismatch`) raises at once, without a retry.
    """

    def __init__(self, client: Client, database: str, *, max_retry_seconds: float = 300.0):
        self.client = client
        self.database = database
        self.max_retry_seconds = max_retry_seconds
        self._lock = client_lock(client)
        self._limit: int | None = None  # the server's max_partitions_per_insert_block, asked once
        self._keys: dict[str, list[str]] = {}  # table -> its partition key and its views' targets'

    def insert(self, batch: TableBatch) -> int:
        """Insert every row of ``batch``; returns the number of rows sent."""
        if not len(batch):
            return 0
        name, where = batch.table, f"{self.database}.{batch.table}"
        try:
            columns = self._retrying(lambda: table_columns(self.client, self.database, name), f"describe {where}")
            try:
                table = to_arrow(batch, columns)
            except ValueError as exc:
                raise SchemaMismatch(f"cannot insert into {where}: {exc}") from exc
            for block in self._blocks(name, table):
                self._retrying(partial(self._insert_block, name, block), f"insert {block.num_rows} rows into {where}")
        except WarehouseError:
            raise
        except Exception as exc:
            if not _is_database_error(exc):
                raise
            raise WarehouseError(f"cannot insert into {where}: {database_error_cause(exc)} (not retried)") from exc
        return len(batch)

    def _blocks(self, name: str, table: pa.Table) -> list[pa.Table]:
        """``table`` split so that no block spans more partitions than the server takes."""
        if self._limit is None:
            self._limit = self._retrying(lambda: self._locked(partition_limit, self.client), "read the settings")
        if not self._limit or table.num_rows <= self._limit:
            return [table]
        if name not in self._keys:
            self._keys[name] = self._retrying(
                lambda: self._locked(partition_keys, self.client, self.database, name), f"describe {name}"
            )
        return split_by_partition(table, self._keys[name], self._limit)

    def _insert_block(self, name: str, block: pa.Table) -> None:
        self._locked(self.client.insert_arrow, name, block, database=self.database, settings=dict(INSERT_SETTINGS))

    def _locked(self, call: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        with self._lock:
            return call(*args, **kwargs)

    def _retrying(self, call: Callable[[], T], what: str) -> T:
        def describe(exc: BaseException, attempts: int, elapsed: float) -> str:
            return f"could not {what}: warehouse unavailable for {elapsed:.0f}s ({attempts} attempts): {_reason(exc)}"

        return with_retries(call, max_retry_seconds=self.max_retry_seconds, describe=describe)


def _is_database_error(exc: BaseException) -> bool:
    from clickhouse_connect.driver.exceptions import Error

    return isinstance(exc, Error)
