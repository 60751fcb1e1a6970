"""The parameters of the attribute-alert detectors, as ``[attribute_alerts.<detector>]`` tables.

Each model mirrors its detector's constructor in ``boucle.detectors`` (same names, defaults and
types; unknown keys refused), so a misspelt key fails at start with its path. ``config`` may not
import the detectors: ``tests/test_config.py`` holds the defaults equal to the constructors'.

>>> ExpectationParameters(block_hours=6).block_hours
6
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = ["ClockParameters", "DeclineParameters", "ExpectationParameters", "PeerParameters", "RiverDetector",
           "TrendParameters"]

_RIVER_SPEC = re.compile(r"^river:[a-z_][a-z0-9_]*(\.[a-z_][a-z0-9_]*)*\.[A-Za-z_][A-Za-z0-9_]*$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TrendParameters(_Strict):
    """Keyword arguments of :class:`detectors.DownwardTrend` (CUSUM and decayed slope), same names
    and defaults: the flow passes all of them, and ``tests/test_config.py`` holds the defaults equal
    to the constructor's (config may not import detectors)."""

    k: float = 0.4  # CUSUM allowance (standard deviations)
    h: float = 15.0  # CUSUM threshold
    half_life_days: float = 21.0
    slope_half_life_days: float = 7.0
    slope_z: float = 3.0  # 0 turns the slope test off
    min_decline: float = 0.3
    min_history: float = 40.0
    day_sd: float = 0.08
    sd_floor: float = 0.5
    max_step: float = 2.0
    slope_min_days: float = 7.0
    k_margin: float = 0.0  # the allowance widens by this many standard errors of the reference


class ExpectationParameters(_Strict):
    """Keyword arguments of :class:`detectors.SeasonalExpectation` but ``utc_offset_hours``, which
    each site takes from its country."""

    half_life_days: float = 28.0
    recent_half_life_hours: float = 24.0
    block_hours: int = Field(3, gt=0)  # local hours per seasonal cell
    shrinkage: float = 20.0
    z_threshold: float = 4.0
    min_n: float = 15.0
    min_history: float = 60.0
    day_sd: float = 0.08
    sd_floor: float = 0.5

    @field_validator("block_hours")
    @classmethod
    def _divides_a_day(cls, value: int) -> int:
        # The detector would refuse it when the flow is built; say so at start, with the key.
        if 24 % value:
            raise ValueError(f"block_hours must divide 24, got {value}")
        return value


class PeerParameters(_Strict):
    """Keyword arguments of :class:`detectors.PeerComparison` (the group's ``min_peers`` is
    :attr:`AttributeAlerts.peer_min_sites`)."""

    half_life_hours: float = 72.0
    z_threshold: float = 3.0
    min_n: float = 20.0
    min_gap: float = 0.3
    sd_floor: float = 0.5


class DeclineParameters(_Strict):
    """Keyword arguments of :class:`detectors.GradualDecline` but ``utc_offset_hours``, which each
    site takes from its country."""

    window_days: int = Field(16, ge=3)
    z_threshold: float = 4.0
    min_decline: float = 0.3
    min_ramp_days: float = 7.0
    min_flat_days: float = 3.0
    min_n: float = 30.0
    min_history: float = 60.0
    history_half_life_days: float = 42.0
    day_sd: float = 0.08
    sd_floor: float = 0.5
    eval_every_hours: float = 1.0
    scale_days: float = 0.0


class RiverDetector(_Strict):
    """One ``[[attribute_alerts.detectors]]`` entry: a river detector on the series of some questions
    (:mod:`detectors.river_adapter`). The class and its ``params`` are resolved when the attribute
    step is built (config may not import river): an unknown class or parameter fails at start with
    this entry's key path.

    >>> RiverDetector(use="river:drift.PageHinkley", params={"mode": "down"}).questions
    ['*']
    """

    use: str  # "river:<module>.<Class>", e.g. "river:drift.ADWIN"
    params: dict[str, Any] = {}  # the river class's keyword arguments
    questions: list[str] = ["*"]  # question names whose series it watches; "*" = every watched series
    replace: bool = False  # true: Boucle's local triggers (trend, expectation) are off on those series
    trigger: Literal["trend", "expectation"] = "trend"  # the trigger its alarm raises
    hold_days: float = Field(7.0, gt=0)  # event time an alarm holds after a drift
    direction: Literal["down", "both"] = "down"  # a drift counts when the level went down, or always
    score_threshold: float = Field(0.5, gt=0)  # anomaly detectors: running mean score that is an event
    score_alpha: float = Field(0.1, gt=0, le=1)  # weight of each score in that running mean

    @field_validator("use")
    @classmethod
    def _spec(cls, value: str) -> str:
        if not _RIVER_SPEC.match(value):
            raise ValueError(f"expected 'river:<module>.<Class>' such as 'river:drift.PageHinkley', got {value!r}")
        return value

    def alarm_params(self) -> dict[str, Any]:
        """The keyword arguments of :class:`detectors.river_adapter.RiverAlarm`."""
        return {"spec": self.use, "params": dict(self.params), "hold_days": self.hold_days,
                "direction": self.direction, "score_threshold": self.score_threshold,
                "score_alpha": self.score_alpha, "trigger": self.trigger}


class ClockParameters(_Strict):
    """Keyword arguments of :class:`detectors.clock.SeriesClock`: below ``busy_per_day`` responses a
    day a series' detectors run on a slower clock, so that every memory and minimum of evidence above
    holds as many responses as for a series of ``busy_per_day`` a day (0 turns it off: the calendar)."""

    busy_per_day: float = Field(16.0, ge=0)
    rate_responses: float = Field(20.0, ge=1)  # responses the rate is averaged over
    thresholds: bool = True  # a thin series' thresholds keep a busy one's false alarms per calendar month
    z_floor: float = 2.5  # ... never below this z
    arl_years: float = Field(10.0, ge=0)  # > 0: a thin series' CUSUM threshold at most the one of this run length
    h_floor: float = Field(0.34, gt=0, le=1)  # ... never below this share of a busy series' threshold
