"""Case tracking: what the frontline did about each hot alert, its SLA, and the rows KPIs come from.

Frontline tools publish case events (``boucle.case-events``)::

    {"alert_id": "…", "action": "contacted|resolved|escalated|note", "at": "2026-10-02T09:12:00Z",
     "by": "frontline-store-0001", "first_contact": true, "root_cause": "waiting_time"}

A case opens with its hot alert (``opened`` = the response's event time, ``due`` = opened + SLA).
Its state is a pure function of the *set* of its events (sorted by ``at``), so events may arrive in
any order, twice, or before their alert: the result is the same. An event whose alert is still
unknown waits ``unknown_grace`` of event time (the alert may be on its way), then is dead-lettered
with ``reason_code = "unknown_alert"``; so are the ones still waiting when the input ends.

The clock is event time: ``("tick", ts_ms)`` items (the feedback stream's progress) advance it.
When it passes ``due + sla_grace`` and no action (contacted, resolved, escalated; a note is not an
action) happened at or before ``due``, the case is *untreated* and one ``case_sla`` alert goes to
the site's manager (``Site.manager``), with ``event_time = due``. A contact made after ``due`` counts
as a contact, never as treated within the SLA; an action made in time but *delivered* after the
decision corrects the case row (``untreated`` follows event time), the alert already sent stays.

The hot alert follows its case: when the case is first contacted or escalated the tracker
republishes the alert (same ``alert_id``, ``kind = "hot"``) with ``status = "updated"``, and when it
is resolved with ``status = "resolved"``; ``event_time`` is the case event's time and the evidence
says how far the case went (``case_status``, ``case_at``, ``fcr``). Each state goes out once, in
the order of the case (an escalation after the resolution changes nothing).

History (``history_before_ms``, a replay's start): a case whose deadline (plus grace) passed before
the run started and shows no action in time raises no ``case_sla`` alert (nobody can call back a
customer of the past); while no action at all is known its outcome is *unknown*
(``outcome_unknown = 1``, neither ``sla_decided`` nor ``untreated``); a late action known makes it
untreated, as live.

>>> tracker = CaseTracker({"s1": Site(id="s1", region="r", manager="boss@x")}, Cases(sla="1h"))
>>> out = tracker.on_alert({"alert_id": "a1", "kind": "hot", "site_id": "s1", "region": "r",
...                         "severity": "high", "event_time": "2026-10-01T10:00:00.000Z"})
>>> [kind for kind, _ in out], tracker.cases["a1"].status
(['case'], 'open')
>>> out = tracker.on_tick(parse_time("2026-10-01T11:30:00Z"))
>>> [(kind, item["kind"] if kind == "alert" else "") for kind, item in out]
[('alert', 'case_sla'), ('case', '')]
>>> out[0][1]["owner"], out[0][1]["event_time"], tracker.cases["a1"].untreated
('boss@x', '2026-10-01T11:00:00.000Z', True)
"""

from __future__ import annotations

import heapq
import zlib
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Callable, Iterable

import bytewax.operators as op
import orjson
from bytewax.dataflow import Stream, operator
from bytewax.operators import KeyedStream, StatefulBatchLogic

from boucle.config.locales import texts
from boucle.config.settings import SEVERITY_RANK, Cases, Site
from boucle.config.times import DAY_MS, HOUR_MS, iso_ms, parse_time
from boucle.operators.alerts import alert_id, new_alert
from boucle.operators.decode import (
    DeadLetter,
    Invalid,
    internal_error,
    json_object,
    required_strings,
    too_large,
)
from boucle.operators.guard import FAULTS, check_faults
from boucle.sources.message import RawMessage

__all__ = [
    "ACTIONS",
    "CASE_COLUMNS",
    "Case",
    "CaseEvent",
    "CaseTracker",
    "case_rows",
    "decode_case_event",
    "shard_of",
    "track_cases",
]

CASE_EVENT_MAX_BYTES = 64 * 1024  # larger: too_large (its dead letter keeps this much, so the DLQ takes it)
KEEP_MS = 45 * DAY_MS  # a decided case is forgotten this long after it opened (once there are many)
ACTIONS = ("contacted", "resolved", "escalated", "note")
_TREATMENT = frozenset(("contacted", "resolved", "escalated"))  # a note is not an action
_CONTACT = frozenset(("contacted", "resolved"))
_ACTION_ORDER = {a: i for i, a in enumerate(ACTIONS)}

CASE_COLUMNS = (
    "alert_id", "site_id", "region", "severity", "opened_at", "due_at", "status",
    "first_action_at", "first_contact_at", "resolved_at", "escalated_at",
    "contacted", "resolved", "escalated", "fcr", "sla_decided", "untreated", "sla_alerted",
    "contacts", "notes", "root_cause", "last_by", "events", "version", "outcome_unknown",
)
#: How far a case has gone; its hot alert is republished each time this rank grows.
_CASE_RANK = {"open": 0, "contacted": 1, "escalated": 2, "resolved": 3}


def shard_of(key: str, shards: int) -> str:
    """The state key a hot alert and its case events share.

    >>> shard_of("6f1c2f4e-0000", 8) == shard_of("6f1c2f4e-0000", 8)
    True
    """
    return f"cases-{zlib.crc32(key.encode()) % shards}"


@dataclass(frozen=True, slots=True)
class CaseEvent:
    alert_id: str
    action: str
    at_ms: int
    by: str = ""
    first_contact: bool = False
    root_cause: str = ""
    message: RawMessage | None = field(default=None, compare=False)

    @property
    def key(self) -> tuple:
        """Identity of the event: a redelivered event is applied once."""
        return (self.at_ms, _ACTION_ORDER[self.action], self.by, self.first_contact, self.root_cause)

    def state(self) -> tuple:
        """The event as plain data (its message as a tuple of :class:`RawMessage` fields)."""
        m = self.message
        message = None if m is None else (m.value, m.origin, m.partition, m.offset, m.key, m.received_ms)
        return (self.alert_id, self.action, self.at_ms, self.by, self.first_contact, self.root_cause, message)

    @classmethod
    def from_state(cls, state: tuple) -> CaseEvent:
        *fields, message = state
        return cls(*fields, None if message is None else RawMessage(*message))


def decode_case_event(message: RawMessage) -> CaseEvent | DeadLetter:
    """A :class:`CaseEvent`, or a :class:`DeadLetter` saying why not.

    >>> m = RawMessage(b'{"alert_id": "a1", "action": "called", "at": "2026-10-01T10:00:00Z"}', "t", 0, 0)
    >>> decode_case_event(m).reason
    "action 'called' is not one of contacted, resolved, escalated, note"
    >>> e = decode_case_event(RawMessage(b'{"alert_id": "a1", "action": "note", "at": "2026-10-01T10:00:00Z"}', "t", 0, 1))
    >>> e.action, e.at_ms, e.first_contact
    ('note', 1790848800000, False)
    """
    if len(message.value) > CASE_EVENT_MAX_BYTES:  # a case event is a few hundred bytes
        return too_large(message, CASE_EVENT_MAX_BYTES)
    try:
        return _decode(message)
    except Invalid as exc:
        return DeadLetter(message, exc.code, exc.reason)
    except Exception as exc:  # noqa: BLE001 - a bug costs one dead letter, never the flow
        return internal_error("case_events_decode", message, exc)


def _decode(message: RawMessage) -> CaseEvent:
    event = json_object(message.value)
    required_strings(event, "alert_id", "action", "at")
    action = event["action"]
    if action not in _ACTION_ORDER:
        raise Invalid("unknown_action", f"action {action!r} is not one of {', '.join(ACTIONS)}")
    try:
        at_ms = parse_time(event["at"])
    except ValueError as exc:
        raise Invalid("bad_timestamp", f"at {event['at']!r}: {exc}") from None
    first_contact = event.get("first_contact", False)
    if type(first_contact) is not bool:
        raise Invalid("bad_type", "first_contact must be true or false")
    by, root_cause = event.get("by") or "", event.get("root_cause") or ""
    if type(by) is not str or type(root_cause) is not str:
        raise Invalid("bad_type", "by and root_cause must be strings")
    return CaseEvent(event["alert_id"], action, at_ms, by, first_contact, root_cause, message)


@dataclass(slots=True)
class Case:
    """One hot alert's case; every derived field is recomputed from ``events`` (order-free)."""

    alert_id: str
    site_id: str
    region: str
    severity: str
    opened_ms: int
    due_ms: int
    events: dict[tuple, CaseEvent] = field(default_factory=dict)
    sla_decided: bool = False
    sla_alerted: bool = False
    # What the hot alert's lifecycle republishes: (event_id, channel, scores, attributes, rules).
    hot: tuple = ()
    published: int = 0  # the _CASE_RANK of the hot alert's last published state
    history: bool = False  # its deadline passed before the run started (a replay): outcome unknown
    # derived
    status: str = "open"
    first_action_ms: int = 0
    first_contact_ms: int = 0
    resolved_ms: int = 0
    escalated_ms: int = 0
    fcr: bool = False
    contacts: int = 0
    notes: int = 0
    root_cause: str = ""
    last_by: str = ""
    _saved: tuple | None = field(default=None, repr=False, compare=False)  # (version, state())

    def state(self) -> tuple:
        """The case as plain data: what it was opened with, its SLA decision and its events.

        Kept until the case changes (its :attr:`version`), so a snapshot of a shard costs little
        for the cases that did not move since the last one.
        """
        version = self.version
        saved = self._saved
        if saved is None or saved[0] != version:
            state = (self.site_id, self.region, self.severity, self.opened_ms, self.due_ms, self.sla_decided,
                     self.sla_alerted, tuple(e.state() for e in self.events.values()), self.hot, self.published,
                     self.history)
            saved = self._saved = (version, state)
        return saved[1]

    @classmethod
    def from_state(cls, alert_id: str, state: tuple) -> Case:
        site_id, region, severity, opened_ms, due_ms, sla_decided, sla_alerted, events, *later = state
        case = cls(alert_id, site_id, region, severity, opened_ms, due_ms, sla_decided=sla_decided,
                   sla_alerted=sla_alerted)
        if later:  # a snapshot from before the lifecycle and history fields has none
            hot, case.published, case.history = later
            case.hot = tuple(hot)
        for event in map(CaseEvent.from_state, events):
            case.events[event.key] = event
        if case.events:
            case._derive()
        return case

    def add(self, event: CaseEvent) -> bool:
        """Apply ``event``; False when it was already applied."""
        if event.key in self.events:
            return False
        self.events[event.key] = event
        self._derive()
        return True

    def _derive(self) -> None:
        ordered = [self.events[k] for k in sorted(self.events)]
        first = lambda actions: next((e.at_ms for e in ordered if e.action in actions), 0)  # noqa: E731
        self.first_action_ms = first(_TREATMENT)
        self.first_contact_ms = first(_CONTACT)
        self.resolved_ms = first(("resolved",))
        self.escalated_ms = first(("escalated",))
        self.fcr = any(e.action == "resolved" and e.first_contact for e in ordered)
        self.contacts = sum(1 for e in ordered if e.action == "contacted") or (1 if self.first_contact_ms else 0)
        self.notes = sum(1 for e in ordered if e.action == "note")
        self.root_cause = next((e.root_cause for e in reversed(ordered) if e.root_cause), "")
        self.last_by = next((e.by for e in reversed(ordered) if e.by), "")
        self.status = ("resolved" if self.resolved_ms else "escalated" if self.escalated_ms
                       else "contacted" if self.first_contact_ms else "open")

    @property
    def treated_in_time(self) -> bool:
        return bool(self.first_action_ms) and self.first_action_ms <= self.due_ms

    @property
    def untreated(self) -> bool:
        return self.sla_decided and not self.treated_in_time and not self.outcome_unknown

    @property
    def outcome_unknown(self) -> bool:
        """Its deadline passed before the run started and no action at all is known: history, not a verdict
        (an action known, even late, tells the outcome)."""
        return self.history and not self.first_action_ms

    @property
    def version(self) -> int:
        return (len(self.events) << 2) | (int(self.sla_decided) << 1) | int(self.sla_alerted)

    def row(self) -> tuple:
        return (
            self.alert_id, self.site_id, self.region, self.severity, self.opened_ms, self.due_ms, self.status,
            self.first_action_ms, self.first_contact_ms, self.resolved_ms, self.escalated_ms,
            int(bool(self.first_contact_ms)), int(bool(self.resolved_ms)), int(bool(self.escalated_ms)),
            int(self.fcr), int(self.sla_decided and not self.outcome_unknown), int(self.untreated),
            int(self.sla_alerted), self.contacts, self.notes, self.root_cause, self.last_by, len(self.events),
            self.version, int(self.outcome_unknown),
        )


Out = tuple[str, Any]  # ("case", row) | ("alert", dict) | ("dead", DeadLetter)


def _ms(delta: timedelta) -> int:
    return int(delta.total_seconds() * 1000)


class CaseTracker:
    """The cases of one shard: hot alerts open them, case events update them, ticks run the SLA.

    ``sites`` is the entity registry (who gets a ``case_sla`` alert); ``cases`` the settings
    section (SLA, its grace, how long an event waits for its alert); ``state`` a
    :meth:`snapshot` to resume from. The snapshot holds the state only, as plain data, never the
    configuration: a tracker resumed under an edited config applies the current registry, grace
    periods and SLA (the SLA to the cases opened from then on; an open case keeps the deadline it
    was opened with, which its rows already carry).
    """

    def __init__(self, sites: dict[str, Site], cases: Cases, state: tuple | None = None, *,
                 history_before_ms: int = 0, follow_cases: bool = True) -> None:
        self.sites = sites
        # A replay: a deadline that passed before this time is history (outcome unknown, no case_sla alert).
        self.history_before_ms = history_before_ms
        self.follow_cases = follow_cases  # republish the hot alert as its case moves (updated, resolved)
        self.sla_ms, self.sla_grace_ms = _ms(cases.sla), _ms(cases.sla_grace)
        self.unknown_grace_ms, self.keep_ms = _ms(cases.unknown_grace), KEEP_MS
        self.cases: dict[str, Case] = {}
        self.pending: dict[str, list[CaseEvent]] = {}  # events whose alert is not known (yet)
        self.due: list[tuple[int, str]] = []  # heap of (due_ms, alert_id) not yet decided
        self.clock = 0
        if state is not None:
            clock, cases_state, pending, due = state
            self.clock = clock
            self.cases = {aid: Case.from_state(aid, st) for aid, st in cases_state.items()}
            self.pending = {aid: [CaseEvent.from_state(e) for e in events] for aid, events in pending.items()}
            self.due = [tuple(entry) for entry in due]  # already a heap: saved in heap order

    def snapshot(self) -> tuple:
        """``(clock, {alert_id: case}, {alert_id: [pending event]}, due heap)`` as tuples, lists
        and dicts of numbers, strings and bytes."""
        return (
            self.clock,
            {aid: case.state() for aid, case in self.cases.items()},
            {aid: [e.state() for e in events] for aid, events in self.pending.items()},
            list(self.due),
        )

    # -- inputs ---------------------------------------------------------------------------------
    def on_alert(self, alert: dict[str, Any]) -> list[Out]:
        if alert.get("kind") != "hot" or alert.get("status", "open") != "open":
            return []
        aid = alert["alert_id"]
        if aid in self.cases:
            return []  # a replayed alert
        opened = parse_time(alert["event_time"])
        case = Case(aid, alert["site_id"], alert.get("region", ""), alert.get("severity", ""), opened,
                    opened + self.sla_ms, hot=_hot_facts(alert))
        self.cases[aid] = case
        for event in self.pending.pop(aid, ()):
            case.add(event)
        heapq.heappush(self.due, (case.due_ms, aid))
        out: list[Out] = [("case", case.row()), *self._follow(case)]
        if self.clock:
            out += self._expire()
        return out

    def on_event(self, event: CaseEvent) -> list[Out]:
        case = self.cases.get(event.alert_id)
        if case is None:
            self.pending.setdefault(event.alert_id, []).append(event)
            return []
        return [("case", case.row()), *self._follow(case)] if case.add(event) else []

    def on_tick(self, ts_ms: int) -> list[Out]:
        if ts_ms <= self.clock:
            return []
        self.clock = ts_ms
        return self._expire()

    def on_eof(self) -> list[Out]:
        out = [("dead", _unknown(e, "no hot alert with this id by the end of the input"))
               for events in self.pending.values() for e in events]
        self.pending.clear()
        return out

    # -- time -----------------------------------------------------------------------------------
    def _expire(self) -> list[Out]:
        out: list[Out] = []
        clock = self.clock
        while self.due and self.due[0][0] + self.sla_grace_ms < clock:
            _, aid = heapq.heappop(self.due)
            case = self.cases.get(aid)
            if case is None or case.sla_decided:
                continue
            case.sla_decided = True
            if not case.treated_in_time:
                if case.due_ms + self.sla_grace_ms < self.history_before_ms:
                    case.history = True  # nobody can call back a customer of the past: not an alert
                else:
                    case.sla_alerted = True
                    out.append(("alert", self._sla_alert(case)))
            out.append(("case", case.row()))
        waited = [aid for aid, events in self.pending.items()
                  if min(e.at_ms for e in events) + self.unknown_grace_ms < clock]
        for aid in waited:
            for e in self.pending.pop(aid):
                out.append(("dead", _unknown(e, f"no hot alert with this id within {self.unknown_grace_ms // 60000} min"
                                                " of event time after the case event")))
        if len(self.cases) > 4096:
            old = [a for a, c in self.cases.items() if c.sla_decided and c.opened_ms + self.keep_ms < clock]
            for aid in old:
                del self.cases[aid]
        return out

    def _sla_alert(self, case: Case) -> dict[str, Any]:
        site = self.sites.get(case.site_id) or Site(id=case.site_id, region=case.region)
        hours = (case.due_ms - case.opened_ms) / HOUR_MS  # the SLA the case was opened with
        return new_alert(
            id=alert_id("case_sla", case.alert_id),
            kind="case_sla",
            severity="critical" if case.severity == "critical" else "high",
            site_id=case.site_id,
            region=case.region or site.region,
            triggers=["sla"],
            evidence={"hot_alert_id": case.alert_id, "opened_at": iso_ms(case.opened_ms),
                      "due_at": iso_ms(case.due_ms), "sla_hours": hours, "hot_severity": case.severity},
            message=texts("alerts", site.language)["case"]["sla"].format(
                hours=hours, site=site.name or site.id, short=case.alert_id[:8]),
            event_ms=case.due_ms,
            owner=site.manager,
            team=site.team,
        )


    # -- the hot alert follows its case ------------------------------------------------------------
    def _follow(self, case: Case) -> list[Out]:
        """The hot alert republished (same id) when its case went further: contacted or escalated →
        ``updated``, resolved → ``resolved``; at most once per step (events may come in any order)."""
        rank = _CASE_RANK[case.status]
        if not self.follow_cases or rank <= case.published:
            return []
        case.published = rank
        return [("alert", self._hot_state(case))]

    def _hot_state(self, case: Case) -> dict[str, Any]:
        site = self.sites.get(case.site_id) or Site(id=case.site_id, region=case.region)
        event_id, channel, scores, attributes, rules = case.hot or ("", "", {}, {}, [])
        at_ms = {"resolved": case.resolved_ms, "escalated": case.escalated_ms}.get(case.status, case.first_contact_ms)
        words = texts("alerts", site.language)["case"]
        evidence = {"rules": list(rules), "scores": dict(scores), "case_status": case.status,
                    "case_at": iso_ms(at_ms), "fcr": case.fcr}
        if case.root_cause:
            evidence["root_cause"] = case.root_cause
        return new_alert(
            id=case.alert_id,
            kind="hot",
            status="resolved" if case.status == "resolved" else "updated",
            severity=case.severity if case.severity in SEVERITY_RANK else "medium",
            site_id=case.site_id,
            region=case.region or site.region,
            triggers=["rule"],
            evidence=evidence,
            message=words["line"].format(site=site.name or site.id, short=case.alert_id[:8],
                                         status=words[case.status]),
            event_ms=at_ms or case.opened_ms,
            owner=site.owner,
            team=site.team,
            # The response as the case knows it (no comment, no contact: those went out with the open alert).
            response={"event_id": event_id, "channel": channel, "scores": dict(scores),
                      "attributes": dict(attributes)},
        )


def _hot_facts(alert: dict[str, Any]) -> tuple:
    """What of a hot alert its later states carry: ``(event_id, channel, scores, attributes, rules)``."""
    response = alert.get("response") or {}
    evidence = alert.get("evidence") or {}
    return (str(response.get("event_id") or ""), str(response.get("channel") or ""),
            dict(response.get("scores") or {}), dict(response.get("attributes") or {}),
            list(evidence.get("rules") or []))


def _unknown(event: CaseEvent, why: str) -> DeadLetter:
    if event.message is not None:
        message = event.message
    else:  # an event made in code: its identity (the dead letter's key) is its content
        value = orjson.dumps({"alert_id": event.alert_id, "action": event.action, "at": iso_ms(event.at_ms),
                              "by": event.by, "first_contact": event.first_contact, "root_cause": event.root_cause})
        message = RawMessage(value, "case-events", 0, zlib.crc32(value))
    return DeadLetter(message, "unknown_alert", f"alert_id {event.alert_id!r}: {why}")


def _item_message(kind: str, item: Any) -> RawMessage:
    """What the dead letter of a tracker input points at: the case event's message, or the item
    as JSON (an alert, a tick) keyed by its content."""
    if kind == "event" and getattr(item, "message", None) is not None:
        return item.message
    value = orjson.dumps(item if kind != "event" else item.state()[:6], option=orjson.OPT_NON_STR_KEYS,
                         default=str)
    return RawMessage(value, f"internal:cases:{kind}", 0, zlib.crc32(value))


def case_rows(items: Iterable[tuple]) -> list:
    """The ``cases`` table batch for a list of case rows (imported lazily: sinks know no domain)."""
    from boucle.sinks.batch import TableBatch

    rows = list(items)
    return [TableBatch("cases", CASE_COLUMNS, rows)] if rows else []


class _TrackerLogic(StatefulBatchLogic):
    def __init__(self, make: Callable[[tuple | None], CaseTracker], snapshot: tuple | None) -> None:
        self.tracker = make(snapshot)

    def on_batch(self, values: list[tuple[str, Any]]):
        out: list[Out] = []
        tracker = self.tracker
        for kind, item in values:
            try:  # free unless it raises (CPython 3.11+); the tracker applies an item at most once
                if FAULTS:
                    check_faults("cases", ((kind, item),))
                if kind == "tick":
                    out += tracker.on_tick(item)
                elif kind == "alert":
                    out += tracker.on_alert(item)
                else:  # "event": a CaseEvent
                    out += tracker.on_event(item)
            except Exception as exc:  # noqa: BLE001 - one dead letter, never a crash loop
                out.append(("dead", internal_error("cases", _item_message(kind, item), exc)))
        return out, StatefulBatchLogic.RETAIN

    def on_eof(self):
        return self.tracker.on_eof(), StatefulBatchLogic.RETAIN

    def snapshot(self) -> tuple:
        return self.tracker.snapshot()


@operator
def track_cases(
    step_id: str, up: KeyedStream[tuple[str, Any]], make_tracker: Callable[[tuple | None], CaseTracker]
) -> Stream[tuple[str, Any]]:
    """``(shard, ("tick"|"alert"|"event", item))`` in; ``("case", row)``, ``("alert", dict)`` and
    ``("dead", DeadLetter)`` out. ``make_tracker(state)`` builds a :class:`CaseTracker` from the
    current configuration, empty (``None``) or resumed from its snapshot."""
    tracked = op.stateful_batch("tracker", up, lambda snap: _TrackerLogic(make_tracker, snap))
    return op.map("unkey", tracked, lambda kv: kv[1])

