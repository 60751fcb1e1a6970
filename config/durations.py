"""Durations written with their unit (``"90s"``, ``"1h30m"``, ISO 8601 ``"P400D"``), for every settings model.

>>> parse_duration("15m")
datetime.timedelta(seconds=900)
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator

__all__ = ["DURATION_EXAMPLES", "Duration", "PositiveDuration", "parse_duration"]

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(w|d|h|m|s)", re.IGNORECASE)
_DURATION = re.compile(r"^(?:\d+(?:\.\d+)?\s*(?:w|d|h|m|s)\s*)+$", re.IGNORECASE)
_ISO_DURATION = re.compile(
    r"^P(?:(?P<w>\d+(?:\.\d+)?)W)?(?:(?P<d>\d+(?:\.\d+)?)D)?"
    r"(?:T(?:(?P<h>\d+(?:\.\d+)?)H)?(?:(?P<m>\d+(?:\.\d+)?)M)?(?:(?P<s>\d+(?:\.\d+)?)S)?)?$",
    re.IGNORECASE,
)
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
DURATION_EXAMPLES = "'400d', '2h', '30s', '1w', '1h30m' or ISO 8601 'P400D'"


def parse_duration(value: Any) -> timedelta:
    """A duration written with its unit: ``"90s"``, ``"15m"``, ``"1h30m"``, ``"1d"``, ``"2w"``,
    ISO 8601 (``"P400D"``, ``"PT2H"``), or a timedelta. A bare number is refused: ``retention = 400``
    once meant 400 seconds and expired every stored event.

    >>> parse_duration("1d"), parse_duration("1h30m"), parse_duration("P1DT2H")
    (datetime.timedelta(days=1), datetime.timedelta(seconds=5400), datetime.timedelta(days=1, seconds=7200))
    >>> parse_duration(400)
    Traceback (most recent call last):
    ...
    ValueError: a duration needs a unit, e.g. '400d', '2h', '30s', '1w', '1h30m' or ISO 8601 'P400D'; got 400
    """
    if isinstance(value, timedelta):
        return value
    if isinstance(value, str):
        text = value.strip()
        if text and _DURATION.match(text):
            return timedelta(seconds=sum(float(n) * _UNIT_SECONDS[u.lower()] for n, u in _DURATION_PART.findall(text)))
        iso = _ISO_DURATION.match(text)
        if iso and text.upper() not in ("P", "PT") and not text.upper().endswith("T"):
            return timedelta(seconds=sum(float(n) * _UNIT_SECONDS[u] for u, n in iso.groupdict().items() if n))
    if (isinstance(value, (int, float)) and not isinstance(value, bool)) or _is_number(value):
        raise ValueError(f"a duration needs a unit, e.g. {DURATION_EXAMPLES}; got {value!r}")
    raise ValueError(f"expected a duration such as {DURATION_EXAMPLES}, got {value!r}")


def _is_number(value: Any) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return isinstance(value, str)


def _positive(delta: timedelta) -> timedelta:
    if delta <= timedelta(0):
        raise ValueError("must be positive")
    return delta


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]
PositiveDuration = Annotated[timedelta, BeforeValidator(parse_duration), AfterValidator(_positive)]
