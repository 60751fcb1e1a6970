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

from boucle.config.times import parse_time
from boucle.operators.decode import DeadLetter, Invalid, json_object, required_strings
from boucle.sources.message import RawMessage

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
        event = json_object(message.value)
        required_strings(event, "invitation_id", "sent_at", "site_id")
        if sites is not None and event["site_id"] not in sites:
            raise Invalid("unknown_site", f"site_id {event['site_id']!r} is not in the entity registry")
        try:
            sent_ms = parse_time(event["sent_at"])
        except ValueError as exc:
            raise Invalid("bad_timestamp", f"sent_at {event['sent_at']!r}: {exc}") from None
        customer = event.get("customer") or {}
        if type(customer) is not dict:
            raise Invalid("bad_type", "customer must be an object")
    except Invalid as exc:
        return DeadLetter(message, exc.code, exc.reason)
    channel = event.get("channel") or ""
    return Invitation(event["invitation_id"], sent_ms, event["site_id"], str(channel),
                      str(customer.get("id") or ""), customer.get("consent_contact") is True)


def invitation_rows(invitations: Iterable, region_of: dict[str, str]) -> list:
    """One ``invitations`` table batch (items: :class:`Invitation` or anything with its fields)."""
    from boucle.sinks.batch import TableBatch

    rows = [(i.invitation_id, i.sent_ms, i.site_id, region_of.get(i.site_id, ""), i.channel, i.customer_id,
             int(i.consent_contact)) for i in invitations]
    return [TableBatch("invitations", INVITATION_COLUMNS, rows)] if rows else []
