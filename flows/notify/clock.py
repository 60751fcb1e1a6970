"""The notifier's sense of time: aware UTC datetimes, injectable so quiet hours and digests are testable.

>>> clock = ManualClock(datetime(2026, 12, 3, 22, 0, tzinfo=timezone.utc))
>>> clock.advance(hours=9).isoformat()
'2026-12-04T07:00:00+00:00'
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Protocol

__all__ = ["Clock", "ManualClock", "SystemClock"]


class Clock(Protocol):
    def now(self) -> datetime: ...


class SystemClock:
    """The wall clock, in UTC."""

    def now(self) -> datetime:
        return datetime.now(timezone.utc)


class ManualClock:
    """A clock that moves only when told (tests, dry runs)."""

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("ManualClock needs an aware datetime")
        self._now = start.astimezone(timezone.utc)

    def now(self) -> datetime:
        return self._now

    def advance(self, **delta: float) -> datetime:
        self._now += timedelta(**delta)
        return self._now

    def set(self, when: datetime) -> None:
        self._now = when.astimezone(timezone.utc)
