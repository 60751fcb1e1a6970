"""Seasonality: when people answer (hour of day, day of week) and when service is worse.

Hours and weekdays are *local* to the site (a fixed UTC offset per country; daylight saving is
ignored). Volumes peak late morning and 17-19h; Saturday is the busiest day, Sunday the quietest.
Waiting time and checkout speed are rated worse at peak hours and on Saturdays.

>>> HOUR_WEIGHTS.argmax() in (11, 18), round(float(HOUR_WEIGHTS.sum()), 6)
(True, 1.0)
>>> int(DOW_WEIGHTS.argmax()), int(DOW_WEIGHTS.argmin())   # Monday = 0
(5, 6)
>>> local_hour_weekday(np.array([0]), 1)   # 1970-01-01T00:00Z was a Thursday, 01:00 in Paris
(array([1]), array([3]))
"""

from __future__ import annotations

import numpy as np

from boucle.config.times import DAY_MS, HOUR_MS

__all__ = [
    "DAY_MS",
    "DOW_WEIGHTS",
    "HOUR_MS",
    "HOUR_WEIGHTS",
    "PEAK_SENSITIVE",
    "UTC_OFFSET_HOURS",
    "local_hour_weekday",
    "rating_seasonality",
]


_HOURS = np.array(
    [0.15, 0.1, 0.08, 0.08, 0.1, 0.15, 0.35, 1.0,  # 0-7: only web/app/ivr at night
     2.5, 4.0, 6.0, 8.0, 7.6, 5.0, 4.5, 5.0,      # 8-15: late-morning peak
     6.0, 8.0, 8.6, 7.2, 3.5, 1.6, 0.8, 0.4],     # 16-23: 17-19h peak
    dtype=float,
)
HOUR_WEIGHTS = _HOURS / _HOURS.sum()
"""Share of a day's responses in each local hour (sums to 1)."""

_DOW = np.array([0.92, 0.88, 0.95, 1.0, 1.12, 1.55, 0.58], dtype=float)
DOW_WEIGHTS = _DOW / _DOW.mean()
"""Multiplier of a site's daily volume per local weekday, Monday first (mean 1)."""

UTC_OFFSET_HOURS = {"FR": 1, "BE": 1, "NL": 1, "DE": 1, "ES": 1, "IT": 1, "GB": 0, "IE": 0, "PT": 0}

PEAK_SENSITIVE = {"waiting_time": 1.0, "checkout_speed": 0.9}
"""Attributes that suffer at peak times, with their sensitivity."""

_PEAK_PENALTY = np.zeros(24)
_PEAK_PENALTY[[11, 12, 17, 18]] = 0.30
_PEAK_PENALTY[[10, 13, 16, 19]] = 0.12
_SATURDAY_PENALTY = 0.25


def local_hour_weekday(t_ms: np.ndarray, offset_hours: int) -> tuple[np.ndarray, np.ndarray]:
    """Local hour (0-23) and weekday (Monday = 0) of epoch-millisecond times."""
    local = np.asarray(t_ms, dtype=np.int64) + offset_hours * HOUR_MS
    days = local // DAY_MS
    return (local - days * DAY_MS) // HOUR_MS, (days + 3) % 7


def rating_seasonality(hour: np.ndarray, weekday: np.ndarray) -> np.ndarray:
    """Penalty (in rating points, >= 0) of a peak-sensitive attribute at these local times.

    >>> rating_seasonality(np.array([3, 18]), np.array([5, 5])).round(2).tolist()
    [0.25, 0.55]
    """
    return _PEAK_PENALTY[hour] + np.where(weekday == 5, _SATURDAY_PENALTY, 0.0)
