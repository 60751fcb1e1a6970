"""The warehouse DDL (``schema.sql``) and the column types the writer converts to.

``init_schema`` is idempotent: every statement is ``CREATE ... IF NOT EXISTS``, so a second run
changes nothing. It runs when a sink is built or a command needs the tables, never at import.
"""

from __future__ import annotations

import re
import threading
from importlib import resources
from typing import TYPE_CHECKING

from sinks.clickhouse.client import client_lock

if TYPE_CHECKING:
    from clickhouse_connect.driver.client import Client

__all__ = ["init_schema", "schema_statements", "table_columns"]

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_COMMENT_LINE = re.compile(r"^\s*--.*$", re.MULTILINE)
_STATEMENT_END = re.compile(r";\s*$", re.MULTILINE)

_columns_cache: dict[tuple[int, str, str], tuple[tuple[str, str], ...]] = {}
_cache_lock = threading.Lock()


def schema_statements(database: str) -> list[str]:
    """The statements of ``schema.sql`` for ``database``, comments stripped.

    >>> [s.split("(")[0].strip() for s in schema_statements("boucle")][:2]
    ['CREATE DATABASE IF NOT EXISTS boucle', 'CREATE TABLE IF NOT EXISTS boucle.feedback']
    """
    if not _IDENTIFIER.match(database):
        raise ValueError(f"warehouse.database must be a plain identifier, got {database!r}")
    text = resources.files("sinks.clickhouse").joinpath("schema.sql").read_text(encoding="utf-8")
    text = _COMMENT_LINE.sub("", text).replace("{db}", database)
    return [stmt.strip() for stmt in _STATEMENT_END.split(text) if stmt.strip()]


def init_schema(client: Client, database: str) -> None:
    """Create the database and its tables if missing, then make it the client's default database."""
    with client_lock(client):
        for statement in schema_statements(database):
            client.command(statement)
        client.database = database
    with _cache_lock:
        for key in [k for k in _columns_cache if k[0] == id(client) and k[1] == database]:
            del _columns_cache[key]


def table_columns(client: Client, database: str, table: str) -> tuple[tuple[str, str], ...]:
    """``((name, clickhouse_type), ...)`` of ``database.table`` in table order (cached)."""
    key = (id(client), database, table)
    cached = _columns_cache.get(key)
    if cached is not None:
        return cached
    if not (_IDENTIFIER.match(database) and _IDENTIFIER.match(table)):
        raise ValueError(f"not a plain table name: {database}.{table}")
    with client_lock(client):
        result = client.query(f"DESCRIBE TABLE `{database}`.`{table}`")
    names = result.column_names
    i_name, i_type = names.index("name"), names.index("type")
    columns = tuple((row[i_name], row[i_type]) for row in result.result_rows)
    with _cache_lock:
        _columns_cache[key] = columns
    return columns
