"""`boucle notify` over the real test broker: alerts consumed from the topic reach their recipient once,
the delivery dead letters land on their topic with a reason, offsets are committed after delivery under
the notifier's group, and a restart sends nothing twice."""

from __future__ import annotations

import uuid

import orjson
from confluent_kafka import Producer
from confluent_kafka.admin import NewTopic
from kafka_broker import consume_all, unique_topic
from notify_receivers import HttpReceiver, MailServer
from test_notify import NOON, alert, registry

from boucle.config.loader import settings_from_dict
from boucle.flows.notify.clock import ManualClock
from boucle.flows.notify.consume import DeadLetterTopic, consume_alerts
from boucle.flows.notify.ledger import Ledger
from boucle.flows.notify.notifier import notifier_from_settings


def _produce(bootstrap: str, topic: str, records: list[tuple[str, bytes]]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap})
    for key, value in records:
        producer.produce(topic, value, key=key.encode())
    assert producer.flush(10) == 0


def test_notify_consumes_the_alert_topic_delivers_once_and_resumes_from_committed_offsets(kafka_broker, tmp_path):
    alerts, dlq = unique_topic("boucle.alerts"), unique_topic("boucle.notify-dlq")
    for future in kafka_broker.admin.create_topics([NewTopic(alerts, 2, 1), NewTopic(dlq, 1, 1)]).values():
        future.result(15)
    group = f"boucle-notify-{uuid.uuid4().hex[:8]}"
    with MailServer() as mail, HttpReceiver(status=404) as gone:
        routes = [{"name": "hot", "kinds": ["hot"], "to": ["owner"]},
                  {"name": "crm", "kinds": ["attribute"], "webhooks": ["crm"]}]
        config = registry(mail.port, routes, {"crm": {"format": "json", "url": gone.url}},
                          group_id=group, dlq_topic=dlq)
        config["kafka"] = {"brokers": kafka_broker.bootstrap, "alerts_topic": alerts}
        settings = settings_from_dict(config)

        def run(ledger_name: str) -> int:
            notifier = notifier_from_settings(settings, DeadLetterTopic(settings.kafka, dlq),
                                              ledger=Ledger(tmp_path / ledger_name), clock=ManualClock(NOON))
            try:
                return consume_alerts(settings.kafka, notifier, group_id=group, to_end=True, poll_s=0.2)
            finally:
                notifier.close()

        _produce(kafka_broker.bootstrap, alerts, [
            ("s1", alert(1)), ("s1", alert(1)),  # published twice (at-least-once upstream)
            ("s2", alert(2, site="s2", kind="attribute", attribute="waiting_time")),  # its webhook answers 404
            ("s3", b"not an alert"),
        ])
        assert run("ledger.sqlite") == 4
        assert [rcpts for rcpts, _ in mail.messages] == [["owner-s1@example.org"]]
        letters = consume_all(kafka_broker.bootstrap, dlq)
        reasons = sorted(dict(m.headers())["reason"].decode() for m in letters)
        assert reasons[0] == "http 404 Not Found from 127.0.0.1 (permanent)"
        assert reasons[1].startswith("not_an_alert")
        crm = next(orjson.loads(m.value()) for m in letters if m.key().decode().endswith("|json|crm"))
        assert crm["alert"]["alert_id"].endswith("000000000002") and crm["channel"] == "json"

        _produce(kafka_broker.bootstrap, alerts, [("s1", alert(3)), ("s1", alert(1, status="resolved"))])
        assert run("ledger.sqlite") == 2  # the restart reads from the committed offsets
        assert len(mail.messages) == 3 and "(résolue)" in mail.messages[-1][1]["Subject"]
        assert run("another-ledger.sqlite") == 0  # everything delivered was committed under the group
        assert len(mail.messages) == 3 and len(consume_all(kafka_broker.bootstrap, dlq)) == 2
