"""Reading the alert topic for the notifier, and writing its delivery dead letters.

Consumption is at-least-once under a consumer group without joining it (a join costs ~20 s on
some brokers and a rebalance would move partitions mid-delivery): the notifier *assigns* itself
every partition of ``kafka.alerts_topic``, starts each at the offset committed under
``notify.group_id`` (none: ``notify.start``), and after each batch commits the next offsets with
the admin client (``alter_consumer_group_offsets``, as :mod:`sources.kafka_offsets` does), once
every alert of the batch is delivered or safely in the ledger (waiting for its digest, quiet
hours or a retry). One notifier per group: two would both deliver (the ledger deduplicates
within one process only). A restart re-reads at most the last batch; the ledger knows what was
delivered, so nothing is sent twice.

Dead letters go to ``notify.dlq_topic`` (key: the delivery, value: JSON with the reason and the
alert, headers ``reason``, ``channel``, ``alert_id``); each is acknowledged by the broker before
the ledger forgets it.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable

from confluent_kafka import (
    OFFSET_BEGINNING,
    OFFSET_END,
    Consumer,
    ConsumerGroupTopicPartitions,
    KafkaError,
    KafkaException,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient

from boucle.config.settings import Kafka
from boucle.flows.notify.notifier import DeadLetter, Notifier
from boucle.sinks.kafka import producer_config
from boucle.sinks.notify import DeliveryFailed
from boucle.sources.kafka_health import client_config, client_logging, describe_kafka_error, wait_for_topics
from boucle.sources.kafka_source import consumer_tuning

__all__ = ["DeadLetterTopic", "consume_alerts"]

logger = logging.getLogger("boucle.notify")

_TIMEOUT_S = 15.0
# A partition error that ends the run (the rest, e.g. a broker away for a while, librdkafka retries).
_GONE = {KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._UNKNOWN_TOPIC, KafkaError._UNKNOWN_PARTITION,
         KafkaError.TOPIC_AUTHORIZATION_FAILED, KafkaError.GROUP_AUTHORIZATION_FAILED}


class DeadLetterTopic:
    """Writes :class:`DeadLetter` records to a topic; raises :class:`DeliveryFailed` if not acknowledged."""

    def __init__(self, kafka: Kafka, topic: str) -> None:
        self.topic = topic
        wait_s = kafka.timeouts.unreachable_after.total_seconds()
        self.producer = Producer(producer_config(kafka.broker_list(), kafka.librdkafka,
                                                 **{"message.timeout.ms": str(int(wait_s * 1000))},
                                                 **client_logging(kafka)))
        self.flush_s = wait_s + 5

    def __call__(self, letter: DeadLetter) -> None:
        errors: list[str] = []
        headers = [("reason", letter.reason.encode()), ("channel", letter.channel.encode()),
                   ("alert_id", letter.alert_id.encode())]
        self.producer.produce(self.topic, letter.json(), key=letter.key.encode(), headers=headers,
                              on_delivery=lambda err, _msg: errors.append(str(err)) if err else None)
        if self.producer.flush(self.flush_s) or errors:
            raise DeliveryFailed(f"{self.topic}: {errors[0] if errors else 'not acknowledged'}")


def _committed(admin: AdminClient, group: str, topic: str, partitions: list[int]) -> dict[int, int]:
    request = ConsumerGroupTopicPartitions(group, [TopicPartition(topic, p) for p in partitions])
    [future] = admin.list_consumer_group_offsets([request]).values()
    try:
        answer = future.result(_TIMEOUT_S)
    except KafkaException as exc:
        logger.warning("could not read the offsets of group %s (%s): starting from notify.start", group,
                       describe_kafka_error(exc))
        return {}
    return {tp.partition: tp.offset for tp in answer.topic_partitions if tp.offset >= 0}


def _commit(admin: AdminClient, group: str, topic: str, offsets: dict[int, int]) -> bool:
    request = ConsumerGroupTopicPartitions(group, [TopicPartition(topic, p, o) for p, o in sorted(offsets.items())])
    [future] = admin.alter_consumer_group_offsets([request]).values()
    try:
        answer = future.result(_TIMEOUT_S)
    except KafkaException as exc:
        logger.warning("could not commit offsets of group %s (%s); the ledger keeps deliveries unique",
                       group, describe_kafka_error(exc))
        return False
    return not any(tp.error for tp in answer.topic_partitions)


def consume_alerts(kafka: Kafka, notifier: Notifier, *, group_id: str, start: str = "beginning",
                   topic: str | None = None, to_end: bool = False, stop: threading.Event | None = None,
                   poll_s: float = 1.0, on_batch: Callable[[int], None] | None = None,
                   report: Callable[[], None] | None = None, report_every_s: float = 300.0) -> int:
    """Feed the notifier from the alert topic until ``stop`` (or, with ``to_end``, the end of the topic
    with nothing due); returns how many records were read. ``report`` is called every ``report_every_s``."""
    topic = topic or kafka.alerts_topic
    stop = stop or threading.Event()
    [partitions] = wait_for_topics(kafka, [topic], what="read").values()
    admin = AdminClient(client_config(kafka, **client_logging(kafka)))
    committed = _committed(admin, group_id, topic, list(partitions))
    default = OFFSET_BEGINNING if start == "beginning" else OFFSET_END
    consumer = Consumer(client_config(kafka, **{
        "group.id": group_id, "enable.auto.commit": "false", "enable.partition.eof": "true",
        **consumer_tuning, **client_logging(kafka)}))
    consumer.assign([TopicPartition(topic, p, committed.get(p, default)) for p in partitions])
    at_end: set[int] = set()
    read = 0
    reported = time.monotonic()
    try:
        while not stop.is_set():
            offsets: dict[int, int] = {}
            for msg in consumer.consume(500, poll_s):
                error = msg.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        at_end.add(msg.partition())
                        continue
                    if error.fatal() or error.code() in _GONE:
                        raise KafkaException(error)
                    logger.warning("reading %s: %s (retrying)", topic, error.str())  # librdkafka reconnects
                    continue
                at_end.discard(msg.partition())
                notifier.accept(msg.value() or b"", f"{topic}/{msg.partition()}/{msg.offset()}")
                offsets[msg.partition()] = msg.offset() + 1
                read += 1
            notifier.tick()
            if offsets:
                _commit(admin, group_id, topic, offsets)
                if on_batch is not None:
                    on_batch(len(offsets))
            if report is not None and time.monotonic() - reported >= report_every_s:
                reported = time.monotonic()
                report()
            if to_end and at_end >= set(partitions) and not _due_now(notifier):
                break
    finally:
        consumer.close()
    return read


def _due_now(notifier: Notifier) -> bool:
    due = notifier.next_due()
    return due is not None and due <= notifier.clock.now() or bool(notifier.ledger.waiting_dead_letters(1))
