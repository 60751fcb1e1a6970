"""Read-side helpers: ad-hoc SQL for ``boucle query`` and the final merge of a bounded run.

``boucle query`` runs exactly one statement: :func:`single_statement` reads the SQL as ClickHouse's
lexer does (string literals, quoted identifiers, ``--``/``#`` and nested ``/* */`` comments,
``$tag$`` heredocs) and refuses anything after a top-level ``;``. Whether the statement may write
is not decided by reading it: the read-only session of the client refuses it (see
:func:`sinks.clickhouse.client.connect`).

>>> single_statement("SELECT ';' AS semicolon /* a ; in a comment */;")
"SELECT ';' AS semicolon /* a ; in a comment */"
>>> single_statement("SELECT 1; DROP TABLE dead_letters")
Traceback (most recent call last):
...
boucle.sinks.clickhouse.query.QueryError: one statement at a time: a second one starts at character 11 ('DROP TABLE dead_letters')
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from boucle.sinks.clickhouse.client import client_lock
from boucle.sinks.clickhouse.schema import warehouse_tables

if TYPE_CHECKING:
    from clickhouse_connect.driver.client import Client

__all__ = ["QueryError", "optimize_final", "run_query", "single_statement"]

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class QueryError(ValueError):
    """ClickHouse refused a query; the message is its first line (e.g. a syntax error)."""


_HEREDOC = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)?\$")


def _skip_quoted(sql: str, i: int, quote: str) -> int:
    """The index after the literal or identifier opened by ``sql[i] == quote`` (``\\`` escapes,
    a doubled quote stands for itself); ``len(sql)`` when it never closes."""
    i += 1
    while i < len(sql):
        if sql[i] == "\\":
            i += 2
        elif sql[i] == quote:
            if i + 1 < len(sql) and sql[i + 1] == quote:
                i += 2
            else:
                return i + 1
        else:
            i += 1
    return len(sql)


def _skip_block_comment(sql: str, i: int) -> int:
    depth, i = 1, i + 2  # ClickHouse nests /* */ comments
    while i < len(sql) and depth:
        if sql.startswith("/*", i):
            depth, i = depth + 1, i + 2
        elif sql.startswith("*/", i):
            depth, i = depth - 1, i + 2
        else:
            i += 1
    return i


def _tokens_end(sql: str, i: int) -> int | None:
    """If ``sql[i]`` opens a literal, identifier, comment or heredoc, the index after it."""
    char = sql[i]
    if char in "'\"`":
        return _skip_quoted(sql, i, char)
    if sql.startswith("--", i) or sql.startswith("# ", i) or sql.startswith("#!", i):
        end = sql.find("\n", i)
        return len(sql) if end < 0 else end + 1
    if sql.startswith("/*", i):
        return _skip_block_comment(sql, i)
    if char == "$" and (match := _HEREDOC.match(sql, i)):
        end = sql.find(match[0], match.end())
        return len(sql) if end < 0 else end + len(match[0])
    return None


def _is_blank(sql: str) -> bool:
    """Only whitespace, comments and semicolons."""
    i = 0
    while i < len(sql):
        if sql[i].isspace() or sql[i] == ";":
            i += 1
            continue
        end = _tokens_end(sql, i)
        if end is None or sql[i] in "'\"`$":
            return False
        i = end
    return True


def single_statement(sql: str) -> str:
    """``sql`` without its trailing ``;``; :class:`QueryError` if a second statement follows."""
    i = 0
    while i < len(sql):
        if sql[i] == ";":
            rest = sql[i + 1:]
            if not _is_blank(rest):
                start = i + 1 + (len(rest) - len(rest.lstrip()))
                shown = sql[start:start + 60].splitlines()[0]
                raise QueryError(f"one statement at a time: a second one starts at character {start + 1} ({shown!r})")
            return sql[:i]
        end = _tokens_end(sql, i)
        i = i + 1 if end is None else end
    return sql


def run_query(client: Client, sql: str) -> tuple[tuple[str, ...], list[tuple[Any, ...]]]:
    """Run one statement (:func:`single_statement`); returns ``(column_names, rows)``.

    Unqualified table names resolve in the client's database (``warehouse.database``). Whether
    it may write is the client's session: :func:`~sinks.clickhouse.client.connect` with
    ``read_only=True`` refuses every write and DDL.
    """
    from clickhouse_connect.driver.exceptions import DatabaseError

    statement = single_statement(sql)
    if _is_blank(statement):
        raise QueryError("no SQL statement given")
    try:
        with client_lock(client):
            result = client.query(statement)
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
