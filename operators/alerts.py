"""Alerts at run time: deterministic ids, and the dicts that follow the contract (v1).

The layout is defined once, by :class:`~boucle.schemas.alert.AlertV1`: :func:`build_alert`
(and :func:`alert_builder`'s builders for one kind) are generated from its fields (their order is the order of an alert's keys) and the published JSON
Schema is generated from it too (:mod:`boucle.schemas`).

>>> alert_id("hot", "store-0001", "evt-1") == alert_id("hot", "store-0001", "evt-1")
True
>>> alert_id("hot", "store-0001", "evt-1") == str(uuid.uuid5(_NAMESPACE, "hot|store-0001|evt-1"))
True
>>> iso_ms(1795343465120)
'2026-11-22T10:31:05.120Z'

An alert is a dict in the contract's order; ``schema`` is filled in, fields left ``UNSET`` are left out:

>>> alert = new_alert(id="a1", kind="case_sla", severity="high", site_id="store-0001", region="north",
...                   triggers=["sla"], evidence={}, message="m", event_ms=0, detected_ms=0)
>>> list(alert)[:3], "response" in alert, alert.event_ms
(['schema', 'alert_id', 'kind'], False, 0)
>>> new_alert(id="a1", kind="hot", severity="high", site_id="s", region="r", triggers=[], evidence={},
...           message="m", event_ms=0, colour="red")
Traceback (most recent call last):
...
TypeError: 'colour' is not a field of the alert contract (boucle.schemas.alert.AlertV1): add it there first

An alert is serialised once, whatever number of outputs publish it (JSONL, warehouse, Kafka):

>>> alert = Alert(alert_id="a1", kind="hot")
>>> alert.json_bytes()
b'{"alert_id":"a1","kind":"hot"}'
>>> alert.json_bytes() is alert.json_bytes()
True

Customer-written text is bounded before it goes into an alert, with a visible marker, so that every
output (a Kafka topic's message limit first) takes the alert:

>>> truncated("x" * 12, 5)
'xxxxx… [truncated, 12 chars]'
"""

from __future__ import annotations

import typing
import uuid
from collections.abc import Callable
from hashlib import sha1
from typing import Any

import msgspec
import orjson

from boucle.config.times import iso_ms, now_ms
from boucle.schemas.alert import ALERT_SCHEMA, AlertV1

__all__ = [
    "ALERT_FIELDS", "ALERT_SCHEMA", "FIELD_CHARS", "UNSET", "Alert", "alert_builder", "alert_id", "alert_json",
    "build_alert", "new_alert", "truncated",
]

#: Characters kept of a short customer-given field in an alert (a contact, a journey stage): an
#: e-mail address has at most 254.
FIELD_CHARS = 320


def truncated(text: str, limit: int) -> str:
    """``text``, or its first ``limit`` characters and a marker giving the full length."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}\u2026 [truncated, {len(text):,} chars]"


UNSET = msgspec.UNSET
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
        # (build_alert sets them without calling __init__: keep the two in step.)
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


def alert_builder(**fixed: Any) -> Callable[..., Alert]:
    """A function that lays out an :class:`Alert` as the contract says, ``fixed`` fields set.

    It takes the other fields of :class:`~boucle.schemas.alert.AlertV1` as keyword arguments, plus
    ``event_ms``/``detected_ms`` (the times as numbers, kept beside the fields for the warehouse).
    A field whose type admits one value (``schema``) is always set; a field with a default may be
    left out; one defaulting to ``UNSET`` is then absent from the alert. Fixing the fields a kind
    always has (``kind="hot"``) also keeps its call sites at 15 keyword arguments or fewer: CPython
    passes more through a dict (``CALL_FUNCTION_EX``), which costs about 0.6 µs per call here.

    >>> build_case = alert_builder(kind="case_sla", status="open")
    >>> alert = build_case(alert_id="a1", severity="high", site_id="s", region="r", attribute=None,
    ...                    triggers=["sla"], evidence={}, message="m", event_time="t", detected_at="t")
    >>> list(alert)[:5], alert["owner"]
    (['schema', 'alert_id', 'kind', 'status', 'severity'], '')
    >>> alert_builder(colour="red")
    Traceback (most recent call last):
    ...
    TypeError: alert_builder: 'colour' is not a field of the alert contract, or not one that can be fixed
    """
    return _compile_builder(AlertV1, fixed)


def _compile_builder(contract: type[msgspec.Struct], fixed: dict[str, Any]) -> Callable[..., Alert]:
    """Generated the way :mod:`dataclasses` writes ``__init__``: the body is one dict literal in the
    contract's order, so an alert costs what a hand-written literal costs (a loop over the fields
    would cost several times more, once per hot alert).

    >>> print(build_alert.__source__)  # doctest: +ELLIPSIS
    def build_alert(*, alert_id, kind, status, severity, ..., owner=_owner, team=_team, ..., response=_response, \
contact=_contact, event_ms=None, detected_ms=None):
        alert = _new(Alert)
        _update(alert, {'schema': _schema, 'alert_id': alert_id, ..., 'detected_at': detected_at})
        alert.event_ms = event_ms
        alert.detected_ms = detected_ms
        if response is not UNSET: alert['response'] = response
        if contact is not UNSET: alert['contact'] = contact
        return alert
    <BLANKLINE>
    """
    params, namespace = [], {"Alert": Alert, "UNSET": UNSET, "_new": dict.__new__, "_update": dict.update}
    leading: list[str] = []  # the fields before the first optional one: the dict literal
    rest: list[str] = []  # from the first optional field on: one statement each, in order
    unknown = set(fixed)
    for f in msgspec.structs.fields(contract):
        if f.default_factory is not msgspec.NODEFAULT:
            raise TypeError(f"{contract.__name__}.{f.name}: an alert field's default is a constant or UNSET")
        kind = f.type
        while typing.get_origin(kind) is typing.Annotated:
            kind = typing.get_args(kind)[0]
        if typing.get_origin(kind) is typing.Literal and len(typing.get_args(kind)) == 1:
            namespace[f"_{f.name}"] = typing.get_args(kind)[0]
            value = f"_{f.name}"
        elif f.name in fixed:
            unknown.discard(f.name)
            if not isinstance(fixed[f.name], (str, int, float, type(None))):
                raise TypeError(f"alert_builder: {f.name}: a fixed value is shared by every alert, so a scalar")
            namespace[f"_{f.name}"] = fixed[f.name]
            value = f"_{f.name}"
        elif f.default is msgspec.NODEFAULT:
            params.append(value := f.name)
        else:
            namespace[f"_{f.name}"] = f.default
            params.append(f"{f.name}=_{f.name}")
            value = f.name
        if f.default is UNSET:
            rest.append(f"if {value} is not UNSET: alert[{f.name!r}] = {value}")
        elif rest:
            rest.append(f"alert[{f.name!r}] = {value}")
        else:
            leading.append(f"{f.name!r}: {value}")
    if unknown:
        raise TypeError(f"alert_builder: {sorted(unknown)[0]!r} is not a field of the alert contract,"
                        " or not one that can be fixed")
    # dict's own __new__ and update rather than Alert(...): Alert.__init__ is one more Python call
    # per alert and does only what the two lines after them do.
    lines = ["alert = _new(Alert)", f"_update(alert, {{{', '.join(leading)}}})",
             "alert.event_ms = event_ms", "alert.detected_ms = detected_ms", *rest, "return alert"]
    source = (f"def build_alert(*, {', '.join(params)}, event_ms=None, detected_ms=None):\n"
              + "".join(f"    {line}\n" for line in lines))
    exec(compile(source, f"<{contract.__name__} builder>", "exec"), namespace)  # noqa: S102 - our own source, from the contract
    build = namespace["build_alert"]
    build.__module__, build.__source__ = __name__, source
    build.__doc__ = f"An :class:`Alert` laid out as {contract.__name__} says" + (
        f" (fixed: {', '.join(sorted(fixed))})." if fixed else ".")
    return build


ALERT_FIELDS: tuple[str, ...] = tuple(f.name for f in msgspec.structs.fields(AlertV1))
_FIELD_NAMES = frozenset(ALERT_FIELDS)

#: Every field of the contract as a keyword argument (see :func:`alert_builder`).
build_alert = alert_builder()


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
    """An alert as published, from times in epoch milliseconds (``detected_ms``: now by default).

    ``extra``: the contract's optional fields (``response``, ``contact``, ...); any other name is
    an error, as a field the contract does not define would be published undocumented.
    """
    unknown = extra.keys() - _FIELD_NAMES
    if unknown:
        raise TypeError(f"{sorted(unknown)[0]!r} is not a field of the alert contract"
                        " (boucle.schemas.alert.AlertV1): add it there first")
    detected_ms = now_ms() if detected_ms is None else detected_ms
    return build_alert(
        alert_id=id, kind=kind, status=status, severity=severity, site_id=site_id, region=region,
        attribute=attribute, triggers=triggers, evidence=evidence, message=message, owner=owner, team=team,
        event_time=iso_ms(event_ms), detected_at=iso_ms(detected_ms), event_ms=event_ms, detected_ms=detected_ms,
        **extra,
    )
