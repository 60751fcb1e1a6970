"""The ``boucle`` command line.

Every command reads ``config/boucle.toml`` unless ``--config PATH`` (or ``$BOUCLE_CONFIG``)
names another file; ``BOUCLE_*`` environment variables override keys of the file.
"""

from __future__ import annotations

import csv
import io
import sys
from enum import Enum
from pathlib import Path
from typing import Optional

import orjson
import typer
from rich.console import Console
from rich.table import Table

from flows.config import ConfigError, load_settings
from flows.settings import Settings

app = typer.Typer(
    help=(
        "Boucle closes the customer-feedback loop in real time: hot alerts for one bad experience,"
        " scores per site and attribute for peer comparison, all in ClickHouse.\n\n"
        "Start with `boucle run`: it simulates a month of feedback for the demo network, runs the flow"
        " into embedded chDB under var/ and prints a summary. Then `boucle query \"SELECT ...\"`."
    ),
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="markdown",
    pretty_exceptions_show_locals=False,
)
db_app = typer.Typer(help="Manage the warehouse schema.", no_args_is_help=True)
app.add_typer(db_app, name="db")

console = Console()
err = Console(stderr=True)


class State:
    config: Optional[Path] = None


def _settings() -> Settings:
    try:
        return load_settings(State.config)
    except ConfigError as exc:
        err.print(f"[bold red]config error[/]\n{exc}")
        raise typer.Exit(2) from None


def _fail_on_warehouse_errors(fn):
    """Warehouse problems are one clear line, not a traceback."""
    from functools import wraps

    from sinks.clickhouse.client import WarehouseError
    from sinks.clickhouse.query import QueryError

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


@app.callback()
def main(
    config: Optional[Path] = typer.Option(
        None, "--config", "-c", help="Settings file (default: $BOUCLE_CONFIG or config/boucle.toml).",
        exists=False, dir_okay=False,
    ),
) -> None:
    State.config = config


def _simulator(settings: Settings, seed: Optional[int], days: Optional[float], **kwargs):
    from sources.simulator import Simulator

    return Simulator(settings, seed=seed, days=days, **kwargs)


@app.command()
@_fail_on_warehouse_errors
def run(
    source: str = typer.Option("simulator", help="simulator (synthetic feedback) or a JSONL file path."),
    days: Optional[float] = typer.Option(None, help="Simulated days (default: simulation.days)."),
    seed: Optional[int] = typer.Option(None, help="Simulator seed (default: simulation.seed)."),
    workers: int = typer.Option(1, min=1, help="bytewax workers (threads) in this process."),
    recovery_dir: Optional[Path] = typer.Option(
        None, help="Enable bytewax recovery with its state in this directory (created if missing)."
    ),
    progress: bool = typer.Option(True, help="Show a progress bar."),
) -> None:
    """Run the flow: simulator (default) → decode → hot alerts + windows → chDB, console, JSONL.

    Example: `boucle run --days 7 --workers 2`
    """
    settings = _settings()
    if source == "simulator":
        from sources.simulator import SimulatorSource

        simulator = _simulator(settings, seed, days)
        src, total = SimulatorSource(simulator, partitions=workers), simulator.count()
        console.print(
            f"Simulating {simulator.days:g} days of feedback for {len(settings.sites)} sites"
            f" (seed {simulator.seed}) → {total:,} messages"
        )
    else:
        src, total = _file_source(Path(source))
    _run(settings, src, total, workers, recovery_dir, progress)


@app.command()
@_fail_on_warehouse_errors
def replay(
    file: Path = typer.Argument(..., help="JSONL file, one feedback event per line (e.g. from `boucle simulate`)."),
    workers: int = typer.Option(1, min=1, help="bytewax workers (threads) in this process."),
    recovery_dir: Optional[Path] = typer.Option(None, help="bytewax recovery directory."),
    progress: bool = typer.Option(True, help="Show a progress bar."),
) -> None:
    """Run the flow over a JSONL file instead of the simulator.

    Example: `boucle simulate --out var/feedback.jsonl && boucle replay var/feedback.jsonl`
    """
    settings = _settings()
    src, total = _file_source(file)
    _run(settings, src, total, workers, recovery_dir, progress)


def _file_source(path: Path):
    from sources.file_source import JsonlFileSource

    if not path.is_file():
        err.print(f"[bold red]no such file[/] {path}")
        raise typer.Exit(2)
    with path.open("rb") as f:
        total = sum(1 for line in f if line.strip())
    return JsonlFileSource(path), total


def _run(settings, src, total, workers, recovery_dir, progress) -> None:
    from flows.run import RunOptions, default_outputs, run_flow, warehouse_counts
    from flows.summary import print_summary

    options = RunOptions(workers=workers, recovery_dir=recovery_dir, progress=progress, total=total)
    outputs = default_outputs(settings, console)
    stats = run_flow(settings, src, options, console=console, outputs=outputs)
    for sink in outputs.alerts:
        if hasattr(sink, "print_summary"):
            sink.print_summary()
    print_summary(console, stats, settings, warehouse_counts(settings))
    out = settings.outputs
    console.print(
        f"Alerts: {out.alerts_jsonl} · dead letters: {out.dead_letters_jsonl} · warehouse: "
        f"{settings.warehouse.url or settings.warehouse.path} (try `boucle query \"SELECT count() FROM feedback\"`)"
    )


@app.command()
def simulate(
    out: Path = typer.Option(..., "--out", "-o", help="Write the events here (JSONL, one per line)."),
    labels: Optional[Path] = typer.Option(None, help="Write the ground truth (incidents, malformed, late) here."),
    days: Optional[float] = typer.Option(None, help="Simulated days (default: simulation.days)."),
    seed: Optional[int] = typer.Option(None, help="Seed (default: simulation.seed)."),
) -> None:
    """Write synthetic feedback (with labelled incidents and malformed events) to a JSONL file.

    Example: `boucle simulate --out var/feedback.jsonl --labels var/labels.jsonl --days 7`
    """
    from rich.progress import track

    settings = _settings()
    simulator = _simulator(settings, seed, days)
    out.parent.mkdir(parents=True, exist_ok=True)
    total = simulator.count()
    with out.open("wb") as f:
        for message in track(simulator.messages(), total=total, description="simulating", console=console):
            f.write(message.value + b"\n")
    console.print(f"{total:,} events → {out}")
    if labels:
        labels.parent.mkdir(parents=True, exist_ok=True)
        with labels.open("wb") as f:
            for label in simulator.labels():
                f.write(orjson.dumps(label) + b"\n")
        console.print(f"ground truth → {labels}")


@db_app.command("init")
@_fail_on_warehouse_errors
def db_init() -> None:
    """Create the database and tables (idempotent)."""
    from sinks.clickhouse.client import connect
    from sinks.clickhouse.schema import init_schema

    settings = _settings()
    init_schema(connect(settings.warehouse), settings.warehouse.database)
    console.print(f"schema ready in {settings.warehouse.url or settings.warehouse.path}")


class Format(str, Enum):
    table = "table"
    json = "json"
    csv = "csv"


@app.command()
@_fail_on_warehouse_errors
def query(
    sql: str = typer.Argument(..., help="SQL; unqualified tables resolve in warehouse.database."),
    format: Format = typer.Option(Format.table, "--format", "-f", help="table, json (one object per row) or csv."),
) -> None:
    """Run SQL against the warehouse and print the result.

    Example: `boucle query "SELECT site_id, count() FROM feedback GROUP BY site_id ORDER BY 2 DESC LIMIT 5"`
    """
    from sinks.clickhouse.client import connect
    from sinks.clickhouse.query import run_query

    settings = _settings()
    columns, rows = run_query(connect(settings.warehouse), sql)
    if format is Format.json:
        for row in rows:
            sys.stdout.write(orjson.dumps(dict(zip(columns, row)), default=str).decode() + "\n")
    elif format is Format.csv:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(columns)
        writer.writerows(rows)
        sys.stdout.write(buffer.getvalue())
    else:
        table = Table(*columns)
        for row in rows:
            table.add_row(*(str(v) for v in row))
        console.print(table)


if __name__ == "__main__":  # pragma: no cover
    app()
