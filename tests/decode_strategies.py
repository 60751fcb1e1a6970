"""Hypothesis strategies for fuzzing the decoder: arbitrary bytes, and valid events with a field
mutated (replaced by any JSON value, deleted, nested deep, or the serialised bytes corrupted).
Shared by tests/test_decode_fuzz.py and benchmarks/fuzz_decoder.py.

:func:`check` is the property: no exception escapes, and the result is a ``Feedback`` whose fields
have their types, or a ``DeadLetter`` with a known reason code (never ``internal_error``); an
accepted event's hot alert serialises, smaller than a Kafka message's default limit.
"""

from __future__ import annotations

from datetime import datetime, timezone

import msgspec
from hypothesis import strategies as st

from boucle.operators.alerts import alert_json
from boucle.operators.decode import REASON_CODES, DeadLetter, Feedback
from boucle.sources.message import RawMessage

__all__ = ["any_bytes", "check", "mutated_events"]

SITES = ["store-0001", "store-0002", "store-0003", "store-9999", ""]
FIELDS = ["event_id", "occurred_at", "site_id", "channel", "journey_stage", "scores", "attributes", "comment",
          "language", "customer", "customer.id", "customer.email", "customer.phone", "customer.consent_contact",
          "scores.nps", "scores.csat", "attributes.waiting_time", "unknown"]

json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=40),
)
json_values = st.recursive(
    json_scalars, lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner,
                                                                                          max_size=4)),
    max_leaves=12,
)
times = st.one_of(
    st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2027, 1, 1), timezones=st.just(timezone.utc))
    .map(lambda d: d.isoformat().replace("+00:00", "Z")),
    st.datetimes(timezones=st.timezones()).map(lambda d: d.isoformat()),
    st.datetimes().map(lambda d: d.isoformat()),  # no zone
    st.sampled_from(["2149-06-07T00:00:00Z", "1969-12-31T23:59:59Z", "2026-10-05", "9999-12-31T23:59:59-23:59",
                     "0001-01-01T00:00:00+23:59"]),
)
#: Mostly valid ratings, so that mutations, not the base event, decide the verdict.
ratings = st.one_of(
    st.fixed_dictionaries({"nps": st.integers(0, 10)}, optional={"csat": st.integers(1, 5), "ces": st.integers(1, 7)}),
    st.dictionaries(st.sampled_from(["nps", "csat", "ces", "other"]), st.integers(-2, 12), max_size=3),
)


@st.composite
def valid_events(draw) -> dict:
    return {
        "event_id": draw(st.text(min_size=1, max_size=20)),
        "occurred_at": draw(times),
        "site_id": draw(st.sampled_from(SITES)),
        "channel": draw(st.sampled_from(["store", "web", "app", "email", "", "fax"])),
        "journey_stage": draw(st.text(max_size=20)),
        "scores": draw(ratings),
        "attributes": draw(st.dictionaries(st.sampled_from(["waiting_time", "cleanliness"]),
                                           st.integers(min_value=1, max_value=5), max_size=2)),
        "comment": draw(st.text(max_size=200)),
        "language": draw(st.sampled_from(["fr", "en", ""])),
        "customer": {"id": draw(st.one_of(st.text(max_size=12), st.integers())),
                     "consent_contact": draw(st.booleans()), "email": draw(st.text(max_size=20)),
                     "phone": draw(st.text(max_size=20))},
    }


def _put(doc: dict, path: str, value, delete: bool = False) -> None:
    *parents, last = path.split(".")
    target = doc
    for p in parents:
        target = target.get(p)
        if not isinstance(target, dict):
            return
    if delete:
        target.pop(last, None)
    else:
        target[last] = value


@st.composite
def mutated_events(draw) -> bytes:
    """A valid-looking event with a few mutations, serialised; then maybe its bytes corrupted."""
    doc = draw(valid_events())
    deep = None  # the JSON text every "__DEEP__" placeholder becomes
    for _ in range(draw(st.integers(min_value=0, max_value=3))):
        path = draw(st.sampled_from(FIELDS))
        how = draw(st.sampled_from(["value", "delete", "deep", "none"]))
        if how == "deep":
            depth = draw(st.integers(min_value=1, max_value=3000))
            _put(doc, path, "__DEEP__")
            deep = ("[" * depth + "]" * depth) if draw(st.booleans()) else ('{"a":' * depth + "0" + "}" * depth)
        elif how != "none":
            _put(doc, path, draw(json_values), delete=how == "delete")
    value = msgspec.json.encode(doc)  # big integers too
    if deep is not None:
        value = value.replace(b'"__DEEP__"', deep.encode())
    if draw(st.booleans()) and value:
        at = draw(st.integers(min_value=0, max_value=len(value) - 1))
        value = value[:at] + draw(st.binary(max_size=3)) + value[at + draw(st.integers(min_value=0, max_value=2)):]
    return value


any_bytes = st.one_of(st.binary(max_size=400), st.text(max_size=200).map(str.encode))


def check(decoder, builder, value: bytes, offset: int = 0) -> str:
    """The property, on one message; returns its verdict (``accepted`` or the reason code)."""
    result = decoder.decode(RawMessage(value, "fuzz", 0, offset))
    if isinstance(result, DeadLetter):
        assert result.reason_code in REASON_CODES and result.reason_code != "internal_error", result.reason
        assert result.reason
        return result.reason_code
    assert isinstance(result, Feedback)
    assert type(result.event_id) is str and result.event_id and type(result.site_id) is str
    for text in (result.channel, result.journey_stage, result.comment, result.language):
        assert type(text) is str
    assert all(type(v) is int for v in (*result.scores.values(), *result.attributes.values()))
    customer = result.customer
    assert set(customer) <= {"id", "email", "phone", "consent_contact"}
    assert all(type(customer[k]) is str for k in ("id", "email", "phone") if k in customer)
    assert type(customer.get("consent_contact", False)) is bool
    assert 0 <= result.ts_ms < 5_662_310_400_000
    alert = builder.build(result, [("fuzz", "high")], 0)
    assert len(alert_json(alert)) < 1_000_000
    return "accepted"
