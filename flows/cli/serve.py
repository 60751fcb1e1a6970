"""``boucle serve``: the HTTP apps. ``serve ingest`` takes feedback events in (webhooks in)."""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path
from typing import Optional

import typer

from boucle.flows.cli.common import err, load
from boucle.flows.cli.kafka import with_kafka

__all__ = ["TOKEN_ENV", "is_loopback", "serve_app"]

TOKEN_ENV = "BOUCLE_INGEST_TOKEN"

serve_app = typer.Typer(help="Serve the HTTP apps (webhooks in).", no_args_is_help=True)


def is_loopback(host: str) -> bool:
    """Whether ``host`` only listens on this machine.

    >>> is_loopback("127.0.0.1"), is_loopback("localhost"), is_loopback("0.0.0.0")
    (True, True, False)
    """
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@serve_app.command("ingest")
def ingest(
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    port: int = typer.Option(8088, help="Port to listen on."),
    brokers: Optional[str] = typer.Option(None, help="Kafka bootstrap servers (default: kafka.brokers)."),
    topic: Optional[str] = typer.Option(None, help="Feedback topic (default: kafka.feedback_topic)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Append to this JSONL replay file instead of Kafka."),
    no_auth: bool = typer.Option(False, "--no-auth", help=f"No bearer token (loopback only; else ${TOKEN_ENV})."),
) -> None:
    """Take feedback events over HTTP: `POST /v1/feedback` (JSON or NDJSON), validated as the flow does.

    Example: `BOUCLE_INGEST_TOKEN=secret boucle serve ingest --out var/feedback.jsonl`
    """
    import uvicorn

    from boucle.flows.ingest import FileForward, KafkaForward, create_app

    token = os.environ.get(TOKEN_ENV) or None
    if token is None and not no_auth:
        err.print(f"no ingest token: set ${TOKEN_ENV} (or --no-auth on a loopback address)", markup=False)
        raise typer.Exit(2)
    if no_auth and not is_loopback(host):
        err.print(f"--no-auth is only allowed on a loopback address, not {host}", markup=False)
        raise typer.Exit(2)
    settings = with_kafka(load(), brokers=brokers)
    if out is not None:
        forward = FileForward(out)
    else:
        from boucle.sinks.kafka import producer_config
        from boucle.sources.kafka_health import client_logging

        kafka = settings.kafka
        forward = KafkaForward(producer_config(kafka.broker_list(), kafka.librdkafka, **client_logging(kafka)),
                               topic or kafka.feedback_topic, kafka.timeouts.unreachable_after.total_seconds())
    app = create_app(settings, forward, token=None if no_auth else token)
    uvicorn.run(app, host=host, port=port, log_level="info")
