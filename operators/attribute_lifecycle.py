"""The lifecycle of an attribute alert and of a regional incident: open, updated, resolved.

One rule for both, keyed by what the alert is about (a site's attribute, a region's attribute):

- while its evidence holds, the alert fires (:meth:`~Lifecycle.fire`): the first time it *opens*, with a
  deterministic id, ``alert_id(kind, ..., opening hour)``, so the same evidence replayed gives the
  same id; later it is *updated* (same id) only when its severity grows;
- while it does not, the caller says whether the series looks normal (:meth:`~Lifecycle.calm`):
  once it has looked normal for ``resolve_after`` of event time the alert *resolves* and is
  forgotten; a reading that is not normal, or a new firing, starts that wait over.

>>> HOUR = 3_600_000
>>> alerts = Lifecycle()
>>> alert, status = alerts.fire(("s1", "waiting_time"), "low", 10 * HOUR + 5, ("attribute", "s1", "waiting_time"))
>>> status, alert.opened_ms == 10 * HOUR, alert.id == alert_id("attribute", "s1", "waiting_time", str(10 * HOUR))
('open', True, True)
>>> alerts.fire(("s1", "waiting_time"), "low", 11 * HOUR, ("attribute", "s1", "waiting_time"))[1] is None
True
>>> alerts.fire(("s1", "waiting_time"), "high", 12 * HOUR, ("attribute", "s1", "waiting_time"))[1]
'updated'
>>> [alerts.calm(("s1", "waiting_time"), True, t * HOUR, resolve_after_ms=24 * HOUR) for t in (13, 30, 37)]
[None, None, OpenAlert(id=..., severity='high', opened_ms=36000000, normal_since=46800000, sites=())]
>>> ("s1", "waiting_time") in alerts
False

The open alerts snapshot as plain data: ``(key, id, severity, opened_ms, normal_since, sites)`` each.

>>> _ = alerts.fire("north", "high", 40 * HOUR, ("regional_incident", "north", "cleanliness"))
>>> Lifecycle.from_state(alerts.state()).alerts == alerts.alerts
True
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any

from boucle.config.settings import SEVERITY_RANK
from boucle.config.times import HOUR_MS
from boucle.operators.alerts import alert_id

__all__ = ["Lifecycle", "OpenAlert"]


@dataclass(slots=True)
class OpenAlert:
    """An alert that has opened and not resolved yet."""

    id: str
    severity: str
    opened_ms: int  # the event-time hour it opened in (part of its id)
    normal_since: int | None = None  # event time since which its series has looked normal
    sites: tuple[str, ...] = ()  # a regional incident: the most sites it has had down at once


class Lifecycle:
    """The open alerts of one kind, by key, and the rule that opens, updates and resolves them."""

    def __init__(self) -> None:
        self.alerts: dict[Hashable, OpenAlert] = {}

    def state(self) -> list[tuple[Any, ...]]:
        """Each open alert as ``(key, id, severity, opened_ms, normal_since, sites)``; keys are strings
        or tuples of strings."""
        return [(key, a.id, a.severity, a.opened_ms, a.normal_since, a.sites) for key, a in self.alerts.items()]

    @classmethod
    def from_state(cls, state: list[tuple[Any, ...]]) -> Lifecycle:
        """The lifecycle whose open alerts are ``state`` (:meth:`state`)."""
        new = cls()
        for key, *fields in state:
            alert = OpenAlert(*fields)
            alert.sites = tuple(alert.sites)
            new.alerts[tuple(key) if isinstance(key, list) else key] = alert
        return new

    def get(self, key: Hashable) -> OpenAlert | None:
        return self.alerts.get(key)

    def __contains__(self, key: Hashable) -> bool:
        return key in self.alerts

    def __len__(self) -> int:
        return len(self.alerts)

    def fire(self, key: Hashable, severity: str, t_ms: int, id_parts: tuple[str, ...]
             ) -> tuple[OpenAlert, str | None]:
        """The evidence of ``key`` holds at event time ``t_ms``: the alert and ``"open"`` (new, its id
        from ``id_parts`` and the hour of ``t_ms``), ``"updated"`` (severity grew) or None (nothing to
        say)."""
        current = self.alerts.get(key)
        if current is None:
            opened = t_ms - t_ms % HOUR_MS
            current = self.alerts[key] = OpenAlert(alert_id(*id_parts, str(opened)), severity, opened)
            return current, "open"
        current.normal_since = None
        if SEVERITY_RANK[severity] > SEVERITY_RANK[current.severity]:
            current.severity = severity
            return current, "updated"
        return current, None

    def calm(self, key: Hashable, normal: bool, t_ms: int, resolve_after_ms: int) -> OpenAlert | None:
        """The evidence of ``key`` does not hold at ``t_ms``; ``normal``: its series looks normal.
        The alert, removed, once it has looked normal for ``resolve_after_ms``; else None."""
        current = self.alerts.get(key)
        if current is None:
            return None
        if not normal:
            current.normal_since = None
        elif current.normal_since is None:
            # The first normal reading only starts the wait: resolving takes two readings at least.
            current.normal_since = t_ms
        elif t_ms - current.normal_since >= resolve_after_ms:
            del self.alerts[key]
            return current
        return None
