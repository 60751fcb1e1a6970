"""Feedback from Kafka: bytewax's Kafka connector, emitting :class:`RawMessage` batches.

:class:`KafkaFeedbackSource` is :class:`bytewax.connectors.kafka.KafkaSource` (partitions assigned
explicitly with ``assign()``: no consumer group membership, no rebalance, no group-join delay) whose
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
read again (at-least-once). Resuming never uses Kafka's committed offsets; with ``commit_offsets``
(the feedback source, ``kafka.commit_offsets``) each partition also commits its next offset under
``kafka.group_id`` after every epoch, for lag tools only (:mod:`sources.kafka_offsets`).

``tail=False`` (``boucle run --to-end``) stops each partition at the end it finds
(``enable.partition.eof``), so a run over a topic is bounded.

Trouble (a broker away, a topic gone, credentials refused) ends the run with one line after
``kafka.timeouts.unreachable_after`` at the latest; see :mod:`sources.kafka_health`.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone
from typing import Optional

from bytewax.connectors.kafka import KafkaSource
from bytewax.inputs import StatefulSourcePartition
from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, KafkaError, KafkaException

from boucle.config.redact import redact_url
from boucle.config.settings import Kafka
from boucle.sources.kafka_health import (
    KafkaHealth,
    KafkaUnavailable,
    client_config,
    client_logging,
    describe_kafka_error,
    wait_for_topics,
)
from boucle.sources.kafka_offsets import OffsetCommitter
from boucle.sources.message import RawMessage

__all__ = ["KafkaFeedbackSource", "client_config", "consumer_tuning"]

# How long the broker may hold a fetch when no data is pending. Apache Kafka answers as soon as
# fetch.min.bytes are there, so this is only the idle long-poll; Tansu holds each fetch for the
# whole wait and spends CPU per fetch: 100 ms measured best there (20 ms saturates it at 2,000
# events/s, 500 ms adds half a second per hop).
consumer_tuning: dict[str, str] = {"fetch.wait.max.ms": "100", "fetch.min.bytes": "1"}

# Errors of a partition that mean its topic is gone (a broker restarted without its data).
_GONE = {KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._UNKNOWN_TOPIC, KafkaError._UNKNOWN_PARTITION}


class _RawPartition(StatefulSourcePartition[RawMessage, Optional[int]]):
    """The connector's partition (assignment, offsets, snapshots, close) polled without blocking.

    bytewax 0.21.1's own ``next_batch`` waits up to 1 ms in ``consume`` on every call, which with
    a few partitions per worker becomes the latency floor of the whole worker; here a poll never
    blocks and an idle partition asks to be woken ``idle_ms`` later instead. Offsets are kept in
    the connector's partition so its snapshot stays the resume position.

    Trouble: connection errors are retried by librdkafka and reported through the client's
    throttled log (:mod:`sources.kafka_health`); once the brokers have been unreachable for
    ``kafka.timeouts.unreachable_after`` (checked by a metadata request every few seconds), or the
    topic is gone, or the brokers refuse us, the partition raises :class:`KafkaUnavailable`: the
    run ends with that one line (a restart with ``--recovery-dir`` resumes where it was).
    """

    def __init__(self, inner: StatefulSourcePartition, idle_ms: int, linger_ms: int = 0,
                 kafka: Kafka | None = None, health: KafkaHealth | None = None,
                 committer: OffsetCommitter | None = None) -> None:
        self._inner = inner
        self._committer = committer
        if committer is not None:
            committer.acquire()
        self._idle = timedelta(milliseconds=idle_ms)
        self._linger = timedelta(milliseconds=linger_ms)
        self._awake: datetime | None = None
        self._kafka = kafka or Kafka()
        self._health = health or KafkaHealth()
        self._limit_s = self._kafka.timeouts.unreachable_after.total_seconds()
        self._probe_every_s = min(5.0, self._limit_s / 4)
        self._probed = 0.0

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
                self._trouble(error)
                continue
            out.append(RawMessage(m.value() or b"", m.topic(), m.partition(), m.offset(), m.key(), now_ms))
            last_offset = m.offset()
        if last_offset is not None:
            inner._offset = last_offset + 1
            self._health.reached()
        elif self._health.refused or self._health.down_since is not None:
            self._check()
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

    def _where(self) -> str:
        return f"topic {self._inner._topic!r} on Kafka at {redact_url(self._kafka.brokers)}"

    def _gone(self, detail: str = "") -> KafkaUnavailable:
        return KafkaUnavailable(f"{self._where()} no longer exists (was the broker restarted without its data?)"
                                f"{detail}")

    def _trouble(self, error: KafkaError) -> None:
        if error.code() in _GONE:
            raise self._gone(f": {describe_kafka_error(error)}")
        if error.fatal() or not (error.retriable() or error.code() < 0):
            raise KafkaUnavailable(f"error reading {self._where()}: {describe_kafka_error(error)}")
        self._health.failed(error)  # a local (negative) or retriable error: librdkafka retries it

    def _check(self) -> None:
        """With trouble reported: give up once it has lasted too long, or clear it if it is over."""
        health = self._health
        health.raise_if_refused(self._kafka.brokers)
        now = time.monotonic()
        if now - self._probed < self._probe_every_s:
            return
        self._probed = now
        try:
            metadata = self._inner._consumer.list_topics(self._inner._topic, timeout=1.0)
        except KafkaException as exc:
            if exc.args and isinstance(exc.args[0], KafkaError):
                health.failed(exc.args[0])
        else:
            info = metadata.topics.get(self._inner._topic)
            if metadata.brokers and info is not None and info.error is None:
                health.reached()
                return
            if metadata.brokers and info is not None and info.error is not None and info.error.code() in _GONE:
                raise self._gone()
        if health.down_for() >= self._limit_s:
            raise KafkaUnavailable(
                f"Kafka at {redact_url(self._kafka.brokers)} unreachable for {self._limit_s:g}s while reading"
                f" {self._inner._topic!r} ({health.last_error or 'no answer'}); a restart with --recovery-dir"
                " resumes where it stopped (kafka.timeouts.unreachable_after sets how long to wait)"
            )

    def next_awake(self) -> Optional[datetime]:
        return self._awake

    def snapshot(self) -> Optional[int]:
        # The end of an epoch: its next offset is the resume position, and (for lag tools) committed.
        offset = self._inner.snapshot()
        if self._committer is not None and offset is not None:
            self._committer.commit(self._inner._topic, self._inner._part_idx, offset)
        return offset

    def close(self) -> None:
        try:
            self._inner.close()
        finally:
            if self._committer is not None:
                self._committer.commit(self._inner._topic, self._inner._part_idx, self._inner._offset, force=True)
                self._committer.release()


class KafkaFeedbackSource(KafkaSource):
    """Read the feedback topic(s) of ``kafka`` as :class:`RawMessage` batches.

    ``tail=False`` stops at the end of every partition; ``from_end`` starts new partitions (no
    resume state) at their end instead of their beginning; ``idle_ms`` is how long an idle
    partition waits before polling again (bounds the added latency when traffic resumes);
    ``linger_ms`` is how long a partition lets the next batch gather after one (micro-batching);
    ``commit_offsets`` commits each partition's next offset under ``kafka.group_id`` after every
    epoch, for lag tools only (the feedback source when ``kafka.commit_offsets``).
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
        commit_offsets: bool = False,
    ) -> None:
        # bytewax's per-second statistics feed a lag gauge we do not export, and its callback
        # fails when a topic leaves the statistics (a broker outage): off.
        tuning = {**consumer_tuning, "statistics.interval.ms": 0}
        add_config = {k: v for k, v in client_config(kafka, **tuning).items() if k != "bootstrap.servers"}
        super().__init__(
            kafka.broker_list(),
            topics or [kafka.feedback_topic],
            tail=tail,
            starting_offset=OFFSET_END if from_end else OFFSET_BEGINNING,
            add_config=add_config,
            batch_size=batch_size,
        )
        self.kafka = kafka
        self._parts: list[str] | None = None
        self.idle_ms = idle_ms
        self.linger_ms = linger_ms
        self.committer = OffsetCommitter(kafka, kafka.group_id) if commit_offsets else None

    def list_parts(self) -> list[str]:
        """Every partition of every topic, waiting for the brokers at most
        ``kafka.timeouts.unreachable_after`` (then :class:`KafkaUnavailable`, one line)."""
        if self._parts is None:
            found = wait_for_topics(self.kafka, list(self._topics))
            self._parts = [f"{p}-{topic}" for topic in self._topics for p in found[topic]]
        return list(self._parts)

    def build_part(self, step_id: str, for_part: str, resume_state: Optional[int]) -> _RawPartition:
        health = KafkaHealth()
        shared = self._add_config
        self._add_config = {**shared, **client_logging(self.kafka, health)}  # this partition's own callbacks
        try:
            inner = super().build_part(step_id, for_part, resume_state)
        finally:
            self._add_config = shared
        return _RawPartition(inner, self.idle_ms, self.linger_ms, self.kafka, health, self.committer)
