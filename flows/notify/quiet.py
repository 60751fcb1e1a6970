"""Quiet hours in the recipient's own time zone: when a held alert may go out.

A window may cross midnight (21:00-07:00). During it, :func:`quiet_until` gives the UTC instant
it ends, i.e. when a held delivery is released; outside it, ``None`` (send now).

>>> from boucle.config.notify import QuietHours
>>> night = QuietHours(start="21:00", end="07:00")
>>> quiet_until(datetime(2026, 12, 3, 22, 30, tzinfo=timezone.utc), "Europe/Paris", night).isoformat()
'2026-12-04T06:00:00+00:00'
>>> quiet_until(datetime(2026, 12, 3, 12, 0, tzinfo=timezone.utc), "Europe/Paris", night) is None
True
>>> quiet_until(datetime(2026, 12, 4, 5, 0, tzinfo=timezone.utc), "Europe/London", night).isoformat()
'2026-12-04T07:00:00+00:00'
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from functools import lru_cache
from zoneinfo import ZoneInfo

from boucle.config.notify import QuietHours

__all__ = ["quiet_until"]


@lru_cache(maxsize=256)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def quiet_until(now: datetime, zone: str, quiet: QuietHours | None) -> datetime | None:
    """The end of the quiet hours ``now`` falls in (UTC), or ``None`` if ``now`` is not quiet."""
    if quiet is None or quiet.start == quiet.end:
        return None
    local = now.astimezone(_zone(zone))
    clock = local.time().replace(tzinfo=None)
    start, end = quiet.start, quiet.end
    if start < end:
        if not start <= clock < end:
            return None
        day = local.date()
    else:  # across midnight
        if end <= clock < start:
            return None
        day = local.date() if clock < end else local.date() + timedelta(days=1)
    return datetime.combine(day, end, tzinfo=_zone(zone)).astimezone(timezone.utc)
