"""Rows from the warehouse as the CLI prints them (``boucle query``, ``boucle cases …``).

Stored text is customer-written: every cell is a rich ``Text`` (markup such as
``[link=http://evil]click[/link]`` or an unmatched ``[/x]`` is shown as typed, never parsed), and
control characters are shown as escapes (:mod:`sinks.safe_text`); JSON lines carry them as
``\\uXXXX`` escapes, CSV cells as visible escapes.
"""

from __future__ import annotations

import csv
import io
from enum import Enum
from typing import Any, Iterable, Sequence, TextIO

import orjson
from rich.console import Console
from rich.table import Table

from boucle.sinks.safe_text import json_line, rich_text, terminal_text

__all__ = ["FORMATS", "RowFormat", "print_rows", "rows_table", "write_csv", "write_json_lines"]


class RowFormat(str, Enum):
    """How rows are printed: a table on the console, JSON lines or CSV."""

    table = "table"
    json = "json"
    csv = "csv"


FORMATS = tuple(f.value for f in RowFormat)


def rows_table(columns: Sequence[str], rows: Iterable[Sequence[Any]], title: str | None = None,
               justify: dict[str, str] | None = None) -> Table:
    """A rich table of ``rows`` whose every header and cell is safe text.

    >>> from io import StringIO
    >>> console = Console(file=StringIO(), width=60)
    >>> console.print(rows_table(["comment"], [["[link=http://evil]click[/link] [/x]"]]))
    >>> "[link=http://evil]click[/link] [/x]" in console.file.getvalue()
    True
    """
    table = Table(title=rich_text(title) if title else None, title_justify="left")
    justify = justify or {}
    for name in columns:
        table.add_column(rich_text(name), justify=justify.get(name, "left"))
    for row in rows:
        table.add_row(*(rich_text("None" if v is None else v, newlines=True) for v in row))
    return table


def write_json_lines(out: TextIO, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    for row in rows:
        out.write(json_line(orjson.dumps(dict(zip(columns, row)), default=str).decode()) + "\n")


def write_csv(out: TextIO, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow([terminal_text(c) for c in columns])
    writer.writerows([terminal_text(v, newlines=True) if isinstance(v, str) else v for v in row] for row in rows)
    out.write(buffer.getvalue())


def print_rows(columns: Sequence[str], rows: Iterable[Sequence[Any]], format: str, console: Console,
               out: TextIO) -> None:
    """``rows`` as a table on ``console``, or as JSON lines / CSV on ``out``."""
    if format == "json":
        write_json_lines(out, columns, rows)
    elif format == "csv":
        write_csv(out, columns, rows)
    else:
        console.print(rows_table(columns, rows))
