"""Broken messages, one defect each, with the reason code the decoder reports for them.

Each is derived from a real event (whose ``event_id`` or content keeps it unique) and never
contains a newline.

>>> event = {"event_id": "e-1", "occurred_at": "2026-10-03T10:00:00.120Z", "site_id": "s1",
...          "scores": {"nps": 9}, "attributes": {"waiting_time": 4}, "comment": ""}
>>> corrupt(event, "bad_timestamp", 0, {"nps": (0, 10), "waiting_time": (1, 5)})
b'{"event_id":"e-1","occurred_at":"2026-10-03T10:00:00","site_id":"s1","scores":{"nps":9},"attributes":{"waiting_time":4},"comment":""}'
>>> corrupt(event, "invalid_json", 3, {})
b'{"event_id":"e-1","occurred_at":"2026-1'
"""

from __future__ import annotations

import orjson

__all__ = ["MALFORMED_REASONS", "corrupt"]

MALFORMED_REASONS = ("invalid_json", "unknown_site", "out_of_scale", "missing_field", "bad_timestamp")
_MISSING = ("event_id", "occurred_at", "site_id")


def _bad_timestamp(occurred_at: str, pick: int) -> str:
    date, _, clock = occurred_at.partition("T")
    year, month, day = date.split("-")
    variant = pick % 4
    if variant == 0:
        return f"{date}T{clock[:8]}"  # no time zone
    if variant == 1:
        return f"{day}/{month}/{year} {clock[:5]}"
    if variant == 2:
        return f"{date}T{25 + pick % 5}:{clock[3:8]}Z"  # hour out of range
    return f"{date} around {clock[:2]}h"


def corrupt(event: dict, reason: str, pick: int, scales: dict[str, tuple[int, int]]) -> bytes:
    """The bytes of ``event`` broken in the way ``reason`` names (``pick`` varies the defect)."""
    if reason == "invalid_json":
        text = orjson.dumps(event).decode()
        keep = text.index(",", text.index('"event_id"')) + 1  # past the id: stays unique
        cut = keep + pick * 7 % max(len(text) - keep - 1, 1)
        return text[: max(cut, keep)].encode()
    event = dict(event)
    if reason == "unknown_site":
        event["site_id"] = f"store-{9000 + pick % 1000:04d}" if pick % 3 else f"shop-{pick % 97}"
    elif reason == "out_of_scale":
        group = "attributes" if pick % 2 and event.get("attributes") else "scores"
        ratings = dict(event[group])
        name = sorted(ratings)[(pick >> 1) % len(ratings)]
        lo, hi = scales.get(name, (0, 10))
        ratings[name] = hi + 1 + pick % 3 if pick & 4 else lo - 1 - pick % 2
        event[group] = ratings
    elif reason == "missing_field":
        del event[_MISSING[pick % 3]]
    elif reason == "bad_timestamp":
        event["occurred_at"] = _bad_timestamp(event["occurred_at"], pick)
    else:
        raise ValueError(f"unknown malformed reason {reason!r}")
    return orjson.dumps(event)
