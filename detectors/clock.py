"""A series' own clock: calendar time for a busy series, slowed down for a thin one.

The detectors' memories are set in days (half-lives, windows, ramps) tuned on series that answer
tens of times a day. A series answering twice a month would never fill them: its decayed history
would stay at a few responses and it would never be judged. Rather than retune every memory per
series, each series runs its detectors on its own clock ``τ``: while the series answers at least
``busy_per_day`` times a day, ``τ`` moves with the calendar; below that, ``τ`` advances by
``dt × rate / busy_per_day``, so one day of ``τ`` is the time the series takes to receive
``busy_per_day`` responses. Every memory then holds, in responses, what it holds for a busy series:
a site answering 100 times a day is judged over hours-days, one answering twice a month over
months-quarters, and each series is tested on one time scale only (its own), so the false-alarm
rate does not grow with a number of scales tried. In half-life terms: each detector's effective
half-life is ``max(half-life, half-life x busy_per_day / rate)``.

A thin series is also tested fewer times a month: its tests' windows last longer in calendar
time, so a month holds ``factor`` times as many independent looks as a busy series' month. With
``thresholds`` the clock gives the thresholds that keep the false alarms per *calendar* month of a
busy series: a z whose one-sided tail is ``1 / factor`` times larger (:meth:`z`), a CUSUM threshold
lower by ``ln(1 / factor) / 2k`` (:meth:`h`: the in-control run length of a CUSUM grows as
``exp(2kh)``), never below ``z_floor`` and ``h_floor`` times the CUSUM threshold.

That keeps a busy series' false alarms per month, but a busy series' threshold is higher than
independent responses would ask: responses of one day are not independent (the whole site has good
and bad days, which add up over tens of responses a day). A thin series' responses are days apart,
so with ``arl_years`` its CUSUM threshold is at most the one whose in-control run length, for
independent standardised responses (Siegmund's approximation, :func:`cusum_threshold`), is
``arl_years`` of the series' responses: a nominal figure, calibrated on the simulator's null replays,
where the false alarms are far rarer than it says (the standardisation is conservative).

The rate is the series' own: the inverse of its mean gap between responses, averaged over the last
``rate_responses`` responses (a plain mean until then), so it follows the responses, not the
calendar. A burst cannot shorten a busy series' memories (the clock never runs faster than the
calendar); a late response does not move the clock.

>>> from boucle.detectors.clock import SeriesClock
>>> day = 86_400_000
>>> busy, thin = SeriesClock(busy_per_day=16), SeriesClock(busy_per_day=16)
>>> taus = [busy.tick(i * day // 32) for i in range(64)]     # 32 a day: the calendar
>>> taus[-1] == 63 * day // 32, busy.factor
(True, 1.0)
>>> taus = [thin.tick(i * 4 * day) for i in range(20)]      # one response every four days
>>> round(thin.factor, 4), round(taus[-1] / day, 2)         # 64 times slower: 76 days are 1.2 of τ
(0.0156, 1.19)

The clock's state is plain data, without its parameters:

>>> sorted(thin.state())
['gap_ms', 'n', 't_ms', 'tau_ms']
>>> SeriesClock.from_state(thin.state(), busy_per_day=16).tick(80 * day) == thin.tick(80 * day)
True
"""

from __future__ import annotations

import math
from functools import lru_cache
from statistics import NormalDist
from typing import Any

from boucle.config.times import DAY_MS

__all__ = ["SeriesClock", "cusum_threshold"]

_NORMAL = NormalDist()


def _z_of_tail(p: float) -> float:
    return -_NORMAL.inv_cdf(min(p, 0.5))


def cusum_threshold(k: float, run_length: float) -> float:
    """The threshold ``h`` of a one-sided CUSUM (allowance ``k``) of independent standard normal
    steps whose in-control average run length is ``run_length`` steps (Siegmund's approximation
    ``(exp(2kb) - 2kb - 1) / 2k²``, ``b = h + 1.166``), to two significant digits of the run length.

    >>> cusum_threshold(0.5, 930), round(cusum_threshold(0.4, 100_000), 1)
    (4.99, 11.8)
    """
    return _cusum_threshold(k, float(f"{max(run_length, 1.0):.2g}"))


@lru_cache(maxsize=4096)
def _cusum_threshold(k: float, run_length: float) -> float:
    two_k = 2.0 * k
    b = 1.0
    for _ in range(50):  # b = ln(2k²·L + 2kb + 1) / 2k: a contraction, a few steps suffice
        nxt = math.log(two_k * k * run_length + two_k * b + 1.0) / two_k
        if abs(nxt - b) < 1e-9:
            break
        b = nxt
    return round(max(b - 1.166, 0.0), 2)


class SeriesClock:
    """Maps event times to the series' own time ``τ`` (ms), slowed while the series is thin."""

    def __init__(self, busy_per_day: float = 16.0, rate_responses: float = 20.0, thresholds: bool = True,
                 z_floor: float = 2.5, arl_years: float = 10.0, h_floor: float = 0.34):
        if busy_per_day < 0 or rate_responses < 1:
            raise ValueError("busy_per_day must be >= 0 and rate_responses >= 1")
        self.busy_per_day = busy_per_day
        self.rate_responses = rate_responses
        self.thresholds = thresholds
        self.z_floor = z_floor
        self.arl_years = arl_years
        self.h_floor = h_floor
        self.t_ms: int | None = None  # newest event time
        self.tau_ms = 0  # the series' time at t_ms
        self.gap_ms = 0.0  # mean gap between responses (ms)
        self.n = 0  # gaps seen (up to rate_responses: the mean is plain until then)

    @property
    def factor(self) -> float:
        """``dτ / dt`` now: 1 for a busy series, ``rate / busy_per_day`` below (1 before two responses)."""
        gap = self.gap_ms
        if self.n == 0 or gap <= 0.0 or self.busy_per_day <= 0:
            return 1.0
        return min(1.0, DAY_MS / (gap * self.busy_per_day))

    @property
    def rate_per_day(self) -> float | None:
        """The series' responses per day (over its last ``rate_responses`` gaps); None before two."""
        gap = self.gap_ms
        return DAY_MS / gap if self.n and gap > 0.0 else None

    def tick(self, t_ms: int) -> int:
        """Learn one response at ``t_ms``; its time on the series' clock."""
        last = self.t_ms
        if last is None:
            self.t_ms = self.tau_ms = t_ms
            return t_ms
        if t_ms <= last:  # simultaneous or late: no time passed; the gap is 0
            elapsed = 0
        else:
            elapsed = t_ms - last
            self.t_ms = t_ms
        # The gap that ends here is judged at the rate known before it (a silence is not its own
        # evidence of a thin series), but the first one by itself: nothing is known before it.
        first = self.n == 0
        if not first:
            self.tau_ms += int(elapsed * self.factor)
        n = self.n = min(self.n + 1, int(self.rate_responses))
        self.gap_ms += (elapsed - self.gap_ms) / n
        if first:
            self.tau_ms += int(elapsed * self.factor)
        return self.tau_ms - int((last - t_ms) * self.factor) if t_ms < last else self.tau_ms

    def ticks(self, ts: list[int]) -> list[int]:
        """:meth:`tick` of each time in order (the common path, a busy series in order, inlined)."""
        if self.n < self.rate_responses or self.busy_per_day <= 0:
            tick = self.tick
            return [tick(t) for t in ts]
        out = []
        last, tau, gap, n, busy = self.t_ms, self.tau_ms, self.gap_ms, self.n, self.busy_per_day
        for t in ts:
            if t <= last:
                elapsed = 0
                late = last - t
            else:
                elapsed = t - last
                last = t
                late = 0
            if elapsed:
                tau += int(elapsed * min(1.0, DAY_MS / (gap * busy))) if gap > 0.0 else elapsed
            gap += (elapsed - gap) / n
            if late:
                factor = min(1.0, DAY_MS / (gap * busy)) if gap > 0.0 else 1.0
                out.append(tau - int(late * factor))
            else:
                out.append(tau)
        self.t_ms, self.tau_ms, self.gap_ms = last, tau, gap
        return out

    def z(self, z_threshold: float) -> float:
        """The z a test of ``z_threshold`` (for a busy series) asks of this series now."""
        factor = self.factor
        if not self.thresholds or factor >= 1.0 or z_threshold <= self.z_floor:
            return z_threshold
        # rounded: a threshold of the rate, not of every response (and the decline's thresholds are cached)
        return round(max(_z_of_tail(_NORMAL.cdf(-z_threshold) / factor), self.z_floor), 2)

    def h(self, h: float, k: float) -> float:
        """The CUSUM threshold (allowance ``k``) that ``h`` for a busy series becomes for this one now."""
        factor = self.factor
        if not self.thresholds or factor >= 1.0 or k <= 0:
            return h
        out = h + math.log(factor) / (2 * k)
        rate = self.rate_per_day
        if self.arl_years > 0 and rate:
            out = min(out, cusum_threshold(k, self.arl_years * 365.25 * rate))
        return round(max(out, h * self.h_floor), 2)

    def to_days(self, tau_days: float) -> float:
        """A duration in days of ``τ`` as calendar days at the current rate."""
        return tau_days / self.factor

    # -- state as plain data (see detectors/__init__.py) ---------------------------------------
    def state(self) -> dict[str, Any]:
        return {"t_ms": self.t_ms, "tau_ms": self.tau_ms, "gap_ms": self.gap_ms, "n": self.n}

    @classmethod
    def from_state(cls, state: dict[str, Any], **params: Any) -> "SeriesClock":
        return cls(**params)._load(state)

    def _load(self, state: dict[str, Any]) -> "SeriesClock":
        self.t_ms, self.tau_ms, self.gap_ms = state["t_ms"], state["tau_ms"], state["gap_ms"]
        self.n = min(state["n"], int(self.rate_responses))
        return self

    def copy(self) -> "SeriesClock":
        new = object.__new__(SeriesClock)
        new.__dict__.update(self.__dict__)
        return new
