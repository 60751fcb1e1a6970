"""Crash and resume on a real broker: SIGKILL `boucle run --source kafka --recovery-dir` mid-stream,
restart it with the same directory until `--to-end`, and check that alerts and warehouse rows are
exactly-once in effect (at-least-once delivery + deterministic ids + ReplacingMergeTree)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import orjson
from bytewax.testing import TestingSink, run_main
from kafka_broker import consume_all
from test_kafka_flow import REPO, boucle, boucle_env, new_topics

from boucle.flows.feedback_flow import FlowOutputs, build_flow
from boucle.sinks.kafka import produce_messages, producer_config
from boucle.sources.simulator import Simulator, SimulatorSource

DAYS = 3
RATE = 1500  # events/s while the first run is alive, so the kill lands mid-stream


def _content(alert: dict) -> bytes:
    return orjson.dumps({k: v for k, v in alert.items() if k != "detected_at"}, option=orjson.OPT_SORT_KEYS)


def _wait_for_alerts(bootstrap: str, topic: str, at_least: int, process: subprocess.Popen, deadline_s: float) -> int:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        assert process.poll() is None, "the flow died on its own"
        n = len(consume_all(bootstrap, topic))
        if n >= at_least:
            return n
        time.sleep(0.1)
    raise TimeoutError(f"fewer than {at_least} alerts on {topic} after {deadline_s}s")


def kill_mid_stream(engine: subprocess.Popen, messages: list, config: dict, topics: dict[str, str],
                    bootstrap: str, also=lambda: None, rate: float = RATE) -> tuple[int, int]:
    """SIGKILL ``engine`` while ``messages`` are still arriving; returns (alerts seen, messages sent).

    A first quarter is produced at once; the rest, paced at RATE, only once the engine publishes
    alerts (however long its start takes on a loaded machine) and ``also()`` has returned.
    ``rate``: messages per second for the rest.
    """
    head = len(messages) // 4
    sent = [head]
    producer = threading.Thread(
        target=produce_messages, args=(messages[head:], config, topics["feedback"]),
        kwargs={"rate": rate, "on_sent": lambda n: sent.__setitem__(0, sent[0] + n)},
    )
    try:
        produce_messages(messages[:head], config, topics["feedback"])
        seen = _wait_for_alerts(bootstrap, topics["alerts"], 20, engine, deadline_s=120)
        also()
        producer.start()
        deadline = time.monotonic() + 60
        while sent[0] < head + 500 and time.monotonic() < deadline:
            time.sleep(0.01)  # waiting for the producer's progress counter, with a deadline
        os.kill(engine.pid, signal.SIGKILL)
        engine.wait(10)
        return seen, sent[0]
    finally:
        if engine.poll() is None:
            engine.kill()
        if producer.is_alive() or producer.ident is not None:
            producer.join(90)


def _query(sql: str, env: dict) -> list[dict]:
    out = boucle("query", sql, "--format", "json", env=env).stdout
    return [orjson.loads(line) for line in out.splitlines() if line.strip()]


def test_sigkill_mid_stream_then_resume_is_exactly_once_in_effect(kafka_broker, settings, tmp_path):
    simulator = Simulator(settings, days=DAYS)
    messages = list(simulator.messages())
    malformed = sum(1 for label in simulator.labels() if label["type"] == "malformed")

    # The reference: the same events through the flow in-process, no crash.
    reference: list[dict] = []
    run_main(build_flow(settings, SimulatorSource(simulator), FlowOutputs(alerts=[TestingSink(reference)])))
    reference_alerts = {a["alert_id"]: _content(a) for a in reference if a["kind"] == "hot"}

    topics = new_topics(kafka_broker)
    env = boucle_env(tmp_path, kafka_broker.bootstrap, topics)
    recovery = tmp_path / "recovery"
    run_args = [sys.executable, "-m", "boucle.flows.cli.app", "run", "--source", "kafka", "--no-progress",
                "--recovery-dir", str(recovery), "--event-time", "--epoch-interval", "0.5"]

    first = subprocess.Popen(run_args, env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    config = producer_config([kafka_broker.bootstrap], None, **{"linger.ms": "5"})
    seen, killed_at = kill_mid_stream(first, messages, config, topics, kafka_broker.bootstrap)
    assert first.returncode == -signal.SIGKILL
    assert killed_at < len(messages), "the kill should land while events are still arriving"
    assert sorted(p.name for p in recovery.iterdir()), "the recovery directory was initialised"
    before_restart = len(consume_all(kafka_broker.bootstrap, topics["alerts"]))
    assert seen <= before_restart < len(reference_alerts)

    boucle(*run_args[3:], "--to-end", env=env, timeout=120)

    # Alerts: every reference alert is there; repeats (at-least-once) carry the same content.
    # (Hot alerts are compared with the reference; every kind must keep its content per id/status.)
    published: dict[tuple, set[bytes]] = {}
    for msg in consume_all(kafka_broker.bootstrap, topics["alerts"]):
        alert = orjson.loads(msg.value())
        published.setdefault((alert["alert_id"], alert["status"]), set()).add(_content(alert))
    changed = {i: c for i, c in published.items() if len(c) > 1}
    assert not changed, f"{len(changed)} alert ids published with different content"
    hot = {i: c for (i, _), c in published.items() if orjson.loads(next(iter(c)))["kind"] == "hot"}
    assert set(hot) == set(reference_alerts)
    assert all(hot[i] == {c} for i, c in reference_alerts.items())

    # Warehouse: nothing lost, nothing doubled once deduplicated.
    accepted = len(messages) - malformed
    [row] = _query(
        "SELECT (SELECT count() FROM feedback FINAL) AS feedback,"
        " (SELECT uniqExact(site_id, occurred_at, event_id) FROM feedback) AS feedback_keys,"
        " (SELECT count() FROM alerts FINAL WHERE kind = 'hot') AS alerts,"
        " (SELECT uniqExact(alert_id) FROM alerts WHERE kind = 'hot') AS alert_ids,"
        " (SELECT count() FROM alerts FINAL) - (SELECT uniqExact(alert_id, status, event_time) FROM alerts)"
        " AS duplicate_alert_rows,"
        " (SELECT count() FROM dead_letters FINAL) AS dead_letters",
        env,
    )
    assert row == {
        "feedback": accepted, "feedback_keys": accepted, "alerts": len(reference_alerts),
        "alert_ids": len(reference_alerts), "duplicate_alert_rows": 0, "dead_letters": malformed,
    }
