"""One clickhouse-connect client per warehouse per process, shared and guarded by a lock.

``connect(warehouse)`` opens embedded chDB at ``warehouse.path`` when ``warehouse.url`` is None,
otherwise a ClickHouse server over HTTP. Clients are cached by target: bytewax runs its workers as
threads of one process, and chDB allows a single data path per process (and one process per path),
so every worker, the schema step and the query helpers must go through the same client. Use
:func:`client_lock` around every call that must not interleave with another thread's (the writer
does). Query results carry aware UTC datetimes (``tz_mode="aware"``).

Every insert passes :data:`INSERT_SETTINGS` explicitly: ``async_insert=0`` (ClickHouse >= 26.2
turns async inserts on by default, which would acknowledge rows before they are stored),
``insert_deduplicate=1`` (a retried identical block is dropped by the tables'
``non_replicated_deduplication_window``) and ``optimize_on_insert=0``: ReplacingMergeTree would
otherwise sort and collapse every block on insert (more than half of the insert time); duplicates
are collapsed by background merges, ``FINAL`` and ``OPTIMIZE ... FINAL`` as for any replay.

Failures become a :class:`WarehouseError` with a one-line human message (the driver's exception is
kept as ``__cause__``). :func:`is_retryable` draws the line between the two kinds of failure:
*connection-level* ones (refused, reset, timed out, an HTTP 5xx without a ClickHouse code, a server
that is busy or restarting: :data:`RETRYABLE_CODES`) are retried; a *permanent* database error
(a bad query, an unknown table or column, a schema mismatch, too many partitions for one insert
block, wrong credentials) is not: retrying cannot change the answer. Nothing connects at import time.
"""

from __future__ import annotations

import fcntl
import logging
import os
import re
import threading
import time
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from boucle.config.redact import redact_url

if TYPE_CHECKING:
    from clickhouse_connect.driver.client import Client

    from boucle.config.settings import Warehouse

__all__ = [
    "INSERT_SETTINGS",
    "READ_ONLY_LEVEL",
    "WarehouseError",
    "client_lock",
    "close_all",
    "connect",
    "database_error_cause",
    "is_retryable",
    "with_retries",
]

logger = logging.getLogger(__name__)
T = TypeVar("T")

# The settings of every insert (see the module docstring); pass a copy: ``settings=dict(INSERT_SETTINGS)``.
INSERT_SETTINGS: dict[str, Any] = {"async_insert": 0, "insert_deduplicate": 1, "optimize_on_insert": 0}

# The ``readonly`` level of read-only sessions: 2 refuses inserts, DDL, OPTIMIZE and TRUNCATE but
# lets a query change its settings (the HTTP client sends some per request; `SETTINGS max_threads`).
READ_ONLY_LEVEL = 2

_HTTP_5XX = re.compile(r"HTTP status 5\d\d")
_DB_EXCEPTION = re.compile(r"DB::Exception: (.*)")
_VERSION = re.compile(r"\(version [^()]*(?:\([^()]*\))?[^()]*\)")
_NAME = re.compile(r"\s*\(([A-Z][A-Z0-9_]+)\)")

# Retries within a deadline this short (interactive commands) are logged at DEBUG only.
QUIET_RETRY_SECONDS = 10.0

# ClickHouse error codes that mean "try again later" rather than "this request is wrong".
RETRYABLE_CODES = frozenset(
    {
        3,  # UNEXPECTED_END_OF_FILE
        159,  # TIMEOUT_EXCEEDED
        202,  # TOO_MANY_SIMULTANEOUS_QUERIES
        203,  # NO_FREE_CONNECTION
        209,  # SOCKET_TIMEOUT
        210,  # NETWORK_ERROR
        241,  # MEMORY_LIMIT_EXCEEDED
        242,  # TABLE_IS_READ_ONLY (a replica restarting; 164 READONLY is a read-only user: permanent)
        319,  # UNKNOWN_STATUS_OF_INSERT
        394,  # QUERY_WAS_CANCELLED (server shutting down)
        425,  # SYSTEM_ERROR
    }
)
# TOO_MANY_PARTS is both "merges are slower than inserts" (the server pushing back: retried) and
# "too many partitions for single INSERT block" / "too many parts in all partitions" (the insert or
# the partitioning is wrong: permanent). Only the first is retried.
TOO_MANY_PARTS = 252
_BACKPRESSURE = "Merges are processing significantly slower than inserts"
# ... and those that mean the credentials are wrong.
AUTH_CODES = frozenset({192, 193, 194, 195, 516})  # UNKNOWN_USER .. AUTHENTICATION_FAILED


class WarehouseError(RuntimeError):
    """The warehouse cannot be used; the message is one line meant for a human."""


class _Shared:
    __slots__ = ("client", "label")

    def __init__(self, client: Client, label: str):
        self.client = client
        self.label = label


_REGISTRY: dict[tuple, _Shared] = {}
_REGISTRY_LOCK = threading.Lock()
_LOCKS: weakref.WeakKeyDictionary[Any, threading.RLock] = weakref.WeakKeyDictionary()
_LOCKS_LOCK = threading.Lock()


def client_lock(client: Client) -> threading.RLock:
    """The lock shared by every user of ``client`` in this process (created on first use)."""
    with _LOCKS_LOCK:
        lock = _LOCKS.get(client)
        if lock is None:
            lock = _LOCKS[client] = threading.RLock()
        return lock


def connect(warehouse: Warehouse, *, max_retry_seconds: float = 30.0, read_only: bool = False) -> Client:
    """The process-wide client of ``warehouse``, opened on first call.

    A server that does not answer is retried with backoff for ``max_retry_seconds`` (so the engine
    may start before its database); wrong credentials and a locked chDB path fail at once.
    The client's default database is ``warehouse.database`` once it exists (see
    :func:`sinks.clickhouse.schema.init_schema`); the writer always qualifies table names.

    ``read_only`` gives another client whose session refuses every write and DDL (ClickHouse's
    ``readonly`` setting, :data:`READ_ONLY_LEVEL`, unless the user is read-only already): what
    the read commands use, so that none of them can change the warehouse. A chDB path that does
    not exist is not created for it.
    """
    if warehouse.url is None:
        key: tuple = ("chdb", os.path.realpath(warehouse.path), read_only)
    else:
        key = ("http", warehouse.url, warehouse.user, read_only)
    with _REGISTRY_LOCK:
        shared = _REGISTRY.get(key)
        if shared is None:
            if warehouse.url is None:
                if read_only and not os.path.isdir(key[1]):
                    raise WarehouseError(
                        f"no warehouse at {warehouse.path} yet: run `boucle run` or `boucle db migrate` first"
                    )
                client = _open_chdb(key[1])
                label = f"chDB at {key[1]}"
            else:
                client = _open_http(warehouse, max_retry_seconds)
                label = f"ClickHouse at {redact_url(warehouse.url)}"
            if read_only:
                _make_read_only(client, label)
            shared = _REGISTRY[key] = _Shared(client, label)
        client = shared.client
    with client_lock(client):
        if client.database != warehouse.database and _database_exists(client, warehouse.database):
            client.database = warehouse.database
    return client


def _make_read_only(client: Client, label: str) -> None:
    """Turn the session of ``client`` read-only (a user whose profile already is stays as it is)."""
    level = int(client.query("SELECT getSetting('readonly')").result_rows[0][0])
    if level == 0:
        client.set_client_setting("readonly", READ_ONLY_LEVEL)
        level = int(client.query("SELECT getSetting('readonly')").result_rows[0][0])
    if level == 0:  # never silently writable
        raise WarehouseError(f"{label} did not accept a read-only session")


def close_all() -> None:
    """Close every shared client (tests; the end of a CLI command). Later connects reopen."""
    with _REGISTRY_LOCK:
        entries = list(_REGISTRY.values())
        _REGISTRY.clear()
    for shared in entries:
        with client_lock(shared.client):
            try:
                shared.client.close()
            except Exception:
                logger.debug("closing %s failed", shared.label, exc_info=True)


def is_retryable(exc: BaseException) -> bool:
    """True for errors a later attempt may not see: the server is down, busy or restarting."""
    from clickhouse_connect.driver.exceptions import DatabaseError, OperationalError

    code = getattr(exc, "code", None)
    if isinstance(exc, DatabaseError) and code is not None:  # the server answered: its code decides
        if code == TOO_MANY_PARTS:
            return _BACKPRESSURE in str(exc)
        return code in RETRYABLE_CODES
    if isinstance(exc, (OperationalError, ConnectionError, TimeoutError)):
        return True
    # An HTTP 5xx without a ClickHouse code comes from something in front of the server (a proxy,
    # a load balancer) or from a server that could not answer: the connection, not the request.
    return isinstance(exc, DatabaseError) and _HTTP_5XX.search(str(exc)) is not None


def database_error_cause(exc: BaseException) -> str:
    """The cause of a database error in one short line: ClickHouse's first sentence and its name.

    >>> from clickhouse_connect.driver.exceptions import DatabaseError
    >>> database_error_cause(DatabaseError(
    ...     "Code: 252. DB::Exception: Too many partitions for single INSERT block (more than 100). The limit"
    ...     " is controlled by 'max_partitions_per_insert_block' setting. (TOO_MANY_PARTS) (version 26.9.2.1)",
    ...     code=252, name="TOO_MANY_PARTS"))
    'Too many partitions for single INSERT block (more than 100) (TOO_MANY_PARTS)'
    """
    text = " ".join(str(exc).split())
    match = _DB_EXCEPTION.search(text)
    if match is None:
        return _first_line(exc)
    message = _VERSION.sub("", match[1]).strip()
    name = getattr(exc, "name", None) or next(iter(_NAME.findall(message)[-1:]), None)
    message = _NAME.sub("", message).strip()
    sentence = re.split(r"(?<=[^.\s]{2})\. (?=[A-Z])", message, maxsplit=1)[0].rstrip(". ")
    return f"{sentence} ({name})" if name else sentence


def with_retries(
    call: Callable[[], T],
    *,
    max_retry_seconds: float,
    describe: Callable[[BaseException, int, float], str],
    first_delay: float = 0.1,
    max_delay: float = 5.0,
) -> T:
    """Run ``call``, retrying retryable errors with exponential backoff.

    After ``max_retry_seconds`` the last error becomes a :class:`WarehouseError` whose message is
    ``describe(error, attempts, elapsed_seconds)``. Other errors propagate unchanged.
    """
    start = time.monotonic()
    delay = first_delay
    attempts = 0
    while True:
        attempts += 1
        try:
            return call()
        except Exception as exc:
            if not is_retryable(exc):
                raise
            elapsed = time.monotonic() - start
            if elapsed + delay > max_retry_seconds:
                raise WarehouseError(describe(exc, attempts, elapsed)) from exc
            # A short deadline is an interactive command: its one-line error tells the story.
            logger.log(logging.WARNING if max_retry_seconds > QUIET_RETRY_SECONDS else logging.DEBUG,
                       "warehouse unavailable (attempt %d), retrying in %.1fs: %s", attempts, delay, _reason(exc))
            time.sleep(delay)
            delay = min(delay * 2, max_delay)


# ---- chDB -------------------------------------------------------------------------------------

def _open_chdb(path: str) -> Client:
    import clickhouse_connect
    from clickhouse_connect.driver.exceptions import Error

    others = [key[1] for key in _REGISTRY if key[0] == "chdb" and key[1] != path]
    if others:
        raise WarehouseError(
            f"chDB opens one data path per process: {others[0]} is already open, cannot open {path}"
        )
    try:
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    except OSError as exc:
        raise WarehouseError(f"cannot create the directory of the chDB warehouse {path}: {exc.strerror}") from exc
    try:
        return clickhouse_connect.get_client(interface="chdb", path=path, tz_mode="aware")
    except Error as exc:
        holder = _chdb_lock_holder(path)
        if holder is not None:
            raise WarehouseError(
                f"the chDB warehouse {path} is in use by another process{holder}; "
                "is a `boucle run` still going?"
            ) from exc
        if "already initialized with path" in str(exc):
            raise WarehouseError(
                f"chDB opens one data path per process and another one is already open here, "
                f"cannot open {path}"
            ) from exc
        raise WarehouseError(f"cannot open the chDB warehouse {path}: {_first_line(exc)}") from exc


def _chdb_lock_holder(path: str) -> str | None:
    """`` (pid N)`` if another process holds the chDB ``status`` lock of ``path``, else None.

    chDB (like clickhouse-server) takes an exclusive ``flock`` on ``<path>/status``. Only called
    after opening failed, so this process holds no lock on it; the probe releases at once.
    """
    status = os.path.join(path, "status")
    try:
        fd = os.open(status, os.O_RDONLY)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            pid = ""
            try:
                with open(status, encoding="utf-8", errors="replace") as handle:
                    first = handle.readline().strip()
                if first.startswith("PID:"):
                    pid = f" (pid {first[4:].strip()})"
            except OSError:
                pass
            return pid
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


# ---- HTTP -------------------------------------------------------------------------------------

def _open_http(warehouse: Warehouse, max_retry_seconds: float) -> Client:
    import clickhouse_connect
    from clickhouse_connect.driver.exceptions import DatabaseError

    url = redact_url(warehouse.url or "")

    def open_client() -> Client:
        return clickhouse_connect.get_client(
            dsn=warehouse.url,
            username=warehouse.user,
            password=warehouse.password.get_secret_value(),
            tz_mode="aware",
            connect_timeout=max(1, min(5, int(max_retry_seconds // 2))),  # a short deadline stays short
            send_receive_timeout=300,
            # No HTTP session: several threads may then use the client (we still lock inserts).
            autogenerate_session_id=False,
        )

    def unreachable(exc: BaseException, attempts: int, elapsed: float) -> str:
        return (
            f"ClickHouse server at {url} is unreachable ({_reason(exc)}); "
            f"gave up after {attempts} attempt{'s' * (attempts != 1)} in {elapsed:.1f}s"
        )

    try:
        return with_retries(open_client, max_retry_seconds=max_retry_seconds, describe=unreachable)
    except DatabaseError as exc:
        if getattr(exc, "code", None) in AUTH_CODES or "Authentication failed" in str(exc):
            raise WarehouseError(
                f"ClickHouse server at {url} rejected user {warehouse.user!r}: wrong user or password"
                " (BOUCLE_WAREHOUSE__USER / BOUCLE_WAREHOUSE__PASSWORD)"
            ) from exc
        raise WarehouseError(f"cannot connect to ClickHouse at {url}: {_first_line(exc)}") from exc


# ---- helpers ----------------------------------------------------------------------------------

def _database_exists(client: Client, database: str) -> bool:
    rows = client.query(
        "SELECT count() FROM system.databases WHERE name = {db:String}", parameters={"db": database}
    ).result_rows
    return bool(rows and rows[0][0])


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:300]


def _reason(exc: BaseException) -> str:
    text = str(exc)
    for needle in ("Connection refused", "Name or service not known", "timed out",
                   "No route to host", "Connection reset", "Temporary failure in name resolution"):
        if needle in text:
            return needle.lower()
    return _first_line(exc)
