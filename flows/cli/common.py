"""What every ``boucle`` sub-command shares: the consoles, this invocation's settings, error exits.

The main app sets :attr:`State.config` from ``--config``; sub-apps read the settings through
:func:`load` and never import the main app back.
"""

from __future__ import annotations

from functools import wraps
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from boucle.config.loader import ConfigError, load_settings
from boucle.config.settings import Settings

__all__ = ["State", "console", "err", "fail_on_warehouse_errors", "load"]

console = Console()
err = Console(stderr=True)


class State:
    """The options of this invocation that every command reads."""

    config: Optional[Path] = None


def load() -> Settings:
    """The settings of this invocation; a bad file exits with code 2 and the path of the bad key."""
    try:
        return load_settings(State.config)
    except ConfigError as exc:
        err.print(f"[bold red]config error[/]\n{exc}")
        raise typer.Exit(2) from None


def fail_on_warehouse_errors(fn):
    """Warehouse problems are one clear line and exit code 1, not a traceback."""
    from boucle.sinks.clickhouse.client import WarehouseError
    from boucle.sinks.clickhouse.query import QueryError

    @wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except WarehouseError as exc:
            err.print(f"[bold red]warehouse error[/] {exc}")
            raise typer.Exit(1) from None
        except QueryError as exc:
            err.print(f"[bold red]query refused[/] {exc}")
            raise typer.Exit(1) from None

    return wrapper
