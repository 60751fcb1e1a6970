"""Offsets committed to Kafka under a consumer group, for lag tools only.

Boucle reads its partitions with ``assign()`` and resumes from the recovery store, never from
Kafka's committed offsets. Standard monitoring (``kafka-consumer-groups.sh --describe --group
boucle``, Burrow, Kafka exporters) reads the lag of a consumer group, though, so after each epoch
every feedback partition commits its next offset (the offset of the next message to read, as Kafka
expects) under ``kafka.group_id``.

A commit is asynchronous and never stops or slows the flow: at most one commit per partition is
in flight (an epoch that finds its partition's previous commit unanswered skips it, the next one
carries the newer offset); a failure is counted and logged through the throttled Kafka log, and
the reading goes on. One committer (an admin client's ``alter_consumer_group_offsets``, with its
own connection, so its errors never reach the reading consumers; Kafka takes it for a group
without members, which Boucle's always is) serves every partition of a source in the process; the
last partition to close commits its final offset and waits for the answers at most ``FLUSH_S``
seconds.

>>> committer = OffsetCommitter(Kafka(brokers="127.0.0.1:1"), "boucle")  # nothing connects yet
>>> committer.stats()
{'group_id': 'boucle', 'committed': 0, 'failed': 0, 'skipped': 0}
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from concurrent.futures import Future
from typing import Any

from confluent_kafka import ConsumerGroupTopicPartitions, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient

from boucle.config.settings import Kafka
from boucle.sources.kafka_health import KafkaHealth, _throttle, client_config, client_logging, describe_kafka_error

__all__ = ["FLUSH_S", "OffsetCommitter"]

logger = logging.getLogger("boucle.kafka")

FLUSH_S = 2.0  # at close, how long the last commits may take to be answered
REQUEST_TIMEOUT_S = 30.0  # an unanswered commit fails after this long (and the partition commits again)


class OffsetCommitter:
    """Commit ``(topic, partition) -> next offset`` under ``group_id``, asynchronously and best effort.

    ``acquire()`` / ``release()`` bracket each partition's use; the client is made on first use
    and dropped (after a bounded wait for the answers) when the last partition releases it.
    Thread-safe: bytewax workers of one process are threads, answers come on librdkafka's thread.
    """

    def __init__(self, kafka: Kafka, group_id: str) -> None:
        self.kafka = kafka
        self.group_id = group_id
        self.committed = 0  # partition offsets the group coordinator acknowledged
        self.failed = 0  # partition offsets refused, unanswered, or that could not be sent
        self.skipped = 0  # epochs whose commit was skipped while the partition's previous one was unanswered
        self._log = _throttle(logger, kafka.timeouts.report_every.total_seconds())
        self._lock = threading.RLock()
        self._answered = threading.Condition(self._lock)
        self._admin: AdminClient | None = None
        self._users = 0
        self._in_flight: Counter[tuple[str, int]] = Counter()  # unanswered commits, per partition
        self._last: dict[tuple[str, int], int] = {}  # the last offset sent, per partition

    def stats(self) -> dict[str, Any]:
        return {"group_id": self.group_id, "committed": self.committed, "failed": self.failed,
                "skipped": self.skipped}

    def acquire(self) -> None:
        with self._lock:
            self._users += 1

    def _client(self) -> AdminClient:
        if self._admin is None:  # its health decides nothing: commits never stop the flow
            self._admin = AdminClient(client_config(self.kafka, **client_logging(self.kafka, KafkaHealth())))
        return self._admin

    def commit(self, topic: str, partition: int, offset: int, *, force: bool = False) -> None:
        """Send ``offset`` (the next one to read) of ``topic``/``partition``; returns at once.

        Skipped when the offset is not a real one (nothing read yet), did not move since the last
        commit, or (unless ``force``) the partition's previous commit is still unanswered.
        """
        if offset < 0:
            return
        key = (topic, partition)
        with self._lock:
            if self._last.get(key) == offset:
                return
            if key in self._in_flight and not force:
                self.skipped += 1
                return
            request = ConsumerGroupTopicPartitions(self.group_id, [TopicPartition(topic, partition, offset)])
            try:
                [future] = self._client().alter_consumer_group_offsets(
                    [request], request_timeout=REQUEST_TIMEOUT_S).values()
            except (KafkaException, RuntimeError, ValueError) as exc:
                self._failed(describe_kafka_error(exc))
                return
            self._in_flight[key] += 1
            self._last[key] = offset
        future.add_done_callback(lambda done: self._on_answer(key, done))

    def _on_answer(self, key: tuple[str, int], done: Future) -> None:
        with self._lock:
            self._in_flight[key] -= 1
            if self._in_flight[key] <= 0:
                del self._in_flight[key]
            try:
                errors = [tp.error for tp in done.result().topic_partitions if tp.error is not None]
            except Exception as exc:  # noqa: BLE001 - any refusal is only counted
                errors = [exc]
            if errors:
                self._last.pop(key, None)  # sent again at the next epoch
                self._failed(describe_kafka_error(errors[0]))
            else:
                self.committed += 1
            self._answered.notify_all()

    def _failed(self, cause: str) -> None:
        self.failed += 1
        self._log.warning(
            "offset-commit",
            f"could not commit offsets under consumer group {self.group_id!r} ({cause}); they are for lag"
            " monitoring only, reading goes on (kafka.commit_offsets = false turns them off)",
        )

    def release(self) -> None:
        """One partition is done; the last one waits for the answers (at most ``FLUSH_S``)."""
        with self._lock:
            self._users -= 1
            if self._users > 0 or self._admin is None:
                return
            deadline = time.monotonic() + FLUSH_S
            while self._in_flight and (remaining := deadline - time.monotonic()) > 0:
                self._answered.wait(remaining)
            for _ in range(self._in_flight.total()):
                self._failed(f"unanswered {FLUSH_S:g}s after the end of the run")
            self._in_flight.clear()
            self._admin = None
