"""The unit the flow sends to the warehouse sink: rows for one table, column-major names.

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
>>> len(b), b.table
(1, 'dead_letters')
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["TableBatch"]


@dataclass(frozen=True, slots=True)
class TableBatch:
    """Rows for one table; each row is a tuple in the order of ``columns``.

    Columns of the table that are not named get their ClickHouse defaults.
    """

    table: str
    columns: tuple[str, ...]
    rows: list[tuple]

    def __len__(self) -> int:
        return len(self.rows)
