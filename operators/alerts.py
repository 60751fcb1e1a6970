"""The alert contract (v1): deterministic ids and the fields every alert carries.

>>> alert_id("hot", "store-0001", "evt-1") == alert_id("hot", "store-0001", "evt-1")
True
>>> alert_id("hot", "store-0001", "evt-1") == str(uuid.uuid5(_NAMESPACE, "hot|store-0001|evt-1"))
True
>>> iso_ms(1795343465120)
'2026-11-22T10:31:05.120Z'

An alert is serialised once, whatever number of outputs publish it (JSONL, warehouse, Kafka):

>>> alert = Alert(alert_id="a1", kind="hot")
>>> alert.json_bytes()
b'{"alert_id":"a1","kind":"hot"}'
>>> alert.json_bytes() is alert.json_bytes()
True
"""

from __future__ import annotations

import uuid
from hashlib import sha1
from typing import Any

import orjson

from boucle.config.times import iso_ms, now_ms

__all__ = ["ALERT_SCHEMA", "Alert", "alert_id", "alert_json", "new_alert"]

ALERT_SCHEMA = "boucle.alert/1"
_NAMESPACE = uuid.UUID("6f1c2f4e-6b55-4a8e-9a43-8d2f1b0c7a11")
_NAMESPACE_BYTES = _NAMESPACE.bytes


def alert_id(kind: str, *evidence: str) -> str:
    """The same evidence replayed gives the same id (a UUIDv5 over kind and evidence).

    Computed as :func:`uuid.uuid5` does, without building a ``UUID`` object (a hot path: one per
    hot alert): the hex digest with the version (5) and RFC 4122 variant nibbles set.
    """
    digest = _NAMESPACE_SHA1.copy()
    digest.update("|".join((kind, *evidence)).encode())
    h = digest.hexdigest()
    return f"{h[:8]}-{h[8:12]}-5{h[13:16]}-{_VARIANT[h[16]]}{h[17:20]}-{h[20:32]}"


_NAMESPACE_SHA1 = sha1(_NAMESPACE_BYTES)
_VARIANT = {c: "89ab"[int(c, 16) & 3] for c in "0123456789abcdef"}  # top bits 10
class Alert(dict):
    """An alert as published: a JSON-ready dict that keeps its JSON once it has been serialised.

    Every output of an alert (JSONL log, warehouse payload, Kafka value) needs the same bytes, and
    serialising a ~1 KB alert is a noticeable part of the flow's cost: :meth:`json_bytes` does it
    once. An alert is not modified after it is emitted (an update is a new alert).
    """

    __slots__ = ("_json", "event_ms", "detected_ms")

    def __init__(self, fields: Any = (), /, event_ms: int | None = None, detected_ms: int | None = None, **kw: Any):
        super().__init__(fields, **kw)
        # The times as numbers too, for stores that take them so (the dict holds ISO strings).
        self.event_ms, self.detected_ms = event_ms, detected_ms

    def json_bytes(self) -> bytes:
        try:
            return self._json
        except AttributeError:
            try:
                self._json = orjson.dumps(self)
            except orjson.JSONEncodeError:  # non-string keys in the evidence: rare, and slower
                self._json = orjson.dumps(self, option=orjson.OPT_NON_STR_KEYS)
            return self._json

    def __reduce__(self):
        # The kept JSON is not worth shipping between workers.
        return (_restore_alert, (dict(self), self.event_ms, self.detected_ms))


def _restore_alert(fields: dict[str, Any], event_ms: int | None, detected_ms: int | None) -> Alert:
    return Alert(fields, event_ms=event_ms, detected_ms=detected_ms)


def alert_json(alert: dict[str, Any]) -> bytes:
    """The published JSON of ``alert`` (its kept serialisation when it is an :class:`Alert`)."""
    return alert.json_bytes() if type(alert) is Alert else orjson.dumps(alert, option=orjson.OPT_NON_STR_KEYS)


def new_alert(
    *,
    id: str,
    kind: str,
    severity: str,
    site_id: str,
    region: str,
    triggers: list[str],
    evidence: dict[str, Any],
    message: str,
    event_ms: int,
    owner: str = "",
    team: str = "",
    attribute: str | None = None,
    status: str = "open",
    detected_ms: int | None = None,
    **extra: Any,
) -> Alert:
    """An alert as published: a JSON-ready dict following DESIGN.md's contract."""
    detected_ms = now_ms() if detected_ms is None else detected_ms
    return Alert({
        "schema": ALERT_SCHEMA,
        "alert_id": id,
        "kind": kind,
        "status": status,
        "severity": severity,
        "site_id": site_id,
        "region": region,
        "attribute": attribute,
        "triggers": triggers,
        "evidence": evidence,
        "message": message,
        "owner": owner,
        "team": team,
        "event_time": iso_ms(event_ms),
        "detected_at": iso_ms(detected_ms),
        **extra,
    }, event_ms=event_ms, detected_ms=detected_ms)
