"""Time on the ground floor: epoch milliseconds, ISO 8601 in UTC, the lengths of a day and an hour.

Inside Boucle an instant is an aware UTC moment, carried as integer epoch milliseconds; it is
shown to people and published as ISO 8601 with a ``Z``.

>>> iso_ms(1_790_848_800_000)
'2026-10-01T10:00:00.000Z'
>>> parse_time("2026-10-01T12:00:00+02:00") == 1_790_848_800_000
True
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from functools import lru_cache
from zoneinfo import ZoneInfo

__all__ = ["DAY_MS", "HOUR_MS", "MINUTE_MS", "WEEK_MS", "LocalDays", "country_zone", "iso_ms", "local_days", "now_ms", "parse_time"]

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


_QUARTER_HOUR_MS = 15 * MINUTE_MS  # every UTC offset and every change of one falls on a quarter hour


class LocalDays:
    """The business days of one IANA zone, on epoch milliseconds: day numbers count local days
    since 1970-01-01 (local), so a day starts at local midnight and lasts 23, 24 or 25 hours.

    >>> ny = local_days("America/New_York")
    >>> ny.day_of(parse_time("2026-11-03T03:00:00Z")), ny.day_of(parse_time("2026-11-03T06:00:00Z"))
    (20759, 20760)
    >>> iso_ms(ny.start_ms(20760))
    '2026-11-03T05:00:00.000Z'
    >>> (ny.start_ms(20759) - ny.start_ms(20758)) // HOUR_MS  # 1 November 2026: clocks go back
    25
    >>> local_days("").day_of(parse_time("2026-11-03T23:59:00Z"))  # empty: UTC, by arithmetic
    20760
    """

    __slots__ = ("name", "zone", "utc", "_offset", "_start")

    def __init__(self, name: str) -> None:
        self.name = name or "UTC"
        self.utc = self.name == "UTC"
        self.zone = timezone.utc if self.utc else ZoneInfo(self.name)
        # Per instance, not module-wide: a site's lookups stay warm whatever the others ask.
        self._offset = lru_cache(maxsize=8192)(self._offset_at)
        self._start = lru_cache(maxsize=4096)(self._midnight_ms)

    def _offset_at(self, quarter: int) -> int:
        moment = datetime.fromtimestamp(quarter * _QUARTER_HOUR_MS / 1000, self.zone)
        return int(moment.utcoffset().total_seconds() * 1000)

    def _midnight_ms(self, day: int) -> int:
        midnight = datetime.combine(_EPOCH + timedelta(days=day), time(0), tzinfo=self.zone)
        return int(midnight.timestamp() * 1000)

    def day_of(self, ts_ms: int) -> int:
        """The local day ``ts_ms`` falls in."""
        if self.utc:
            return ts_ms // DAY_MS
        return (ts_ms + self._offset(ts_ms // _QUARTER_HOUR_MS)) // DAY_MS

    def start_ms(self, day: int) -> int:
        """Local midnight starting ``day`` (the first instant after it where midnight does not exist)."""
        return day * DAY_MS if self.utc else self._start(day)

    def standard_offset_hours(self) -> float:
        """The zone's offset without daylight saving (the smaller of January's and July's), in hours."""
        return min(m.astimezone(self.zone).utcoffset() for m in _mid_seasons()).total_seconds() / 3600


_EPOCH = date(1970, 1, 1)


def _mid_seasons() -> list[datetime]:
    """Mid-January and mid-July of this year: a zone's winter and summer time."""
    year = datetime.now(timezone.utc).year
    return [datetime(year, month, 15, tzinfo=timezone.utc) for month in (1, 7)]


@lru_cache(maxsize=None)
def local_days(name: str) -> LocalDays:
    """The shared :class:`LocalDays` of zone ``name`` (empty: UTC)."""
    return LocalDays(name)


@lru_cache(maxsize=None)
def country_zone(country: str) -> str:
    """The IANA zone of an ISO 3166 country when all of it keeps one time (CLDR's zones, through
    Babel), else ``""``: such a country's sites need their own ``timezone``.

    >>> country_zone("fr"), country_zone("DE"), country_zone("US"), country_zone("ES"), country_zone("")
    ('Europe/Paris', 'Europe/Berlin', '', '', '')
    """
    from babel.core import get_global  # CLDR data: loaded on the first registry that asks

    zones = get_global("territory_zones").get(country.upper(), [])
    times = {tuple(m.astimezone(ZoneInfo(z)).utcoffset() for m in _mid_seasons()) for z in zones}
    return zones[0] if len(times) == 1 else ""
