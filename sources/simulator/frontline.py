"""The other side of the loop, simulated: frontline teams working hot alerts, and survey invitations.

**Frontline.** :class:`FrontlineSimulator` reacts to the hot alerts the flow actually emits (it never
peeks at the generator's ground truth): for each one it plans, deterministically from the seed and
the alert id, what the site's team does — nothing at all (untreated), or a call after a realistic
delay (log-normal, median a few hours, slower at some sites) that solves the problem at once (FCR),
escalates it, or needs a second call. Each planned case event is *released* only when the flow's
event-time clock reaches it, as a real frontline tool would publish it; a few arrive out of order,
twice, or for an alert id mistyped by hand (dead-lettered downstream).

**Invitations.** :class:`InvitationSimulator` derives the survey campaign from the responses: every
response on an invited channel (e-mail, SMS, app, web) answered an invitation sent a few hours to
days before it, and that invitation went out with others that got no answer, in the proportion of
the channel's response rate. A response answers the latest invitation of the same customer at the
same site (feedback events carry no invitation id in contract v1).

>>> sim = FrontlineSimulator(seed=42)
>>> alert = {"alert_id": "a-1", "kind": "hot", "site_id": "store-0001", "team": "t1",
...          "event_time": "2026-10-01T10:00:00.000Z", "evidence": {"attributes_at_minimum": ["waiting_time"]}}
>>> plan = sim.plan(alert)
>>> plan == sim.plan(alert), all(e["at"] >= "2026-10-01T10:00" for _, e in plan)
(True, True)
"""

from __future__ import annotations

import hashlib
import heapq
import math
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

import orjson

from boucle.config.times import DAY_MS, HOUR_MS, iso_ms, parse_time
from boucle.sources.message import RawMessage

__all__ = ["FrontlineSimulator", "INVITED_CHANNELS", "InvitationSimulator", "SimInvitation"]

_NORMAL = NormalDist()
ROOT_CAUSES = ("waiting_time", "staff", "product", "price", "billing", "other")
# channel: response rate of its invitations
INVITED_CHANNELS = {"email": 0.24, "sms": 0.31, "app": 0.42, "web": 0.18}


def _uniforms(*parts: Any, n: int = 8) -> list[float]:
    """``n`` (<= 8) uniforms in [0, 1) from a hash of ``parts``: deterministic, no RNG state."""
    digest = hashlib.blake2b("|".join(map(str, parts)).encode(), digest_size=8 * n).digest()
    return [int.from_bytes(digest[8 * i: 8 * i + 8], "big") / 2**64 for i in range(n)]


class FrontlineSimulator:
    """Plans and releases the case events of the hot alerts it is shown.

    ``state`` (from :meth:`snapshot`) resumes the events planned but not yet released; the seed
    and origin are the caller's, never part of the snapshot.
    """

    def __init__(self, seed: int = 42, origin: str = "frontline-sim", state: tuple | None = None) -> None:
        self.seed = seed
        self.origin = origin
        self.queue: list[tuple[int, int, bytes]] = []  # heap of (release_ms, seq, case event JSON)
        self.seq = 0
        if state is not None:
            queue, self.seq = state
            self.queue = [tuple(entry) for entry in queue]  # saved in heap order

    def snapshot(self) -> tuple:
        """``(queue, seq)``: the planned events still to release and the next sequence number."""
        return list(self.queue), self.seq

    def site_profile(self, site_id: str) -> tuple[float, float]:
        """``(share never treated, median hours to the first call)`` of a site's team."""
        u = _uniforms(self.seed, "team", site_id, n=2)
        return 0.03 + 0.14 * u[0] ** 2, 2.0 + 14.0 * u[1] ** 2

    def plan(self, alert: dict[str, Any]) -> list[tuple[int, dict[str, Any]]]:
        """``[(release_ms, case event)]`` for one hot alert (empty: never treated)."""
        aid, site_id = alert["alert_id"], alert["site_id"]
        never, median_h = self.site_profile(site_id)
        u = _uniforms(self.seed, "case", aid)
        if u[0] < never:
            return []
        opened = parse_time(alert["event_time"])
        delay = median_h * HOUR_MS * math.exp(0.8 * _NORMAL.inv_cdf(min(max(u[1], 1e-9), 1 - 1e-9)))
        contact = opened + max(int(delay), 5 * 60_000)
        by = alert.get("team") or f"frontline-{site_id}"
        minimum = (alert.get("evidence") or {}).get("attributes_at_minimum") or []
        cause = minimum[0] if minimum and u[2] < 0.7 else ROOT_CAUSES[int(u[2] * 1000) % len(ROOT_CAUSES)]

        def event(action: str, at: int, first: bool, root: str = "") -> tuple[int, dict[str, Any]]:
            body = {"alert_id": aid, "action": action, "at": iso_ms(at), "by": by, "first_contact": first}
            if root:
                body["root_cause"] = root
            return at, body

        plan = [event("contacted", contact, True)]
        outcome = u[3]
        if outcome < 0.62:  # solved during the first call
            plan.append(event("resolved", contact + int((5 + 35 * u[4]) * 60_000), True, cause))
        elif outcome < 0.77:  # escalated to the site manager, solved days later
            escalated = contact + int((0.5 + 2.5 * u[4]) * HOUR_MS)
            plan.append(event("escalated", escalated, False, cause))
            plan.append(event("resolved", escalated + int((1 + 4 * u[5]) * DAY_MS), False, cause))
        else:  # a second call was needed
            again = contact + int((0.5 + 2.5 * u[4]) * DAY_MS)
            plan.append(event("contacted", again, False))
            plan.append(event("resolved", again + 20 * 60_000, False, cause))
        if u[6] < 0.2:
            plan.append(event("note", contact + 60_000, False))
        extra = u[7]
        if extra < 0.08:  # the first call is logged late: it arrives after what followed it
            release = plan[-1][0] + 2 * HOUR_MS
            plan[0] = (release, plan[0][1])
        elif extra < 0.10:  # delivered twice
            plan.append(plan[0])
        elif extra < 0.104:  # a hand-typed, wrong alert id
            at, body = plan[0]
            plan.append((at, {**body, "alert_id": aid[:-1] + ("0" if aid[-1] != "0" else "1"), "action": "note"}))
        return plan

    def on_alert(self, alert: dict[str, Any]) -> None:
        if alert.get("kind") != "hot" or alert.get("status", "open") != "open":
            return
        for release, body in self.plan(alert):
            heapq.heappush(self.queue, (release, self.seq, orjson.dumps(body)))
            self.seq += 1

    def release(self, clock_ms: int, partition: int = 0) -> list[RawMessage]:
        """The case events due by ``clock_ms`` (event time), in release order."""
        out = []
        while self.queue and self.queue[0][0] <= clock_ms:
            release, seq, value = heapq.heappop(self.queue)
            out.append(RawMessage(value, self.origin, partition, seq, None, release))
        return out


@dataclass(frozen=True, slots=True)
class SimInvitation:
    invitation_id: str
    sent_ms: int
    site_id: str
    channel: str
    customer_id: str
    consent_contact: bool

    def to_json(self) -> dict[str, Any]:
        return {"invitation_id": self.invitation_id, "sent_at": iso_ms(self.sent_ms), "site_id": self.site_id,
                "channel": self.channel,
                "customer": {"id": self.customer_id, "consent_contact": self.consent_contact}}


class InvitationSimulator:
    """Invitations behind a batch of responses, answered and unanswered.

    >>> sim = InvitationSimulator(seed=1)
    >>> invs = sim.for_response("e1", 1790848800000, "store-0001", "email", "store-0001-c00001")
    >>> invs[0].customer_id, invs[0].sent_ms < 1790848800000, len(invs) >= 1
    ('store-0001-c00001', True, True)
    >>> sim.for_response("e2", 1790848800000, "store-0001", "store", "c")
    []
    """

    def __init__(self, seed: int = 42, rates: dict[str, float] | None = None) -> None:
        self.seed = seed
        self.rates = dict(INVITED_CHANNELS if rates is None else rates)

    def for_response(
        self, event_id: str, ts_ms: int, site_id: str, channel: str, customer_id: str, consent: bool = False
    ) -> list[SimInvitation]:
        rate = self.rates.get(channel)
        if not rate or not customer_id:
            return []
        u = _uniforms(self.seed, "inv", event_id)
        sent = ts_ms - int((1 + 70 * u[0] ** 2) * HOUR_MS)
        out = [SimInvitation(f"inv-{event_id}", sent, site_id, channel, customer_id, consent)]
        expected = (1 - rate) / rate
        others = int(expected) + (u[1] < expected - int(expected))
        for i in range(others):
            v = _uniforms(self.seed, "nr", event_id, i, n=3)
            out.append(SimInvitation(
                f"inv-{event_id}-{i}", sent + int((v[0] - 0.5) * 6 * HOUR_MS), site_id, channel,
                f"{site_id}-i{int(v[1] * 1e9):09d}", v[2] < 0.6,
            ))
        return out
