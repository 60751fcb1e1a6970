"""The loop reaches people (issue 17): a hot alert follows its case, regional incidents are routed by
region, a per-site rate cap holds the overflow in a daily digest; and a replay keeps history as history
(issue 16): no ``case_sla`` alert for deadlines that passed before it started."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import jsonschema
import orjson
import pytest
from bytewax.testing import TestingSink, TestingSource, run_main
from confluent_kafka import Producer
from confluent_kafka.admin import NewTopic
from kafka_broker import consume_all, unique_topic
from typer.testing import CliRunner

from boucle.config.settings import Cases, Site, Warehouse
from boucle.config.times import iso_ms, parse_time
from boucle.flows.cli.app import app
from boucle.flows.feedback_flow import FlowOutputs, build_flow
from boucle.flows.loop import LoopSources
from boucle.flows.rows import alert_rows, dimension_rows
from boucle.operators.alerts import alert_id, alert_json
from boucle.operators.cases import CASE_COLUMNS, CaseTracker
from boucle.schemas import alert_schema
from boucle.sinks.clickhouse.client import close_all, connect
from boucle.sinks.clickhouse.schema import init_schema
from boucle.sinks.clickhouse.writer import TableWriter
from boucle.sinks.kafka import KafkaAlertSink
from boucle.sources.kafka_source import KafkaFeedbackSource
from boucle.sources.message import RawMessage
from boucle.sources.simulator import Simulator, SimulatorSource

H = 3_600_000


def _validator() -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(alert_schema(), format_checker=jsonschema.FormatChecker())


def _errors(alert: dict) -> list[str]:
    return [e.message for e in _validator().iter_errors(orjson.loads(alert_json(alert)))]


def feedback(n: int, at: str, nps: int, site: str = "store-0001", csat: int | None = None,
             comment: str = "") -> RawMessage:
    scores = {"nps": nps} | ({"csat": csat} if csat is not None else {})
    value = orjson.dumps({"event_id": f"e{n}", "occurred_at": at, "site_id": site, "channel": "email",
                          "scores": scores, "comment": comment,
                          "customer": {"id": f"c{n}", "consent_contact": True, "email": f"c{n}@example.org"}})
    return RawMessage(value, "test", 0, n)


def _kafka(settings, broker):
    return settings.kafka.model_copy(update={"brokers": broker.bootstrap})


def _topic(broker, prefix: str, partitions: int = 3) -> str:
    topic = unique_topic(prefix)
    broker.admin.create_topics([NewTopic(topic, partitions, 1)])[topic].result(10)
    return topic


# ---- lifecycle over the test broker -------------------------------------------------------------

def test_a_case_resolved_on_the_case_events_topic_resolves_its_hot_alert_on_the_alert_topic(settings, kafka_broker):
    case_topic, alert_topic = _topic(kafka_broker, "boucle.case-events"), _topic(kafka_broker, "boucle.alerts")
    aid = alert_id("hot", "store-0001", "e1")
    producer = Producer({"bootstrap.servers": kafka_broker.bootstrap})
    for body in [
        {"alert_id": aid, "action": "contacted", "at": "2026-10-01T11:00:00Z", "by": "t1"},
        {"alert_id": aid, "action": "resolved", "at": "2026-10-01T11:20:00Z", "by": "t1", "root_cause": "price"},
    ]:
        producer.produce(case_topic, orjson.dumps(body), key=aid.encode())
    assert producer.flush(10) == 0

    kafka, seen = _kafka(settings, kafka_broker), []
    source = TestingSource([feedback(1, "2026-10-01T10:00:00Z", 1), feedback(2, "2026-10-01T14:00:00Z", 10)])
    outputs = FlowOutputs(alerts=[KafkaAlertSink(kafka.brokers, alert_topic, flush_timeout=10), TestingSink(seen)])
    run_main(build_flow(settings, source, outputs,
                        loop=LoopSources(case_events=KafkaFeedbackSource(kafka, [case_topic], tail=False))))

    published = [(m.key(), dict(m.headers()), orjson.loads(m.value())) for m in consume_all(kafka_broker.bootstrap, alert_topic)]
    states = {a["status"]: (key, headers, a) for key, headers, a in published if a["alert_id"] == aid}
    assert set(states) == {"open", "updated", "resolved"}  # each state of the case once, same alert_id
    key, headers, resolved = states["resolved"]
    assert (key, headers["status"], headers["kind"]) == (b"store-0001", b"resolved", b"hot")
    assert (resolved["kind"], resolved["event_time"], resolved["evidence"]["case_status"]) == (
        "hot", "2026-10-01T11:20:00.000Z", "resolved")
    assert resolved["evidence"]["root_cause"] == "price"
    assert resolved["response"]["event_id"] == "e1" and "contact" not in resolved  # the contact went out once
    assert states["updated"][2]["evidence"]["case_status"] == "contacted"
    assert all(not _errors(a) for _, _, a in published)
    assert not [a for a in seen if a["kind"] == "case_sla"]  # contacted within the SLA


def test_a_regional_incident_is_keyed_by_region_owned_by_its_manager_and_valid(settings, kafka_broker):
    """The simulated run that yields every kind of alert (tests/test_alert_schema.py), published to a topic."""
    alert_topic = _topic(kafka_broker, "boucle.alerts")
    kafka = _kafka(settings, kafka_broker)
    source = SimulatorSource(Simulator(settings, seed=11, days=5), partitions=1, batch_size=1000)
    outputs = FlowOutputs(alerts=[KafkaAlertSink(kafka.brokers, alert_topic, flush_timeout=10)])
    run_main(build_flow(settings, source, outputs))

    regions = {r.id: r for r in settings.regions}
    incidents = [(m.key(), orjson.loads(m.value())) for m in consume_all(kafka_broker.bootstrap, alert_topic)
                 if dict(m.headers())["kind"] == b"regional_incident"]
    assert incidents, "the simulated network has a regional incident within 5 days (seed 11)"
    for key, incident in incidents:
        region = regions[incident["region"]]
        assert key == region.id.encode() and incident["site_id"] == ""
        assert region.manager and incident["owner"] == region.manager
        assert incident["team"] == (region.team or region.id)
        assert _errors(incident) == []


# ---- v_alerts -----------------------------------------------------------------------------------

def test_v_alerts_shows_a_resolved_hot_alert_as_not_open(settings, tmp_path):
    t = CaseTracker(settings.site_map(), settings.cases)
    t0 = parse_time("2026-10-01T10:00:00Z")
    hot = {"alert_id": "a-resolved", "kind": "hot", "status": "open", "site_id": "store-0001", "region": "ile-de-france",
           "severity": "high", "event_time": iso_ms(t0), "response": {"event_id": "e1", "channel": "web",
                                                                      "scores": {"nps": 2}, "attributes": {}}}
    from boucle.operators.alerts import new_alert

    opened = new_alert(id="a-resolved", kind="hot", severity="high", site_id="store-0001", region="ile-de-france",
                       triggers=["rule"], evidence={"rules": ["strong_detractor"]}, message="m", event_ms=t0,
                       detected_ms=t0 + 1000, response=hot["response"])
    still_open = new_alert(id="a-open", kind="hot", severity="medium", site_id="store-0002", region="ile-de-france",
                           triggers=["rule"], evidence={"rules": ["detractor"]}, message="m", event_ms=t0,
                           detected_ms=t0 + 1000, response=hot["response"])
    t.on_alert(hot)
    from boucle.operators.cases import CaseEvent

    later = [item for kind, item in t.on_event(CaseEvent("a-resolved", "resolved", t0 + H, "t1", True)) if kind == "alert"]
    assert [a["status"] for a in later] == ["resolved"]
    # A resume republishes the open state after the resolution (later detected_at): resolved stays final.
    republished = new_alert(id="a-resolved", kind="hot", severity="high", site_id="store-0001",
                            region="ile-de-france", triggers=["rule"], evidence={"rules": ["strong_detractor"]},
                            message="m", event_ms=t0, detected_ms=later[0].detected_ms + 60_000,
                            response=hot["response"])
    db = "lifecycle"
    client = connect(Warehouse(path=str(tmp_path / "wh"), database=db))
    try:
        init_schema(client, db, dimensions=dimension_rows(settings))
        writer = TableWriter(client, db)
        for batch in alert_rows([opened, still_open, *later]) + alert_rows([republished]):
            writer.insert(batch)
        result = client.query(f"SELECT alert_id, status, is_open, resolved_at IS NOT NULL, updates FROM {db}.v_alerts")
        got = {row[0]: row[1:] for row in result.result_rows}
        assert got["a-resolved"][:3] == ("resolved", 0, True)
        assert got["a-open"][:3] == ("open", 1, False)
        open_now = client.query(f"SELECT count() FROM {db}.v_alerts WHERE status != 'resolved'").result_rows[0][0]
        assert open_now == 1  # the Grafana "Open alerts" panel's filter
    finally:
        close_all()


# ---- rate cap -----------------------------------------------------------------------------------

def test_the_rate_cap_holds_a_sites_overflow_in_one_daily_digest(settings):
    cap = settings.hot_alerts.rate_cap.model_copy(update={"per_site_per_day": 3, "digest_items": 2})
    capped = settings.model_copy(update={"hot_alerts": settings.hot_alerts.model_copy(update={"rate_cap": cap})})
    day1 = [feedback(i, f"2026-10-01T{8 + i:02d}:00:00Z", 2) for i in range(1, 8)]  # 7 detractors at one site
    critical = feedback(20, "2026-10-01T18:00:00Z", 5, csat=1, comment="ma commande est arrivée cassée")
    other_site = feedback(30, "2026-10-01T12:00:00Z", 2, site="store-0002")
    day2 = [feedback(40, "2026-10-02T09:00:00Z", 2), feedback(41, "2026-10-03T09:00:00Z", 9)]
    alerts, tables = [], []
    source = TestingSource([*day1, critical, other_site, *day2])
    run_main(build_flow(capped, source, FlowOutputs(warehouse=TestingSink(tables), alerts=[TestingSink(alerts)]),
                        loop=LoopSources()))

    hot = [a for a in alerts if a["kind"] == "hot" and a["status"] == "open"]
    by_site = {site: [a["response"]["event_id"] for a in hot if a["site_id"] == site] for site in ("store-0001", "store-0002")}
    assert by_site == {"store-0001": ["e1", "e2", "e3", "e20", "e40"], "store-0002": ["e30"]}  # critical: exempt
    digests = [a for a in alerts if a["kind"] == "hot_digest"]
    assert len(digests) == 1
    digest = digests[0]
    assert (digest["site_id"], digest["evidence"]["day"], digest["evidence"]["held"], digest["evidence"]["cap"]) == (
        "store-0001", "2026-10-01", 4, 3)
    assert [item["alert_id"] for item in digest["evidence"]["alerts"]] == [
        alert_id("hot", "store-0001", f"e{i}") for i in (4, 5)]  # digest_items: 2 listed, all 4 counted
    assert digest["owner"] == settings.site_map()["store-0001"].owner and _errors(digest) == []
    assert digest["alert_id"] == alert_id("hot_digest", "store-0001", "2026-10-01")
    cases = {r[0] for b in tables if b.table == "cases" for r in b.rows}
    assert alert_id("hot", "store-0001", "e4") not in cases  # a held alert asks nobody to call back
    assert alert_id("hot", "store-0001", "e3") in cases


# ---- history replayed as history ----------------------------------------------------------------

def test_a_case_whose_deadline_passed_before_the_run_is_history_not_an_sla_alert():
    sites = {"s1": Site(id="s1", region="north", manager="boss@x")}
    t0 = parse_time("2026-10-01T10:00:00Z")
    t = CaseTracker(sites, Cases(sla="24h"), history_before_ms=t0 + 30 * H)
    for aid, at in (("past", t0), ("live", t0 + 10 * H)):  # due 10:00 next day (before the start), 20:00 (after)
        t.on_alert({"alert_id": aid, "kind": "hot", "site_id": "s1", "region": "north", "severity": "high",
                    "event_time": iso_ms(at)})
    out = t.on_tick(t0 + 40 * H)
    assert [item["evidence"]["hot_alert_id"] for kind, item in out if kind == "alert"] == ["live"]
    past = dict(zip(CASE_COLUMNS, t.cases["past"].row()))
    assert (past["outcome_unknown"], past["untreated"], past["sla_decided"], past["sla_alerted"]) == (1, 0, 0, 0)
    live = dict(zip(CASE_COLUMNS, t.cases["live"].row()))
    assert (live["outcome_unknown"], live["untreated"], live["sla_alerted"]) == (0, 1, 1)


@pytest.mark.parametrize("flag", [None, "--sla-alerts-for-history"])
def test_a_historical_replay_raises_no_case_sla_alert_for_past_deadlines(workspace, flag):
    events = workspace / "history.jsonl"
    start = datetime(2026, 10, 1, 10, tzinfo=timezone.utc)
    assert start < datetime.now(timezone.utc)
    lines = [feedback(1, "2026-10-01T10:00:00Z", 1).value, feedback(2, "2026-10-01T11:00:00Z", 3).value,
             feedback(3, "2026-10-03T10:00:00Z", 10).value]  # two detractors, then the clock moves 2 days on
    events.write_bytes(b"\n".join(lines) + b"\n")
    result = CliRunner().invoke(app, ["replay", str(events), "--no-progress", *([flag] if flag else [])],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    alerts = [orjson.loads(line) for line in (workspace / "alerts.jsonl").read_bytes().splitlines()]
    sla = [a for a in alerts if a["kind"] == "case_sla"]
    query = CliRunner().invoke(app, ["query", "SELECT sum(outcome_unknown) AS n, sum(sla_alerted) AS s FROM cases FINAL",
                                     "--format", "json"])
    stored = orjson.loads(query.output)
    if flag is None:
        assert sla == [] and stored == {"n": 2, "s": 0}
        assert "Replayed as history: 2 cases" in " ".join(result.output.split())
    else:
        assert len(sla) == 2 and stored == {"n": 0, "s": 2}
        assert "Replayed as history" not in result.output


def test_live_a_quiet_sites_digest_goes_out_when_its_day_is_over_on_the_wall_clock(settings):
    from boucle.operators.decode import Decoder
    from boucle.operators.hot_alerts import HotAlertBuilder, _CooldownLogic

    cap = settings.hot_alerts.rate_cap.model_copy(update={"per_site_per_day": 1})
    capped = settings.model_copy(update={"hot_alerts": settings.hot_alerts.model_copy(update={"rate_cap": cap})})
    decoded = Decoder(capped).decode_many([feedback(i, f"2026-10-01T1{i}:00:00Z", 2) for i in (1, 2, 3)])
    replayed = _CooldownLogic(HotAlertBuilder(capped), None)
    live = _CooldownLogic(HotAlertBuilder(capped), None, wall_clock=True)
    for logic in (replayed, live):
        out, _ = logic.on_batch([decoded.accepted])
        assert [a["kind"] for a in out] == ["hot"]  # one published, two held; the day is still open
    assert replayed.notify_at() is None  # a replay's days close on event time only
    # Live, the site's event time runs on with the wall clock from its last response: a backlog of
    # an old day read just now is not closed by today's date.
    assert live.on_notify()[0] == []
    live.seen_wall_ms -= 2 * 86_400_000  # two days of wall time without a response from the site
    lateness = settings.windows.allowed_lateness
    # The site's 1 October ends at its local midnight (store-0001: Europe/Paris, 22:00Z in summer time).
    assert capped.site_zones()["store-0001"] == "Europe/Paris"
    closes_event = datetime(2026, 10, 2, tzinfo=ZoneInfo("Europe/Paris")) + lateness + timedelta(milliseconds=1)
    quiet_for = closes_event - datetime.fromtimestamp(live.seen_event_ms / 1000, tz=timezone.utc)
    assert live.notify_at() == datetime.fromtimestamp(live.seen_wall_ms / 1000, tz=timezone.utc) + quiet_for
    digests, _ = live.on_notify()  # two days later, the site's 1 October is over
    assert [(d["kind"], d["evidence"]["held"]) for d in digests] == [("hot_digest", 2)]
    assert live.notify_at() is None and live.on_eof()[0] == []  # sent once


def test_a_history_case_with_a_late_action_known_is_untreated_without_an_alert():
    from boucle.operators.cases import CaseEvent

    t0 = parse_time("2026-10-01T10:00:00Z")
    t = CaseTracker({"s1": Site(id="s1", region="north")}, Cases(sla="24h"), history_before_ms=t0 + 30 * H)
    t.on_alert({"alert_id": "a", "kind": "hot", "site_id": "s1", "region": "north", "severity": "high",
                "event_time": iso_ms(t0)})
    assert [k for k, _ in t.on_tick(t0 + 40 * H)] == ["case"]
    out = t.on_event(CaseEvent("a", "contacted", t0 + 26 * H, "t1"))  # after the deadline: known, not in time
    row = dict(zip(CASE_COLUMNS, [r for k, r in out if k == "case"][-1]))
    assert (row["outcome_unknown"], row["untreated"], row["sla_decided"], row["sla_alerted"]) == (0, 1, 1, 0)
