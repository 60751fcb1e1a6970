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


# ---- The two steps, driven directly ----
HOUR = 3_600_000


def _response(settings, site, eid, ts, partition=0, offset=0, waiting=3):
    from boucle.operators.decode import Feedback

    return Feedback(eid, ts, site, "store", "", {"nps": 8}, {"waiting_time": waiting}, "", "fr", {}, 0,
                    f"topic:{partition}:{offset}")


def _steps(settings, partitions=2):
    from boucle.operators.attribute_order import _PartitionClock, _RegionOrder

    spec = dataclasses.replace(order_spec(settings, SimulatorSource(Simulator(settings, days=1), partitions),
                                          window_spec(settings)), step_ms=HOUR)
    engine = AttributeAlertEngine(settings)
    return spec, (lambda: _PartitionClock(spec, None)), _RegionOrder(engine, spec, None, lambda: 0)


def _feed(region_order, region, clock, events):
    shares, _ = clock.on_batch([events])
    return region_order.on_batch([payload for r, payload in shares if r == region])[0]


def test_a_slot_waits_for_every_partition_and_out_of_order_responses_are_kept(settings):
    spec, new_clock, order = _steps(settings)
    site_a, site_b = [s.id for s in settings.sites if s.region == "ile-de-france"][:2]
    region = "ile-de-france"
    p0, p1 = new_clock(), new_clock()
    _feed(order, region, p0, [_response(settings, site_a, f"a{i}", i * HOUR, 0, i) for i in range(6)])
    assert order.pending and min(order.pending) == 0  # partition 1 has not reported: nothing judged
    _feed(order, region, p1, [_response(settings, site_b, "b0", 0, 1, 0), _response(settings, site_b, "b1", 5 * HOUR, 1, 1)])
    # Both partitions are past 4:00 (second-highest times 5:00 and 0:00 → min 0:00): still nothing.
    assert 0 in order.pending
    _feed(order, region, p1, [_response(settings, site_b, "b2", 5 * HOUR + 1, 1, 2)])
    assert min(order.pending) >= 4 * HOUR  # slots 0:00-3:00 judged once both passed them
    old = _response(settings, site_b, "b-old", HOUR, 1, 3)  # out of order in its partition
    _feed(order, region, p1, [old])
    assert any(old in events for events in order.pending.values())  # kept, in a later slot
    assert old not in order.pending.get(HOUR, [])


def test_the_order_path_keeps_the_first_version_of_an_event(settings):
    spec, new_clock, order = _steps(settings, partitions=1)
    site = next(s.id for s in settings.sites if s.region == "ile-de-france")
    clock = new_clock()
    first = _response(settings, site, "dup", 10, 0, 0, waiting=1)
    again = _response(settings, site, "dup", 10, 0, 1, waiting=5)
    _feed(order, "ile-de-france", clock, [first, again])
    assert [e for events in order.pending.values() for e in events] == [first]
    order.on_eof()
    assert order.sites[site].watches["waiting_time"].peer.summary()[0] == 1.0


def test_a_single_response_is_judged_at_the_end_of_the_input(settings):
    """One response gives its partition no progress (the second-highest time): the end of the input
    must still judge it, not fail on the missing progress."""
    spec, new_clock, order = _steps(settings, partitions=1)
    site = next(s.id for s in settings.sites if s.region == "ile-de-france")
    _feed(order, "ile-de-france", new_clock(), [_response(settings, site, "only", 10, 0, 0, waiting=2)])
    order.on_eof()
    assert not order.pending
    assert site in order.sites


def test_an_epoch_snapshot_retakes_only_the_sites_that_learnt(settings):
    """A region's snapshot reuses a quiet site's last one (its cost follows the sites that changed),
    and takes a site's anew once it learns: the snapshot always equals the sites' states."""
    spec, new_clock, order = _steps(settings, partitions=1)
    site_a, site_b = [s.id for s in settings.sites if s.region == "ile-de-france"][:2]
    clock = new_clock()
    _feed(order, "ile-de-france", clock, [_response(settings, site_a, "a0", 0, 0, 0),
                                          _response(settings, site_b, "b0", 10, 0, 1)])
    order.on_eof()
    first = order.snapshot()["sites"]
    _feed(order, "ile-de-france", clock, [_response(settings, site_a, f"a{i}", i * HOUR, 0, i, waiting=1)
                                          for i in range(1, 5)])
    second = order.snapshot()["sites"]
    assert second[site_b] is first[site_b]  # quiet: the same snapshot, not taken again
    assert second[site_a] != first[site_a]
    assert second == {site: state.snapshot() for site, state in order.sites.items()}
