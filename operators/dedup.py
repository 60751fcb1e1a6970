"""Duplicates by ``event_id`` within one site, resolved one way: the first version wins.

A later event with the same ``event_id`` but another position (origin, partition, offset) is a
*duplicate*: it becomes a ``duplicate_event`` dead letter whose reason points at the first, and
nothing downstream sees it (not the windows, not the hot or attribute alerts, not the warehouse's
``feedback``). The same event read again at the same position is an at-least-once re-delivery
(a resumed run reading past its last snapshot, a file read again): it was already counted, so it
is dropped without a dead letter.

Memory is bounded by an event-time horizon: an id is forgotten once the site's watermark is more
than ``horizon_ms`` past its ``occurred_at`` (a duplicate older than that is not recognised).

>>> from boucle.sources.message import RawMessage
>>> def e(eid, offset):
...     m = RawMessage(b"{}", "t", 0, offset)
...     return Feedback(eid, 1_000, "s1", "", "", {"nps": 9}, {}, "", "", {}, 0, m.position, message=m)
>>> seen = SeenEvents(horizon_ms=86_400_000)
>>> kept, dead = seen.filter([e("a", 0), e("b", 1), e("a", 2), e("a", 0)])
>>> [k.event_id for k in kept], [(d.reason_code, d.message.offset) for d in dead]
(['a', 'b'], [('duplicate_event', 2)])
>>> dead[0].reason
"event_id 'a' was first read at t:0:0 (partition 0, offset 0); the first version is kept"
"""

from __future__ import annotations

from boucle.operators.decode import DeadLetter, Feedback
from boucle.sources.message import RawMessage

__all__ = ["DUPLICATE_EVENT", "SeenEvents"]

DUPLICATE_EVENT = "duplicate_event"


class SeenEvents:
    """The ``event_id`` of every event of one site within the horizon: id -> (occurred_at ms, position).

    Plain data, so the snapshot is the dict itself; eviction is amortised (the dict is swept when
    it has doubled since the last sweep), so an event costs one dict lookup and one store.
    """

    __slots__ = ("horizon_ms", "first", "_sweep_at")

    def __init__(self, horizon_ms: int, snapshot: dict[str, tuple[int, str]] | None = None) -> None:
        self.horizon_ms = horizon_ms
        self.first: dict[str, tuple[int, str]] = dict(snapshot or {})
        self._sweep_at = max(1024, 2 * len(self.first))

    def snapshot(self) -> dict[str, tuple[int, str]]:
        return dict(self.first)

    def filter(self, events: list[Feedback]) -> tuple[list[Feedback], list[DeadLetter]]:
        """The events seen for the first time (in order) and the duplicates' dead letters."""
        first = self.first
        kept: list[Feedback] = []
        dead: list[DeadLetter] = []
        for event in events:
            prior = first.get(event.event_id)
            if prior is None:
                first[event.event_id] = (event.ts_ms, event.position)
                kept.append(event)
            elif prior[1] != event.position:
                dead.append(_duplicate(event, prior[1]))
            # else: the same message again (at-least-once re-delivery): already counted
        return kept, dead

    def forget_before(self, watermark_ms: int) -> None:
        """Drop ids older than ``watermark_ms - horizon`` once the dict has doubled since the last sweep."""
        if len(self.first) < self._sweep_at:
            return
        oldest = watermark_ms - self.horizon_ms
        self.first = {eid: seen for eid, seen in self.first.items() if seen[0] >= oldest}
        self._sweep_at = max(1024, 2 * len(self.first))


def _located(position: str) -> tuple[str, int, int]:
    origin, partition, offset = position.rsplit(":", 2)
    return origin, int(partition), int(offset)


def _duplicate(event: Feedback, first_position: str) -> DeadLetter:
    message = event.message
    if message is None:  # a Feedback built without its message (tests, tools): locate it by its position
        origin, partition, offset = _located(event.position)
        message = RawMessage(b"", origin, partition, offset, event.site_id.encode(), event.received_ms)
    origin, partition, offset = _located(first_position)
    return DeadLetter(
        message,
        DUPLICATE_EVENT,
        f"event_id {event.event_id!r} was first read at {first_position} (partition {partition}, offset {offset});"
        " the first version is kept",
    )
