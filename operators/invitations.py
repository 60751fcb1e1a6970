"""Survey invitations (``boucle.invitations``): decoded, then stored for response rates and non-respondents.

An invitation event::

    {"invitation_id": "…", "sent_at": "2026-10-01T08:00:00Z", "site_id": "store-0001",
     "channel": "email", "customer": {"id": "…", "consent_contact": true}}

Responses are matched in the warehouse (view ``v_invitations``): a response answers the latest
invitation of the same customer at the same site sent before it.

>>> inv = decode_invitation(RawMessage(b'{"invitation_id": "i1", "sent_at": "2026-10-01T08:00:00Z",'
...     b' "site_id": "s1", "channel": "email", "customer": {"id": "c1", "consent_contact": true}}', "t", 0, 0))
>>> inv.invitation_id, inv.sent_ms, inv.customer_id, inv.consent_contact
('i1', 1790841600000, 'c1', True)
>>> decode_invitation(RawMessage(b'{"invitation_id": "i2", "site_id": "s1"}', "t", 0, 1)).reason_code
'missing_field'
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import orjson

from operators.cases import parse_time
from operators.decode import DeadLetter
from sources.message import RawMessage

__all__ = ["INVITATION_COLUMNS", "Invitation", "decode_invitation", "invitation_rows"]

INVITATION_COLUMNS = ("invitation_id", "sent_at", "site_id", "region", "channel", "customer_id", "consent_contact")


@dataclass(frozen=True, slots=True)
class Invitation:
    invitation_id: str
    sent_ms: int
    site_id: str
    channel: str
    customer_id: str
    consent_contact: bool


def decode_invitation(message: RawMessage, sites: frozenset[str] | None = None) -> Invitation | DeadLetter:
    try:
        event = orjson.loads(message.value)
    except orjson.JSONDecodeError as exc:
        return DeadLetter(message, "invalid_json", f"not valid JSON: {exc}")
    if type(event) is not dict:
        return DeadLetter(message, "not_an_object", f"expected a JSON object, got {type(event).__name__}")
    for name in ("invitation_id", "sent_at", "site_id"):
        value = event.get(name)
        if not value:
            return DeadLetter(message, "missing_field", f"{name} is missing")
        if type(value) is not str:
            return DeadLetter(message, "bad_type", f"{name} must be a string")
    if sites is not None and event["site_id"] not in sites:
        return DeadLetter(message, "unknown_site", f"site_id {event['site_id']!r} is not in the entity registry")
    try:
        sent_ms = parse_time(event["sent_at"])
    except ValueError as exc:
        return DeadLetter(message, "bad_timestamp", f"sent_at {event['sent_at']!r}: {exc}")
    customer = event.get("customer") or {}
    if type(customer) is not dict:
        return DeadLetter(message, "bad_type", "customer must be an object")
    channel = event.get("channel") or ""
    return Invitation(event["invitation_id"], sent_ms, event["site_id"], str(channel),
                      str(customer.get("id") or ""), customer.get("consent_contact") is True)


def invitation_rows(invitations: Iterable, region_of: dict[str, str]) -> list:
    """One ``invitations`` table batch (items: :class:`Invitation` or anything with its fields)."""
    from sinks.batch import TableBatch

    rows = [(i.invitation_id, i.sent_ms, i.site_id, region_of.get(i.site_id, ""), i.channel, i.customer_id,
             int(i.consent_contact)) for i in invitations]  # fmt: skip
    return [TableBatch("invitations", INVITATION_COLUMNS, rows)] if rows else []
