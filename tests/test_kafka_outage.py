"""Kafka trouble ends in one line or is ridden out (issue #13): brokers unreachable at start, a
SASL mismatch, a missing topic, `simulate` with nowhere to send, and a 30 s outage mid-stream
(through a loopback TCP proxy that cuts every connection): nothing lost, a few log lines, Ctrl-C
stops cleanly."""

from __future__ import annotations

import doctest
import re
import signal
import subprocess
import sys
import threading
import time

import orjson
import pytest
import tcp_proxy
from bytewax.testing import TestingSink, run_main
from kafka_broker import start_broker, unique_topic
from tcp_proxy import TcpProxy, free_port
from test_kafka_flow import REPO, boucle_env, new_topics

from boucle.flows.feedback_flow import FlowOutputs, build_flow
from boucle.sinks.kafka import produce_messages, producer_config
from boucle.sources.simulator import Simulator, SimulatorSource

BOUCLE = [sys.executable, "-m", "boucle.flows.cli.app"]
OUTAGE_S = 30.0


def _boucle(args: list[str], env: dict, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([*BOUCLE, *args], env=env, cwd=REPO, capture_output=True, text=True, timeout=timeout)


def _one_line(result: subprocess.CompletedProcess) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert "Traceback" not in result.stderr + result.stdout
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_the_proxy_cuts_and_restores():
    assert doctest.testmod(tcp_proxy).failed == 0


def test_brokers_unreachable_at_start_end_the_run_in_one_line(tmp_path):
    closed = f"127.0.0.1:{free_port()}"
    topics = {"feedback": "t.feedback", "alerts": "t.alerts", "dlq": "t.dlq"}
    env = boucle_env(tmp_path, closed, topics, BOUCLE_KAFKA__TIMEOUTS__UNREACHABLE_AFTER="3s")
    for args in (["run", "--source", "kafka", "--to-end", "--no-progress"],
                 ["run", "--source", "kafka", "--no-progress"],  # following: the same
                 ["simulate", "--brokers", "-", "--days", "0.1"]):
        result = _boucle(args, env, timeout=60)
        assert result.returncode == 1
        line = _one_line(result)
        assert line.startswith(f"kafka error: Kafka at {closed} unreachable for 3s"), line
        assert "Connection refused" in line


def test_a_sasl_mismatch_is_one_line_at_once(kafka_broker, tmp_path):
    topics = new_topics(kafka_broker)
    env = boucle_env(
        tmp_path, kafka_broker.bootstrap, topics,
        BOUCLE_KAFKA__LIBRDKAFKA__SECURITY_PROTOCOL="SASL_PLAINTEXT",
        BOUCLE_KAFKA__LIBRDKAFKA__SASL_MECHANISM="SCRAM-SHA-512",
        BOUCLE_KAFKA__LIBRDKAFKA__SASL_USERNAME="bob",
        BOUCLE_KAFKA__LIBRDKAFKA__SASL_PASSWORD="hunter2-secret",
        BOUCLE_KAFKA__TIMEOUTS__UNREACHABLE_AFTER="600s",  # refused is not retried: no waiting for this
    )
    result = _boucle(["run", "--source", "kafka", "--to-end", "--no-progress"], env, timeout=60)
    assert result.returncode == 1
    line = _one_line(result)
    assert "refused the connection" in line and "SASL" in line, line
    assert "hunter2-secret" not in result.stdout + result.stderr


def test_a_missing_topic_is_one_line_when_topics_are_not_created(kafka_broker, tmp_path):
    topics = {"feedback": unique_topic("absent"), "alerts": unique_topic("absent"), "dlq": unique_topic("absent")}
    env = boucle_env(tmp_path, kafka_broker.bootstrap, topics, BOUCLE_KAFKA__CREATE_TOPICS="false",
                     BOUCLE_KAFKA__TIMEOUTS__UNREACHABLE_AFTER="5s")
    result = _boucle(["run", "--source", "kafka", "--to-end", "--no-progress"], env, timeout=60)
    assert result.returncode == 1
    line = _one_line(result)
    assert line.startswith(f"kafka error: topic {topics['feedback']!r} does not exist"), line


@pytest.fixture
def proxied_broker(tmp_path):
    """A broker of its own that tells clients to use a proxy in front of it."""
    proxy_port = free_port()
    broker = start_broker(tmp_path, advertised_port=proxy_port, own=True)
    proxy = TcpProxy(int(broker.bootstrap.rsplit(":", 1)[1]), port=proxy_port)
    yield broker, proxy
    proxy.close()
    broker.stop()


def _hot_alert_ids(path) -> set[str]:
    if not path.exists():
        return set()
    out = set()
    for line in path.read_bytes().splitlines():
        try:
            alert = orjson.loads(line)
        except orjson.JSONDecodeError:  # a line being written
            continue
        if alert.get("kind") == "hot":
            out.add(alert["alert_id"])
    return out


def _wait(predicate, deadline_s: float, process: subprocess.Popen, what: str) -> None:
    deadline = time.monotonic() + deadline_s
    while not predicate():
        assert process.poll() is None, f"the engine ended while waiting for {what}: {process.stderr.read()}"
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not seen within {deadline_s}s")
        time.sleep(0.1)  # polling an output file for a condition, with a deadline


def test_a_30s_outage_mid_stream_loses_nothing_logs_little_and_ctrl_c_stops(proxied_broker, settings, tmp_path):
    broker, proxy = proxied_broker
    through_proxy = f"127.0.0.1:{proxy.port}"
    simulator = Simulator(settings, days=1)
    messages = list(simulator.messages())
    reference: list[dict] = []
    run_main(build_flow(settings, SimulatorSource(simulator), FlowOutputs(alerts=[TestingSink(reference)])))
    expected = {a["alert_id"] for a in reference if a["kind"] == "hot"}
    assert len(expected) > 100

    topics = {name: unique_topic(f"outage.{name}") for name in ("feedback", "alerts", "dlq")}
    env = boucle_env(tmp_path, through_proxy, topics, BOUCLE_KAFKA__TIMEOUTS__REPORT_EVERY="10s")
    stdout_file = (tmp_path / "stdout.txt").open("w")
    engine = subprocess.Popen([*BOUCLE, "run", "--source", "kafka", "--no-progress"], env=env, cwd=REPO,
                              stdout=stdout_file, stderr=subprocess.PIPE, text=True)
    stderr: list[str] = []
    reader = threading.Thread(target=lambda: stderr.extend(engine.stderr), daemon=True)
    reader.start()
    alerts_file = tmp_path / "alerts.jsonl"
    try:
        # The first half, then the outage while the second half is being produced, then the rest.
        half = len(messages) // 2
        config = producer_config([through_proxy], None, **{"linger.ms": "5"})
        _wait(lambda: proxy.connections > 0, 60, engine, "the engine's first connection")
        produce_messages(messages[:half], config, topics["feedback"])
        _wait(lambda: len(_hot_alert_ids(alerts_file)) > 0, 120, engine, "the first alerts")
        producer = threading.Thread(target=produce_messages, args=(messages[half:], config, topics["feedback"]))
        proxy.cut()
        lines_before = len(stderr)
        producer.start()  # librdkafka queues and retries while the broker is away
        time.sleep(OUTAGE_S)  # the outage itself is the scenario, not a synchronisation
        assert engine.poll() is None, "the engine gave up during a 30 s outage (limit: 60 s)"
        proxy.restore()
        producer.join(120)
        assert not producer.is_alive()
        _wait(lambda: _hot_alert_ids(alerts_file) >= expected, 180, engine, "every hot alert")
        engine.send_signal(signal.SIGINT)
        engine.wait(90)
        reader.join(10)
    finally:
        if engine.poll() is None:
            engine.kill()
            engine.wait()
        stdout_file.close()
    text = "".join(stderr)
    assert engine.returncode == 130, text[-3000:]
    assert "Traceback" not in text
    lines = [line for line in stderr if line.strip()]
    assert lines[-1].strip() == "interrupted"
    # Rate-limited: a handful of lines for the whole outage, not hundreds a second.
    print(f"stderr lines from the cut to the end ({OUTAGE_S:g} s outage): {len(lines) - lines_before}")
    assert len(lines) - lines_before <= 30, text[-4000:]
    assert _hot_alert_ids(alerts_file) == expected


def test_a_broker_restarted_without_its_topics_is_one_line(proxied_broker, settings, tmp_path):
    broker, proxy = proxied_broker
    through_proxy = f"127.0.0.1:{proxy.port}"
    topics = {name: unique_topic(f"restart.{name}") for name in ("feedback", "alerts", "dlq")}
    env = boucle_env(tmp_path, through_proxy, topics, BOUCLE_KAFKA__TIMEOUTS__UNREACHABLE_AFTER="20s")
    engine = subprocess.Popen([*BOUCLE, "run", "--source", "kafka", "--no-progress"], env=env, cwd=REPO,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        messages = list(Simulator(settings, days=0.2).messages())
        _wait(lambda: proxy.connections > 0, 60, engine, "the engine's first connection")
        produce_messages(messages, producer_config([through_proxy], None), topics["feedback"])
        _wait(lambda: len(_hot_alert_ids(tmp_path / "alerts.jsonl")) > 0, 120, engine, "the first alerts")
        broker.stop()
        (tmp_path / "fresh").mkdir()
        fresh = start_broker(tmp_path / "fresh", advertised_port=proxy.port, own=True)  # empty: no topics
        proxy.cut()
        proxy.target = int(fresh.bootstrap.rsplit(":", 1)[1])
        proxy.restore()
        _, stderr = engine.communicate(timeout=120)
    finally:
        if engine.poll() is None:
            engine.kill()
            engine.wait()
        if "fresh" in locals():
            fresh.stop()
    assert engine.returncode == 1, stderr[-3000:]
    last = [line for line in stderr.splitlines() if line.strip()][-1]
    assert "Traceback" not in stderr
    # Whichever of the engine's topics (feedback, case events, invitations) is found missing first.
    assert re.match(rf"kafka error: topic '[^']+' on Kafka at {re.escape(through_proxy)} no longer exists", last), last


def test_ctrl_c_stops_a_run_waiting_for_the_brokers(tmp_path):
    closed = f"127.0.0.1:{free_port()}"
    env = boucle_env(tmp_path, closed, {"feedback": "t.f", "alerts": "t.a", "dlq": "t.d"})  # waits 60 s by default
    engine = subprocess.Popen([*BOUCLE, "run", "--source", "kafka", "--no-progress"], env=env, cwd=REPO,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert engine.stdout.readline().startswith("Reading ")  # printed just before the wait starts
        engine.send_signal(signal.SIGINT)
        _, stderr = engine.communicate(timeout=30)  # far less than the 60 s the wait would take
    finally:
        if engine.poll() is None:
            engine.kill()
            engine.wait()
    assert engine.returncode == 130
    assert stderr.strip() == "interrupted"
