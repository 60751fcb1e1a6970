"""Offsets committed to Kafka under a consumer group, for lag tools only.

Boucle reads its partitions with ``assign()`` and resumes from the recovery store, never from
Kafka's committed offsets. Standard monitoring (``kafka-consumer-groups.sh --describe --group
boucle``, Burrow, Kafka exporters) reads the lag of a consumer group, though, so after each epoch
every feedback partition commits its next offset (the offset of the next message to read, as Kafka
expects) under ``kafka.group_id``.

A commit is asynchronous and never stops or slows the flow: at most one commit per partition is
in flight (an epoch that finds its partition's previous commit unanswered skips it, the next one
carries the newer offset); a failure is counted and logged through the throttled Kafka log, and
the reading goes on. One committer (one librdkafka consumer that never subscribes, with its own
connection, so its errors never reach the reading consumers) serves every partition of a source
in the process; the last partition to close commits its final offset and waits for the answers
at most ``FLUSH_S`` seconds.

>>> committer = OffsetCommitter(Kafka(brokers="127.0.0.1:1"), "boucle")  # nothing connects yet
>>> committer.stats()
{'group_id': 'boucle', 'committed': 0, 'failed': 0, 'skipped': 0}
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from confluent_kafka import Consumer, KafkaException, TopicPartition

from boucle.config.settings import Kafka
from boucle.sources.kafka_health import KafkaHealth, _throttle, client_config, client_logging, describe_kafka_error

__all__ = ["FLUSH_S", "OffsetCommitter"]

logger = logging.getLogger("boucle.kafka")

FLUSH_S = 2.0  # at close, how long the last commits may take to be answered


class OffsetCommitter:
    """Commit ``(topic, partition) -> next offset`` under ``group_id``, asynchronously and best effort.

    ``acquire()`` / ``release()`` bracket each partition's use; the client is made on first use
    and closed (after a bounded flush) when the last partition releases it. Thread-safe: bytewax
    workers of one process are threads.
    """

    def __init__(self, kafka: Kafka, group_id: str) -> None:
        self.kafka = kafka
        self.group_id = group_id
        self.committed = 0  # partition offsets the group coordinator acknowledged
        self.failed = 0  # partition offsets it refused, or commits that could not be sent
        self.skipped = 0  # epochs whose commit was skipped while the partition's previous one was unanswered
        self._log = _throttle(logger, kafka.timeouts.report_every.total_seconds())
        self._lock = threading.RLock()
        self._consumer: Consumer | None = None
        self._users = 0
        self._in_flight: set[tuple[str, int]] = set()
        self._last: dict[tuple[str, int], int] = {}  # the last offset sent, per partition

    def stats(self) -> dict[str, Any]:
        return {"group_id": self.group_id, "committed": self.committed, "failed": self.failed,
                "skipped": self.skipped}

    def acquire(self) -> None:
        with self._lock:
            self._users += 1

    def _client(self) -> Consumer:
        if self._consumer is None:
            config = client_config(
                self.kafka, **client_logging(self.kafka, KafkaHealth()),  # its health decides nothing
                **{"group.id": self.group_id, "enable.auto.commit": "false", "on_commit": self._on_commit},
            )
            self._consumer = Consumer(config)
        return self._consumer

    def commit(self, topic: str, partition: int, offset: int, *, force: bool = False) -> None:
        """Send ``offset`` (the next one to read) of ``topic``/``partition``; returns at once.

        Skipped when the offset is not a real one (nothing read yet), did not move since the last
        commit, or (unless ``force``) the partition's previous commit is still unanswered.
        """
        if offset < 0:
            return
        key = (topic, partition)
        with self._lock:
            try:
                client = self._client()
                client.poll(0)  # serves the answers (on_commit) of earlier commits
                if self._last.get(key) == offset:
                    return
                if key in self._in_flight and not force:
                    self.skipped += 1
                    return
                client.commit(offsets=[TopicPartition(topic, partition, offset)], asynchronous=True)
            except (KafkaException, RuntimeError) as exc:
                self._failed(describe_kafka_error(exc))
                return
            self._in_flight.add(key)
            self._last[key] = offset

    def _on_commit(self, error: Any, partitions: list[TopicPartition]) -> None:
        with self._lock:
            for tp in partitions:
                self._in_flight.discard((tp.topic, tp.partition))
                if error is None and tp.error is None:
                    self.committed += 1
                else:
                    self._last.pop((tp.topic, tp.partition), None)  # sent again at the next epoch
                    self._failed(describe_kafka_error(tp.error or error))

    def _failed(self, cause: str) -> None:
        self.failed += 1
        self._log.warning(
            "offset-commit",
            f"could not commit offsets under consumer group {self.group_id!r} ({cause}); they are for lag"
            " monitoring only, reading goes on (kafka.commit_offsets = false turns them off)",
        )

    def release(self) -> None:
        """One partition is done; the last one flushes the commits (at most ``FLUSH_S``) and closes."""
        with self._lock:
            self._users -= 1
            if self._users > 0 or self._consumer is None:
                return
            consumer, self._consumer = self._consumer, None
            deadline = time.monotonic() + FLUSH_S
            try:
                while self._in_flight and time.monotonic() < deadline:
                    consumer.poll(0.05)
                consumer.close()
            except (KafkaException, RuntimeError) as exc:
                self._failed(describe_kafka_error(exc))
            if self._in_flight:
                self._failed(f"{len(self._in_flight)} commit(s) unanswered after {FLUSH_S:g}s at close")
                self._in_flight.clear()
