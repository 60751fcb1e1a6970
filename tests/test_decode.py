"""Every class of bad input lands in the dead-letter output with its reason; good input passes."""

from datetime import datetime, timezone

import orjson
import pytest
from bytewax.testing import TestingSink, TestingSource, run_main

from boucle.flows.feedback_flow import FlowOutputs, build_flow
from boucle.operators.decode import DeadLetter, Decoder, Feedback
from boucle.sources.message import RawMessage

GOOD = {
    "event_id": "e1",
    "occurred_at": "2026-10-01T10:31:05.120Z",
    "site_id": "store-0001",
    "channel": "store",
    "journey_stage": "purchase",
    "scores": {"nps": 3, "csat": 2, "ces": 6},
    "attributes": {"waiting_time": 1, "staff_friendliness": 4},
    "comment": "Trop d'attente",
    "language": "fr",
    "customer": {"id": "c1", "consent_contact": True},
}


EXPECTED_MS = int(datetime(2026, 10, 1, 10, 31, 5, 120000, tzinfo=timezone.utc).timestamp() * 1000)


def _msg(value, offset=0) -> RawMessage:
    raw = value if isinstance(value, bytes) else orjson.dumps(value)
    return RawMessage(raw, "test", 0, offset)


def _with(**changes):
    event = dict(GOOD)
    for key, value in changes.items():
        if value is ...:
            del event[key]
        else:
            event[key] = value
    return event


BAD = [
    (b'{"event_id": "e1", "site_', "invalid_json"),
    (b"\xff\xfe not utf-8", "invalid_json"),
    (b"[1, 2]", "not_an_object"),
    (_with(event_id=...), "missing_field"),
    (_with(site_id=...), "missing_field"),
    (_with(occurred_at=...), "missing_field"),
    (_with(scores={}, attributes={}), "missing_field"),
    (_with(event_id=42), "bad_type"),
    (_with(scores=[3]), "bad_type"),
    (_with(scores={"nps": "3"}), "bad_type"),
    (_with(scores={"nps": True}), "bad_type"),
    (_with(customer="c1"), "bad_type"),
    (_with(occurred_at="yesterday"), "bad_timestamp"),
    (_with(occurred_at="2026-10-01T10:31:05"), "bad_timestamp"),
    (_with(site_id="store-9999"), "unknown_site"),
    (_with(attributes={"parking": 3}), "unknown_question"),
    (_with(scores={"nps": 11}), "out_of_scale"),
    (_with(attributes={"waiting_time": 0}), "out_of_scale"),
    (_with(channel="pigeon"), "unknown_channel"),
]


def test_good_event_decodes(settings):
    event = Decoder(settings).decode(_msg(GOOD))
    assert isinstance(event, Feedback)
    assert event.ts_ms == EXPECTED_MS
    assert event.scores == {"nps": 3, "csat": 2, "ces": 6}
    assert event.position == "test:0:0"


def test_offsets_other_than_utc_are_normalised(settings):
    event = Decoder(settings).decode(_msg(_with(occurred_at="2026-10-01T12:31:05.120+02:00")))
    assert event.ts_ms == EXPECTED_MS


@pytest.mark.parametrize("value,code", BAD, ids=[f"{c}-{i}" for i, (_, c) in enumerate(BAD)])
def test_each_bad_input_class_has_its_reason(settings, value, code):
    result = Decoder(settings).decode(_msg(value))
    assert isinstance(result, DeadLetter)
    assert result.reason_code == code
    assert result.reason  # a human sentence, not just the code


def test_flow_dead_letters_every_bad_message_and_goes_on(settings):
    messages = []
    for i, (value, _) in enumerate(BAD):
        messages.append(_msg(value, offset=2 * i))
        ok = _with(event_id=f"ok-{i}", customer={"id": f"c{i}"})  # distinct customers: no cooldown
        messages.append(_msg(ok, offset=2 * i + 1))
    dead, alerts = [], []
    outputs = FlowOutputs(alerts=[TestingSink(alerts)], dead_letters=[TestingSink(dead)])
    run_main(build_flow(settings, TestingSource(messages, batch_size=3), outputs))
    assert [(d["offset"], d["reason_code"]) for d in sorted(dead, key=lambda d: d["offset"])] == [
        (2 * i, code) for i, (_, code) in enumerate(BAD)
    ]
    assert dead[0]["raw"] == BAD[0][0].decode()
    # the good events after each bad one were still processed (one alert each: NPS 3)
    assert sorted(a["response"]["event_id"] for a in alerts) == sorted(f"ok-{i}" for i in range(len(BAD)))
