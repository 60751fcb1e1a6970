"""``boucle notify …``: deliver alerts to people (``run``), see what waits (``status``), try routes (``plan``)."""

from __future__ import annotations

import signal
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import Optional

import orjson
import typer

from boucle.config.settings import Settings
from boucle.flows.cli.common import console, err, load
from boucle.flows.cli.errors import EXIT_USAGE
from boucle.flows.cli.kafka import ensure_kafka_topics, with_kafka
from boucle.flows.cli.render import rows_table

__all__ = ["notify_app"]

notify_app = typer.Typer(help="Alerts that reach people: e-mail, Slack, Teams and signed webhooks.",
                         no_args_is_help=True)


def _settings(ledger: Optional[Path], **kafka) -> Settings:
    settings = with_kafka(load(), **kafka)
    if ledger is not None:
        settings = settings.model_copy(update={"notify": settings.notify.model_copy(update={"ledger": str(ledger)})})
    return settings


def _metrics_table(notifier) -> None:
    metrics = notifier.metrics()
    rows = [[channel, *m.values()] for channel, m in metrics.items()] or [["(none)", 0, 0, 0, 0, 0]]
    console.print(rows_table(["channel", "messages sent", "alerts delivered", "retried", "dead-lettered", "held"],
                             rows, title="Deliveries"))
    accepted = ", ".join(f"{n:,} {what}" for what, n in sorted(notifier.accepted.items())) or "none"
    console.print(f"records read: {accepted}")


def _metrics_line(notifier) -> str:
    """One line of delivery metrics, e.g. ``email: 12 sent, 1 retried, 0 failed, 3 held``."""
    parts = [f"{channel}: {m['sent']} sent, {m['retried']} retried, {m['failed']} failed, {m['held']} held"
             for channel, m in notifier.metrics().items()]
    return "deliveries · " + ("; ".join(parts) or "none yet")


@notify_app.command("run")
def notify_run(
    brokers: Optional[str] = typer.Option(None, help="Kafka bootstrap servers (default: kafka.brokers)."),
    topic: Optional[str] = typer.Option(None, help="Alert topic (default: kafka.alerts_topic)."),
    ledger: Optional[Path] = typer.Option(None, help="Delivery ledger file (default: notify.ledger)."),
    to_end: bool = typer.Option(False, "--to-end", help="Stop at the end of the topic once nothing is due now"
                                " (what waits stays in the ledger for the next run)."),
) -> None:
    """Consume the alert topic and deliver per the [notify] routes, until interrupted.

    Offsets are committed under notify.group_id after delivery; the ledger keeps what waits (digests,
    quiet hours, retries) and what was delivered, so a restart sends nothing twice.
    Example: `BOUCLE_SMTP_USERNAME=... BOUCLE_SMTP_PASSWORD=... boucle notify run --brokers localhost:9092`
    """
    from boucle.flows.notify.consume import DeadLetterTopic, consume_alerts
    from boucle.flows.notify.notifier import notifier_from_settings

    settings = _settings(ledger, brokers=brokers, alerts_topic=topic)
    notify = settings.notify
    if not notify.routes:
        err.print("notify: no [[notify.routes]] in the configuration: nothing would be sent (see README, "
                  "Alerts that reach people)", markup=False)
        raise typer.Exit(EXIT_USAGE)
    ensure_kafka_topics(settings, {notify.dlq_topic: 1})
    try:
        notifier = notifier_from_settings(settings, DeadLetterTopic(settings.kafka, notify.dlq_topic))
    except ValueError as exc:
        err.print(f"notify: {exc}", markup=False)
        raise typer.Exit(EXIT_USAGE) from None
    stop = threading.Event()
    previous = {s: signal.signal(s, lambda *_: stop.set()) for s in (signal.SIGINT, signal.SIGTERM)}
    console.print(f"notify: {settings.kafka.alerts_topic} at {settings.kafka.brokers} → {len(notify.routes)} routes,"
                  f" group {notify.group_id}, ledger {notify.ledger}")
    try:
        consume_alerts(settings.kafka, notifier, group_id=notify.group_id, start=notify.start, to_end=to_end,
                       stop=stop, poll_s=notify.poll_interval.total_seconds(),
                       report=lambda: console.print(_metrics_line(notifier), highlight=False),
                       report_every_s=notify.report_every.total_seconds())
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        _metrics_table(notifier)
        notifier.close()


@notify_app.command("status")
def notify_status(ledger: Optional[Path] = typer.Option(None, help="Delivery ledger file (default: notify.ledger).")) -> None:
    """What the ledger holds: deliveries per channel and state, and when the next waiting one is due."""
    from boucle.flows.notify.ledger import Ledger

    path = Path(_settings(ledger).notify.ledger)
    if not path.exists():
        err.print(f"notify: no ledger at {path} (nothing delivered yet)", markup=False)
        raise typer.Exit(1)
    book = Ledger(path)
    try:
        counts = book.counts()
        states = ("pending", "delivered", "dlq", "dead")
        channels = sorted({c for c, _ in counts})
        rows = [[c, *(counts.get((c, s), 0) for s in states)] for c in channels]
        console.print(rows_table(["channel", "waiting", "delivered", "to dead-letter", "dead-lettered"], rows,
                                 title=f"Ledger {path}"))
        due = book.next_due()
        if due is not None:
            console.print(f"next due: {datetime.fromtimestamp(due, timezone.utc).isoformat(timespec='seconds')}")
    finally:
        book.close()


@notify_app.command("plan")
def notify_plan(
    alerts: Path = typer.Argument(..., exists=True, dir_okay=False, help="Alerts, one JSON per line (e.g. var/alerts.jsonl)."),
    at: Optional[datetime] = typer.Option(None, help="Pretend it is this time (UTC unless an offset is given)."),
    limit: int = typer.Option(50, min=1, help="At most this many alerts."),
) -> None:
    """Who would get each alert, by which channel and when (nothing is sent)."""
    from boucle.flows.notify.routing import Router

    settings = load()
    now = (at if at and at.tzinfo else (at or datetime.now(timezone.utc)).replace(tzinfo=timezone.utc))
    router = Router(settings.notify, settings.sites, settings.regions)
    rows = []
    with alerts.open("rb") as lines:
        for n, line in enumerate(lines):
            if n >= limit:
                break
            try:
                alert = orjson.loads(line)
            except orjson.JSONDecodeError:
                rows.append([f"line {n + 1}", "", "not JSON", "", ""])
                continue
            plan = router.plan(alert, now)
            label = f"{alert.get('kind')} {alert.get('severity')} {alert.get('site_id') or alert.get('region')}"
            for p in plan.deliveries:
                when = "now" if p.due <= now else p.due.isoformat(timespec="minutes") + (" (quiet hours)" if p.held else " (digest)")
                rows.append([label, p.route, p.recipient.channel, p.recipient.target, when])
            rows += [[label, "", "dead letter", problem, ""] for problem in plan.problems]
            if not plan.deliveries and not plan.problems:
                rows.append([label, "", "no route", "", ""])
    console.print(rows_table(["alert", "route", "channel", "to", "when"], rows, title=f"Routing at {now.isoformat()}"))
