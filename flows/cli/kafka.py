"""The Kafka side of the ``boucle`` command line: topics, producing the simulation, ``alerts tail``."""

from __future__ import annotations

from typing import Optional

import typer
from rich.console import Console

from boucle.config.settings import Settings
from boucle.flows.cli.common import err, load

__all__ = ["alerts_app", "ensure_kafka_topics", "simulate_to_kafka", "with_kafka"]

_console = Console()
_err = Console(stderr=True)


def with_kafka(settings: Settings, **changes) -> Settings:
    """``settings`` with the given ``kafka`` keys replaced (None leaves a key as configured)."""
    changes = {k: v for k, v in changes.items() if v is not None}
    if not changes:
        return settings
    return settings.model_copy(update={"kafka": settings.kafka.model_copy(update=changes)})


def ensure_kafka_topics(settings: Settings, topics: dict[str, int] | None = None, partitions: int = 6) -> None:
    """Wait for the brokers (one line if they stay away), then create the missing topics.

    By default the feedback, alert, dead-letter, case-event and invitation topics; with
    ``kafka.create_topics = false`` nothing is created (a missing topic is then reported, in one
    line, by whoever needs it). A broker that refuses to create (ACLs) gets a warning: it may still
    create them itself on first use.
    """
    from boucle.sinks.kafka import ensure_topics
    from boucle.sources.kafka_health import client_config, client_logging, wait_for_metadata

    kafka = settings.kafka
    metadata = wait_for_metadata(kafka)  # raises KafkaUnavailable: the command's one line
    if not kafka.create_topics:
        return
    if topics is None:
        topics = {kafka.feedback_topic: partitions, kafka.alerts_topic: partitions, kafka.dlq_topic: 1,
                  kafka.case_events_topic: partitions, kafka.invitations_topic: partitions}
    missing = {t: n for t, n in topics.items() if t and t not in metadata.topics}
    if not missing:
        return
    try:
        created = ensure_topics(client_config(kafka, **client_logging(kafka)), missing)
    except Exception as exc:  # noqa: BLE001 - the broker may still auto-create them
        _err.print(f"[yellow]could not create topics[/] {', '.join(missing)} ({exc}); relying on the broker")
        return
    if created:
        _console.print(f"created topics: {', '.join(created)}")


def simulate_to_kafka(settings: Settings, simulator, total: int, rate, realtime: bool, partitions: int) -> None:
    """Produce the simulator's messages to the feedback topic; every one acknowledged, or one line."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    from boucle.sinks.kafka import produce_messages, producer_config
    from boucle.sources.kafka_health import client_logging

    kafka = settings.kafka
    ensure_kafka_topics(settings, {kafka.feedback_topic: partitions})
    pace = f"{rate:g}/s" if rate else ("in real time" if realtime else "as fast as possible")
    _console.print(f"{total:,} events → {kafka.feedback_topic} at {kafka.brokers} ({pace})")
    wait_s = kafka.timeouts.unreachable_after.total_seconds()
    config = producer_config(
        kafka.broker_list(), kafka.librdkafka, **{"linger.ms": "50", "batch.num.messages": "10000"},
        **{"message.timeout.ms": str(int(wait_s * 1000))}, **client_logging(kafka),
    )
    columns = [TextColumn("[bold]producing[/]"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()]
    with Progress(*columns, console=_console) as bar:
        task = bar.add_task("produce", total=total)
        delivered = produce_messages(
            simulator.messages(), config, kafka.feedback_topic, rate=rate, realtime=realtime,
            on_sent=lambda n: bar.advance(task, n), flush_timeout=wait_s + 5,
        )
    _console.print(f"{delivered:,} events acknowledged by {kafka.feedback_topic}")


alerts_app = typer.Typer(help="Subscribe to the alert topic.", no_args_is_help=True)


@alerts_app.command("tail")
def alerts_tail(
    brokers: Optional[str] = typer.Option(None, help="Kafka bootstrap servers (default: kafka.brokers)."),
    topic: Optional[str] = typer.Option(None, help="Alert topic (default: kafka.alerts_topic)."),
    region: list[str] = typer.Option([], help="Only this region (repeatable)."),
    kind: list[str] = typer.Option([], help="Only this kind: hot, attribute, ... (repeatable)."),
    min_severity: Optional[str] = typer.Option(None, help="Only this severity or above: low, medium, high, critical."),
    from_beginning: bool = typer.Option(False, "--from-beginning", help="Start at the oldest alert (default: new ones only)."),
    to_end: bool = typer.Option(False, "--to-end", help="Stop at the end of the topic instead of following."),
    json_out: bool = typer.Option(False, "--json", help="Print each alert as its raw JSON value, one per line."),
) -> None:
    """Print alerts as they arrive (assigns every partition: no consumer group, instant start).

    Example: `boucle alerts tail --brokers localhost:9092 --region ile-de-france --kind hot`
    """
    from boucle.config.settings import SEVERITY_RANK
    from boucle.flows.cli.alerts_tail import AlertFilter, tail_alerts

    settings = with_kafka(load(), brokers=brokers)
    if min_severity is not None and min_severity not in SEVERITY_RANK:
        err.print(f"--min-severity must be one of {', '.join(SEVERITY_RANK)}")
        raise typer.Exit(2)
    try:
        tail_alerts(
            settings.kafka, topic=topic, keep=AlertFilter(region, kind, min_severity),
            from_beginning=from_beginning, to_end=to_end, as_json=json_out,
            console=None if json_out else Console(highlight=False),
        )
    except RuntimeError as exc:
        err.print(f"[bold red]kafka error[/] {exc}")
        raise typer.Exit(1) from None
