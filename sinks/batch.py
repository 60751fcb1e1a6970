"""The unit the flow sends to the warehouse sink: rows for one table, stored column by column.

Value conventions (what the flow puts in each cell, by ClickHouse column type):

=============================  ==========================================================
``DateTime64(3, 'UTC')``       ``int`` epoch milliseconds
``Map(String, UInt8)``         ``dict[str, int]``
``Array(String)``              ``list[str]``
``String``                     ``str``, or ``bytes`` kept byte-exact (e.g. dead_letters.raw)
``LowCardinality(String)``     ``str``
integers / ``Float64``         Python ``int`` / ``float``
=============================  ==========================================================

``None`` is not a value: every column is non-nullable, so send ``""``/``0``/``{}``/``[]``.

>>> b = TableBatch("dead_letters", ("origin", "partition", "offset"), [("sim", 0, 7)])
>>> len(b), b.table, b.data
(1, 'dead_letters', (['sim'], [0], [7]))
"""

from __future__ import annotations

from operator import itemgetter
from typing import Iterable, Sequence

__all__ = ["TableBatch"]


class TableBatch:
    """Rows for one table, stored column-major (one list per column, in the order of ``columns``).

    Build it from rows (``TableBatch(table, columns, rows)``) or, cheaper on hot paths, from
    column lists (``TableBatch.from_columns``). Columns of the table that are not named get their
    ClickHouse defaults.

    >>> b = TableBatch.from_columns("alerts", {"alert_id": ["a", "b"], "kind": ["hot", "hot"]})
    >>> TableBatch.concat([b, TableBatch("alerts", ("alert_id", "kind"), [("c", "hot")])]).rows
    [('a', 'hot'), ('b', 'hot'), ('c', 'hot')]
    """

    __slots__ = ("table", "columns", "data")

    def __init__(self, table: str, columns: Sequence[str], rows: Iterable[tuple] = ()) -> None:
        self.table = table
        self.columns = tuple(columns)
        rows = rows if isinstance(rows, list) else list(rows)
        width = len(self.columns)
        if set(map(len, rows)) - {width}:
            bad = next(row for row in rows if len(row) != width)
            raise ValueError(f"a row of {table} has {len(bad)} values for {width} columns: {bad!r}"[:300])
        # One itemgetter pass per column: zip(*rows) allocates an iterator per row.
        self.data: tuple[list, ...] = tuple(list(map(itemgetter(i), rows)) for i in range(width))

    @classmethod
    def from_columns(cls, table: str, columns: dict[str, list]) -> "TableBatch":
        lengths = {len(values) for values in columns.values()}
        if len(lengths) > 1:
            raise ValueError(f"columns of {table} have different lengths: {sorted(lengths)}")
        batch = cls.__new__(cls)
        batch.table, batch.columns, batch.data = table, tuple(columns), tuple(columns.values())
        return batch

    @classmethod
    def concat(cls, batches: Sequence["TableBatch"]) -> "TableBatch":
        """One batch with the rows of ``batches`` (same table and columns), in order."""
        first = batches[0]
        data = tuple([] for _ in first.columns)
        for batch in batches:
            if (batch.table, batch.columns) != (first.table, first.columns):
                raise ValueError(f"cannot concatenate {batch.table}{batch.columns} to {first.table}{first.columns}")
            for into, values in zip(data, batch.data):
                into.extend(values)
        return cls.from_columns(first.table, dict(zip(first.columns, data)))

    @property
    def rows(self) -> list[tuple]:
        return list(zip(*self.data))

    def __len__(self) -> int:
        return len(self.data[0]) if self.data else 0

    def __getstate__(self) -> tuple:
        return self.table, self.columns, self.data

    def __setstate__(self, state: tuple) -> None:
        self.table, self.columns, self.data = state

    def __repr__(self) -> str:
        return f"TableBatch({self.table!r}, {len(self)} rows x {len(self.columns)} columns)"
