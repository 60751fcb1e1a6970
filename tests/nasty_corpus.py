"""A corpus of nasty inputs, one named class each, built programmatically (issue #13).

Each class is ``(name, line, expected)``: the bytes of one input line (no newline in it) and the
reason code the decoder must give it, ``"accepted"``, or ``None`` when either verdict is fine as
long as it is a known reason. Every line carries a distinct ``event_id`` where it has one, and the
time ``occurred_at`` that :func:`corpus` gives it, so the lines before and after it are not made
late by it.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator

import orjson

__all__ = ["SITE", "corpus", "event"]

SITE = "store-0001"
_FIELDS = ("event_id", "occurred_at", "site_id", "channel", "journey_stage", "scores", "attributes", "comment",
           "language", "customer")
_STRING_FIELDS = ("event_id", "occurred_at", "site_id", "channel", "journey_stage", "comment", "language")


def event(event_id: str, occurred_at: str, **fields) -> dict:
    """A valid detractor response (it fires a hot alert) with a consenting customer."""
    base = {
        "event_id": event_id, "occurred_at": occurred_at, "site_id": SITE, "channel": "store",
        "journey_stage": "purchase", "scores": {"nps": 2, "csat": 1}, "attributes": {"waiting_time": 1},
        "comment": "Attente trop longue", "language": "fr",
        "customer": {"id": f"c-{event_id}", "consent_contact": True, "email": "a@example.org", "phone": "0600000000"},
    }
    base.update(fields)
    return base


def _set(doc: dict, path: str, value) -> dict:
    doc = copy.deepcopy(doc)
    *parents, last = path.split(".")
    target = doc
    for p in parents:
        target = target[p]
    target[last] = value
    return doc


def _drop(doc: dict, path: str) -> dict:
    doc = copy.deepcopy(doc)
    *parents, last = path.split(".")
    target = doc
    for p in parents:
        target = target[p]
    del target[last]
    return doc


def _nested(depth: int, kind: str) -> str:
    """JSON text of a value nested ``depth`` levels (lists or objects)."""
    if kind == "list":
        return "[" * depth + "1" + "]" * depth
    return '{"a":' * depth + "1" + "}" * depth


def _with_raw(doc: dict, path: str, raw: str) -> bytes:
    """``doc`` with the JSON text ``raw`` at ``path`` (a value orjson could not write: too deep)."""
    marker = "__RAW_MARKER__"
    return orjson.dumps(_set(doc, path, marker)).replace(f'"{marker}"'.encode(), raw.encode())


def _classes(eid: str, at: str) -> Iterator[tuple[str, bytes, str | None]]:
    good = event(eid, at)
    dumps = orjson.dumps

    # -- nesting, in every field (and an unknown one), as lists and as objects
    for path in (*_FIELDS, "customer.id", "customer.email", "customer.phone", "customer.consent_contact",
                 "scores.nps", "attributes.waiting_time", "extra"):
        for depth in (40, 300, 1100, 60_000):
            kind = "list" if depth != 300 else "object"
            yield f"deep_{kind}_{depth}_in_{path}", _with_raw(good, path, _nested(depth, kind)), "too_deep"

    # -- wrong types in every field
    for field in _STRING_FIELDS:
        for label, value in (("int", 7), ("float", 1.5), ("bool", True), ("list", ["x"]), ("object", {"x": 1})):
            yield f"{field}_as_{label}", dumps(_set(good, field, value)), "bad_type"
    for field in ("scores", "attributes"):
        for label, value in (("list", [1]), ("string", "nps=2"), ("int", 2)):
            yield f"{field}_as_{label}", dumps(_set(good, field, value)), "bad_type"
    for label, value in (("list", ["c1"]), ("object", {"id": "c1"}), ("bool", True), ("float", 12.5)):
        yield f"customer_id_as_{label}", dumps(_set(good, "customer.id", value)), "bad_type"
    for field in ("email", "phone"):
        for label, value in (("int", 600000000), ("list", ["a@b.c"]), ("object", {"v": "a@b.c"}), ("bool", False)):
            yield f"customer_{field}_as_{label}", dumps(_set(good, f"customer.{field}", value)), "bad_type"
    for label, value in (("string", "yes"), ("int", 1), ("list", [True])):
        yield f"consent_as_{label}", dumps(_set(good, "customer.consent_contact", value)), "bad_type"
    for label, value in (("list", []), ("string", "c1"), ("int", 3)):
        yield f"customer_as_{label}", dumps(_set(good, "customer", value)), "bad_type"

    # -- ratings
    for label, value, code in (
        ("negative", -1, "out_of_scale"), ("float", 3.5, "bad_type"), ("bool", True, "bad_type"),
        ("string", "3", "bad_type"), ("null", None, "bad_type"),
        ("over_max", 11, "out_of_scale"), ("int64_max", 2**63 - 1, "out_of_scale"),
    ):
        yield f"rating_{label}", dumps(_set(good, "scores.nps", value)), code
    yield "rating_nan", dumps(good).replace(b'"nps":2', b'"nps":NaN'), "invalid_json"
    yield "rating_infinity", dumps(good).replace(b'"nps":2', b'"nps":Infinity'), "invalid_json"
    yield "rating_minus_infinity", dumps(good).replace(b'"nps":2', b'"nps":-Infinity'), "invalid_json"
    yield "rating_huge_int", dumps(good).replace(b'"nps":2', b'"nps":' + b"9" * 40), "bad_type"
    yield "rating_1e400", dumps(good).replace(b'"nps":2', b'"nps":1e400'), None
    yield "unknown_question", dumps(_set(good, "scores.happiness", 3)), "unknown_question"
    yield "attribute_out_of_scale", dumps(_set(good, "attributes.waiting_time", 9)), "out_of_scale"
    yield "no_rating", dumps({**good, "scores": {}, "attributes": {}}), "missing_field"

    # -- required fields
    for field in ("event_id", "occurred_at", "site_id"):
        yield f"missing_{field}", dumps(_drop(good, field)), "missing_field"
        yield f"empty_{field}", dumps(_set(good, field, "")), "missing_field"
        yield f"null_{field}", dumps(_set(good, field, None)), "missing_field"
    yield "unknown_site", dumps(_set(good, "site_id", "store-9999")), "unknown_site"
    yield "unknown_channel", dumps(_set(good, "channel", "pigeon")), "unknown_channel"
    yield "channel_wrong_case", dumps(_set(good, "channel", "Store")), "unknown_channel"

    # -- sizes
    yield "huge_comment_1_5_mb", dumps(_set(good, "comment", "x" * 1_500_000)), "too_large"
    yield "huge_padding_300_kb", dumps(good)[:-1] + b" " * 300_000 + b"}", "too_large"
    yield "long_comment_200_kb", dumps(_set(good, "comment", "Nul. " * 40_000)), "accepted"
    yield "long_email_100_kb", dumps(_set(good, "customer.email", "a" * 100_000 + "@x.org")), "accepted"

    # -- encodings and bytes
    yield "bad_utf8_in_comment", dumps(good).replace(b"Attente", b"Att\xff\xfeente"), "invalid_json"
    yield "lone_surrogate_escape", dumps(good).replace(b"Attente", b"Att\\ud800ente"), "invalid_json"
    yield "utf8_bom_prefix", b"\xef\xbb\xbf" + dumps(good), "invalid_json"
    yield "raw_null_byte_in_string", dumps(good).replace(b"Attente", b"Att\x00ente"), "invalid_json"
    yield "null_byte_line", b"\x00", "invalid_json"
    yield "escaped_null_in_comment", dumps(_set(good, "comment", "a\x00b")), "accepted"
    yield "terminal_escapes_in_comment", dumps(_set(good, "comment", "\x1b]0;pwned\x07\x1b[2J bad")), "accepted"
    yield "bidi_override_in_comment", dumps(_set(good, "comment", "\u202egnol oot\u202c")), "accepted"
    yield "control_chars_in_customer_id", dumps(_set(good, "customer.id", "c\x01\x02\x7f")), "accepted"
    yield "emoji_and_combining", dumps(_set(good, "comment", "👎🏽 ne\u0301gatif")), "accepted"
    yield "rich_markup_in_comment", dumps(_set(good, "comment", "[/x] [link=http://evil]clic[/link]")), "accepted"
    yield "customer_id_as_int", dumps(_set(good, "customer.id", 123456)), "accepted"
    yield "customer_id_huge_int", dumps(good).replace(b'"id":"c-', b'"id":' + b"9" * 40 + b',"x":"'), "bad_type"
    yield "customer_null_fields", dumps(_set(good, "customer", {"id": None, "email": None, "consent_contact": None})), \
        "accepted"
    yield "customer_unknown_keys", dumps(_set(good, "customer.segment", {"a": [1, 2]})), "accepted"
    yield "customer_null", dumps(_set(good, "customer", None)), "accepted"
    yield "unknown_top_level_field", dumps(_set(good, "survey", {"id": 3})), "accepted"
    yield "optional_strings_null", dumps({**good, "comment": None, "language": None, "journey_stage": None}), "accepted"

    # -- JSON shape
    yield "duplicate_event_id_key", dumps(good).replace(b'{"event_id":', b'{"event_id":"dup-first","event_id":', 1), \
        "accepted"
    yield "duplicate_site_id_key_last_unknown", dumps(good)[:-1] + b',"site_id":"nowhere"}', "unknown_site"
    for name, line in (
        ("empty_object", b"{}"), ("top_level_array", b"[1,2]"), ("top_level_string", b'"event"'),
        ("top_level_number", b"42"), ("top_level_null", b"null"), ("top_level_true", b"true"),
    ):
        yield name, line, "missing_field" if line == b"{}" else "not_an_object"
    yield "truncated_json", dumps(good)[:40], "invalid_json"
    yield "trailing_garbage", dumps(good) + b"xyz", "invalid_json"
    yield "two_objects_one_line", dumps(good) + dumps(good), "invalid_json"
    yield "single_quotes", dumps(good).replace(b'"', b"'"), "invalid_json"
    yield "trailing_comma", dumps(good)[:-1] + b",}", "invalid_json"
    yield "comment_in_json", b"/* hi */" + dumps(good), "invalid_json"
    yield "not_json_text", b"hello world", "invalid_json"
    yield "only_brackets_many", b"[" * 200_000, "too_deep"

    # -- timestamps of every bad kind
    for name, value, code in (
        ("no_zone", "2026-10-05T10:00:00", "bad_timestamp"),
        ("date_only", "2026-10-05", "bad_timestamp"),
        ("epoch_string", "1790848800", "bad_timestamp"),
        ("words", "yesterday", "bad_timestamp"),
        ("hour_25", "2026-10-05T25:00:00Z", "bad_timestamp"),
        ("feb_30", "2026-02-30T10:00:00Z", "bad_timestamp"),
        ("leap_second", "2026-12-31T23:59:60Z", "bad_timestamp"),
        ("offset_25h", "2026-10-05T10:00:00+25:00", "bad_timestamp"),
        ("year_0", "0000-01-01T00:00:00Z", "bad_timestamp"),
        ("year_10000", "10000-01-01T00:00:00Z", "bad_timestamp"),
        ("date_end_2149_06_07", "2149-06-07T00:00:00Z", "time_out_of_range"),
        ("year_2149_before_date_end", "2149-06-06T23:59:59Z", "time_out_of_range"),
        ("year_3000", "3000-01-01T00:00:00Z", "time_out_of_range"),
        ("year_9999_end", "9999-12-31T23:59:59.999Z", "time_out_of_range"),
        ("year_9999_west_offset", "9999-12-31T23:59:59-23:59", "time_out_of_range"),
        ("year_1_east_offset", "0001-01-01T00:00:00+23:59", "time_out_of_range"),
        ("year_1969", "1969-12-31T23:59:59Z", "time_out_of_range"),
        ("year_1900", "1900-01-01T00:00:00Z", "time_out_of_range"),
    ):
        yield f"time_{name}", dumps(_set(good, "occurred_at", value)), code
    yield "time_as_epoch_number", dumps(_set(good, "occurred_at", 1790848800)), "bad_type"
    yield "time_1970_epoch_start", dumps(_set(good, "occurred_at", "1970-01-01T00:00:00Z")), "accepted"


def corpus(start_ms: int) -> Iterator[tuple[str, bytes, str | None]]:
    """Every class, with its own event id and the next second of event time from ``start_ms``."""
    from boucle.config.times import iso_ms

    for i, (name, line, expected) in enumerate(_classes("__EID__", "__AT__")):
        at = iso_ms(start_ms + (3 * i + 1) * 1000)
        yield name, line.replace(b"__EID__", f"poison-{i:03d}".encode()).replace(b"__AT__", at.encode()), expected
