"""End to end on a real broker: simulator → Kafka → `boucle run --source kafka --to-end` → alert and DLQ topics."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import jsonschema
import orjson
import pytest
from kafka_broker import consume_all, unique_topic

from boucle.flows.rows import dead_letter_text
from boucle.schemas import alert_schema

REPO = Path(__file__).resolve().parent.parent
DAYS = 2


def boucle_env(tmp: Path, bootstrap: str, topics: dict[str, str], **extra: str) -> dict[str, str]:
    """Environment for a `boucle` subprocess: its own chDB, logs and topics."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BOUCLE_")}
    env.update({
        "BOUCLE_CONFIG": str(REPO / "config" / "boucle.toml"),
        "BOUCLE_WAREHOUSE__PATH": str(tmp / "chdb"),
        "BOUCLE_OUTPUTS__ALERTS_JSONL": str(tmp / "alerts.jsonl"),
        "BOUCLE_OUTPUTS__DEAD_LETTERS_JSONL": str(tmp / "dead_letters.jsonl"),
        "BOUCLE_KAFKA__BROKERS": bootstrap,
        "BOUCLE_KAFKA__FEEDBACK_TOPIC": topics["feedback"],
        "BOUCLE_KAFKA__ALERTS_TOPIC": topics["alerts"],
        "BOUCLE_KAFKA__DLQ_TOPIC": topics["dlq"],
        "COLUMNS": "200",
        **extra,
    })
    return env


def boucle(*args: str, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [sys.executable, "-m", "boucle.flows.cli.app", *args], env=env, cwd=REPO, capture_output=True, text=True,
        timeout=timeout,
    )
    assert result.returncode == 0, f"boucle {' '.join(args)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


def new_topics(broker, partitions: int = 3) -> dict[str, str]:
    from confluent_kafka.admin import NewTopic

    topics = {name: unique_topic(f"test.{name}") for name in ("feedback", "alerts", "dlq")}
    futures = broker.admin.create_topics([NewTopic(t, partitions, 1) for t in topics.values()])
    for future in futures.values():
        future.result(15)
    return topics


@pytest.fixture(scope="module")
def kafka_run(kafka_broker, settings, tmp_path_factory):
    """Simulate DAYS days into a fresh topic, run the flow to the end, read every output topic."""
    from boucle.sources.simulator import Simulator

    tmp = tmp_path_factory.mktemp("kafka_flow")
    topics = new_topics(kafka_broker)
    env = boucle_env(tmp, kafka_broker.bootstrap, topics)
    boucle("simulate", "--brokers", "-", "--days", str(DAYS), env=env)
    run = boucle("run", "--source", "kafka", "--to-end", "--no-progress", env=env)
    simulator = Simulator(settings, days=DAYS)
    return {
        "settings": settings,
        "topics": topics,
        "env": env,
        "stdout": run.stdout,
        "labels": simulator.labels(),
        "total": simulator.count(),
        "feedback": consume_all(kafka_broker.bootstrap, topics["feedback"]),
        "alerts": consume_all(kafka_broker.bootstrap, topics["alerts"]),
        "dlq": consume_all(kafka_broker.bootstrap, topics["dlq"]),
    }


def test_simulator_stream_is_on_the_topic_keyed_by_site(kafka_run):
    feedback = kafka_run["feedback"]
    assert len(feedback) == kafka_run["total"]
    sites = {s.id for s in kafka_run["settings"].sites}
    assert {m.key().decode() for m in feedback} <= sites
    assert len({m.partition() for m in feedback}) == 3  # keyed by site over the topic's partitions


def test_every_expected_hot_alert_is_published_once_with_key_and_headers(kafka_run):
    region_of = {s.id: s.region for s in kafka_run["settings"].sites}
    by_event: dict[str, list] = {}
    for msg in kafka_run["alerts"]:
        alert = orjson.loads(msg.value())
        if alert["kind"] == "hot":  # other kinds (attribute, case_sla, ...) have no response
            by_event.setdefault(alert["response"]["event_id"], []).append((msg, alert))
    expected = [label for label in kafka_run["labels"] if label["type"] == "bad_response"]
    assert expected, "the simulation should contain labelled bad responses"
    for label in expected:
        found = by_event.get(label["event_id"], [])
        assert len(found) == 1, f"{label} published {len(found)} times"
        msg, alert = found[0]
        assert msg.key().decode() == alert["site_id"] == label["site_id"]
        headers = {k: v.decode() for k, v in msg.headers()}
        assert headers == {
            "kind": "hot", "severity": alert["severity"], "region": region_of[label["site_id"]],
            "status": "open", "schema": "boucle.alert/1",
        }
    ids = [(a["alert_id"], a["status"]) for a in map(orjson.loads, (m.value() for m in kafka_run["alerts"]))]
    assert len(ids) == len(set(ids)), "a run without failures publishes each alert (and status) once"


def test_every_published_alert_validates_against_the_schema(kafka_run):
    validator = jsonschema.Draft202012Validator(alert_schema(), format_checker=jsonschema.FormatChecker())
    assert kafka_run["alerts"]
    for msg in kafka_run["alerts"]:
        alert = orjson.loads(msg.value())
        errors = sorted(validator.iter_errors(alert), key=str)
        assert not errors, f"{alert['alert_id']}: {errors[0].message} at {list(errors[0].path)}"


def test_every_malformed_event_is_dead_lettered_masked_with_its_reason_and_position(kafka_run):
    feedback = {(m.partition(), m.offset()): m for m in kafka_run["feedback"]}
    dead = {}
    for msg in kafka_run["dlq"]:
        headers = {k: v.decode() for k, v in msg.headers()}
        # The headers point back at the original message; the DLQ carries its masked text and its key
        # (privacy.keep_raw is off).
        original = feedback[(int(headers["partition"]), int(headers["offset"]))]
        dead[hashlib.sha1(original.value()).hexdigest()] = (msg, headers)
        assert headers["topic"] == kafka_run["topics"]["feedback"]
        assert msg.value() == dead_letter_text(original.value()).encode() and original.key() == msg.key()
        assert headers["reason"]
    malformed = [label for label in kafka_run["labels"] if label["type"] == "malformed"]
    assert malformed
    for label in malformed:
        assert label["raw_sha1"] in dead, f"{label} not in the DLQ"
        assert dead[label["raw_sha1"]][1]["reason_code"] == label["reason_code"]
    assert len(kafka_run["dlq"]) == len(malformed)


def test_alerts_tail_reads_the_topic_to_its_end_with_filters(kafka_run):
    env = kafka_run["env"]
    everything = boucle("alerts", "tail", "--from-beginning", "--to-end", "--json", env=env)
    lines = everything.stdout.splitlines()
    assert len(lines) == len(kafka_run["alerts"])
    region = orjson.loads(lines[0])["region"]
    some = boucle("alerts", "tail", "--from-beginning", "--to-end", "--region", region,
                  "--min-severity", "high", env=env)
    expected = [a for a in map(orjson.loads, lines)
                if a["region"] == region and a["severity"] in ("high", "critical")]
    shown = some.stdout.splitlines()
    assert len(shown) == len(expected)
    assert all(f"#{a['alert_id'][:8]}" in "\n".join(shown) for a in expected)
    # From the end (the default) with --to-end: nothing new, returns at once. Tansu answers
    # ListOffsets(latest) with the last record *batch*'s base offset + 1, so there the "end" is
    # inside the last batch and its remaining records are shown.
    from_end = boucle("alerts", "tail", "--to-end", env=env).stdout.splitlines()
    if os.environ.get("BOUCLE_TEST_KAFKA"):
        assert from_end == []
    else:
        assert len(from_end) < len(lines)
