"""``boucle import``: a survey export (CSV, Parquet) through a mapping file into contract events.

The events go to a JSONL file (``--out``), to Kafka (``--brokers``) and/or straight through the
flow into the warehouse (``--replay``: the file is then replayed as ``boucle replay`` does). Refused
rows are written to the dead-letter file with their row number and reason.
"""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path
from typing import Iterable, Iterator, Optional

import typer

from boucle.flows.cli.common import console, err, load

__all__ = ["import_export_command"]

_MAPPING_HELP = ("Mapping of the export: a shipped layout (qualtrics, generic) or a TOML file"
                 " (see README, Bring your own data).")


def import_export_command(
    ctx: typer.Context,
    file: Path = typer.Argument(..., help="The survey export: CSV (any delimiter, header rows per the mapping) or Parquet."),
    mapping: str = typer.Option(..., "--mapping", "-m", help=_MAPPING_HELP),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Write the events here (contract JSONL, one per line)."),
    brokers: Optional[str] = typer.Option(
        None, help="Produce the events to Kafka at HOST:PORT[,...]; `-` = kafka.brokers."
    ),
    topic: Optional[str] = typer.Option(None, help="Kafka topic (default: kafka.feedback_topic)."),
    replay: bool = typer.Option(
        False, "--replay", help="Then replay the events through the flow into the warehouse (as `boucle replay`)."
    ),
    dead_letters: Path = typer.Option(
        Path("var/import_dead_letters.jsonl"), help="Refused rows, with row number and reason (rewritten each import)."
    ),
    progress: bool = typer.Option(True, help="Show a progress bar."),
) -> None:
    """Import a survey export: each row → one feedback event, checked by the flow's decoder.

    "Not rated" codes drop that answer only; answers on a past scale are mapped to the catalogue's;
    a row that cannot be an event is a dead letter (row number, reason code, reason).

    Example: `boucle import survey.csv --mapping qualtrics --out var/survey.jsonl --replay`
    """
    from boucle.flows.survey_import import ImportResult, import_export
    from boucle.sinks.jsonl import encode_line
    from boucle.sources.imports import MappingError, TableError, load_mapping

    settings = load()
    if out is None and brokers is None and not replay:
        err.print("give --out FILE, --brokers HOST:PORT and/or --replay")
        raise typer.Exit(2)
    if not file.is_file():
        err.print(f"no such file {file}", markup=False, highlight=False)
        raise typer.Exit(2)
    if replay and out is None:
        out = Path("var/imports") / f"{file.stem}.jsonl"
    result = ImportResult()
    try:
        chosen = load_mapping(mapping)
        with ExitStack() as stack:
            dead_letters.parent.mkdir(parents=True, exist_ok=True)
            dead_file = stack.enter_context(dead_letters.open("wb"))
            bar = _progress(stack, progress)
            task = [None]

            def on_rows(n: int) -> None:
                if bar is not None:
                    if task[0] is None:
                        task[0] = bar.add_task("import", total=result.total)
                    bar.advance(task[0], n)

            messages = import_export(
                settings, file, chosen, result, on_dead=lambda records: dead_file.write(
                    b"".join(encode_line(dict(r)) for r in records)), on_rows=on_rows,
            )
            if out is not None:
                out.parent.mkdir(parents=True, exist_ok=True)
                messages = _written(messages, stack.enter_context(out.open("wb")))
            if brokers is not None:
                _produce(settings, messages, brokers, topic)
            else:
                for _ in messages:
                    pass
    except (MappingError, TableError) as exc:
        for line in str(exc).splitlines():
            err.print(f"import: {line}", markup=False, highlight=False)
        raise typer.Exit(2) from None
    _print_result(result, file, out, dead_letters)
    if replay:
        # The app's own `replay` command, found through the context (the app imports this module).
        replay_command = ctx.parent.command.get_command(ctx.parent, "replay").callback
        ctx.invoke(replay_command, file=out, workers=1, recovery_dir=None, progress=progress, profile=None, sites=None,
                   keep_order=False, sla_alerts_for_history=False)


def _progress(stack: ExitStack, shown: bool):
    if not shown:
        return None
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = [TextColumn("[bold]importing[/] rows"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()]
    return stack.enter_context(Progress(*columns, console=console, transient=True))


def _written(messages: Iterable, f) -> Iterator:
    for message in messages:
        f.write(message.value + b"\n")
        yield message


def _produce(settings, messages, brokers: str, topic: Optional[str]) -> None:
    from boucle.flows.cli.kafka import ensure_kafka_topics, with_kafka
    from boucle.sinks.kafka import produce_messages, producer_config
    from boucle.sources.kafka_health import client_logging

    settings = with_kafka(settings, brokers=None if brokers == "-" else brokers, feedback_topic=topic)
    kafka = settings.kafka
    ensure_kafka_topics(settings, {kafka.feedback_topic: 6})
    wait_s = kafka.timeouts.unreachable_after.total_seconds()
    config = producer_config(kafka.broker_list(), kafka.librdkafka, **{"linger.ms": "50"},
                             **{"message.timeout.ms": str(int(wait_s * 1000))}, **client_logging(kafka))
    delivered = produce_messages(messages, config, kafka.feedback_topic, flush_timeout=wait_s + 5)
    console.print(f"{delivered:,} events acknowledged by {kafka.feedback_topic} at {kafka.brokers}")


def _print_result(result, file: Path, out: Optional[Path], dead_letters: Path) -> None:
    console.print(f"{file}: {result.rows:,} rows → {result.events:,} events"
                  + (f" → {out}" if out is not None else ""), markup=False, highlight=False)
    dead = sum(result.dead.values())
    if dead:
        reasons = ", ".join(f"{code} {n:,}" for code, n in result.dead.most_common())
        console.print(f"{dead:,} rows dead-lettered ({reasons}) → {dead_letters}", markup=False, highlight=False)
    for label, counts in (("not rated (answer dropped)", result.answers.not_rated),
                          ("mapped from a past scale", result.answers.rescaled)):
        if counts:
            console.print(f"{label}: " + ", ".join(f"{q} {n:,}" for q, n in counts.most_common()),
                          markup=False, highlight=False)
