"""Kafka as the engine sees it: bounded waits, one clear line, logs that cannot flood.

Every Kafka client of Boucle (the feedback consumers, the alert and dead-letter producers,
``simulate``'s producer, the admin client that lists partitions) gets :func:`client_logging`:
librdkafka's log lines and error callbacks go to the ``boucle.kafka`` logger through a
:class:`ThrottledLog` — at most one line per ``kafka.timeouts.report_every`` for each kind of
message, the next one saying how many were held back — instead of librdkafka's own stderr lines
(thousands a minute with the broker away). The callbacks also keep a :class:`KafkaHealth`: since
when the brokers have been unreachable, and the last error, so the engine can decide to give up
with one line (:class:`KafkaUnavailable`) once ``kafka.timeouts.unreachable_after`` has passed.

>>> import logging
>>> lines = []
>>> class Keep(logging.Handler):
...     def emit(self, record): lines.append(record.getMessage())
>>> log = logging.getLogger("doctest.kafka"); log.addHandler(Keep()); log.propagate = False
>>> clock = iter([0.0, 1.0, 2.0, 31.0]).__next__
>>> throttled = ThrottledLog(log, every_s=30, clock=clock)
>>> for _ in range(4):
...     throttled.warning("connect", "Connect to 127.0.0.1:9092 failed")
>>> lines
['Connect to 127.0.0.1:9092 failed', 'Connect to 127.0.0.1:9092 failed (2 more like it in the last 31s)']
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient

from boucle.config.redact import redact_url
from boucle.config.settings import Kafka

__all__ = [
    "KafkaHealth",
    "KafkaUnavailable",
    "ThrottledLog",
    "admin_client",
    "client_config",
    "client_logging",
    "describe_kafka_error",
    "wait_for_metadata",
    "wait_for_topics",
]

logger = logging.getLogger("boucle.kafka")
_silent = logging.getLogger("boucle.kafka.silent")
_silent.addHandler(logging.NullHandler())
_silent.propagate = False

# Errors that mean "cannot talk to the brokers now" (retried), as opposed to a refusal.
_UNREACHABLE = {KafkaError._TRANSPORT, KafkaError._ALL_BROKERS_DOWN, KafkaError._RESOLVE,
                KafkaError._TIMED_OUT, KafkaError._MSG_TIMED_OUT}
_REFUSED = {KafkaError._AUTHENTICATION, KafkaError.SASL_AUTHENTICATION_FAILED,
            KafkaError._SSL, KafkaError.TOPIC_AUTHORIZATION_FAILED,
            KafkaError.CLUSTER_AUTHORIZATION_FAILED, KafkaError.GROUP_AUTHORIZATION_FAILED}


class KafkaUnavailable(KafkaException):
    """The brokers could not be used within the configured time, or refused us: one line."""


class ThrottledLog:
    """At most one line per ``every_s`` seconds for each ``kind``; the next says how many were held."""

    def __init__(self, log: logging.Logger, every_s: float, clock: Callable[[], float] = time.monotonic):
        self.log, self.every_s, self.clock = log, every_s, clock
        self._last: dict[str, float] = {}
        self._held: dict[str, int] = {}
        self._lock = threading.Lock()

    def emit(self, level: int, kind: str, message: str) -> None:
        now = self.clock()
        with self._lock:
            last = self._last.get(kind)
            if last is not None and now - last < self.every_s:
                self._held[kind] = self._held.get(kind, 0) + 1
                return
            held = self._held.pop(kind, 0)
            self._last[kind] = now
        if held:
            message = f"{message} ({held} more like it in the last {now - last:.0f}s)"
        self.log.log(level, "%s", message)

    def warning(self, kind: str, message: str) -> None:
        self.emit(logging.WARNING, kind, message)


@dataclass
class KafkaHealth:
    """What the callbacks of one client have seen: unreachable since when, the last error."""

    clock: Callable[[], float] = time.monotonic
    down_since: float | None = None
    last_error: str = ""
    refused: str = ""  # set when the brokers refused us (authentication, authorisation): not retried
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def failed(self, error: KafkaError) -> None:
        with self._lock:
            self.last_error = describe_kafka_error(error)
            if error.code() in _REFUSED or error.fatal():
                self.refused = self.last_error
            elif self.down_since is None:
                self.down_since = self.clock()

    def reached(self) -> None:
        with self._lock:
            self.down_since = None

    def raise_if_refused(self, brokers: str) -> None:
        """:class:`KafkaUnavailable` if the brokers refused us (retrying will not help)."""
        if self.refused:
            raise KafkaUnavailable(f"Kafka at {redact_url(brokers)} refused the connection: {self.refused}")

    def down_for(self) -> float:
        since = self.down_since
        return 0.0 if since is None else self.clock() - since


def describe_kafka_error(error: Any) -> str:
    """A :class:`KafkaError` (or an exception carrying one) as a short phrase."""
    if isinstance(error, KafkaException) and error.args and isinstance(error.args[0], KafkaError):
        error = error.args[0]
    if isinstance(error, KafkaError):
        text = error.str() or error.name()
        return f"{text} [{error.name()}]"
    return str(error)


_throttles: dict[tuple[str, float], ThrottledLog] = {}
_throttles_lock = threading.Lock()


def _throttle(log: logging.Logger, every_s: float) -> ThrottledLog:
    """One throttle per logger and period in the process: the same trouble seen by every client
    (a consumer per partition, the producers, the admin client) is one line per period."""
    with _throttles_lock:
        return _throttles.setdefault((log.name, every_s), ThrottledLog(log, every_s))


def client_logging(kafka: Kafka, health: KafkaHealth | None = None, *, report: bool = True) -> dict[str, Any]:
    """librdkafka settings that route a client's logs and errors through a :class:`ThrottledLog`.

    ``health`` (if given) is told about every error, for the caller's own decisions; ``report=False``
    keeps the client silent (a wait that ends in one line of its own).
    """
    throttled = _throttle(logger if report else _silent, kafka.timeouts.report_every.total_seconds())
    servers = redact_url(kafka.brokers)

    def on_error(error: KafkaError) -> None:
        if health is not None:
            health.failed(error)
        kind = error.name()
        throttled.warning(kind, f"Kafka at {servers}: {describe_kafka_error(error)}; retrying")

    return {"error_cb": on_error, "logger": _LibrdkafkaLog(throttled)}


_SAID_BY_ERROR_CB = {"FAIL", "ERROR"}


class _LibrdkafkaLog(logging.Logger):
    """A logger for librdkafka's ``logger`` setting: every line through the throttle, by facility."""

    def __init__(self, throttled: ThrottledLog):
        super().__init__("boucle.kafka.librdkafka")
        self._throttled = throttled

    def log(self, level: int, msg: object, *args: Any, **kwargs: Any) -> None:  # type: ignore[override]
        facility = str(args[0]) if args else ""
        # Connection failures (FAIL) reach the error callback too, which says them once; of the
        # rest only warnings and worse are worth a line. The client's name (args[1]) is left out:
        # the same trouble seen by every client is one line.
        if level < logging.WARNING or facility in _SAID_BY_ERROR_CB:
            return
        text = str(args[2]) if len(args) >= 3 else (str(msg) % args if args else str(msg))
        self._throttled.emit(level, f"librdkafka:{facility}", f"librdkafka {facility}: {text}")


def client_config(kafka: Kafka, **extra: Any) -> dict[str, Any]:
    """librdkafka settings for a client of ``kafka``: servers, the user's pass-through, ``extra``.

    The user's ``kafka.librdkafka`` wins over ``extra`` (it is the documented way to tune).

    >>> config = client_config(Kafka(brokers="k1:9092,k2:9092", librdkafka={"security.protocol": "SSL"}))
    >>> config["bootstrap.servers"], config["security.protocol"]
    ('k1:9092,k2:9092', 'SSL')
    """
    return {"bootstrap.servers": ",".join(kafka.broker_list()), **extra, **kafka.librdkafka}


def admin_client(kafka: Kafka, health: KafkaHealth | None = None, *, report: bool = True) -> AdminClient:
    return AdminClient(client_config(kafka, **client_logging(kafka, health, report=report)))


def wait_for_metadata(kafka: Kafka):
    """The cluster's metadata (every topic), waiting at most ``kafka.timeouts.unreachable_after``.

    Raises :class:`KafkaUnavailable` with one line when the brokers cannot be reached in that time
    or refuse us (authentication, authorisation: at once, not retried).
    """
    limit = kafka.timeouts.unreachable_after.total_seconds()
    health = KafkaHealth()
    admin = admin_client(kafka, health, report=False)  # the wait ends in one line of its own
    servers = redact_url(kafka.brokers)
    deadline = time.monotonic() + limit
    last = ""
    while True:
        remaining = deadline - time.monotonic()
        try:
            # Short requests, so that Ctrl-C (handled between them) stops the wait at once.
            metadata = admin.list_topics(timeout=max(0.1, min(1.0, remaining)))
            if metadata.brokers:
                return metadata
        except KafkaException as exc:
            last = describe_kafka_error(exc)
        admin.poll(0)  # serves the error and log callbacks (an admin client has no other poll)
        health.raise_if_refused(kafka.brokers)
        if remaining <= 0:
            cause = health.last_error or last or "no answer"
            raise KafkaUnavailable(
                f"Kafka at {servers} unreachable for {limit:g}s ({cause}); check kafka.brokers"
                " (kafka.timeouts.unreachable_after sets how long to wait)"
            )


def wait_for_topics(kafka: Kafka, topics: list[str], *, what: str = "read") -> dict[str, list[int]]:
    """The partitions of each of ``topics`` (:func:`wait_for_metadata`; a missing topic: one line)."""
    metadata = wait_for_metadata(kafka)
    out: dict[str, list[int]] = {}
    for topic in topics:
        info = metadata.topics.get(topic)
        if info is None or info.error is not None or not info.partitions:
            raise KafkaUnavailable(
                f"topic {topic!r} does not exist on Kafka at {redact_url(kafka.brokers)}: nothing to {what}"
                " (create it, or let Boucle create it: kafka.create_topics = true)"
            )
        out[topic] = sorted(info.partitions)
    return out
