"""Case tracking: transitions, out-of-order and repeated events, unknown alerts, SLA on event time."""

from __future__ import annotations

import itertools
import pickle

import orjson
import pytest

from boucle.config.settings import Cases, Site
from boucle.config.times import parse_time
from boucle.operators.cases import (
    CASE_COLUMNS,
    CaseEvent,
    CaseTracker,
    decode_case_event,
)
from boucle.operators.decode import DeadLetter
from boucle.sources.message import RawMessage

H = 3_600_000
T0 = parse_time("2026-10-01T10:00:00Z")
SITES = {"s1": Site(id="s1", name="Lyon", region="north", manager="boss@x", language="fr"),
         "s2": Site(id="s2", region="north", manager="boss2@x", language="en")}
COL = {name: i for i, name in enumerate(CASE_COLUMNS)}


def hot(aid: str, site: str = "s1", at: int = T0) -> dict:
    from boucle.config.times import iso_ms

    return {"alert_id": aid, "kind": "hot", "status": "open", "site_id": site, "region": "north",
            "severity": "high", "event_time": iso_ms(at)}


def ev(aid: str, action: str, at: int, first: bool = False, cause: str = "", by: str = "t1") -> CaseEvent:
    return CaseEvent(aid, action, at, by, first, cause)


def tracker(**kw) -> CaseTracker:
    """A tracker of SITES; ``kw`` are ``Cases`` fields (sla, sla_grace, unknown_grace)."""
    return CaseTracker(SITES, Cases(**kw))


def last_row(out, aid):
    rows = [item for kind, item in out if kind == "case" and item[0] == aid]
    return dict(zip(CASE_COLUMNS, rows[-1])) if rows else None


def test_transitions_open_contacted_resolved_at_first_contact():
    t = tracker()
    assert last_row(t.on_alert(hot("a")), "a")["status"] == "open"
    row = last_row(t.on_event(ev("a", "contacted", T0 + 2 * H, True)), "a")
    assert (row["status"], row["contacted"], row["first_contact_at"], row["fcr"]) == ("contacted", 1, T0 + 2 * H, 0)
    row = last_row(t.on_event(ev("a", "resolved", T0 + 2 * H + 600_000, True, "waiting_time")), "a")
    assert (row["status"], row["resolved"], row["fcr"], row["root_cause"]) == ("resolved", 1, 1, "waiting_time")
    row = last_row(t.on_event(ev("a", "note", T0 + 3 * H)), "a")
    assert (row["notes"], row["status"], row["events"]) == (1, "resolved", 3)


def test_escalation_then_later_resolution_is_not_fcr():
    t = tracker()
    t.on_alert(hot("a"))
    for e in (ev("a", "contacted", T0 + H, True), ev("a", "escalated", T0 + 2 * H), ev("a", "resolved", T0 + 50 * H)):
        out = t.on_event(e)
    row = last_row(out, "a")
    assert (row["status"], row["escalated"], row["fcr"], row["escalated_at"]) == ("resolved", 1, 0, T0 + 2 * H)


def test_any_order_and_repeats_give_the_same_state():
    events = [ev("a", "contacted", T0 + H, True), ev("a", "resolved", T0 + H + 60_000, True, "price"),
              ev("a", "note", T0 + 30 * 60_000), ev("a", "contacted", T0 + 5 * H)]
    finals = set()
    for order in itertools.permutations(events):
        t = tracker()
        t.on_alert(hot("a"))
        for e in order + order[:2]:  # redelivered events are applied once
            t.on_event(e)
        finals.add(t.cases["a"].row())
    assert len(finals) == 1
    row = dict(zip(CASE_COLUMNS, finals.pop()))
    assert (row["first_contact_at"], row["contacts"], row["fcr"], row["events"]) == (T0 + H, 2, 1, 4)


def test_case_events_before_their_alert_wait_for_it():
    t = tracker()
    assert t.on_event(ev("a", "contacted", T0 + H, True)) == []
    assert t.on_tick(T0 + H + 10 * 60_000) == []  # within unknown_grace: still waiting
    row = last_row(t.on_alert(hot("a")), "a")
    assert (row["status"], row["first_contact_at"]) == ("contacted", T0 + H)
    assert t.pending == {}


def test_events_for_unknown_alerts_are_dead_lettered_with_a_reason():
    t = tracker(unknown_grace="1h")
    msg = RawMessage(orjson.dumps({"alert_id": "nope", "action": "note", "at": "2026-10-01T11:00:00Z"}), "ce", 0, 7)
    t.on_event(decode_case_event(msg))
    t.on_event(ev("other", "contacted", T0 + 30 * H))
    out = t.on_tick(T0 + 2 * H + 1)
    dead = [item for kind, item in out if kind == "dead"]
    assert len(dead) == 1 and isinstance(dead[0], DeadLetter)
    assert (dead[0].reason_code, dead[0].message.position) == ("unknown_alert", "ce:0:7")
    assert "'nope'" in dead[0].reason
    at_end = t.on_eof()  # still unknown when the input ends
    assert [(k, d.reason_code, d.message.value.startswith(b'{"alert_id":"other"')) for k, d in at_end] == [
        ("dead", "unknown_alert", True)]


def test_sla_alert_fires_once_on_event_time_to_the_site_manager():
    t = tracker(sla="24h", sla_grace="1h")
    t.on_alert(hot("late", "s1"))
    t.on_alert(hot("ok", "s2"))
    t.on_event(ev("ok", "contacted", T0 + 23 * H, True))
    assert t.on_tick(T0 + 24 * H) == []  # due, but the grace has not passed
    assert t.on_tick(T0 + 25 * H) == []  # due + grace is not yet *passed*
    out = t.on_tick(T0 + 25 * H + 1)
    alerts = [item for kind, item in out if kind == "alert"]
    assert len(alerts) == 1
    alert = alerts[0]
    assert (alert["kind"], alert["site_id"], alert["owner"], alert["event_time"]) == (
        "case_sla", "s1", "boss@x", "2026-10-02T10:00:00.000Z")
    assert alert["evidence"]["hot_alert_id"] == "late" and "Lyon" in alert["message"]
    assert last_row(out, "late")["untreated"] == 1 and last_row(out, "ok")["untreated"] == 0
    assert t.on_tick(T0 + 60 * H) == []  # once only
    # A contact after the deadline is recorded but the case stays untreated within the SLA.
    row = last_row(t.on_event(ev("late", "contacted", T0 + 30 * H, True)), "late")
    assert (row["contacted"], row["untreated"], row["sla_alerted"]) == (1, 1, 1)


def test_alert_already_overdue_when_it_arrives_is_decided_at_once():
    t = tracker(sla="24h")
    t.on_tick(T0 + 48 * H)
    out = t.on_alert(hot("old"))
    assert [item["kind"] for kind, item in out if kind == "alert"] == ["case_sla"]


def test_replayed_alerts_and_other_kinds_open_no_case():
    t = tracker()
    t.on_alert(hot("a"))
    assert t.on_alert(hot("a")) == []
    assert t.on_alert({**hot("b"), "kind": "case_sla"}) == []
    assert list(t.cases) == ["a"]


@pytest.mark.parametrize(
    "value, code",
    [
        (b"{", "invalid_json"),
        (b"[1]", "not_an_object"),
        (b'{"action": "note", "at": "2026-10-01T10:00:00Z"}', "missing_field"),
        (b'{"alert_id": 3, "action": "note", "at": "2026-10-01T10:00:00Z"}', "bad_type"),
        (b'{"alert_id": "a", "action": "phoned", "at": "2026-10-01T10:00:00Z"}', "unknown_action"),
        (b'{"alert_id": "a", "action": "note", "at": "2026-10-01T10:00:00"}', "bad_timestamp"),
        (b'{"alert_id": "a", "action": "note", "at": "2026-10-01T10:00:00Z", "first_contact": "yes"}', "bad_type"),
    ],
)
def test_malformed_case_events_are_dead_letters(value, code):
    out = decode_case_event(RawMessage(value, "ce", 0, 0))
    assert isinstance(out, DeadLetter) and out.reason_code == code and out.reason


def test_frontline_simulator_is_deterministic_and_releases_on_event_time():
    from boucle.sources.simulator.frontline import FrontlineSimulator

    alerts = [hot(f"a{i}", at=T0 + i * 60_000) for i in range(300)]
    sim = FrontlineSimulator(seed=3)
    for a in alerts:
        sim.on_alert(a)
    first = sim.release(T0 + 6 * H)
    assert first and all(m.received_ms <= T0 + 6 * H for m in first)
    rest = sim.release(T0 + 30 * 24 * H)
    bodies = [orjson.loads(m.value) for m in first + rest]
    again = FrontlineSimulator(seed=3)
    for a in alerts:
        again.on_alert(a)
    assert [m.value for m in again.release(T0 + 30 * 24 * H)] == [m.value for m in first + rest]
    planned = {b["alert_id"] for b in bodies}
    assert 0.75 < len(planned & {a["alert_id"] for a in alerts}) / len(alerts) < 1  # some never treated
    assert {b["action"] for b in bodies} == {"contacted", "resolved", "escalated", "note"}


# ---- snapshots: state only, configuration from the current settings ----------------------------

def _plain(value) -> bool:
    """True when ``value`` is built of builtins only (what a snapshot may hold)."""
    if isinstance(value, (tuple, list)):
        return all(map(_plain, value))
    if isinstance(value, dict):
        return all(_plain(k) and _plain(v) for k, v in value.items())
    return value is None or type(value) in (str, bytes, int, float, bool)


EDITED_SITES = {"s1": Site(id="s1", name="Lille", region="north", manager="new-boss@x", language="en")}


def test_snapshot_is_plain_data_and_resume_applies_the_edited_config():
    old = tracker(sla="24h")
    old.on_alert(hot("a"))
    old.on_event(ev("a", "note", T0 + H))
    old.on_event(ev("z", "contacted", T0 + H))  # its alert is not known yet
    old.on_tick(T0 + 2 * H)
    snapshot = pickle.loads(pickle.dumps(old.snapshot()))
    assert _plain(snapshot)

    resumed = CaseTracker(EDITED_SITES, Cases(sla="2h", sla_grace="1h", unknown_grace="30h"), snapshot)
    assert resumed.cases["a"].row() == old.cases["a"].row() and resumed.clock == old.clock
    assert [e.key for e in resumed.pending["z"]] == [e.key for e in old.pending["z"]]
    assert resumed.snapshot() == snapshot
    resumed.on_alert(hot("b", at=T0 + 2 * H))  # opened after the resume: the new SLA, 2 h
    out = resumed.on_tick(T0 + 5 * H + 1)  # past b's due + the new grace
    alerts = [item for kind, item in out if kind == "alert"]
    assert [(x["evidence"]["hot_alert_id"], x["owner"], x["event_time"]) for x in alerts] == [
        ("b", "new-boss@x", "2026-10-01T14:00:00.000Z")]
    assert "Lille" in alerts[0]["message"] and "untreated for 2 h" in alerts[0]["message"]  # edited registry
    # "a" keeps the deadline it was opened with (24 h, in its rows); the new grace and registry apply.
    assert resumed.on_tick(T0 + 25 * H) == []
    out = resumed.on_tick(T0 + 25 * H + 1)
    alerts = [item for kind, item in out if kind == "alert"]
    assert [(x["evidence"]["hot_alert_id"], x["owner"], x["evidence"]["sla_hours"]) for x in alerts] == [
        ("a", "new-boss@x", 24)]
    assert "z" in resumed.pending  # the new unknown_grace (30 h) still waits for its alert


def test_bytewax_recovery_resumes_the_tracker_under_the_edited_config(tmp_path):
    from datetime import timedelta

    import bytewax.operators as op
    from bytewax.dataflow import Dataflow
    from bytewax.recovery import RecoveryConfig, init_db_dir
    from bytewax.testing import TestingSink, TestingSource, run_main

    from boucle.operators.cases import track_cases

    items = [("cases-0", ("alert", hot("a"))), TestingSource.ABORT(),
             ("cases-0", ("alert", hot("b", at=T0 + 2 * H))), ("cases-0", ("tick", T0 + 26 * H))]

    def run(sites, cases) -> list:
        out: list = []
        flow = Dataflow("cases_recovery")
        tracked = track_cases("cases", op.input("in", flow, TestingSource(items)),
                              lambda state: CaseTracker(sites, cases, state))
        op.output("out", tracked, TestingSink(out))
        run_main(flow, epoch_interval=timedelta(0), recovery_config=RecoveryConfig(str(db)))
        return out

    db = tmp_path / "recovery"
    db.mkdir()
    init_db_dir(db, 1)
    first = run(SITES, Cases(sla="24h"))
    assert [kind for kind, _ in first] == ["case"]
    second = run(EDITED_SITES, Cases(sla="2h"))
    alerts = {a["evidence"]["hot_alert_id"]: a for kind, a in second if kind == "alert"}
    assert {aid: (a["owner"], a["evidence"]["sla_hours"]) for aid, a in alerts.items()} == {
        "a": ("new-boss@x", 24), "b": ("new-boss@x", 2)}


def test_frontline_simulator_resumes_from_a_plain_snapshot():
    from boucle.sources.simulator.frontline import FrontlineSimulator

    alerts = [hot(f"a{i}", at=T0 + i * 60_000) for i in range(50)]
    straight, first = FrontlineSimulator(seed=3), FrontlineSimulator(seed=3)
    for a in alerts:
        straight.on_alert(a)
        first.on_alert(a)
    expected = straight.release(T0 + 30 * 24 * H)
    released = first.release(T0 + 6 * H)
    snapshot = pickle.loads(pickle.dumps(first.snapshot()))
    assert _plain(snapshot)
    resumed = FrontlineSimulator(seed=3, state=snapshot)
    assert released + resumed.release(T0 + 30 * 24 * H) == expected
