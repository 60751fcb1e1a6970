"""Time on the ground floor: epoch milliseconds, ISO 8601 in UTC, the lengths of a day and an hour.

Inside Boucle an instant is an aware UTC moment, carried as integer epoch milliseconds; it is
shown to people and published as ISO 8601 with a ``Z``.

>>> iso_ms(1_790_848_800_000)
'2026-10-01T10:00:00.000Z'
>>> parse_time("2026-10-01T12:00:00+02:00") == 1_790_848_800_000
True
"""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from functools import lru_cache

__all__ = ["DAY_MS", "HOUR_MS", "MINUTE_MS", "WEEK_MS", "iso_ms", "now_ms", "parse_time"]

MINUTE_MS = 60_000
HOUR_MS = 60 * MINUTE_MS
DAY_MS = 24 * HOUR_MS
WEEK_MS = 7 * DAY_MS

_TWO_DIGITS = [f"{i:02d}" for i in range(60)]
_THREE_DIGITS = [f"{i:03d}" for i in range(1000)]


def iso_ms(epoch_ms: int) -> str:
    """Epoch milliseconds as ISO 8601 UTC with milliseconds and a ``Z``.

    Called once per alert and per simulated event, so the calendar part is cached per minute.

    >>> iso_ms(1_790_000_000_123)
    '2026-09-21T14:13:20.123Z'
    """
    minute, in_minute = divmod(epoch_ms, MINUTE_MS)
    seconds, millis = divmod(in_minute, 1000)
    return _iso_minute(minute) + _TWO_DIGITS[seconds] + "." + _THREE_DIGITS[millis] + "Z"


@lru_cache(maxsize=4096)
def _iso_minute(minute: int) -> str:
    day, in_day = divmod(minute, 1440)
    return f"{(date(1970, 1, 1) + timedelta(days=day)).isoformat()}T{in_day // 60:02d}:{in_day % 60:02d}:"


def parse_time(text: str) -> int:
    """An ISO 8601 time with a zone in epoch milliseconds; a time without a zone is refused.

    >>> parse_time("2026-10-01T10:00:00Z"), parse_time("2026-10-01T12:00:00+02:00")
    (1790848800000, 1790848800000)
    >>> parse_time("2026-10-01T10:00:00")
    Traceback (most recent call last):
    ...
    ValueError: '2026-10-01T10:00:00' has no time zone (use Z or +HH:MM)
    """
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise ValueError(f"{text!r} has no time zone (use Z or +HH:MM)")
    return round(moment.timestamp() * 1000)


def now_ms() -> int:
    """The wall clock, in epoch milliseconds (UTC)."""
    return int(datetime.now(timezone.utc).timestamp() * 1000)
