"""What every ``boucle`` sub-command shares: the consoles, this invocation's settings, error exits.

The main app sets :attr:`State.config` from ``--config``; sub-apps read the settings through
:func:`load` and never import the main app back. Errors that reach the top of a command become one
line and an exit code in :mod:`boucle.flows.cli.errors`; :func:`read_client` is the warehouse of
the read commands (a read-only session that gives up quickly).
"""

from __future__ import annotations

from functools import wraps
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from boucle.config.loader import ConfigError, load_settings
from boucle.config.redact import secrets_of
from boucle.config.settings import Settings
from boucle.flows.cli.errors import EXIT_USAGE, redact_logs, report
from boucle.flows.cli.render import RowFormat

__all__ = ["FORMAT", "State", "console", "err", "fail_on_warehouse_errors", "interactive_client", "load", "read_client"]

FORMAT = typer.Option(RowFormat.table, "--format", "-f", help="table, json (one object per row) or csv.")

console = Console()
err = Console(stderr=True, soft_wrap=True)  # one message, one line, whatever the width


class State:
    """The options of this invocation that every command reads."""

    config: Optional[Path] = None


def load() -> Settings:
    """The settings of this invocation; a bad file exits with code 2 and the path of the bad key
    (one line per problem). Its secrets are redacted from every later message."""
    try:
        settings = load_settings(State.config)
    except ConfigError as exc:
        for line in str(exc).splitlines():
            err.print(f"config error: {line}", markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(EXIT_USAGE) from None
    redact_logs(secrets_of(settings))
    return settings


def read_client(settings: Settings):
    """The warehouse client of a read command: a read-only session (no DDL, no insert can pass),
    giving up after ``warehouse.interactive_timeout`` when the server does not answer."""
    from boucle.sinks.clickhouse.client import connect

    warehouse = settings.warehouse
    return connect(warehouse, read_only=True, max_retry_seconds=warehouse.interactive_timeout.total_seconds())


def interactive_client(settings: Settings):
    """The writable client of an interactive command (``db migrate``, ``query --write``)."""
    from boucle.sinks.clickhouse.client import connect

    warehouse = settings.warehouse
    return connect(warehouse, max_retry_seconds=warehouse.interactive_timeout.total_seconds())


def fail_on_warehouse_errors(fn):
    """Warehouse problems are one clear line and exit code 1, not a traceback."""
    from boucle.sinks.clickhouse.client import WarehouseError
    from boucle.sinks.clickhouse.query import QueryError

    @wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (WarehouseError, QueryError) as exc:
            raise typer.Exit(report(exc)) from None

    return wrapper
