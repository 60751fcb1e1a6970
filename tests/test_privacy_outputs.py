"""Contacts stay on the alert topic, the warehouse keeps a masked payload; dead letters are masked
unless ``privacy.keep_raw``. Real flow (``boucle replay``), real chDB."""

from __future__ import annotations

import orjson
import pytest
from typer.testing import CliRunner

from boucle.flows.cli.app import app
from boucle.sinks.clickhouse.client import close_all

runner = CliRunner()

EMAIL, PHONE = "jean.dupont@example.com", "+33 6 12 34 56 78"
HOT = {
    "event_id": "hot-1", "occurred_at": "2026-10-01T10:00:00Z", "site_id": "store-0001", "channel": "store",
    "scores": {"nps": 1, "csat": 1}, "attributes": {}, "language": "fr",
    "comment": "Très déçu, rappelez-moi au 06/12/34/56/78 ou jean dot dupont at gmail dot com",
    "customer": {"id": "cust-1", "consent_contact": True, "email": EMAIL, "phone": PHONE},
}
# Rejected (unknown site), with a contact and PII in its comment.
DEAD = {
    "event_id": "dead-1", "occurred_at": "2026-10-01T10:00:00Z", "site_id": "store-9999", "scores": {"nps": 2},
    "comment": "IBAN FR76 3000 6000 0112 3456 7890 189, le 02/06/2013",
    "customer": {"id": "cust-2", "consent_contact": True, "email": "marie@example.org", "phone": "0611223344"},
}


@pytest.fixture
def replayed(tmp_path, monkeypatch, request):
    monkeypatch.setenv("BOUCLE_WAREHOUSE__PATH", str(tmp_path / "chdb"))
    monkeypatch.setenv("BOUCLE_OUTPUTS__ALERTS_JSONL", str(tmp_path / "alerts.jsonl"))
    monkeypatch.setenv("BOUCLE_OUTPUTS__DEAD_LETTERS_JSONL", str(tmp_path / "dead.jsonl"))
    monkeypatch.setenv("BOUCLE_CASES__ENABLED", "false")
    monkeypatch.setenv("BOUCLE_PRIVACY__KEEP_RAW", "true" if getattr(request, "param", False) else "false")
    events = tmp_path / "events.jsonl"
    events.write_bytes(orjson.dumps(HOT) + b"\n" + orjson.dumps(DEAD) + b"\n")
    result = runner.invoke(app, ["replay", str(events), "--no-progress"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    yield tmp_path
    close_all()


def query(*sql: str) -> list:
    result = runner.invoke(app, ["query", " ".join(sql), "--format", "json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return [orjson.loads(line) for line in result.output.splitlines()]


def test_contacts_reach_the_alert_topic_not_the_warehouse(replayed):
    published = [orjson.loads(line) for line in (replayed / "alerts.jsonl").read_bytes().splitlines()]
    hot = [a for a in published if a.get("response", {}).get("event_id") == "hot-1"]
    assert hot and hot[0]["contact"] == {"id": "cust-1", "email": EMAIL, "phone": PHONE}

    rows = query("SELECT payload, message FROM alerts WHERE kind = 'hot'")
    assert len(rows) == 1
    payload = orjson.loads(rows[0]["payload"])
    assert payload["contact"] == {"id": "cust-1", "email": "[email]", "phone": "[phone]"}
    assert payload["response"]["comment"] == "Très déçu, rappelez-moi au [phone] ou [email]"
    stored = rows[0]["payload"] + rows[0]["message"]
    for secret in (EMAIL, PHONE, "06/12/34/56/78", "gmail"):
        assert secret not in stored
    # The views the BI tools read still work without the contact.
    assert query("SELECT count() AS n FROM v_alerts WHERE kind = 'hot'") == [{"n": 1}]


def test_dead_letters_are_masked_but_keep_their_structure(replayed):
    rows = query("SELECT reason_code, raw FROM dead_letters")
    assert [r["reason_code"] for r in rows] == ["unknown_site"]
    raw = orjson.loads(rows[0]["raw"])  # still the message's JSON
    assert raw["site_id"] == "store-9999" and raw["customer"]["email"] == "[email]"
    assert raw["customer"]["phone"] == "[phone]" and raw["comment"] == "IBAN [iban], le 02/06/2013"
    (line,) = (replayed / "dead.jsonl").read_bytes().splitlines()
    assert orjson.loads(orjson.loads(line)["raw"]) == raw
    assert b"marie@" not in line and b"0611223344" not in line


@pytest.mark.parametrize("replayed", [True], indirect=True)
def test_keep_raw_keeps_dead_letters_verbatim(replayed):
    (row,) = query("SELECT raw FROM dead_letters")
    assert orjson.loads(row["raw"]) == DEAD
    (line,) = (replayed / "dead.jsonl").read_bytes().splitlines()
    assert orjson.loads(orjson.loads(line)["raw"]) == DEAD


def test_the_kafka_dlq_forwards_masked_bytes_unless_keep_raw():
    from boucle.flows.feedback_flow import _dead_letter_records
    from boucle.operators.decode import DeadLetter, DecodedBatch
    from boucle.sinks.kafka import dead_letter_record
    from boucle.sources.message import RawMessage

    value = orjson.dumps(DEAD)
    batch = DecodedBatch([], [DeadLetter(RawMessage(value, "boucle.feedback", 3, 42, b"store-9999"),
                                         "unknown_site", "unknown site 'store-9999'")], 1)
    (masked,) = _dead_letter_records(batch)
    _, key, forwarded, headers = dead_letter_record(masked, "boucle.dlq")
    assert key == b"store-9999" and b"marie@" not in forwarded and orjson.loads(forwarded)["site_id"] == "store-9999"
    assert dict(headers)["offset"] == b"42"  # the pointer to the original message
    (kept,) = _dead_letter_records(batch, keep_raw=True)
    assert dead_letter_record(kept, "boucle.dlq")[2] == value
