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
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal

import bytewax.operators as op
import msgspec
import orjson
from bytewax.dataflow import Stream, operator

from boucle.config.settings import CHANNELS, Settings
from boucle.sources.message import RawMessage

__all__ = [
    "DeadLetter", "DecodedBatch", "Decoder", "Feedback", "Invalid", "decode_batches", "group_by_site", "json_object",
    "required_strings",
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
)

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
    customer: dict[str, Any]
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
    """The JSON object in ``value``, or :class:`Invalid` (``invalid_json``, ``not_an_object``)."""
    try:
        event = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        raise Invalid("invalid_json", f"not valid JSON: {exc}") from None
    if type(event) is not dict:
        raise Invalid("not_an_object", f"expected a JSON object, got {type(event).__name__}")
    return event


def required_strings(event: dict[str, Any], *fields: str) -> None:
    """Each field present, non-empty, a string; else :class:`Invalid` (``missing_field``, ``bad_type``)."""
    for field in fields:
        _required_str(event, field)


_NonEmpty = Annotated[str, msgspec.Meta(min_length=1)]
_AwareTime = Annotated[datetime, msgspec.Meta(tz=True)]  # RFC 3339 with a time zone, parsed in C


def _wire_type(scores: dict[str, tuple[int, int]], attributes: dict[str, tuple[int, int]]) -> type[msgspec.Struct]:
    """The shape of a well-formed event for this catalogue, checked by msgspec in C.

    Strict types (no bool posing as a rating), required fields, known question names, and each
    rating within the widest scale of its kind; a narrower scale is checked in Python after.
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
            ("customer", dict[str, Any], {}),
        ],
        gc=False,
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

    def __init__(self, settings: Settings) -> None:
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
        # One loop with the checks inlined: this runs for every event.
        for message in messages:
            try:
                try:
                    w = parse(message.value)
                except _WIRE_ERRORS:
                    w = precise(message.value)
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
            except Invalid as exc:
                rejected.append(DeadLetter(message, exc.code, exc.reason))
                continue
            accepted.append(Feedback(
                w.event_id, round(w.occurred_at.timestamp() * 1000), site_id, channel, w.journey_stage, scores,
                attributes, w.comment, w.language, w.customer, message.received_ms,
                f"{message.origin}:{message.partition}:{message.offset}",  # RawMessage.position, inlined
                message=message,
            ))
        return DecodedBatch(accepted, rejected, len(messages))

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
        customer = event.get("customer") or {}
        if type(customer) is not dict:
            raise Invalid("bad_type", "customer must be an object")
        return self._wire(
            event["event_id"], _aware_time(event["occurred_at"]), event["site_id"], channel=channel, customer=customer,
            **ratings, **texts,
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
    """Key a batch by site, keeping each site's arrival order: one keyed item per site per batch.

    Keyed per-site state downstream then pays bytewax's per-item cost once per site and batch,
    not once per event.
    """
    groups: dict[str, list[Feedback]] = {}
    for event in batch.accepted:
        group = groups.get(event.site_id)
        if group is None:
            groups[event.site_id] = [event]
        else:
            group.append(event)
    return list(groups.items())
