"""Kafka writers: alerts for the teams that act on them, dead letters for the ones that fix inputs.

**Alerts** (:class:`KafkaAlertSink`) go to ``kafka.alerts_topic`` (``boucle.alerts``) and, when
``kafka.alerts_topic_template`` is set (e.g. ``boucle.alerts.{region}``), also to the topic it names
for the alert (fields ``region``, ``kind``, ``severity``). Each record has

- key: the alert's ``site_id`` (one site's alerts stay in order within a partition), or its
  ``region`` for an alert of no site (a regional incident: routed by region);
- value: the alert as JSON (orjson), described by ``schemas/alert.schema.json``;
- headers: ``kind``, ``severity``, ``region``, ``status`` and ``schema`` (``boucle.alert/1``), so a
  subscriber can route or filter without parsing the value.

**Dead letters** (:class:`KafkaDeadLetterSink`) go to ``kafka.dlq_topic`` (``boucle.dlq``) with the
bytes the item carries as value (the flow's: the message's masked text, its original bytes with
``privacy.keep_raw``), the original key, and headers ``reason_code``, ``reason``, ``topic``,
``partition`` and ``offset`` (where the message was read; ``topic`` is the source's origin, e.g.
``boucle.feedback`` or ``simulator``).

Latency and delivery. Both sinks are bytewax *fixed-partitioned* sinks with one partition (one
producer, ``linger.ms`` 0: records queued while a request is in flight are batched anyway).
``write_batch`` hands the batch to librdkafka and serves delivery reports without waiting, so an
alert leaves in the activation that produced it (its latency is the broker's acknowledgement,
not bytewax's 10 s epoch); ``snapshot()``, which bytewax calls at the end of every epoch before
committing it, *flushes*: an epoch is never committed (with recovery) before its alerts and dead
letters are acknowledged by the broker. A record the broker refuses fails the flow (a resume then
re-sends it) rather than being dropped silently. Delivery is at-least-once: after a resume the
same alerts (same deterministic ``alert_id``) may be published again. The flow keys the stream
for these sinks itself (``flows.feedback_flow`` routes items to a fixed-partitioned sink as
``(site_id, item)``).
"""

from __future__ import annotations

import time
from typing import Any, Callable, Iterable

import orjson
from bytewax.outputs import FixedPartitionedSink, StatefulSinkPartition
from confluent_kafka import KafkaError, KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic

__all__ = [
    "KafkaAlertSink",
    "KafkaDeadLetterSink",
    "KafkaRecord",
    "NotDelivered",
    "alert_key",
    "alert_records",
    "dead_letter_record",
    "ensure_topics",
    "produce_messages",
    "producer_config",
]

KafkaRecord = tuple  # (topic, key, value, headers)

_PRODUCER_DEFAULTS = {"linger.ms": "0", "acks": "all"}


def producer_config(brokers: Iterable[str] | str, librdkafka: dict[str, str] | None = None, **extra: Any) -> dict:
    """Producer settings: low linger for alerts; the user's pass-through settings win."""
    servers = brokers if isinstance(brokers, str) else ",".join(brokers)
    return {"bootstrap.servers": servers, **_PRODUCER_DEFAULTS, **extra, **(librdkafka or {})}


def _text(value: Any) -> bytes:
    return b"" if value is None else str(value).encode("utf-8")


def alert_key(alert: dict[str, Any]) -> bytes:
    """An alert's record key: its ``site_id``, or its ``region`` when it has no site (a regional incident).

    >>> alert_key({"site_id": "store-0001", "region": "north"}), alert_key({"site_id": "", "region": "north"})
    (b'store-0001', b'north')
    """
    return _text(alert.get("site_id") or alert.get("region"))


def alert_records(alert: dict[str, Any], topic: str, template: str = "") -> list[KafkaRecord]:
    """The record(s) publishing ``alert``: to ``topic``, and to ``template`` filled in, if given.

    >>> alert = {"schema": "boucle.alert/1", "alert_id": "a1", "kind": "hot", "severity": "high",
    ...          "status": "open", "site_id": "store-0001", "region": "north"}
    >>> [(t, k, h[:2]) for t, k, _, h in alert_records(alert, "boucle.alerts", "boucle.alerts.{region}")]
    [('boucle.alerts', b'store-0001', [('kind', b'hot'), ('severity', b'high')]), ('boucle.alerts.north', b'store-0001', [('kind', b'hot'), ('severity', b'high')])]
    """
    key = alert_key(alert)
    json_bytes = getattr(alert, "json_bytes", None)  # alerts keep their serialisation
    value = json_bytes() if json_bytes is not None else orjson.dumps(alert, option=orjson.OPT_NON_STR_KEYS)
    headers = [
        ("kind", _text(alert.get("kind"))),
        ("severity", _text(alert.get("severity"))),
        ("region", _text(alert.get("region"))),
        ("status", _text(alert.get("status"))),
        ("schema", _text(alert.get("schema"))),
    ]
    topics = [topic] if topic else []
    if template:
        fields = {name: str(alert.get(name) or "none") for name in ("region", "kind", "severity")}
        regional = template.format(**fields)
        if regional not in topics:
            topics.append(regional)
    return [(t, key, value, headers) for t in topics]


def dead_letter_record(item: dict[str, Any], topic: str) -> KafkaRecord:
    """A dead letter as a record: the original bytes and key when the item carries them.

    The flow's dead-letter items are dicts ``{origin, partition, offset, reason_code, reason, raw}``;
    the original bytes are their ``value`` attribute (``raw`` is only a text rendering of them).

    >>> t, k, v, h = dead_letter_record({"origin": "boucle.feedback", "partition": 2, "offset": 7,
    ...     "reason_code": "invalid_json", "reason": "unexpected end", "raw": "{"}, "boucle.dlq")
    >>> t, k, v, dict(h)["offset"], dict(h)["reason_code"]
    ('boucle.dlq', None, b'{', b'7', b'invalid_json')
    """
    value = getattr(item, "value", None)
    if value is None:
        value = str(item.get("raw", "")).encode("utf-8")
    headers = [
        ("reason_code", _text(item.get("reason_code"))),
        ("reason", _text(item.get("reason"))),
        ("topic", _text(item.get("origin"))),
        ("partition", _text(item.get("partition"))),
        ("offset", _text(item.get("offset"))),
    ]
    return (topic, getattr(item, "key", None), bytes(value), headers)


class _Partition(StatefulSinkPartition[dict, None]):
    def __init__(self, producer: Producer, to_records: Callable[[dict], list[KafkaRecord]], flush_timeout: float):
        self._producer = producer
        self._to_records = to_records
        self._flush_timeout = flush_timeout
        self._errors: list[str] = []

    def _on_delivery(self, err, msg) -> None:
        if err is not None:
            self._errors.append(f"{msg.topic()}: {err}")

    def _raise_errors(self) -> None:
        if self._errors:
            errors, self._errors = self._errors, []
            raise KafkaException(f"{len(errors)} records refused by the broker, e.g. {errors[0]}")

    def write_batch(self, items: list[dict]) -> None:
        producer = self._producer
        for item in items:
            for topic, key, value, headers in self._to_records(item):
                while True:
                    try:
                        producer.produce(topic, value, key, headers=headers, on_delivery=self._on_delivery)
                        break
                    except BufferError:  # local queue full: let deliveries drain
                        producer.poll(0.05)
        producer.poll(0)  # delivery reports; sending happens on librdkafka's own threads
        self._raise_errors()

    def flush(self) -> None:
        remaining = self._producer.flush(self._flush_timeout)
        if remaining:
            raise KafkaException(f"{remaining} records not delivered within {self._flush_timeout}s")
        self._raise_errors()

    def snapshot(self) -> None:
        self.flush()  # the epoch commits only once its records are acknowledged
        return None

    def close(self) -> None:
        self.flush()


class _KafkaSink(FixedPartitionedSink[dict, None]):
    def __init__(self, brokers, librdkafka: dict[str, str] | None, flush_timeout: float, **extra: Any):
        self.config = producer_config(brokers, librdkafka, **extra)
        self.flush_timeout = flush_timeout
        self.topic = ""
        self._prepared: Producer | None = None
        self._parts: list[_Partition] = []

    def _records(self, item: dict) -> list[KafkaRecord]:  # pragma: no cover - abstract
        raise NotImplementedError

    def list_parts(self) -> list[str]:
        return ["producer"]

    def prepare(self) -> None:
        """Create the producer, connect and learn the topic's partitions now rather than in front
        of the first record (bytewax builds a sink's partition when its first item arrives)."""
        if self._prepared is None:
            self._prepared = Producer(dict(self.config))
            try:
                self._prepared.list_topics(self.topic, timeout=5)
            except KafkaException:
                pass  # a broker that is away is the producer's to retry, as for any record

    def build_part(self, step_id: str, for_part: str, resume_state: None) -> _Partition:
        producer, self._prepared = self._prepared, None
        part = _Partition(producer or Producer(dict(self.config)), self._records, self.flush_timeout)
        self._parts.append(part)
        return part

    def drain(self, timeout: float = 10.0) -> None:
        """Deliver what the producers still queue (after Ctrl-C: bytewax does not close sinks then)."""
        for part in self._parts:
            part._producer.flush(timeout)


class KafkaAlertSink(_KafkaSink):
    """Publishes alert dicts (see the module docstring for topics, key and headers)."""

    def __init__(
        self,
        brokers: Iterable[str] | str,
        topic: str = "boucle.alerts",
        template: str = "",
        librdkafka: dict[str, str] | None = None,
        flush_timeout: float = 30.0,
        **extra: Any,
    ) -> None:
        super().__init__(brokers, librdkafka, flush_timeout, **extra)
        self.topic = topic
        self.template = template

    def _records(self, item: dict) -> list[KafkaRecord]:
        return alert_records(item, self.topic, self.template)


class KafkaDeadLetterSink(_KafkaSink):
    """Publishes the flow's dead-letter items: original bytes, reason and position in headers."""

    def __init__(
        self,
        brokers: Iterable[str] | str,
        topic: str = "boucle.dlq",
        librdkafka: dict[str, str] | None = None,
        flush_timeout: float = 30.0,
        **extra: Any,
    ) -> None:
        super().__init__(brokers, librdkafka, flush_timeout, **extra)
        self.topic = topic

    def _records(self, item: dict) -> list[KafkaRecord]:
        return [dead_letter_record(item, self.topic)]


def ensure_topics(config: dict, topics: dict[str, int], timeout: float = 15.0) -> list[str]:
    """Create the missing ``topics`` (name -> partitions); returns the names created.

    Existing topics are left as they are. Brokers that refuse topic creation (ACLs) raise.
    """
    admin = AdminClient({k: v for k, v in config.items() if k not in _PRODUCER_DEFAULTS})
    existing = set(admin.list_topics(timeout=timeout).topics)
    wanted = [NewTopic(name, partitions, 1) for name, partitions in topics.items() if name not in existing]
    created = []
    for name, future in (admin.create_topics(wanted, request_timeout=timeout).items() if wanted else []):
        try:
            future.result(timeout)
            created.append(name)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise
    return created


class NotDelivered(KafkaException):
    """Some records were not acknowledged by the broker (refused, or timed out)."""


def produce_messages(
    messages: Iterable[Any],
    config: dict,
    topic: str,
    *,
    rate: float | None = None,
    realtime: bool = False,
    headers: Callable[[Any], list[tuple[str, bytes]]] | None = None,
    on_sent: Callable[[int], None] | None = None,
    flush_timeout: float | None = None,
) -> int:
    """Produce ``messages`` (anything with ``value``, ``key``, ``received_ms``) to ``topic``.

    As fast as possible by default (batched by the producer's ``linger.ms``); ``rate`` paces to
    that many messages per second; ``realtime`` sends each message when the wall clock reaches its
    ``received_ms``. A broker that is away is waited for (librdkafka retries until the producer's
    ``message.timeout.ms``); the end flushes (at most ``flush_timeout`` seconds) and returns how many
    the broker acknowledged. Any record refused or not acknowledged raises :class:`NotDelivered`
    saying how many of how many: nothing is lost silently. ``on_sent(n)`` reports progress.
    """
    producer = Producer(config)
    errors: list[str] = []
    delivered = [0]

    def on_delivery(err, msg) -> None:
        if err is None:
            delivered[0] += 1
        else:
            errors.append(str(err))

    def failed(sent: int) -> NotDelivered:
        return NotDelivered(f"{sent - delivered[0]:,} of {sent:,} records not delivered to {topic!r}"
                            f" ({errors[0] if errors else 'no acknowledgement in time'})")

    start = time.monotonic()
    sent = 0
    reported = 0
    every = 20 if rate or realtime else 500
    for message in messages:
        if rate:
            delay = start + sent / rate - time.monotonic()
            if delay > 0:
                producer.poll(delay)  # serves delivery callbacks while waiting
        elif realtime and message.received_ms:
            delay = message.received_ms / 1000 - time.time()
            if delay > 0:
                producer.poll(delay)
        extra = headers(message) if headers else None
        while True:
            try:
                producer.produce(topic, message.value, message.key, headers=extra, on_delivery=on_delivery)
                break
            except BufferError:  # the local queue is full (e.g. the broker is away): wait for room
                producer.poll(0.05)
                if errors:
                    producer.flush(5)
                    raise failed(sent) from None
        sent += 1
        if sent - reported >= every:
            producer.poll(0)
            if on_sent is not None:
                on_sent(sent - reported)
            reported = sent
        if errors:
            producer.flush(5)
            raise failed(sent)
    remaining = producer.flush(-1 if flush_timeout is None else flush_timeout)
    if on_sent is not None and sent > reported:
        on_sent(sent - reported)
    if errors or remaining or delivered[0] < sent:
        raise failed(sent)
    return delivered[0]
