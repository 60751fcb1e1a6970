"""Attribute alerts and importance are the same whatever the batches and the partitions (issue #13):
in process with different batch sizes and partition counts, and for two clean runs of one Kafka topic."""

from __future__ import annotations

import dataclasses

import bytewax.operators as op
import orjson
from bytewax.dataflow import Dataflow
from bytewax.testing import TestingSink, run_main
from kafka_broker import consume_all
from test_kafka_flow import boucle, boucle_env, new_topics

from boucle.flows.feedback_flow import order_spec, window_spec
from boucle.operators.attribute_engine import AttributeAlertEngine
from boucle.operators.attribute_order import ordered_attribute_alerts
from boucle.operators.decode import Decoder, decode_batches
from boucle.sources.simulator import Simulator, SimulatorSource

DAYS, VOLUME = 8, 0.5  # 8,971 events: enough history for a few attribute alerts


def _content(alert: dict) -> bytes:
    return orjson.dumps({k: v for k, v in alert.items() if k != "detected_at"}, option=orjson.OPT_SORT_KEYS)


def _outer(alerts) -> list[bytes]:
    return sorted(_content(a) for a in alerts if a["kind"] in ("attribute", "regional_incident"))


def _in_process(settings, batch_size: int, partitions: int):
    source = SimulatorSource(Simulator(settings, days=DAYS, volume_scale=VOLUME), partitions, batch_size)
    alerts, importance = [], []
    flow = Dataflow("attribute_order")
    decoded = decode_batches("decode", op.input("in", flow, source), Decoder(settings))
    out = ordered_attribute_alerts("attribute", decoded, AttributeAlertEngine(settings),
                                   order_spec(settings, source, window_spec(settings)))
    op.output("alerts", out.alerts, TestingSink(alerts))
    op.output("importance", out.importance, TestingSink(importance))
    run_main(flow)
    return _outer(alerts), sorted(dataclasses.astuple(s) for s in importance)


def test_same_attribute_alerts_and_importance_whatever_the_batches(settings):
    """The partitions are the topic's (a late response waits for its own partition's progress);
    how a run cuts them into batches, and how it interleaves them, must not matter."""
    runs = [_in_process(settings, batch_size, 3) for batch_size in (2000, 37, 301)]
    alerts, importance = runs[0]
    assert len(alerts) >= 3, "the simulation should raise attribute alerts"
    assert len(importance) >= DAYS * 6  # a row per region and day
    for other in runs[1:]:
        assert other[0] == alerts
        assert other[1] == importance


def test_two_clean_runs_of_one_kafka_topic_agree(kafka_broker, tmp_path):
    topics = new_topics(kafka_broker)
    produce = boucle_env(tmp_path / "producer", kafka_broker.bootstrap, topics,
                         BOUCLE_SIMULATION__VOLUME_SCALE=str(VOLUME))
    boucle("simulate", "--brokers", "-", "--days", str(DAYS), env=produce)
    results = []
    for run in ("first", "second"):
        own = {**topics, "alerts": f"{topics['alerts']}.{run}", "dlq": f"{topics['dlq']}.{run}"}
        env = boucle_env(tmp_path / run, kafka_broker.bootstrap, own)
        boucle("run", "--source", "kafka", "--to-end", "--no-progress", env=env, timeout=300)
        alerts = [orjson.loads(m.value()) for m in consume_all(kafka_broker.bootstrap, own["alerts"])]
        importance = boucle("query", "SELECT region, attribute, day, weight, correlation, n, updated_at"
                            " FROM attribute_importance FINAL ORDER BY region, attribute, day",
                            "--format", "json", env=env).stdout.splitlines()
        results.append((_outer(alerts), importance))
    (alerts, importance), second = results
    assert len(alerts) >= 3 and len(importance) >= DAYS * 6 * 8
    assert second[0] == alerts
    assert second[1] == importance
