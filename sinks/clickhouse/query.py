"""Read-side helpers: ad-hoc SQL for ``boucle query`` and the final merge of a bounded run."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from boucle.sinks.clickhouse.client import client_lock
from boucle.sinks.clickhouse.schema import warehouse_tables

if TYPE_CHECKING:
    from clickhouse_connect.driver.client import Client

__all__ = ["QueryError", "optimize_final", "run_query"]

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class QueryError(ValueError):
    """ClickHouse refused a query; the message is its first line (e.g. a syntax error)."""


def run_query(client: Client, sql: str) -> tuple[tuple[str, ...], list[tuple[Any, ...]]]:
    """Run one SELECT-like statement; returns ``(column_names, rows)``.

    Unqualified table names resolve in the client's database (``warehouse.database``).
    """
    from clickhouse_connect.driver.exceptions import DatabaseError

    try:
        with client_lock(client):
            result = client.query(sql)
    except DatabaseError as exc:
        text = str(exc).strip()
        raise QueryError(text.splitlines()[0][:500] if text else type(exc).__name__) from exc
    return tuple(result.column_names), list(result.result_rows)


def optimize_final(client: Client, database: str, tables: Iterable[str] | None = None) -> None:
    """``OPTIMIZE TABLE ... FINAL`` each of ``tables`` (default: every table of the warehouse,
    :func:`~sinks.clickhouse.schema.warehouse_tables`, rollups included), so replayed rows are
    collapsed and ``count()`` is exact without ``FINAL``. Synchronous; it rewrites every part, so
    call it at the end of a bounded run, not on a live one.
    """
    for table in warehouse_tables() if tables is None else tables:
        if not (_IDENTIFIER.match(database) and _IDENTIFIER.match(table)):
            raise ValueError(f"not a plain table name: {database}.{table}")
        with client_lock(client):
            client.command(f"OPTIMIZE TABLE `{database}`.`{table}` FINAL")
