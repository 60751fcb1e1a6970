"""The ``boucle`` command line.

Every command reads ``config/boucle.toml`` unless ``--config PATH`` (or ``$BOUCLE_CONFIG``)
names another file; ``BOUCLE_*`` environment variables override keys of the file.
"""

from __future__ import annotations

import sys
from enum import Enum
from pathlib import Path
from typing import Optional

import orjson
import typer

from boucle.config.settings import Settings
from boucle.flows.cli.cases import cases_app
from boucle.flows.cli.cluster import join_cluster
from boucle.flows.cli.common import (
    FORMAT,
    State,
    console,
    err,
    fail_on_warehouse_errors,
    interactive_client,
    load,
    read_client,
)
from boucle.flows.cli.errors import BoucleGroup
from boucle.flows.cli.imports import import_export_command
from boucle.flows.cli.kafka import (
    alerts_app,
    ensure_kafka_topics,
    simulate_to_kafka,
    with_kafka,
)
from boucle.flows.cli.notify import notify_app
from boucle.flows.cli.registry import registry_app
from boucle.flows.cli.render import RowFormat
from boucle.flows.cli.serve import serve_app

app = typer.Typer(
    cls=BoucleGroup,  # every error: one line and an exit code (flows/cli/errors.py)
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
app.add_typer(alerts_app, name="alerts")
app.add_typer(cases_app, name="cases")
app.add_typer(notify_app, name="notify")
app.add_typer(registry_app, name="registry")
app.add_typer(serve_app, name="serve")
app.command("import")(import_export_command)

@app.callback()
def main(
    config: Optional[Path] = typer.Option(
        None, "--config", "-c", help="Settings file (default: $BOUCLE_CONFIG or config/boucle.toml).",
        exists=False, dir_okay=False,
    ),
) -> None:
    State.config = config


def _positive(value: Optional[float]) -> Optional[float]:
    if value is not None and not value > 0:
        raise typer.BadParameter(f"must be positive, got {value:g}")
    return value


class Profile(str, Enum):
    demo = "demo"
    retail = "retail"
    reviews = "reviews"


_PROFILE_HELP = ("Network profile: demo (the config's sites), retail or reviews (generated sites; default:"
                 " simulation.profile). See README, Network profiles.")


_KEEP_ORDER_HELP = ("A file: read it in its own order even if it is out of time order (then its events behind by"
                    " more than windows.allowed_lateness are late); by default such a file is sorted first.")


def _simulator(settings: Settings, seed: Optional[int], days: Optional[float], profile: Optional[Profile] = None,
               sites: Optional[int] = None, **kwargs):
    from boucle.sources.simulator import Simulator

    try:
        return Simulator(settings, seed=seed, days=days, profile=profile.value if profile else None, sites=sites,
                         **kwargs)
    except ValueError as exc:
        err.print(f"simulate: {exc}", markup=False, highlight=False)
        raise typer.Exit(2) from None


@app.command()
@fail_on_warehouse_errors
def run(
    source: str = typer.Option("simulator", help="simulator (synthetic feedback) or a JSONL file path."),
    days: Optional[float] = typer.Option(None, callback=_positive, help="Simulated days (default: simulation.days)."),
    seed: Optional[int] = typer.Option(None, help="Simulator seed (default: simulation.seed)."),
    profile: Optional[Profile] = typer.Option(None, help=_PROFILE_HELP),
    sites: Optional[int] = typer.Option(None, min=1, help="Generated profiles: number of sites (default: the profile's)."),
    workers: int = typer.Option(1, min=1, help="bytewax workers (threads) in this process."),
    recovery_dir: Optional[Path] = typer.Option(
        None, help="Enable bytewax recovery with its state in this directory (created and initialised if empty)."
    ),
    progress: bool = typer.Option(True, help="Show a progress bar."),
    brokers: Optional[str] = typer.Option(
        None, help="Kafka bootstrap servers HOST:PORT[,...] (default: kafka.brokers). With any source,"
        " alerts and dead letters are then also published to Kafka."
    ),
    topic: Optional[str] = typer.Option(None, help="Kafka feedback topic (default: kafka.feedback_topic)."),
    to_end: bool = typer.Option(
        False, "--to-end", help="Kafka: stop once the topic is read to its end (else follow forever)."
    ),
    from_end: bool = typer.Option(
        False, "--from-end", help="Kafka: start at the end of the topic, not its beginning (ignored on resume)."
    ),
    wall_clock: Optional[bool] = typer.Option(
        None, "--wall-clock/--event-time",
        help="Close windows by the wall clock too (default: on when following Kafka, off otherwise).",
    ),
    epoch_interval: Optional[float] = typer.Option(
        None, min=0.01, help="Seconds between bytewax snapshots (recovery); default 10."
    ),
    keep_order: bool = typer.Option(False, "--keep-order", help=_KEEP_ORDER_HELP),
    processes: int = typer.Option(
        1, min=1, help="Run as a cluster of N processes on this machine (bytewax over loopback TCP); the"
        " warehouse must then be a ClickHouse server. See README, Several processes.",
    ),
    process_id: Optional[int] = typer.Option(
        None, min=0, envvar="BOUCLE_PROCESS_ID",
        help="Be process I of a cluster on several machines (with --addresses; in Kubernetes the pod name gives it).",
    ),
    addresses: Optional[str] = typer.Option(
        None, envvar="BOUCLE_ADDRESSES", help="Every cluster process's HOST:PORT, ';'-separated, in process order.",
    ),
) -> None:
    """Run the flow: simulator (default) → decode → hot alerts + windows → chDB, console, JSONL.

    With `--source kafka` it reads the feedback topic and publishes alerts to `boucle.alerts`
    and dead letters to `boucle.dlq`.

    Example: `boucle run --days 7 --workers 2` ·
    `boucle run --source kafka --brokers localhost:9092 --recovery-dir var/recovery` ·
    `boucle run --source kafka --to-end --processes 2` (a ClickHouse server as warehouse)
    """
    settings, cluster = join_cluster(processes, process_id, addresses, workers, recovery_dir)
    settings = with_kafka(settings, brokers=brokers, feedback_topic=topic)
    if source == "kafka":
        from boucle.sources.kafka_source import KafkaFeedbackSource

        kafka = settings.kafka
        console.print(
            f"Reading {kafka.feedback_topic} from {kafka.brokers}"
            + (" to its end" if to_end else " (following; Ctrl-C to stop)")
            + f" → alerts {kafka.alerts_topic}, dead letters {kafka.dlq_topic}"
            + (f"; offsets committed under group {kafka.group_id!r} for lag tools" if kafka.commit_offsets else "")
        )
        ensure_kafka_topics(settings)
        src = KafkaFeedbackSource(kafka, tail=not to_end, from_end=from_end, commit_offsets=kafka.commit_offsets)
        loop = None
        if settings.cases.enabled:
            from boucle.flows.loop import LoopSources

            loop = LoopSources(
                case_events=KafkaFeedbackSource(kafka, [kafka.case_events_topic], tail=not to_end, from_end=from_end),
                invitations=KafkaFeedbackSource(kafka, [kafka.invitations_topic], tail=not to_end, from_end=from_end),
            )
        _run(
            settings, src, None, workers, recovery_dir, progress,
            kafka=True, bounded=to_end, wall_clock=(not to_end) if wall_clock is None else wall_clock,
            epoch_interval=epoch_interval, loop=loop, cluster=cluster,
        )
        return
    if source == "simulator":
        from boucle.sources.simulator import SimulatorSource

        simulator = _simulator(settings, seed, days, profile, sites)
        settings = simulator.settings  # a generated profile brings its own registry
        src, total = SimulatorSource(simulator, partitions=workers * cluster.processes), simulator.count()
        console.print(
            f"Simulating {simulator.days:g} days of feedback for {len(settings.sites)} sites"
            f" ({simulator.network.name} network, seed {simulator.seed}) → {total:,} messages"
        )
        loop = _loop(settings, simulate=settings.cases.simulate, seed=simulator.seed)
    else:
        with _file_source(settings, Path(source), keep_order) as given:
            _run(
                settings, given.source, given.total, workers, recovery_dir, progress,
                kafka=brokers is not None, wall_clock=wall_clock, epoch_interval=epoch_interval,
                loop=_loop(settings), file=given, cluster=cluster,
            )
        return
    _run(
        settings, src, total, workers, recovery_dir, progress,
        kafka=brokers is not None, wall_clock=wall_clock, epoch_interval=epoch_interval, loop=loop, cluster=cluster,
    )


def _loop(settings: Settings, **kwargs):
    """The loop branches (cases, themes; simulated frontline and invitations) unless cases.enabled is off."""
    if not settings.cases.enabled:
        return None
    from boucle.flows.loop import LoopSources

    return LoopSources(**kwargs)


@app.command()
@fail_on_warehouse_errors
def replay(
    file: Path = typer.Argument(..., help="JSONL file, one feedback event per line (e.g. from `boucle simulate`)."),
    workers: int = typer.Option(1, min=1, help="bytewax workers (threads) in this process."),
    recovery_dir: Optional[Path] = typer.Option(None, help="bytewax recovery directory."),
    progress: bool = typer.Option(True, help="Show a progress bar."),
    profile: Optional[Profile] = typer.Option(
        None, help="Decode with the generated registry of this network profile (a file from `simulate --profile`)."
    ),
    sites: Optional[int] = typer.Option(None, min=1, help="With --profile: its number of sites, as simulated."),
    keep_order: bool = typer.Option(False, "--keep-order", help=_KEEP_ORDER_HELP),
    sla_alerts_for_history: bool = typer.Option(
        False, "--sla-alerts-for-history",
        help="Raise case_sla alerts for deadlines that passed before the replay started (default: history,"
        " outcome unknown).",
    ),
) -> None:
    """Run the flow over a JSONL file instead of the simulator.

    History stays history: a case whose SLA deadline passed before the replay started is stored
    with its outcome unknown, not raised as a `case_sla` alert (unless `--sla-alerts-for-history`).

    A file out of time order (beyond windows.allowed_lateness) is sorted by occurred_at first,
    unless `--keep-order`; the run says which.

    Example: `boucle simulate --out var/feedback.jsonl && boucle replay var/feedback.jsonl` ·
    `boucle simulate --profile reviews --out var/reviews.jsonl && boucle replay var/reviews.jsonl --profile reviews`
    """
    settings = load()
    if profile is not None:
        from boucle.sources.simulator.networks import PROFILES, network_settings

        settings = network_settings(settings, PROFILES[profile.value], sites or settings.simulation.sites)
    with _file_source(settings, file, keep_order) as given:
        from boucle.config.times import now_ms

        history = {} if sla_alerts_for_history else {"history_before_ms": now_ms()}
        _run(settings, given.source, given.total, workers, recovery_dir, progress,
             loop=_loop(settings, **history), file=given)


def _file_source(settings: Settings, path: Path, keep_order: bool):
    """The file's source, sorted by time when it is not in order (flows/file_input.py), for a block."""
    from boucle.flows.file_input import file_input

    if not path.is_file():
        err.print(f"no such file {path}", markup=False, highlight=False)
        raise typer.Exit(2)
    console.print(f"Reading {path}: checking its time order", markup=False, highlight=False)
    return file_input(path, settings.windows.allowed_lateness, keep_order=keep_order)


def _run(
    settings, src, total, workers, recovery_dir, progress, *,
    kafka: bool = False, bounded: bool = True, wall_clock: Optional[bool] = None,
    epoch_interval: Optional[float] = None, loop=None, file=None, cluster=None,
) -> None:
    from datetime import timedelta

    from boucle.flows.run import (
        RunOptions,
        default_outputs,
        kafka_outputs,
        run_flow,
        warehouse_counts,
    )
    from boucle.flows.summary import print_outputs, print_summary

    options = RunOptions(
        workers=workers, recovery_dir=recovery_dir, progress=progress, total=total, bounded=bounded,
        wall_clock=wall_clock,
        epoch_interval=None if epoch_interval is None else timedelta(seconds=epoch_interval),
        **({"cluster": cluster} if cluster is not None else {}),
    )
    if cluster is not None and cluster.is_cluster:
        console.print(f"Process {cluster.process_id} of a cluster of {cluster.processes}"
                      f" ({cluster.addresses[cluster.process_id]}): its share of the input and state", markup=False)
    outputs = kafka_outputs(settings, console) if kafka else default_outputs(settings, console)
    if file is not None:  # a file's input order: read as it is, or sorted (flows/file_input.py)
        console.print(f"Input {file.order}", markup=False, highlight=False)
    stats = run_flow(settings, src, options, console=console, outputs=outputs, loop=loop)
    for sink in outputs.alerts:
        if hasattr(sink, "print_summary"):
            sink.print_summary()
    print_summary(console, stats, settings, warehouse_counts(settings),
                  input_order=file.summary if file is not None else None)
    if loop is not None:
        from boucle.flows.cli.cases import print_loop_summary

        print_loop_summary(console, settings, history_before_ms=loop.history_before_ms)
    print_outputs(console, settings)


@app.command()
def simulate(
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Write the events here (JSONL, one per line)."),
    labels: Optional[Path] = typer.Option(None, help="Write the ground truth (incidents, malformed, late) here."),
    days: Optional[float] = typer.Option(None, callback=_positive, help="Simulated days (default: simulation.days)."),
    seed: Optional[int] = typer.Option(None, help="Seed (default: simulation.seed)."),
    profile: Optional[Profile] = typer.Option(None, help=_PROFILE_HELP),
    sites: Optional[int] = typer.Option(None, min=1, help="Generated profiles: number of sites (default: the profile's)."),
    brokers: Optional[str] = typer.Option(
        None, help="Produce to Kafka at HOST:PORT[,...] instead of (or as well as) a file; `-` = kafka.brokers."
    ),
    topic: Optional[str] = typer.Option(None, help="Kafka topic (default: kafka.feedback_topic)."),
    rate: Optional[float] = typer.Option(None, min=0.001, help="Kafka: send N events per second (default: as fast as possible)."),
    realtime: bool = typer.Option(
        False, "--realtime", help="Kafka: simulate from now on and send each event when it happens."
    ),
    partitions: int = typer.Option(6, min=1, help="Kafka: partitions of the topic if it has to be created."),
) -> None:
    """Write synthetic feedback (with labelled incidents and malformed events) to a JSONL file or Kafka.

    Example: `boucle simulate --out var/feedback.jsonl --labels var/labels.jsonl --days 7` ·
    `boucle simulate --brokers localhost:9092 --days 3 --rate 50`
    """
    from rich.progress import track

    settings = load()
    if out is None and brokers is None:
        err.print("give --out FILE and/or --brokers HOST:PORT")
        raise typer.Exit(2)
    start = None
    if realtime:
        from datetime import datetime, timezone

        start = datetime.now(timezone.utc)
    simulator = _simulator(settings, seed, days, profile, sites, start=start)
    total = simulator.count()
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        with out.open("wb") as f:
            for message in track(simulator.messages(), total=total, description="simulating", console=console):
                f.write(message.value + b"\n")
        console.print(f"{total:,} events → {out}")
    if brokers is not None:
        simulate_to_kafka(
            with_kafka(settings, brokers=None if brokers == "-" else brokers, feedback_topic=topic),
            simulator, total, rate, realtime, partitions,
        )
    if labels:
        labels.parent.mkdir(parents=True, exist_ok=True)
        with labels.open("wb") as f:
            for label in simulator.labels():
                f.write(orjson.dumps(label) + b"\n")
        console.print(f"ground truth → {labels}")


@db_app.command("init")
@fail_on_warehouse_errors
def db_init() -> None:
    """Create the database, tables and views (idempotent): the same as `boucle db migrate`.

    With `db migrate`, the only commands that change the schema (and `boucle run` on embedded chDB,
    see warehouse.auto_migrate).
    """
    _db_migrate()


@db_app.command("migrate")
@fail_on_warehouse_errors
def db_migrate() -> None:
    """Apply pending schema migrations, set the retention TTL and sync the sites and questions
    tables from the config. Running it again changes nothing. The one command that changes the
    schema of a ClickHouse server: read commands never do, `boucle run` only checks it.

    Example: `BOUCLE_WAREHOUSE__URL=http://localhost:8123 boucle db migrate`
    """
    _db_migrate()


def _db_migrate() -> None:
    from boucle.config.redact import redact_url
    from boucle.flows.rows import dimension_rows
    from boucle.sinks.clickhouse.schema import applied_migrations, init_schema

    settings = load()
    warehouse = settings.warehouse
    client = interactive_client(settings)
    applied = init_schema(client, warehouse.database, retention=warehouse.retention,
                          dimensions=dimension_rows(settings))
    recorded = applied_migrations(client, warehouse.database)
    where = f"{redact_url(warehouse.url or warehouse.path)} (database {warehouse.database})"
    if applied:
        console.print(f"applied {', '.join(applied)} to {where}")
    console.print(
        f"schema at version {max(recorded, default=0)} in {where}; "
        f"retention {warehouse.retention or 'unlimited'}; {len(settings.sites)} sites synced"
    )


@app.command()
@fail_on_warehouse_errors
def report(
    out: Path = typer.Option(Path("report.html"), "--out", "-o", help="The HTML file to write (self-contained)."),
    region: Optional[str] = typer.Option(None, help="Only this region (id from the config); default: all."),
    period: Optional[str] = typer.Option(
        None, help="Comparison period, in days: 7d, 30d, 90d or any other (default: 30d, widened to a longer"
                   " listed period when the median site has fewer than --min-n responses in it)."),
    lang: str = typer.Option("en", help="Language of titles, labels, dates and numbers: en, fr, de, es, it or nl (any other tag: English)."),
    min_n: int = typer.Option(5, "--min-n", help="Responses a rolling point or a heatmap cell needs to be drawn."),
    screenshot: Optional[Path] = typer.Option(
        None, help="Also open the report in headless Chromium (playwright) and save its top 1400 px as this PNG."),
) -> None:
    """Write one HTML file (opens offline) with the headline score over time, peer heatmap, progress
    leaderboard, alerts timeline, attribute importance and the loop's KPIs.

    Example: `boucle report --out var/report.html --region ile-de-france --period 30d --lang fr`
    """
    from boucle.flows.cli.report import ReportError, write_report
    from boucle.flows.cli.report import screenshot as take_screenshot

    settings = load()
    try:
        written = write_report(settings, out, region=region, period=period, lang=lang, min_n=min_n)
        console.print(f"report → {written}")
        if screenshot is not None:
            seen = take_screenshot(written, screenshot)
            console.print(f"screenshot → {screenshot} ({seen['plots']} plots drawn"
                          f"{', browser errors: ' + '; '.join(seen['errors']) if seen['errors'] else ''})",
                          markup=False, highlight=False)
    except ReportError as exc:
        err.print(f"report: {exc}", markup=False, highlight=False)
        raise typer.Exit(2) from None


@app.command()
@fail_on_warehouse_errors
def query(
    sql: str = typer.Argument(..., help="SQL; unqualified tables resolve in warehouse.database."),
    format: RowFormat = FORMAT,
    write: bool = typer.Option(
        False, "--write", help="Allow a statement that changes the warehouse (INSERT, ALTER, DROP...)."
    ),
) -> None:
    """Run one SQL statement against the warehouse and print the result. Read-only unless
    `--write`: the session refuses inserts and DDL (ClickHouse `readonly`); a second statement
    after `;` is refused.

    Example: `boucle query "SELECT site_id, count() FROM feedback GROUP BY site_id ORDER BY 2 DESC LIMIT 5"`
    """
    from boucle.flows.cli.render import print_rows
    from boucle.sinks.clickhouse.query import QueryError, run_query, single_statement

    settings = load()
    single_statement(sql)  # refuse a second statement before connecting
    client = interactive_client(settings) if write else read_client(settings)
    try:
        columns, rows = run_query(client, sql)
    except QueryError as exc:
        if write or "READONLY" not in str(exc):
            raise
        raise QueryError(f"{exc}: `boucle query` only reads unless given --write") from exc
    print_rows(columns, rows, format.value, console, sys.stdout)


if __name__ == "__main__":  # pragma: no cover
    app()
