"""Where accepted events go: the Kafka feedback topic (keyed by site) or a local JSONL replay file.

A forwarder takes ``(site_id, value)`` pairs (the original bytes of each valid event) and says
whether it is ready (``/readyz``).
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Protocol

__all__ = ["FileForward", "Forward", "KafkaForward"]


class Forward(Protocol):
    def send(self, events: list[tuple[str, bytes]]) -> None: ...

    def ready(self) -> bool: ...


class FileForward:
    """Appends each event as one line of a JSONL file (``boucle replay FILE`` reads it back)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()  # one request's lines stay together

    def send(self, events: list[tuple[str, bytes]]) -> None:
        if not events:
            return
        data = b"".join(value + b"\n" for _, value in events)
        with self._lock, self.path.open("ab") as out:
            out.write(data)

    def ready(self) -> bool:
        target = self.path if self.path.exists() else self.path.parent
        return os.access(target, os.W_OK)


class KafkaForward:
    """Produces to ``topic`` keyed by ``site_id``; a request returns once the broker acknowledged it."""

    def __init__(self, config: dict, topic: str, timeout_s: float = 30.0) -> None:
        from confluent_kafka import Producer

        self.topic, self.timeout_s = topic, timeout_s
        self._producer = Producer(config)
        self._lock = threading.Lock()

    def send(self, events: list[tuple[str, bytes]]) -> None:
        if not events:
            return
        failures: list[str] = []

        def report(error, _message) -> None:
            if error is not None:
                failures.append(str(error))

        with self._lock:
            for site_id, value in events:
                self._producer.produce(self.topic, value=value, key=site_id.encode("utf-8"), on_delivery=report)
            left = self._producer.flush(self.timeout_s)
        if left or failures:
            raise RuntimeError(f"{left or len(failures)} events not acknowledged by {self.topic}: "
                               f"{failures[0] if failures else 'timed out'}")

    def ready(self) -> bool:
        try:
            metadata = self._producer.list_topics(timeout=2.0)
        except Exception:  # noqa: BLE001 - any failure means not ready
            return False
        return bool(metadata.brokers)
