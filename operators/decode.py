"""Decode and validate feedback events in batches; whatever fails becomes a dead letter.

The validator is compiled once from the settings (known sites, the scale of every question) and
checks one event in a few microseconds, because per-event Python work bounds the throughput.

>>> from flows.config import settings_from_dict
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
from typing import Any

import bytewax.operators as op
import orjson
from bytewax.dataflow import Stream, operator

from flows.settings import CHANNELS, Settings
from sources.message import RawMessage

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


@dataclass(slots=True)
class Feedback:
    """A validated response. ``ts_ms`` is ``occurred_at`` in epoch milliseconds (UTC)."""

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
    raw: bytes = b""  # the message as received, for stores that extract fields themselves
    late: bool = False


@dataclass(frozen=True, slots=True)
class DeadLetter:
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


class Decoder:
    """Turns a :class:`RawMessage` into a :class:`Feedback` or a :class:`DeadLetter`."""

    def __init__(self, settings: Settings) -> None:
        self._sites = frozenset(site.id for site in settings.sites)
        self._score_scales = {n: (m.min, m.max) for n, m in settings.scores.items()}
        self._attribute_scales = {a.name: (a.min, a.max) for a in settings.attributes}
        self._channels = frozenset(CHANNELS)
        self._valid_scores = _valid_pairs(self._score_scales)
        self._valid_attributes = _valid_pairs(self._attribute_scales)

    def decode(self, message: RawMessage) -> Feedback | DeadLetter:
        try:
            return self._decode(message)
        except Invalid as exc:
            return DeadLetter(message, exc.code, exc.reason)

    def decode_many(self, messages: list[RawMessage]) -> DecodedBatch:
        accepted: list[Feedback] = []
        rejected: list[DeadLetter] = []
        decode = self._decode
        for message in messages:
            try:
                accepted.append(decode(message))
            except Invalid as exc:
                rejected.append(DeadLetter(message, exc.code, exc.reason))
        return DecodedBatch(accepted, rejected, len(messages))

    def _decode(self, message: RawMessage) -> Feedback:
        event = json_object(message.value)
        get = event.get
        event_id, occurred_at, site_id = get("event_id"), get("occurred_at"), get("site_id")
        # One cheap test for the usual case; the precise complaint is worked out only on failure.
        if not (type(event_id) is str and type(occurred_at) is str and type(site_id) is str
                and event_id and occurred_at and site_id):  # fmt: skip
            for field in ("event_id", "occurred_at", "site_id"):
                _required_str(event, field)
        if site_id not in self._sites:
            raise Invalid("unknown_site", f"site_id {site_id!r} is not in the entity registry")
        scores = get("scores")
        attributes = get("attributes")
        # Set-level checks run in C: every (question, value) pair must be a valid one, and no
        # value may be a bool (True == 1 would otherwise pass). Only a failure pays for a precise reason.
        if type(scores) is dict:
            if not scores.items() <= self._valid_scores or bool in set(map(type, scores.values())):
                self._bad_ratings("scores", scores, self._score_scales)
        elif scores is None:
            scores = {}
        else:
            raise Invalid("bad_type", "scores must be an object of ratings")
        if type(attributes) is dict:
            if not attributes.items() <= self._valid_attributes or bool in set(map(type, attributes.values())):
                self._bad_ratings("attributes", attributes, self._attribute_scales)
        elif attributes is None:
            attributes = {}
        else:
            raise Invalid("bad_type", "attributes must be an object of ratings")
        if not scores and not attributes:
            raise Invalid("missing_field", "no rating: scores and attributes are both empty")
        channel = get("channel") or ""
        if channel and channel not in self._channels:
            if type(channel) is not str:
                raise Invalid("bad_type", f"channel must be a string, got {type(channel).__name__}")
            raise Invalid("unknown_channel", f"channel {channel!r} is not one of {', '.join(CHANNELS)}")
        journey_stage, comment, language = get("journey_stage") or "", get("comment") or "", get("language") or ""
        if not (type(journey_stage) is str and type(comment) is str and type(language) is str):
            for field in ("journey_stage", "comment", "language"):
                _optional_str(event, field)
        customer = get("customer") or {}
        if type(customer) is not dict:
            raise Invalid("bad_type", "customer must be an object")
        return Feedback(
            event_id, _epoch_ms(occurred_at), site_id, channel, journey_stage, scores, attributes,
            comment, language, customer, message.received_ms, message.position, message.value,
        )  # fmt: skip

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


def _valid_pairs(scales: dict[str, tuple[int, int]]) -> frozenset[tuple[str, int]]:
    return frozenset((name, value) for name, (low, high) in scales.items() for value in range(low, high + 1))


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


def _epoch_ms(text: str) -> int:
    try:
        moment = datetime.fromisoformat(
            text if _ACCEPTS_Z or not text.endswith("Z") else text[:-1] + "+00:00"
        )
    except ValueError:
        raise Invalid("bad_timestamp", f"occurred_at {text!r} is not an ISO 8601 time") from None
    if moment.tzinfo is None:
        raise Invalid("bad_timestamp", f"occurred_at {text!r} has no time zone (use Z or +HH:MM)")
    return round(moment.timestamp() * 1000)


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
