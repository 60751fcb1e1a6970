"""The warehouse schema as versioned migrations, the BI dimensions, and the column types the writer uses.

Migrations are the files ``vNNNN_<name>.sql`` next to this module, applied in order by
:func:`migrate`: by ``boucle db init`` / ``boucle db migrate``, and by ``boucle run`` only when
``warehouse.auto_migrate`` allows it (embedded chDB by default). Read commands never change the
schema; :func:`check_schema` tells them (and ``run`` on a server) what is missing. Each applied
version is recorded in ``schema_migrations``; a version already recorded is skipped, so a second
run changes nothing. Never edit an applied migration: add the next file. Every statement is also
idempotent on its own (``IF NOT EXISTS``, ``CREATE OR REPLACE VIEW``), so a half-applied migration
(a crash in the middle) is simply applied again.

>>> [m.name for m in migrations()]
['tables', 'dimensions', 'rollups', 'views', 'cases', 'importance', 'series_status', 'importance_status', 'alert_lifecycle', 'local_days']
>>> [s.split("(")[0].strip() for s in schema_statements("boucle")][:2]
['CREATE DATABASE IF NOT EXISTS boucle', 'CREATE TABLE IF NOT EXISTS boucle.feedback']

:func:`warehouse_tables` lists the tables they create, read from the migrations themselves: the
one list that compaction (:func:`sinks.clickhouse.query.optimize_final`), counts and tests use.

Nothing connects or runs DDL at import time.
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from functools import lru_cache
from importlib import resources
from typing import TYPE_CHECKING, Any

from boucle.sinks.clickhouse.client import INSERT_SETTINGS, WarehouseError, client_lock

if TYPE_CHECKING:
    from clickhouse_connect.driver.client import Client

    from boucle.sinks.batch import TableBatch

__all__ = [
    "Migration",
    "RETENTION_COLUMNS",
    "SchemaNotCurrent",
    "apply_retention",
    "applied_migrations",
    "check_schema",
    "init_schema",
    "migrate",
    "migrations",
    "pending_migrations",
    "retention_changes",
    "schema_statements",
    "sync_dimensions",
    "table_columns",
    "ttl_expression",
    "warehouse_tables",
]

logger = logging.getLogger(__name__)

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_COMMENT_LINE = re.compile(r"^\s*--.*$", re.MULTILINE)
_STATEMENT_END = re.compile(r";\s*$", re.MULTILINE)
_MIGRATION_FILE = re.compile(r"^v(\d{4})_([a-z0-9_]+)\.sql$")
_CREATE_TABLE = re.compile(r"^CREATE TABLE IF NOT EXISTS \{db\}\.([A-Za-z_][A-Za-z0-9_]*)\b", re.MULTILINE)

# Tables whose rows expire after warehouse.retention, and the time column the TTL counts from.
RETENTION_COLUMNS = {
    "feedback": "occurred_at",
    "attribute_scores": "window_start",
    "alerts": "event_time",
    "dead_letters": "received_at",
    "site_attribute_daily": "day",
    "region_daily": "day",
    "cases": "opened_at",
    "invitations": "sent_at",
    "comment_themes": "window_start",
}

_columns_cache: dict[tuple[int, str, str], tuple[tuple[str, str], ...]] = {}
_cache_lock = threading.Lock()


class SchemaNotCurrent(WarehouseError):
    """The warehouse lacks migrations this code needs; only ``boucle db migrate`` applies them."""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    text: str  # the file, ``{db}`` not yet replaced

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.text.encode()).hexdigest()[:16]

    def statements(self, database: str) -> list[str]:
        _check_identifier(database)
        text = _COMMENT_LINE.sub("", self.text).replace("{db}", database)
        return [stmt.strip() for stmt in _STATEMENT_END.split(text) if stmt.strip()]


def migrations() -> list[Migration]:
    """Every migration shipped with the package, in version order."""
    found = []
    for entry in resources.files("boucle.sinks.clickhouse").iterdir():
        match = _MIGRATION_FILE.match(entry.name)
        if match:
            found.append(Migration(int(match[1]), match[2], entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise RuntimeError(f"two migrations share a version: {versions}")
    return found


@lru_cache(maxsize=1)
def warehouse_tables() -> tuple[str, ...]:
    """The tables the migrations create, in creation order: facts, dimensions, the rollups the
    materialized views fill, cases. Views are not tables; ``schema_migrations`` is the migrator's own.

    >>> warehouse_tables()[:4], warehouse_tables()[7:9]
    (('feedback', 'attribute_scores', 'alerts', 'dead_letters'), ('site_attribute_daily', 'region_daily'))
    """
    return tuple(name for m in migrations() for name in _CREATE_TABLE.findall(m.text))


def schema_statements(database: str) -> list[str]:
    """The statements of every migration for ``database``, comments stripped."""
    return [stmt for m in migrations() for stmt in m.statements(database)]


def _check_identifier(database: str) -> None:
    if not _IDENTIFIER.match(database):
        raise ValueError(f"warehouse.database must be a plain identifier, got {database!r}")


def applied_migrations(client: Client, database: str) -> dict[int, tuple[str, str]]:
    """``{version: (name, checksum)}`` recorded in ``database.schema_migrations`` ({} if none)."""
    _check_identifier(database)
    with client_lock(client):
        exists = client.query(
            "SELECT count() FROM system.tables WHERE database = {db:String} AND name = 'schema_migrations'",
            parameters={"db": database},
        ).result_rows[0][0]
        if not exists:
            return {}
        rows = client.query(
            f"SELECT version, name, checksum FROM `{database}`.schema_migrations FINAL ORDER BY version"
        ).result_rows
    return {int(v): (name, checksum) for v, name, checksum in rows}


def migrate(client: Client, database: str) -> list[str]:
    """Apply the migrations not yet recorded in ``database``; returns their ``vNNNN_name``."""
    _check_identifier(database)
    done: list[str] = []
    with client_lock(client):
        client.command(f"CREATE DATABASE IF NOT EXISTS `{database}`")
        client.command(
            f"CREATE TABLE IF NOT EXISTS `{database}`.schema_migrations"
            " (version UInt32, name String, checksum String, applied_at DateTime64(3, 'UTC'))"
            " ENGINE = ReplacingMergeTree ORDER BY version"
        )
        applied = applied_migrations(client, database)
        for migration in migrations():
            label = f"v{migration.version:04d}_{migration.name}"
            if migration.version in applied:
                if applied[migration.version][1] != migration.checksum:
                    logger.warning("migration %s changed after it was applied to %s; not re-applied",
                                   label, database)
                continue
            for statement in migration.statements(database):
                client.command(statement)
            client.command(
                f"INSERT INTO `{database}`.schema_migrations VALUES"
                " ({v:UInt32}, {n:String}, {c:String}, now64(3, 'UTC'))",
                parameters={"v": migration.version, "n": migration.name, "c": migration.checksum},
            )
            done.append(label)
        client.database = database
    _forget_columns(client, database)
    return done


def ttl_expression(column: str, column_type: str, retention: timedelta) -> str:
    """The TTL clause that drops rows ``retention`` after ``column``.

    >>> ttl_expression("occurred_at", "DateTime64(3, 'UTC')", timedelta(days=400))
    'toDateTime(occurred_at) + toIntervalDay(400)'
    >>> ttl_expression("day", "Date", timedelta(hours=36))
    'toDateTime(day) + toIntervalSecond(129600)'
    """
    seconds = int(retention.total_seconds())
    interval = f"toIntervalDay({seconds // 86400})" if seconds % 86400 == 0 else f"toIntervalSecond({seconds})"
    return f"toDateTime({column}) + {interval}"


def retention_changes(client: Client, database: str, retention: timedelta | None) -> list[tuple[str, str]]:
    """``[(table, ALTER statement)]`` that would make the TTL of every table in
    :data:`RETENTION_COLUMNS` match ``retention`` (None: keep rows forever); read-only."""
    _check_identifier(database)
    changes = []
    with client_lock(client):
        rows = client.query(
            "SELECT name, engine_full FROM system.tables WHERE database = {db:String}", parameters={"db": database}
        ).result_rows
        engines = dict(rows)
        for table, column in RETENTION_COLUMNS.items():
            if table not in engines:
                continue
            has_ttl = " TTL " in f" {engines[table]} "
            if retention is None:
                if has_ttl:
                    changes.append((table, f"ALTER TABLE `{database}`.`{table}` REMOVE TTL"))
                continue
            types = dict(table_columns(client, database, table))
            expression = ttl_expression(column, types[column], retention)
            if has_ttl and _ttl_of(engines[table]) == expression:
                continue
            changes.append((table, f"ALTER TABLE `{database}`.`{table}` MODIFY TTL {expression}"))
    return changes


def apply_retention(client: Client, database: str, retention: timedelta | None) -> list[str]:
    """Make the TTL of every table in :data:`RETENTION_COLUMNS` match ``retention`` (None: keep
    rows forever). Only tables whose TTL differs are altered; returns their names. Only
    ``boucle db migrate`` (and ``run`` when it may migrate) calls it: a read command never does.

    Existing parts are not rewritten at once (``materialize_ttl_after_modify = 0``): expired rows
    go at the next merges. Rows are dropped by whole months' partitions when a month has expired.
    """
    changed = []
    with client_lock(client):
        for table, statement in retention_changes(client, database, retention):
            client.command(statement, settings={"materialize_ttl_after_modify": 0})
            changed.append(table)
    return changed


def pending_migrations(client: Client, database: str) -> list[str]:
    """``vNNNN_name`` of the shipped migrations not yet applied to ``database`` (read-only)."""
    applied = applied_migrations(client, database)
    return [f"v{m.version:04d}_{m.name}" for m in migrations() if m.version not in applied]


def check_schema(client: Client, database: str, where: str) -> None:
    """Raise :class:`SchemaNotCurrent` unless every shipped migration is applied to ``database``.

    Read-only: what ``run`` does on a server it may not migrate, and what read commands do first.
    """
    pending = pending_migrations(client, database)
    if not pending:
        return
    if len(pending) == len(migrations()):
        state = f"has no Boucle schema in database {database}"
    else:
        state = f"lacks schema migration{'s' * (len(pending) > 1)} {', '.join(pending)} in database {database}"
    raise SchemaNotCurrent(f"the warehouse {where} {state}: run `boucle db migrate` first")


def _ttl_of(engine_full: str) -> str:
    match = re.search(r"\bTTL (.*?)(?: SETTINGS |$)", engine_full)
    return match[1].strip() if match else ""


def sync_dimensions(client: Client, database: str, tables: Iterable[TableBatch]) -> int:
    """Upsert the rows of dimension tables (``sites``, ``questions``: ReplacingMergeTrees keyed by
    their first column), one :class:`~sinks.batch.TableBatch` per table.

    Only rows that are new or changed are inserted, so a second call inserts nothing. Returns the
    number of rows inserted.
    """
    _check_identifier(database)
    inserted = 0
    for batch in tables:
        if not _IDENTIFIER.match(batch.table) or not all(map(_IDENTIFIER.match, batch.columns)):
            raise ValueError(f"not a plain table or column name: {batch.table}{batch.columns}")
        with client_lock(client):
            current = set(
                tuple(row)
                for row in client.query(
                    f"SELECT {', '.join(batch.columns)} FROM `{database}`.`{batch.table}` FINAL"
                ).result_rows
            )
            missing = [row for row in batch.rows if tuple(row) not in current]
            if missing:
                client.insert(batch.table, missing, column_names=list(batch.columns), database=database,
                              settings=dict(INSERT_SETTINGS))
        inserted += len(missing)
    return inserted


def init_schema(
    client: Client,
    database: str,
    *,
    retention: timedelta | None = None,
    dimensions: Iterable[TableBatch] = (),
) -> list[str]:
    """Apply pending migrations, set the retention TTL, and sync the ``dimensions`` rows (see
    :func:`sync_dimensions`); make ``database`` the client's default. Idempotent. Returns applied
    migrations.
    """
    applied = migrate(client, database)
    apply_retention(client, database, retention)
    sync_dimensions(client, database, dimensions)
    return applied


def _forget_columns(client: Any, database: str) -> None:
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
