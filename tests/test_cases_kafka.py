"""Case events read from the case-events topic of a real broker (Tansu) update the case state."""

from __future__ import annotations

import orjson
from bytewax.testing import TestingSink, TestingSource, run_main
from confluent_kafka import Producer
from kafka_broker import unique_topic

from boucle.flows.feedback_flow import FlowOutputs, build_flow
from boucle.flows.loop import LoopSources
from boucle.operators.alerts import alert_id
from boucle.operators.cases import CASE_COLUMNS
from boucle.sources.kafka_source import KafkaFeedbackSource
from boucle.sources.message import RawMessage


def feedback(event_id: str, at: str, nps: int) -> RawMessage:
    value = orjson.dumps({"event_id": event_id, "occurred_at": at, "site_id": "store-0001", "channel": "email",
                          "scores": {"nps": nps}, "customer": {"id": f"c-{event_id}", "consent_contact": True}})
    return RawMessage(value, "test", 0, int(event_id[1:]))


def test_case_events_from_the_topic_update_the_case_state(settings, kafka_broker):
    topic = unique_topic("boucle.case-events")
    kafka_broker.admin.create_topics([__import__("confluent_kafka.admin", fromlist=["NewTopic"]).NewTopic(topic, 2, 1)])
    aid = alert_id("hot", "store-0001", "e1")
    producer = Producer({"bootstrap.servers": kafka_broker.bootstrap})
    for body in [
        {"alert_id": aid, "action": "resolved", "at": "2026-10-01T12:10:00Z", "by": "t1", "first_contact": True,
         "root_cause": "waiting_time"},  # before the contact it follows: out of order
        {"alert_id": aid, "action": "contacted", "at": "2026-10-01T12:00:00Z", "by": "t1", "first_contact": True},
        {"alert_id": "no-such-alert", "action": "note", "at": "2026-10-01T12:00:00Z"},
        {"alert_id": aid, "action": "phoned", "at": "2026-10-01T12:00:00Z"},
    ]:
        producer.produce(topic, orjson.dumps(body), key=aid.encode())
    assert producer.flush(10) == 0

    tables, alerts, dead = [], [], []
    kafka = settings.kafka.model_copy(update={"brokers": kafka_broker.bootstrap})
    source = TestingSource([feedback("e1", "2026-10-01T10:00:00Z", 1), feedback("e2", "2026-10-01T14:00:00Z", 10)])
    flow = build_flow(
        settings, source,
        FlowOutputs(warehouse=TestingSink(tables), alerts=[TestingSink(alerts)], dead_letters=[TestingSink(dead)]),
        loop=LoopSources(case_events=KafkaFeedbackSource(kafka, [topic], tail=False)),
    )
    run_main(flow)

    rows = [dict(zip(CASE_COLUMNS, r)) for b in tables if b.table == "cases" for r in b.rows]
    final = max((r for r in rows if r["alert_id"] == aid), key=lambda r: r["version"])
    assert (final["status"], final["contacted"], final["fcr"], final["root_cause"], final["events"]) == (
        "resolved", 1, 1, "waiting_time", 2)
    assert (final["sla_decided"], final["untreated"]) == (0, 0)  # the clock (14:00) is before the deadline
    # The hot alert, then its resolved state (issue 17): the case went straight to resolved.
    assert sorted((a["kind"], a["status"]) for a in alerts) == [("hot", "open"), ("hot", "resolved")]
    reasons = sorted((d["reason_code"], d["origin"]) for d in dead)
    assert reasons == [("unknown_action", topic), ("unknown_alert", topic)]
