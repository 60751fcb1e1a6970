"""Read a survey export (CSV or Parquet) as rows of text cells with their row number.

Row numbers are those a spreadsheet shows: the header rows count, so the first response of a
Qualtrics export (3 header rows) is row 4. A Parquet file has no header row: its first record is
row 1. Cells are text (Parquet values rendered as such: times in ISO 8601), missing ones empty.

>>> import tempfile, pathlib
>>> path = pathlib.Path(tempfile.mkdtemp()) / "export.csv"
>>> _ = path.write_text('id,Q1\\n"Question one",x\\n"{""ImportId"":""QID1"",""timeZone"":""Europe/Paris""}",y\\nr1,7\\n')
>>> with open_table(path, Layout(header_rows=3, import_id_row=3)) as table:
...     table.columns, table.zones, list(table.rows)
(['id', 'Q1'], {'id': 'Europe/Paris'}, [Row(number=4, cells=['r1', '7'], problem='')])
"""

from __future__ import annotations

import csv
import json
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any, Iterator

from boucle.sources.imports.mapping import Layout

__all__ = ["Row", "Table", "TableError", "open_table"]

_PARQUET_BATCH = 10_000


class TableError(ValueError):
    """The file cannot be read as the layout says (no header, not a Parquet file...)."""


@dataclass(frozen=True, slots=True)
class Row:
    """One data row: its number, its cells, or why it could not be read (``problem``)."""

    number: int
    cells: list[str]
    problem: str = ""


@dataclass
class Table:
    columns: list[str]
    zones: dict[str, str]  # column -> time zone its ImportId header cell names
    rows: Iterator[Row]
    total: int | None  # data rows expected (an estimate for CSV), for a progress bar


def _format(path: Path, layout: Layout) -> str:
    if layout.format != "auto":
        return layout.format
    return "parquet" if path.suffix.lower() in (".parquet", ".pq") else "csv"


@contextmanager
def open_table(path: Path, layout: Layout) -> Iterator[Table]:
    """The table in ``path``, open for the block."""
    if _format(path, layout) == "parquet":
        yield _parquet(path)
        return
    with path.open("r", encoding=layout.encoding, errors="replace", newline="") as f:
        reader = csv.reader(f, delimiter=layout.delimiter)
        headers = [next(reader, None) for _ in range(layout.header_rows)]
        if not headers or headers[0] is None or headers[-1] is None:
            raise TableError(f"{path}: fewer than the {layout.header_rows} header row(s) the mapping expects")
        columns = [c.strip() for c in headers[0]]
        zones = _zones(columns, headers[layout.import_id_row - 1]) if layout.import_id_row else {}
        yield Table(columns, zones, _csv_rows(reader, layout.header_rows), _count_lines(path) - layout.header_rows)


def _csv_rows(reader, first: int) -> Iterator[Row]:
    number = first
    while True:
        number += 1
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:  # a NUL byte, a cell over the csv module's size limit...
            yield Row(number, [], f"unreadable CSV row: {exc}")
            continue
        if cells and any(c.strip() for c in cells):  # blank lines are not responses
            yield Row(number, cells)


def _zones(columns: list[str], import_ids: list[str]) -> dict[str, str]:
    """Qualtrics' third header row: ``{"ImportId":"startDate","timeZone":"America/Denver"}`` per column."""
    zones = {}
    for column, cell in zip(columns, import_ids):
        try:
            info = json.loads(cell)
        except ValueError:
            continue
        if isinstance(info, dict) and isinstance(info.get("timeZone"), str):
            zones[column] = info["timeZone"]
    return zones


def _count_lines(path: Path) -> int:
    lines = 0
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            lines += chunk.count(b"\n")
    return lines


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _parquet(path: Path) -> Table:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        file = pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as exc:
        raise TableError(f"{path}: not a readable Parquet file ({exc})") from None

    def rows() -> Iterator[Row]:
        number = 0
        for batch in file.iter_batches(batch_size=_PARQUET_BATCH):
            columns = [batch.column(i).to_pylist() for i in range(batch.num_columns)]
            for values in zip(*columns):
                number += 1
                yield Row(number, [_text(v) for v in values])

    return Table(list(file.schema_arrow.names), {}, rows(), file.metadata.num_rows)
