"""``boucle alerts tail``: follow the alert topic from a terminal or a script.

The consumer *assigns* itself every partition of the topic (no consumer group: nothing to join,
nothing committed, output from the first poll), starting at the end (new alerts only) or, with
``from_beginning``, at the start. Filters use the record headers (``region``, ``kind``,
``severity``), so filtered-out alerts are never parsed. ``to_end`` stops once every partition has
been read to the end it had when reached; otherwise it follows until interrupted.

Each alert prints as one line like the console sink's (:func:`sinks.console.alert_line`) or, with
``as_json``, as the record's value (one JSON document per line, ready for ``jq``). Anyone who can
produce to the topic writes what is printed: control characters are shown as escapes in lines
and as ``\\uXXXX`` in JSON (the same JSON value), and a record that is not an alert prints as one
line saying so (:mod:`sinks.safe_text`).
"""

from __future__ import annotations

import sys
from typing import Callable, Iterable, TextIO

import orjson
from confluent_kafka import (
    OFFSET_BEGINNING,
    OFFSET_END,
    Consumer,
    KafkaError,
    TopicPartition,
)

from boucle.config.settings import SEVERITY_RANK, Kafka
from boucle.sinks.console import alert_line
from boucle.sinks.safe_text import json_line, terminal_text
from boucle.sources.kafka_source import client_config, consumer_tuning

__all__ = ["AlertFilter", "tail_alerts"]


class AlertFilter:
    """Keeps the records whose headers match; empty criteria match everything.

    >>> f = AlertFilter(regions=["north"], min_severity="high")
    >>> f([("region", b"north"), ("severity", b"critical")]), f([("region", b"north"), ("severity", b"low")])
    (True, False)
    """

    def __init__(self, regions: Iterable[str] = (), kinds: Iterable[str] = (), min_severity: str | None = None):
        self.regions = {r for r in regions if r}
        self.kinds = {k for k in kinds if k}
        self.min_rank = SEVERITY_RANK[min_severity] if min_severity else None

    def __call__(self, headers: list[tuple[str, bytes]] | None) -> bool:
        h = {k: (v or b"").decode("utf-8", "replace") for k, v in (headers or [])}
        if self.regions and h.get("region") not in self.regions:
            return False
        if self.kinds and h.get("kind") not in self.kinds:
            return False
        if self.min_rank is not None and SEVERITY_RANK.get(h.get("severity", ""), -1) < self.min_rank:
            return False
        return True


def _alert_or_placeholder(value: bytes, partition: int, offset: int) -> dict:
    """The record's alert, or a stand-in that says where an unreadable record is (never a crash).

    >>> _alert_or_placeholder(b"\\x1b]0;x", 0, 7)["message"]
    'not an alert (partition 0, offset 7): \\\\x1b]0;x'
    """
    try:
        alert = orjson.loads(value)
    except orjson.JSONDecodeError:
        alert = None
    if isinstance(alert, dict):
        return alert
    preview = terminal_text(value[:200].decode("utf-8", "replace"))
    return {"severity": "low", "message": f"not an alert (partition {partition}, offset {offset}): {preview}"}


def _partitions(consumer: Consumer, topic: str, timeout: float) -> list[int]:
    metadata = consumer.list_topics(topic, timeout=timeout)
    info = metadata.topics.get(topic)
    if info is None or info.error is not None:
        raise RuntimeError(f"cannot read topic {topic!r}: {info.error if info else 'not found'}")
    return sorted(info.partitions)


def tail_alerts(
    kafka: Kafka,
    *,
    topic: str | None = None,
    keep: Callable[[list[tuple[str, bytes]] | None], bool] = AlertFilter(),
    from_beginning: bool = False,
    to_end: bool = False,
    as_json: bool = False,
    out: TextIO | None = None,
    console=None,
    on_alert: Callable[[bytes], None] | None = None,
    timeout: float = 10.0,
) -> int:
    """Print (or hand to ``on_alert``) the alerts of ``topic``; returns how many were shown."""
    topic = topic or kafka.alerts_topic
    config = client_config(
        kafka,
        **{
            "group.id": "boucle-alerts-tail",  # required by librdkafka; unused with assign()
            "enable.auto.commit": "false",
            "enable.partition.eof": "true" if to_end else "false",
            **consumer_tuning,
        },
    )
    consumer = Consumer(config)
    shown = 0
    try:
        parts = _partitions(consumer, topic, timeout)
        start = OFFSET_BEGINNING if from_beginning else OFFSET_END
        consumer.assign([TopicPartition(topic, p, start) for p in parts])
        pending = set(parts)
        out = out or sys.stdout
        while not to_end or pending:
            for msg in consumer.consume(500, 0.2):
                err = msg.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        pending.discard(msg.partition())
                        continue
                    raise RuntimeError(f"consuming {topic!r}: {err}")
                if not keep(msg.headers()):
                    continue
                shown += 1
                value = msg.value() or b""
                if on_alert is not None:
                    on_alert(value)
                elif as_json:
                    out.write(json_line(value.decode("utf-8", "replace")) + "\n")
                    out.flush()
                else:
                    line = alert_line(_alert_or_placeholder(value, msg.partition(), msg.offset()))
                    if console is not None:
                        console.print(line, soft_wrap=True)
                    else:
                        out.write(line.plain + "\n")
                        out.flush()
    except KeyboardInterrupt:
        pass
    finally:
        consumer.close()
    return shown
