"""Trend: a sustained downward movement of an attribute at a site.

Two complementary statistics on the rating stream:

- a one-sided **CUSUM** (the optimal detector of a step): each response adds its standardised
  shortfall below the reference, less an allowance ``k`` (in standard deviations), and the sum is
  floored at zero. A sum reaching ``h`` is the alarm. Every response adds at most a few units, so
  a handful of bad responses never gets there: the threshold is a sample-size requirement. The
  reference is the long-run decayed level, or the seasonal ``expected`` value when the caller has
  one (:class:`detectors.expectation.SeasonalExpectation`), so a busy Saturday is not a drop;
- a time-decayed **least-squares slope** (rating points per day) with its standard error, which
  counts responses *and* a between-day variance: a slow decline the CUSUM allowance would absorb.
  It alarms when ``slope / se <= -slope_z`` and the decline over the window exceeds
  ``min_decline``, once ``slope_min_days`` of history exist (``slope_z = 0`` turns it off). With
  an ``expected`` value, the slope is fitted to the rating less its seasonal effect.

The reference is learnt: from ``n`` responses it is off by about ``1/√n`` standard deviations, which
a CUSUM adds to every step. ``k_margin`` widens the allowance by that many standard errors (``k +
k_margin · √Σw² / Σw`` of the decayed baseline), which matters for a thin series' short history
and vanishes for a busy one's thousands of responses (an :class:`~detectors.AttributeWatch` gives it
to series in proportion to how much slower than the calendar their clock runs: none to a busy one).

>>> from boucle.detectors.trend import DownwardTrend
>>> import random
>>> rng, hour = random.Random(7), 3_600_000
>>> det = DownwardTrend()
>>> for i in range(24 * 14):
...     det.update(rng.gauss(4.0, 0.9), i * hour)
>>> det.alarm, round(det.evidence()["level"], 1)
(False, 4.0)
>>> for i in range(24 * 14, 24 * 16):
...     det.update(rng.gauss(3.0, 0.9), i * hour)
>>> e = det.evidence()
>>> det.alarm, e["cusum"] >= e["threshold"], 0.5 < e["drop"] < 1.2
(True, True, True)

Resumed from its state under a stricter threshold, the same evidence is not enough any more:

>>> DownwardTrend.from_state(det.state(), h=e["cusum"] + 1, slope_z=0).alarm
False
"""

from __future__ import annotations

import math
from typing import Any

from boucle.config.times import DAY_MS
from boucle.detectors.decayed import DecayedMoments
from boucle.detectors.protocol import RiverDrift

__all__ = ["DownwardTrend"]



class DownwardTrend(RiverDrift):
    """CUSUM below a reference plus a decayed regression slope, for one rating series."""

    def __init__(
        self,
        k: float = 0.4,
        h: float = 15.0,
        half_life_days: float = 21.0,
        slope_half_life_days: float = 7.0,
        slope_z: float = 3.0,
        min_decline: float = 0.3,
        min_history: float = 40.0,
        day_sd: float = 0.08,
        sd_floor: float = 0.5,
        max_step: float = 2.0,
        slope_min_days: float = 7.0,
        k_margin: float = 0.0,
    ):
        self.k = k
        self.h = h
        self.half_life_days = half_life_days
        self.slope_half_life_days = slope_half_life_days
        self.slope_z = slope_z
        self.min_decline = min_decline
        self.min_history = min_history
        self.day_sd = day_sd
        self.sd_floor = sd_floor
        self.max_step = max_step
        self.slope_min_days = slope_min_days
        self.k_margin = k_margin
        self.first_ms: int | None = None
        self.baseline = DecayedMoments(half_life_days * DAY_MS)
        self.cusum = 0.0
        self.run_n = 0  # responses since the CUSUM left zero
        self.run_shortfall = 0.0  # their summed shortfall in rating points
        # Decayed regression sums; times in days relative to the newest update (t_ms).
        self.t_ms: int | None = None
        self.sw = self.st = self.sx = self.stt = self.stx = 0.0

    def update(self, x: float, t_ms: int | None = None, expected: float | None = None) -> None:
        """Learn one rating; ``expected`` (if given) is the seasonal reference to compare with.
        Without ``t_ms``, at the newest time seen (river's protocol)."""
        x = float(x)
        if t_ms is None:
            t_ms = self.t_ms or 0
        base = self.baseline
        if base.w >= self.min_history:
            reference = base.mean if expected is None else float(expected)
            sd = max(math.sqrt(base.var), self.sd_floor)
            k = self.k + self.k_margin * math.sqrt(base.w2) / base.w if self.k_margin else self.k
            step = min((reference - x) / sd, self.max_step) - k
            cusum = self.cusum + step
            if cusum <= 0.0:
                self.cusum, self.run_n, self.run_shortfall = 0.0, 0, 0.0
            else:
                self.cusum = cusum
                self.run_n += 1
                self.run_shortfall += reference - x
        # The slope sees the rating without its seasonal effect (expected - long-run level).
        seasonal = float(expected) - base.mean if expected is not None and base.w > 0 else 0.0
        base.update(x, t_ms)
        self._regress(x - seasonal, t_ms)
        if self.first_ms is None or t_ms < self.first_ms:
            self.first_ms = t_ms

    def _regress(self, x: float, t_ms: int) -> None:
        if self.t_ms is None:
            self.t_ms = t_ms
        sw, st, sx, stt, stx = self.sw, self.st, self.sx, self.stt, self.stx
        t = (t_ms - self.t_ms) / DAY_MS
        if t > 0:  # move the origin to now, then fade
            d = t
            stt += -2 * d * st + d * d * sw
            stx -= d * sx
            st -= d * sw
            f = 2.0 ** (-d / self.slope_half_life_days)
            sw *= f
            st *= f
            sx *= f
            stt *= f
            stx *= f
            self.t_ms = t_ms
            t = 0.0
            w = 1.0  # 2 ** 0
        else:
            w = 2.0 ** (t / self.slope_half_life_days)  # t <= 0: a late response weighs less
        self.sw = sw + w
        self.st = st + w * t
        self.sx = sx + w * x
        self.stt = stt + w * t * t
        self.stx = stx + w * t * x

    @classmethod
    def _unit_test_params(cls):
        yield {}
        yield {"h": 5.0, "slope_z": 0.0}

    def copy(self) -> "DownwardTrend":
        """An independent copy (same state, same future outputs)."""
        new = object.__new__(DownwardTrend)
        new.__dict__.update(self.__dict__)
        new.baseline = self.baseline.copy()
        return new

    # -- state as plain data (see detectors/__init__.py) ---------------------------------------
    _FIELDS = ("first_ms", "cusum", "run_n", "run_shortfall", "t_ms", "sw", "st", "sx", "stt", "stx")

    def state(self) -> dict[str, Any]:
        """What the detector has learnt (CUSUM run, regression sums, the baseline's), no parameter."""
        d = self.__dict__
        out = {name: d[name] for name in self._FIELDS}
        out["baseline"] = self.baseline.state()
        return out

    @classmethod
    def from_state(cls, state: dict[str, Any], **params: Any) -> "DownwardTrend":
        """A detector built with ``params`` (the constructor's) that resumes from :meth:`state`."""
        return cls(**params)._load(state)

    def _load(self, state: dict[str, Any]) -> "DownwardTrend":
        for name in self._FIELDS:
            setattr(self, name, state[name])
        self.baseline._load(state["baseline"])  # keeps the half-life of the current parameters
        return self

    def slope(self) -> tuple[float, float]:
        """Slope in rating points per day and its standard error (0, inf while undetermined)."""
        sw = self.sw
        if sw < 3:
            return 0.0, math.inf
        ctt = self.stt - self.st * self.st / sw
        if ctt <= 1e-9:
            return 0.0, math.inf
        slope = (self.stx - self.st * self.sx / sw) / ctt
        sd = max(math.sqrt(self.baseline.var), self.sd_floor)
        # Responses are not independent within a day: add a day-level term (rate = sw / span days).
        span = self.slope_half_life_days / math.log(2)
        per_day = sw / span
        var = sd * sd / ctt + self.day_sd**2 * per_day / ctt
        return slope, math.sqrt(var)

    def evidence(self, slope: tuple[float, float] | None = None) -> dict[str, float]:
        """The numbers behind the verdict; ``slope``: :meth:`slope`, when the caller has it."""
        slope, se = self.slope() if slope is None else slope
        span = self.slope_half_life_days / math.log(2)
        return {
            "level": self.baseline.mean,
            "n_history": self.baseline.w,
            "cusum": self.cusum,
            "threshold": self.h,
            "n": float(self.run_n),
            "drop": self.run_shortfall / self.run_n if self.run_n else 0.0,
            "slope": slope,
            "slope_se": se,
            "slope_z": slope / se if se < math.inf else 0.0,
            "decline": -slope * span,
        }

    @property
    def step_alarm(self) -> bool:
        return self.cusum >= self.h

    @property
    def slope_alarm(self) -> bool:
        return self.slope_alarm_of(None)

    def slope_alarm_of(self, slope: tuple[float, float] | None) -> bool:
        """:attr:`slope_alarm`; ``slope``: :meth:`slope`, when the caller has it."""
        if self.slope_z <= 0 or self.baseline.w < self.min_history or self.first_ms is None:
            return False
        if (self.t_ms or 0) - self.first_ms < self.slope_min_days * DAY_MS:
            return False
        slope, se = self.slope() if slope is None else slope
        span = self.slope_half_life_days / math.log(2)
        return se < math.inf and slope / se <= -self.slope_z and -slope * span >= self.min_decline

    @property
    def alarm(self) -> bool:
        return self.step_alarm or self.slope_alarm
