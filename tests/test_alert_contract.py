"""The alert contract's building blocks: ids, times, one serialisation shared by every output."""

from __future__ import annotations

import pickle
import random
import uuid
from datetime import datetime, timezone

import msgspec
import orjson
import pytest

from boucle.config.times import iso_ms
from boucle.operators.alerts import (
    _NAMESPACE,
    ALERT_FIELDS,
    ALERT_SCHEMA,
    UNSET,
    Alert,
    alert_id,
    alert_json,
    build_alert,
    new_alert,
)
from boucle.schemas.alert import AlertV1
from boucle.sinks.jsonl import encode_line
from boucle.sinks.kafka import alert_records


def _alert(**extra) -> Alert:
    return new_alert(id=alert_id("hot", "store-0001", "e1"), kind="hot", severity="high", site_id="store-0001",
                     region="north", triggers=["rule"], evidence={"scores": {"nps": 2}}, message="Alerte « client »",
                     event_ms=1_795_343_465_120, detected_ms=1_795_343_466_000, **extra)


def test_alert_id_is_uuid5_of_kind_and_evidence():
    rng = random.Random(7)
    for _ in range(2000):
        evidence = (f"store-{rng.randrange(10_000):04d}", str(uuid.UUID(int=rng.getrandbits(128))))
        assert alert_id("hot", *evidence) == str(uuid.uuid5(_NAMESPACE, "|".join(("hot", *evidence))))


def test_iso_ms_matches_datetime_over_a_century():
    rng = random.Random(11)
    for ms in [0, 86_399_999, 951_782_400_000] + [rng.randrange(0, 4_102_444_800_000) for _ in range(5000)]:
        moment = datetime.fromtimestamp(ms / 1000, timezone.utc)
        assert iso_ms(ms) == moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def test_one_serialisation_for_every_output():
    alert = _alert()
    payload = alert_json(alert)
    assert orjson.loads(payload) == dict(alert)
    assert encode_line(alert) == payload + b"\n"
    assert alert_records(alert, "boucle.alerts")[0][2] is payload
    assert (alert.event_ms, alert.detected_ms) == (1_795_343_465_120, 1_795_343_466_000)
    assert (alert["event_time"], alert["detected_at"]) == ("2026-11-22T10:31:05.120Z", "2026-11-22T10:31:06.000Z")


def test_alert_survives_pickling_between_workers():
    alert = _alert(response={"comment": "merci"})
    alert.json_bytes()
    copy = pickle.loads(pickle.dumps(alert))
    assert type(copy) is Alert and copy == alert
    assert (copy.event_ms, copy.detected_ms) == (alert.event_ms, alert.detected_ms)
    assert copy.json_bytes() == alert.json_bytes()


def test_plain_dicts_still_serialise():
    plain = {"alert_id": "a1", "evidence": {1: "non-string key"}}
    assert orjson.loads(alert_json(plain)) == {"alert_id": "a1", "evidence": {"1": "non-string key"}}


def test_alerts_are_laid_out_in_the_contracts_order():
    assert ALERT_FIELDS == tuple(f.name for f in msgspec.structs.fields(AlertV1))
    plain = _alert()
    assert tuple(plain) == ALERT_FIELDS[:-2] and plain["schema"] == ALERT_SCHEMA  # no response, no contact
    # Optional fields take their place in the contract, whatever order they are passed in.
    full = _alert(contact={"id": "c1"}, response={"event_id": "e1"})
    assert tuple(full) == ALERT_FIELDS
    assert (plain["owner"], plain["team"], plain["attribute"], plain["status"]) == ("", "", None, "open")


def test_build_alert_takes_exactly_the_contracts_fields():
    fields = {f.name: f"v-{f.name}" for f in msgspec.structs.fields(AlertV1) if f.name != "schema"}
    alert = build_alert(**fields, event_ms=1, detected_ms=2)
    assert type(alert) is Alert and list(alert) == list(ALERT_FIELDS) and alert["schema"] == ALERT_SCHEMA
    assert (alert.event_ms, alert.detected_ms) == (1, 2)
    assert {k: v for k, v in alert.items() if k != "schema"} == fields
    assert "contact" not in build_alert(**{**fields, "contact": UNSET})
    with pytest.raises(TypeError):
        build_alert(**{**fields, "schema": "boucle.alert/2"})  # a constant, not an argument
    with pytest.raises(TypeError):
        build_alert(**{k: v for k, v in fields.items() if k != "kind"})  # required


def test_new_alert_refuses_fields_outside_the_contract():
    with pytest.raises(TypeError, match="'colour' is not a field of the alert contract"):
        _alert(colour="red")


def test_a_builder_for_one_kind_fixes_scalar_fields_only():
    from boucle.operators.alerts import alert_builder

    build = alert_builder(kind="hot", status="open", attribute=None)
    alert = build(alert_id="a", severity="high", site_id="s", region="r", triggers=["rule"], evidence={},
                  message="m", event_time="t", detected_at="t", event_ms=1, detected_ms=2)
    assert list(alert) == list(ALERT_FIELDS[:-2]) and (alert["kind"], alert["attribute"]) == ("hot", None)
    with pytest.raises(TypeError):
        build(alert_id="a", kind="attribute", severity="high", site_id="s", region="r", triggers=[], evidence={},
              message="m", event_time="t", detected_at="t")
    with pytest.raises(TypeError, match="scalar"):
        alert_builder(triggers=["rule"])  # one list shared by every alert
    with pytest.raises(TypeError):
        alert_builder(schema="boucle.alert/2")  # the contract's constant is not for builders to change
