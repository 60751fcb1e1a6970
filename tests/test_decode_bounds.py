"""The decoder's bounds and types (too_large, too_deep, bad_type per field, time_out_of_range,
internal_error), the alert size bound, the guard of a step that fails, and the dead-letter
identity of simulated case events (issue #13)."""

from __future__ import annotations

from datetime import timedelta

import orjson
import pytest
from bytewax.testing import TestingSink, TestingSource, run_main

from boucle.config.times import DAY_MS, parse_time
from boucle.flows.feedback_flow import FlowOutputs, build_flow
from boucle.flows.loop import _route_simulated_item
from boucle.operators import guard
from boucle.operators.alerts import FIELD_CHARS, alert_json
from boucle.operators.cases import CaseEvent, CaseTracker
from boucle.operators.decode import DeadLetter, Decoder, Feedback, json_depth
from boucle.operators.hot_alerts import HotAlertBuilder
from boucle.sources.message import RawMessage
from boucle.sources.simulator.frontline import FrontlineSimulator

NOW = parse_time("2026-12-01T00:00:00Z")


def event(i=1, **fields):
    base = {"event_id": f"e{i}", "occurred_at": "2026-10-01T08:00:00Z", "site_id": "store-0009",
            "channel": "store", "scores": {"nps": 2}, "attributes": {"waiting_time": 1}, "comment": "",
            "customer": {"id": f"c{i}", "consent_contact": True, "email": "a@example.org"}}
    base.update(fields)
    return base


def decode(settings, value: bytes | dict, live=False, **bounds):
    if bounds:
        settings = settings.model_copy(update={"input": settings.input.model_copy(update=bounds)})
    value = orjson.dumps(value) if isinstance(value, dict) else value
    return Decoder(settings, live=live, now=lambda: NOW).decode(RawMessage(value, "t", 3, 7))


def verdict(result):
    return "accepted" if isinstance(result, Feedback) else result.reason_code


# -- too_large ----------------------------------------------------------------------------------
def test_a_message_over_max_bytes_is_too_large_and_its_dead_letter_keeps_a_bounded_prefix(settings):
    big = orjson.dumps(event(comment="x" * 5000))
    result = decode(settings, big, max_bytes=4096)
    assert result.reason_code == "too_large" and f"{len(big):,} bytes" in result.reason
    assert result.message.value == big[:4096] and result.message.position == "t:3:7"
    assert verdict(decode(settings, big, max_bytes=len(big))) == "accepted"


# -- too_deep -----------------------------------------------------------------------------------
@pytest.mark.parametrize("field", ["comment", "customer", "scores", "site_id", "unknown"])
def test_nesting_deeper_than_max_depth_is_too_deep_in_any_field(settings, field):
    deep = orjson.dumps(event(**{field: "DEEP"})).replace(b'"DEEP"', b"[" * 33 + b"]" * 33)
    assert verdict(decode(settings, deep)) == "too_deep"
    assert verdict(decode(settings, deep.replace(b"[" * 33 + b"]" * 33, b"[" * 5000 + b"]" * 5000))) == "too_deep"


def test_depth_counts_brackets_outside_strings_only(settings):
    assert json_depth(b'{"a": "[[[[{{{{", "b": [[1]]}', 10) == 3
    assert json_depth(b'["\\"[[[["]', 10) == 1
    assert verdict(decode(settings, event(comment="[" * 500))) == "accepted"
    nested_unknown = event(customer={"id": "c", "extra": {"a": {"b": [1, [2]]}}})
    accepted = decode(settings, nested_unknown)
    assert verdict(accepted) == "accepted" and accepted.customer == {"id": "c"}  # unknown keys never carried


# -- types --------------------------------------------------------------------------------------
@pytest.mark.parametrize(("field", "value", "reason"), [
    ("id", ["c1"], "customer.id must be a string or a 64-bit integer, got list"),
    ("id", {"x": 1}, "customer.id must be a string or a 64-bit integer, got dict"),
    ("id", 1.5, "customer.id must be a string or a 64-bit integer, got float"),
    ("id", True, "customer.id must be a string or a 64-bit integer, got bool"),
    ("email", ["a@b.c"], "customer.email must be a string, got list"),
    ("phone", 612345678, "customer.phone must be a string, got int"),
    ("consent_contact", "yes", "customer.consent_contact must be true or false, got 'yes'"),
])
def test_every_customer_field_is_typed(settings, field, value, reason):
    customer = {"id": "c1", "consent_contact": True, field: value}
    result = decode(settings, event(customer=customer))
    assert (result.reason_code, result.reason) == ("bad_type", reason)


def test_the_bounds_are_settings_of_their_own_section(settings):
    assert (settings.input.max_bytes, settings.input.max_depth) == (262_144, 32)
    assert (settings.input.max_future, settings.input.max_past) == (timedelta(days=730), timedelta(days=1826))
    assert settings.hot_alerts.max_comment_chars == 2000


def test_a_numeric_customer_id_becomes_a_string_and_null_fields_are_absent(settings):
    assert decode(settings, event(customer={"id": 123, "consent_contact": True})).customer == {
        "id": "123", "consent_contact": True}
    assert decode(settings, event(customer={"id": None, "email": None})).customer == {}
    assert decode(settings, event(customer=None)).customer == {}


# -- time_out_of_range --------------------------------------------------------------------------
@pytest.mark.parametrize(("at", "replay", "live"), [
    ("2026-11-30T00:00:00Z", "accepted", "accepted"),
    ("1990-01-01T00:00:00Z", "accepted", "time_out_of_range"),  # older than max_past: only live refuses it
    ("1970-01-01T00:00:00Z", "accepted", "time_out_of_range"),
    ("1969-12-31T23:59:59Z", "time_out_of_range", "time_out_of_range"),
    ("2028-11-29T00:00:00Z", "accepted", "accepted"),  # within max_future (730 days)
    ("2028-12-02T00:00:00Z", "time_out_of_range", "time_out_of_range"),
    ("2149-06-07T00:00:00Z", "time_out_of_range", "time_out_of_range"),
    ("0001-01-01T00:00:00+23:59", "time_out_of_range", "time_out_of_range"),
])
def test_event_times_are_bounded_around_now_live_and_below_for_replays(settings, at, replay, live):
    assert verdict(decode(settings, event(occurred_at=at))) == replay
    assert verdict(decode(settings, event(occurred_at=at), live=True)) == live


def test_no_setting_lets_a_time_past_what_a_clickhouse_date_holds(settings):
    far = timedelta(days=100_000)
    assert verdict(decode(settings, event(occurred_at="2149-06-06T23:59:59Z"), max_future=far)) == "accepted"
    assert verdict(decode(settings, event(occurred_at="2149-06-07T00:00:00Z"), max_future=far)) == "time_out_of_range"


# -- internal_error -----------------------------------------------------------------------------
class _Exploding(frozenset):
    def __contains__(self, site):
        if site == "store-0009":
            raise RuntimeError("boom\nsecond line")
        return frozenset.__contains__(self, site)


def test_a_decoder_bug_costs_one_dead_letter_and_the_batch_goes_on(settings):
    decoder = Decoder(settings)
    decoder._sites = _Exploding(decoder._sites)  # a bug on one site's events
    batch = decoder.decode_many([RawMessage(orjson.dumps(event(1)), "t", 0, 0),
                                 RawMessage(orjson.dumps(event(2, site_id="store-0001")), "t", 0, 1)])
    assert [e.event_id for e in batch.accepted] == ["e2"]
    assert [(d.reason_code, d.reason) for d in batch.rejected] == [
        ("internal_error", "internal_error: decode: RuntimeError: boom")]


# -- the alert size bound -----------------------------------------------------------------------
def test_an_alert_carries_a_bounded_comment_masked_before_it_is_cut(settings):
    limit = settings.hot_alerts.max_comment_chars
    comment = "x" * (limit - 10) + " jean.dupont@example.org" + " blah" * 300_000
    decoded = decode(settings, event(comment=comment), max_bytes=4 * 1024 * 1024)
    alert = HotAlertBuilder(settings).build(decoded)
    text = alert["response"]["comment"]
    assert text.endswith(f"\u2026 [truncated, {len(comment) - len('jean.dupont@example.org') + len('[email]'):,} chars]")
    assert len(text) < limit + 40 and "jean" not in text and "[em" in text
    assert len(alert_json(alert)) < 20_000


def test_contact_fields_are_bounded_too(settings):
    decoded = decode(settings, event(customer={"id": "c" * 5000, "consent_contact": True, "email": "e" * 5000}))
    contact = HotAlertBuilder(settings).build(decoded)["contact"]
    assert all(len(v) < FIELD_CHARS + 40 and v.endswith("[truncated, 5,000 chars]") for v in contact.values())


# -- the guard ----------------------------------------------------------------------------------
@pytest.fixture
def fault():
    yield guard.inject_fault
    guard.clear_faults()


def test_a_step_that_fails_on_one_event_dead_letters_it_and_the_others_alert(settings, fault):
    # No input is known to make the hot-alert step fail once decoding types every field: inject one.
    fault("hot", lambda e: e.event_id == "e2")
    alerts, dead = [], []
    messages = [RawMessage(orjson.dumps(event(i, customer={"id": "same"})), "t", 0, 10 + i) for i in (1, 2, 3)]
    settings = settings.model_copy(update={"hot_alerts": settings.hot_alerts.model_copy(
        update={"cooldown": timedelta(0)})})
    run_main(build_flow(settings, TestingSource(messages),
                        FlowOutputs(alerts=[TestingSink(alerts)], dead_letters=[TestingSink(dead)])))
    assert sorted(a["response"]["event_id"] for a in alerts if a["kind"] == "hot") == ["e1", "e3"]
    assert [(d["offset"], d["reason_code"], d["reason"]) for d in dead] == [
        (12, "internal_error", "internal_error: hot: InjectedFault: fault injected in step hot")]
    assert orjson.loads(dead[0]["raw"])["event_id"] == "e2"


def test_the_loop_s_comment_themes_step_is_guarded_too(settings, fault):
    from boucle.flows.loop import LoopSources

    fault("themes", lambda e: e.event_id == "e2")
    alerts, dead = [], []
    messages = [RawMessage(orjson.dumps(event(i, comment="Attente trop longue")), "t", 0, i) for i in (1, 2, 3)]
    run_main(build_flow(settings, TestingSource(messages),
                        FlowOutputs(alerts=[TestingSink(alerts)], dead_letters=[TestingSink(dead)]), loop=LoopSources()))
    assert sorted(a["response"]["event_id"] for a in alerts if a["kind"] == "hot") == ["e1", "e2", "e3"]
    assert [(d["offset"], d["reason"].split(":")[:2]) for d in dead] == [(2, ["internal_error", " themes"])]


def test_the_case_tracker_dead_letters_an_item_it_fails_on_and_goes_on(settings, fault):
    from boucle.operators.cases import _TrackerLogic

    fault("cases", lambda kv: kv[0] == "event" and kv[1].action == "note")
    logic = _TrackerLogic(lambda state: CaseTracker(settings.site_map(), settings.cases, state), None)
    alert = {"alert_id": "a1", "kind": "hot", "site_id": "store-0009", "region": "r", "severity": "high",
             "event_time": "2026-10-01T10:00:00.000Z"}
    note = CaseEvent("a1", "note", parse_time("2026-10-01T10:05:00Z"), message=RawMessage(b"{}", "ce", 2, 5))
    call = CaseEvent("a1", "contacted", parse_time("2026-10-01T10:06:00Z"))
    out, _ = logic.on_batch([("alert", alert), ("event", note), ("event", call)])
    assert [k for k, _ in out] == ["case", "dead", "case", "alert"]  # the contact updates the hot alert
    assert out[3][1]["status"] == "updated"
    assert out[1][1].message.position == "ce:2:5" and out[1][1].reason_code == "internal_error"


# -- the identity of case-event dead letters ----------------------------------------------------
def test_simulated_case_events_of_two_shards_never_share_a_dead_letter_key():
    alert = {"alert_id": "a-1", "kind": "hot", "site_id": "store-0001", "team": "t",
             "event_time": "2026-10-01T10:00:00.000Z", "evidence": {}}
    positions = []
    for shard in ("cases-0", "cases-5"):
        sim = FrontlineSimulator(seed=1)  # each shard numbers its messages from 0
        sim.on_alert({**alert, "alert_id": f"a-{shard}"})
        for m in sim.release(parse_time(alert["event_time"]) + 30 * DAY_MS):
            [(_, (_, routed))] = _route_simulated_item((shard, ("msg", m)))
            positions.append(routed.message.position if hasattr(routed, "message") else routed.position)
    assert len(positions) == len(set(positions)) > 2
    # Released again from the same snapshot (a replay after recovery): the same identities.
    sim = FrontlineSimulator(seed=1)
    sim.on_alert({**alert, "alert_id": "a-cases-0"})
    again = [r.message.position for m in sim.release(parse_time(alert["event_time"]) + 30 * DAY_MS)
             for _, (_, r) in _route_simulated_item(("cases-0", ("msg", m)))]
    assert again == positions[: len(again)]


def test_a_huge_case_event_is_too_large_and_its_dead_letter_bounded():
    from boucle.operators.cases import CASE_EVENT_MAX_BYTES, decode_case_event

    value = orjson.dumps({"alert_id": "a1", "action": "note", "at": "2026-10-01T10:00:00Z", "by": "x" * 100_000})
    dead = decode_case_event(RawMessage(value, "ce", 1, 9))
    assert dead.reason_code == "too_large" and len(dead.message.value) == CASE_EVENT_MAX_BYTES
    assert decode_case_event(RawMessage(b'{"alert_id": ' + b"[" * 5000, "ce", 1, 10)).reason_code == "too_deep"


def test_case_events_made_in_code_are_dead_lettered_under_a_key_of_their_content(settings):
    t = CaseTracker(settings.site_map(), settings.cases)
    events = [CaseEvent("nope", "note", parse_time("2026-10-01T10:00:00Z"), by=by) for by in ("x", "y", "x")]
    for e in events:
        t.on_event(e)
    dead = [d for _, d in t.on_eof()]
    keys = [d.message.position for d in dead]
    assert all(isinstance(d, DeadLetter) for d in dead)
    assert keys[0] != keys[1] and keys[0] == keys[2]  # distinct ones apart, identical ones together
