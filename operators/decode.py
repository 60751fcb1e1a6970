"""Decode and validate feedback events in batches; whatever fails becomes a dead letter.

The validator is compiled once from the settings (known sites, the scale of every question) and
checks one event in a few microseconds (msgspec parses and type-checks it in C), because per-event
Python work bounds the throughput.

>>> from boucle.config.loader import settings_from_dict
>>> settings = settings_from_dict({
...     "regions": [{"id": "north"}], "sites": [{"id": "s1", "region": "north"}],
...     "attributes": [{"name": "waiting_time"}]})
>>> decoder = Decoder(settings)
>>> ok = decoder.decode(RawMessage(b'{"event_id": "e1", "occurred_at": "2026-11-22T10:31:05.120Z",'
...     b' "site_id": "s1", "scores": {"nps": 3}, "attributes": {"waiting_time": 1}}', "test", 0, 0))
>>> ok.site_id, ok.ts_ms, ok.scores
('s1', 1795343465120, {'nps': 3})
>>> bad = decoder.decode(RawMessage(b'{"event_id": "e2", "occurred_at": "2026-11-22T10:31:05",'
...     b' "site_id": "s1", "scores": {"nps": 3}}', "test", 0, 1))
>>> bad.reason_code, bad.reason
('bad_timestamp', "occurred_at '2026-11-22T10:31:05' has no time zone (use Z or +HH:MM)")

Every field it reads is typed, and what the parsers cannot take is refused before they see it:

>>> decoder.decode(RawMessage(b'{"customer": ' + b'[' * 5000 + b']' * 5000 + b'}', "test", 0, 2)).reason_code
'too_deep'
>>> decoder.decode(RawMessage(b'{"event_id": "e3", "occurred_at": "2026-11-22T10:31:05Z", "site_id": "s1",'
...     b' "scores": {"nps": 3}, "customer": {"id": ["c1"]}}', "test", 0, 3)).reason
'customer.id must be a string or a 64-bit integer, got list'
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal

import bytewax.operators as op
import msgspec
import orjson
from bytewax.dataflow import Stream, operator

from boucle.config.settings import CHANNELS, Input, Settings
from boucle.config.times import now_ms
from boucle.sources.message import RawMessage

__all__ = [
    "DATE_END_MS", "REASON_CODES", "DeadLetter", "DecodedBatch", "Decoder", "Feedback", "Invalid", "decode_batches",
    "group_by_site", "internal_error", "json_depth", "json_object", "required_strings", "too_large",
]

REASON_CODES = (
    "invalid_json",
    "not_an_object",
    "missing_field",
    "bad_type",
    "bad_timestamp",
    "unknown_site",
    "unknown_question",
    "out_of_scale",
    "unknown_channel",
    "too_large",
    "too_deep",
    "time_out_of_range",
    "internal_error",
)

#: Exclusive upper bound of every accepted event time: the first day a ClickHouse ``Date`` cannot hold.
DATE_END_MS = 5_662_310_400_000  # 2149-06-07T00:00:00Z

_ACCEPTS_Z = sys.version_info >= (3, 11)


class Feedback(msgspec.Struct, gc=False):
    """A validated response. ``ts_ms`` is ``occurred_at`` in epoch milliseconds (UTC).

    A msgspec struct rather than a dataclass: one is made per event, and a struct is built in C
    (a dataclass's ``__init__`` is Python). Not tracked by the garbage collector: it refers only
    to strings, numbers and plain dicts of them, so it can be part of no cycle.
    """

    event_id: str
    ts_ms: int
    site_id: str
    channel: str
    journey_stage: str
    scores: dict[str, int]
    attributes: dict[str, int]
    comment: str
    language: str
    customer: dict[str, Any]  # id (str), email (str), phone (str), consent_contact (bool): those given
    received_ms: int
    position: str
    late: bool = False
    message: RawMessage | None = None  # what it was decoded from (a duplicate's dead letter forwards it)


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A message the flow rejected: the original :class:`RawMessage` and why (a reason code of
    :data:`REASON_CODES` or a step's own, and a sentence). The flow renders it for its outputs (a JSON
    record for the dead-letter sinks, a ``dead_letters`` row)."""

    message: RawMessage
    reason_code: str
    reason: str


@dataclass(slots=True)
class DecodedBatch:
    accepted: list[Feedback]
    rejected: list[DeadLetter]
    read: int


class Invalid(ValueError):
    """Why a message is rejected: a reason code (see README) and a sentence."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


def json_object(value: bytes) -> dict[str, Any]:
    """The JSON object in ``value``, or :class:`Invalid` (``invalid_json``, ``not_an_object``, ``too_deep``)."""
    try:
        event = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        if str(exc).startswith("depth limit exceeded"):  # orjson stops at 1024 levels
            raise Invalid("too_deep", "JSON nested deeper than 1024 levels") from None
        raise Invalid("invalid_json", f"not valid JSON: {exc}") from None
    except RecursionError:
        raise Invalid("too_deep", "JSON nested too deep to parse") from None
    if type(event) is not dict:
        raise Invalid("not_an_object", f"expected a JSON object, got {type(event).__name__}")
    return event


def required_strings(event: dict[str, Any], *fields: str) -> None:
    """Each field present, non-empty, a string; else :class:`Invalid` (``missing_field``, ``bad_type``)."""
    for field in fields:
        _required_str(event, field)


_STRINGS = re.compile(rb'"(?:[^"\\]|\\.)*"')
_BRACKETS = re.compile(rb"[^\[\]{}]+")


def json_depth(value: bytes, limit: int) -> int:
    """How deep the arrays and objects of ``value`` nest (brackets inside strings do not count);
    the scan stops at ``limit + 1``. Cheap on small messages, linear in the size on large ones.

    >>> json_depth(b'{"a": {"b": [1, "[[["]}}', 10), json_depth(b'[' * 50, 10)
    (3, 11)
    """
    depth = deepest = 0
    for byte in _BRACKETS.sub(b"", _STRINGS.sub(b"", value)):
        if byte == 0x5B or byte == 0x7B:  # [ {
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > limit:
                    break
        else:
            depth -= 1
    return deepest


class _Customer(msgspec.Struct, omit_defaults=True, forbid_unknown_fields=True, gc=False):
    """The customer fields the flow reads, typed (the strict parser refuses other keys; the precise
    path then ignores them: they are never carried)."""

    id: str | int | msgspec.UnsetType = msgspec.UNSET
    email: str | msgspec.UnsetType = msgspec.UNSET
    phone: str | msgspec.UnsetType = msgspec.UNSET
    consent_contact: bool | msgspec.UnsetType = msgspec.UNSET


_CUSTOMER_TEXT = ("email", "phone")
_NonEmpty = Annotated[str, msgspec.Meta(min_length=1)]
_AwareTime = Annotated[datetime, msgspec.Meta(tz=True)]  # RFC 3339 with a time zone, parsed in C


def _wire_type(scores: dict[str, tuple[int, int]], attributes: dict[str, tuple[int, int]]) -> type[msgspec.Struct]:
    """The shape of a well-formed event for this catalogue, checked by msgspec in C.

    Strict types (no bool posing as a rating), required fields, known question names, no unknown
    field, and each rating within the widest scale of its kind; a narrower scale is checked in
    Python after.
    """

    def ratings(scales: dict[str, tuple[int, int]]) -> Any:
        if not scales:
            return dict[str, Annotated[int, msgspec.Meta(le=-1)]]  # no question: any rating is wrong
        low, high = min(lo for lo, _ in scales.values()), max(hi for _, hi in scales.values())
        return dict[Literal[tuple(scales)], Annotated[int, msgspec.Meta(ge=low, le=high)]]

    return msgspec.defstruct(
        "Wire",
        [
            ("event_id", _NonEmpty), ("occurred_at", _AwareTime), ("site_id", _NonEmpty),
            ("scores", ratings(scores), {}), ("attributes", ratings(attributes), {}),
            ("channel", str, ""), ("journey_stage", str, ""), ("comment", str, ""), ("language", str, ""),
            ("customer", _Customer | None, None),
        ],
        gc=False,
        # Unknown fields send an event to the precise path: the strict shape then bounds the depth
        # of everything it parses (no scan needed), and the precise path scans what it takes.
        forbid_unknown_fields=True,
    )


def _narrower(scales: dict[str, tuple[int, int]]) -> list[tuple[str, int, int]]:
    """Questions whose scale is narrower than the widest of their kind (msgspec checks only that one)."""
    if not scales:
        return []
    low, high = min(lo for lo, _ in scales.values()), max(hi for _, hi in scales.values())
    return [(name, lo, hi) for name, (lo, hi) in scales.items() if (lo, hi) != (low, high)]


_WIRE_ERRORS = (msgspec.ValidationError, msgspec.DecodeError)


class Decoder:
    """Turns a :class:`RawMessage` into a :class:`Feedback` or a :class:`DeadLetter`.

    Two paths, one set of rules. Most events are well formed: msgspec parses them straight into
    a typed struct (types, required fields, no bools posing as ratings) and only the checks that
    need the settings run in Python. An event msgspec refuses takes the precise path, which says
    exactly what is wrong, or accepts what the strict wire shape does not (``null`` for an optional
    field).
    """

    def __init__(self, settings: Settings, live: bool = False, now: Any = now_ms) -> None:
        """``live``: the source follows a stream as it happens (Kafka tail), so an event older than
        ``input.max_past`` is refused; a replay takes any past since 1970. ``now``: the clock."""
        bounds: Input = settings.input
        self._max_bytes, self._max_depth = bounds.max_bytes, bounds.max_depth
        self._future_ms = int(bounds.max_future.total_seconds() * 1000)
        self._past_ms = int(bounds.max_past.total_seconds() * 1000) if live else None
        self._now = now
        self._sites = frozenset(site.id for site in settings.sites)
        self._score_scales = {n: (m.min, m.max) for n, m in settings.scores.items()}
        self._attribute_scales = {a.name: (a.min, a.max) for a in settings.attributes}
        self._channels = frozenset(CHANNELS)
        self._wire = _wire_type(self._score_scales, self._attribute_scales)
        self._parse_wire = msgspec.json.Decoder(self._wire).decode
        # (question, low, high, is a score) of every scale msgspec does not check by itself
        self._narrow = [(name, low, high, True) for name, low, high in _narrower(self._score_scales)]
        self._narrow += [(name, low, high, False) for name, low, high in _narrower(self._attribute_scales)]

    def decode(self, message: RawMessage) -> Feedback | DeadLetter:
        batch = self.decode_many([message])
        return batch.accepted[0] if batch.accepted else batch.rejected[0]

    def decode_many(self, messages: list[RawMessage]) -> DecodedBatch:
        accepted: list[Feedback] = []
        rejected: list[DeadLetter] = []
        parse, precise = self._parse_wire, self._precise_wire
        sites, channels, narrow = self._sites, self._channels, self._narrow
        max_bytes, max_depth = self._max_bytes, self._max_depth
        earliest, latest = self._time_range()
        to_builtins, empty = msgspec.to_builtins, {}
        # One loop with the checks inlined: this runs for every event.
        for message in messages:
            value = message.value
            try:
                if len(value) > max_bytes:  # first: no parser sees what is too large
                    rejected.append(too_large(message, max_bytes))
                    continue
                try:
                    w = parse(value)  # its shape nests two levels at most: no depth to check
                except _WIRE_ERRORS:
                    # Everything else is parsed by orjson: bound its depth first (a C-speed count
                    # decides whether the scan is needed: an event has a handful of brackets).
                    if value.count(b"{") + value.count(b"[") > max_depth and json_depth(value, max_depth) > max_depth:
                        raise Invalid("too_deep", f"JSON nested deeper than input.max_depth = {max_depth}") from None
                    w = precise(value)
                # The checks that need the settings: registry, catalogue, scales, channel.
                site_id, scores, attributes, channel = w.site_id, w.scores, w.attributes, w.channel
                if site_id not in sites:
                    raise Invalid("unknown_site", f"site_id {site_id!r} is not in the entity registry")
                if not scores and not attributes:
                    raise Invalid("missing_field", "no rating: scores and attributes are both empty")
                for name, low, high, is_score in narrow:
                    value = (scores if is_score else attributes).get(name)
                    if value is not None and not low <= value <= high:
                        self._bad_ratings("scores", scores, self._score_scales)
                        self._bad_ratings("attributes", attributes, self._attribute_scales)
                if channel and channel not in channels:
                    raise Invalid("unknown_channel", f"channel {channel!r} is not one of {', '.join(CHANNELS)}")
                ts_ms = _epoch_ms(w.occurred_at)
                if not earliest <= ts_ms < latest:
                    raise Invalid("time_out_of_range", self._out_of_range(w.occurred_at, earliest, latest))
                customer = w.customer
                if customer is None:
                    customer = empty
                else:
                    customer = to_builtins(customer)
                    if type(customer.get("id")) is int:
                        customer["id"] = str(customer["id"])
            except Invalid as exc:
                rejected.append(DeadLetter(message, exc.code, exc.reason))
                continue
            except RecursionError:  # a parser's own limit, below ours (a deep stack): same verdict
                rejected.append(DeadLetter(message, "too_deep", "JSON nested too deep to parse"))
                continue
            except Exception as exc:  # noqa: BLE001 - a bug must cost one message, never the flow
                rejected.append(internal_error("decode", message, exc))
                continue
            accepted.append(Feedback(
                w.event_id, ts_ms, site_id, channel, w.journey_stage, scores,
                attributes, w.comment, w.language, customer, message.received_ms,
                f"{message.origin}:{message.partition}:{message.offset}",  # RawMessage.position, inlined
                message=message,
            ))
        return DecodedBatch(accepted, rejected, len(messages))

    def _time_range(self) -> tuple[int, int]:
        """``[earliest, latest)`` event time accepted now, in epoch milliseconds."""
        now = self._now()
        earliest = 0 if self._past_ms is None else max(0, now - self._past_ms)
        return earliest, min(DATE_END_MS, now + self._future_ms)

    def _out_of_range(self, moment: datetime, earliest: int, latest: int) -> str:
        from boucle.config.times import iso_ms

        live = "" if self._past_ms is None else " (input.max_past, live source)"
        return (f"occurred_at {moment.isoformat()} is outside {iso_ms(earliest)}{live} .. {iso_ms(latest)}"
                " (input.max_future; never on or after 2149-06-07)")

    def _precise_wire(self, value: bytes) -> Any:
        """The wire struct of an event the strict parser refused, or :class:`Invalid` saying why."""
        event = json_object(value)
        required_strings(event, "event_id", "occurred_at", "site_id")
        ratings = {}
        for field, scales in (("scores", self._score_scales), ("attributes", self._attribute_scales)):
            given = event.get(field)
            if given is not None and type(given) is not dict:
                raise Invalid("bad_type", f"{field} must be an object of ratings")
            ratings[field] = given or {}
            self._bad_ratings(field, ratings[field], scales)
        channel = event.get("channel") or ""
        if type(channel) is not str:
            raise Invalid("bad_type", f"channel must be a string, got {type(channel).__name__}")
        texts = {field: _optional_str(event, field) for field in ("journey_stage", "comment", "language")}
        return self._wire(
            event["event_id"], _aware_time(event["occurred_at"]), event["site_id"], channel=channel,
            customer=_customer(event.get("customer")), **ratings, **texts,
        )

    @staticmethod
    def _bad_ratings(field: str, ratings: dict[str, Any], scales: dict[str, tuple[int, int]]) -> None:
        for name, value in ratings.items():
            scale = scales.get(name)
            if scale is None:
                raise Invalid("unknown_question", f"{field}.{name} is not in the catalogue")
            if type(value) is not int:
                raise Invalid("bad_type", f"{field}.{name} must be an integer, got {value!r}")
            if not scale[0] <= value <= scale[1]:
                raise Invalid("out_of_scale", f"{field}.{name}={value} is outside its scale {scale[0]}..{scale[1]}")


def _customer(given: Any) -> _Customer | None:
    """The typed customer of an event the strict parser refused (``null`` fields count as absent)."""
    if given is None:
        return None
    if type(given) is not dict:
        raise Invalid("bad_type", f"customer must be an object, got {type(given).__name__}")
    fields: dict[str, Any] = {}
    customer_id = given.get("id")
    if customer_id is not None:
        if type(customer_id) is not str and type(customer_id) is not int:
            raise Invalid("bad_type", f"customer.id must be a string or a 64-bit integer, got {type(customer_id).__name__}")
        fields["id"] = customer_id
    for field in _CUSTOMER_TEXT:
        text = given.get(field)
        if text is not None:
            if type(text) is not str:
                raise Invalid("bad_type", f"customer.{field} must be a string, got {type(text).__name__}")
            fields[field] = text
    consent = given.get("consent_contact")
    if consent is not None:
        if type(consent) is not bool:
            raise Invalid("bad_type", f"customer.consent_contact must be true or false, got {consent!r:.40}")
        fields["consent_contact"] = consent
    return _Customer(**fields)


def _epoch_ms(moment: datetime) -> int:
    try:
        return round(moment.timestamp() * 1000)
    except (OverflowError, ValueError, OSError):  # year 1 with an offset, say
        raise Invalid("time_out_of_range", f"occurred_at {moment.isoformat()} is outside any range") from None


def too_large(message: RawMessage, max_bytes: int) -> DeadLetter:
    """A dead letter that keeps the first ``max_bytes`` of the message (so every dead-letter output
    takes it) and says so."""
    size = len(message.value)
    kept = RawMessage(message.value[:max_bytes], message.origin, message.partition, message.offset, message.key,
                      message.received_ms)
    return DeadLetter(kept, "too_large", f"message of {size:,} bytes is over input.max_bytes = {max_bytes:,}"
                                         f" (the dead letter keeps its first {max_bytes:,} bytes)")


def internal_error(step: str, message: RawMessage, exc: BaseException) -> DeadLetter:
    """The dead letter of a message a step failed on: ``internal_error``, the step and the exception."""
    first_line = (str(exc).splitlines() or [""])[0][:300]
    return DeadLetter(message, "internal_error", f"internal_error: {step}: {type(exc).__name__}: {first_line}")


def _required_str(event: dict, field: str) -> str:
    value = event.get(field)
    if value is None or value == "":
        raise Invalid("missing_field", f"{field} is missing")
    if type(value) is not str:
        raise Invalid("bad_type", f"{field} must be a string, got {type(value).__name__}")
    return value


def _optional_str(event: dict, field: str) -> str:
    value = event.get(field)
    if value is None:
        return ""
    if type(value) is not str:
        raise Invalid("bad_type", f"{field} must be a string, got {type(value).__name__}")
    return value


def _aware_time(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(
            text if _ACCEPTS_Z or not text.endswith("Z") else text[:-1] + "+00:00"
        )
    except ValueError:
        raise Invalid("bad_timestamp", f"occurred_at {text!r} is not an ISO 8601 time") from None
    if moment.tzinfo is None:
        raise Invalid("bad_timestamp", f"occurred_at {text!r} has no time zone (use Z or +HH:MM)")
    return moment


@operator
def decode_batches(step_id: str, up: Stream[RawMessage], decoder: Decoder) -> Stream[DecodedBatch]:
    """One :class:`DecodedBatch` per batch of raw messages bytewax hands over."""
    return op.flat_map_batch("decode", up, lambda messages: [decoder.decode_many(messages)])


def group_by_site(batch: DecodedBatch) -> list[tuple[str, list[Feedback]]]:
    """A batch's events by site, each site's in arrival order (the sites in order of first arrival);
    :class:`~operators.site_shards.SiteShards` groups them by shard into keyed items."""
    groups: dict[str, list[Feedback]] = {}
    for event in batch.accepted:
        group = groups.get(event.site_id)
        if group is None:
            groups[event.site_id] = [event]
        else:
            group.append(event)
    return list(groups.items())
