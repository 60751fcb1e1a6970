"""Feedback from Kafka: bytewax's Kafka connector, emitting :class:`RawMessage` batches.

:class:`KafkaFeedbackSource` is :class:`bytewax.connectors.kafka.KafkaSource` (partitions assigned
explicitly with ``assign()``: no consumer group, no rebalance, no group-join delay) whose
partitions hand the flow :class:`RawMessage` objects (``origin`` = topic, ``partition``, ``offset``,
``key`` = site id, ``received_ms`` = wall clock at consumption) instead of connector messages.

Partitions → workers. Every partition of every input topic is one bytewax input partition
(named ``"{partition}-{topic}"``). bytewax spreads these over all workers of all processes
(``boucle run --workers N``): each partition is read by exactly one worker, a worker may read
several, and workers beyond the partition count read nothing (but still share the keyed work
downstream, which is exchanged by site id). So the feedback topic's partition count caps the
parallelism of reading; 6-12 partitions suit a few workers. Keying by site id keeps one site's
events in order within a partition.

Offsets. Without recovery a run starts from the beginning of each partition (``--from-end`` to
skip history). With ``--recovery-dir`` the offset of the next message of every partition is in
each epoch's snapshot and a restart resumes from the last committed epoch: messages after it are
read again (at-least-once). Nothing is committed to Kafka: the consumer group id is unused.

``tail=False`` (``boucle run --to-end``) stops each partition at the end it finds
(``enable.partition.eof``), so a run over a topic is bounded.

>>> from boucle.config.settings import Kafka
>>> config = client_config(Kafka(brokers="k1:9092,k2:9092", librdkafka={"security.protocol": "SSL"}))
>>> config["bootstrap.servers"], config["security.protocol"]
('k1:9092,k2:9092', 'SSL')
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone
from typing import Any, Optional

from bytewax.connectors.kafka import KafkaSource, _list_parts
from bytewax.inputs import StatefulSourcePartition
from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, KafkaError
from confluent_kafka.admin import AdminClient

from boucle.config.settings import Kafka
from boucle.sources.message import RawMessage

__all__ = ["KafkaFeedbackSource", "client_config", "consumer_tuning"]

# How long the broker may hold a fetch when no data is pending. Apache Kafka answers as soon as
# fetch.min.bytes are there, so this is only the idle long-poll; Tansu holds each fetch for the
# whole wait and spends CPU per fetch: 100 ms measured best there (20 ms saturates it at 2,000
# events/s, 500 ms adds half a second per hop).
consumer_tuning: dict[str, str] = {"fetch.wait.max.ms": "100", "fetch.min.bytes": "1"}


def client_config(kafka: Kafka, **extra: Any) -> dict[str, Any]:
    """librdkafka settings for a client of ``kafka``: servers, the user's pass-through, ``extra``.

    The user's ``kafka.librdkafka`` wins over ``extra`` (it is the documented way to tune).
    """
    return {"bootstrap.servers": ",".join(kafka.broker_list()), **extra, **kafka.librdkafka}


class _RawPartition(StatefulSourcePartition[RawMessage, Optional[int]]):
    """The connector's partition (assignment, offsets, snapshots, close) polled without blocking.

    bytewax 0.21.1's own ``next_batch`` waits up to 1 ms in ``consume`` on every call, which with
    a few partitions per worker becomes the latency floor of the whole worker; here a poll never
    blocks and an idle partition asks to be woken ``idle_ms`` later instead. Offsets are kept in
    the connector's partition so its snapshot stays the resume position.
    """

    def __init__(self, inner: StatefulSourcePartition, idle_ms: int, linger_ms: int = 0) -> None:
        self._inner = inner
        self._idle = timedelta(milliseconds=idle_ms)
        self._linger = timedelta(milliseconds=linger_ms)
        self._awake: datetime | None = None

    def next_batch(self) -> list[RawMessage]:
        inner = self._inner
        if inner._eof:
            raise StopIteration
        now_ms = int(time.time() * 1000)
        out: list[RawMessage] = []
        last_offset = None
        for m in inner._consumer.consume(inner._batch_size, 0):
            error = m.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    inner._eof = True  # end the partition at the next call, after this batch
                    break
                raise RuntimeError(f"error consuming from Kafka topic {inner._topic!r}: {error}")
            out.append(RawMessage(m.value() or b"", m.topic(), m.partition(), m.offset(), m.key(), now_ms))
            last_offset = m.offset()
        if last_offset is not None:
            inner._offset = last_offset + 1
        # An idle partition sleeps a little instead of spinning. After a batch, the partition lets
        # the next one gather for `linger` (micro-batching): per-batch costs of the per-site state
        # are then shared by many responses, at the price of at most `linger` of added latency.
        if inner._eof:
            self._awake = None
        elif out:
            self._awake = datetime.now(timezone.utc) + self._linger if self._linger else None
        else:
            self._awake = datetime.now(timezone.utc) + self._idle
        return out

    def next_awake(self) -> Optional[datetime]:
        return self._awake

    def snapshot(self) -> Optional[int]:
        return self._inner.snapshot()

    def close(self) -> None:
        self._inner.close()


class KafkaFeedbackSource(KafkaSource):
    """Read the feedback topic(s) of ``kafka`` as :class:`RawMessage` batches.

    ``tail=False`` stops at the end of every partition; ``from_end`` starts new partitions (no
    resume state) at their end instead of their beginning; ``idle_ms`` is how long an idle
    partition waits before polling again (bounds the added latency when traffic resumes);
    ``linger_ms`` is how long a partition lets the next batch gather after one (micro-batching).
    """

    def __init__(
        self,
        kafka: Kafka,
        topics: list[str] | None = None,
        *,
        tail: bool = True,
        from_end: bool = False,
        batch_size: int = 2000,
        idle_ms: int = 2,
        linger_ms: int = 0,
    ) -> None:
        add_config = {k: v for k, v in client_config(kafka, **consumer_tuning).items() if k != "bootstrap.servers"}
        super().__init__(
            kafka.broker_list(),
            topics or [kafka.feedback_topic],
            tail=tail,
            starting_offset=OFFSET_END if from_end else OFFSET_BEGINNING,
            add_config=add_config,
            batch_size=batch_size,
        )
        self.kafka = kafka
        self.idle_ms = idle_ms
        self.linger_ms = linger_ms

    def list_parts(self) -> list[str]:
        """Every partition of every topic (the admin client gets no consumer-only settings)."""
        return list(_list_parts(AdminClient(client_config(self.kafka)), self._topics))

    def build_part(self, step_id: str, for_part: str, resume_state: Optional[int]) -> _RawPartition:
        return _RawPartition(super().build_part(step_id, for_part, resume_state), self.idle_ms, self.linger_ms)
