"""Decline: a slow slide of an attribute at a site, tested on daily means against a ramp.

A gradual decline (0.5 point over two weeks) hides from the step detectors: the CUSUM allowance
absorbs each day's small shortfall and every decayed baseline follows the slide. This detector
keeps the last ``window_days`` *daily* aggregates (count, sum, sum of squares) in a ring, and the
older days merged into one decayed history block. Whenever it evaluates (at most once per
``eval_every_hours`` of event time, and when a day closes) it fits, by weighted least squares on
the daily means, the model "flat, then falling linearly from day τ" for every onset τ in the
window (a hinge regression; τ at the oldest day is a plain slope) at least ``min_ramp_days`` ago
(a week by default: a faster fall is a step, which the CUSUM and the expectation catch, and each
shorter ramp would be one more, nearly independent, test for noise to pass) and with
``min_flat_days`` of data before it, and keeps the most negative z of the fall. The pre-onset
level is estimated from the history block and the days before τ, so the site's longer history
anchors the reference (shrinkage towards it is automatic: a short window cannot move a long
history).

Each daily mean's variance is ``sd²/n + day_sd²``: responses of one day are not independent (the
whole site has good and bad days), so a hypermarket's 150 responses a day cannot make a 0.05-point
wobble significant. ``alarm`` needs ``z <= -z_threshold``, a fitted decline so far of at least
``min_decline`` rating points, ``min_n`` responses in the window and ``min_history`` in all.

With ``scale_days`` (> 0), the threshold depends on the ramp's length ``L`` (days since the onset):
``z_threshold`` up to ``scale_days``, then the z whose one-sided tail is ``L / scale_days`` times
that of ``z_threshold`` (3.86 for a 12.5-day ramp with 4 and 7). The hinge z of a ramp of ``L`` days
moves on a time scale of ``L`` days, so a month of hourly evaluations holds about ``1/L``
independent looks at ramps of that length: a tail ∝ ``L`` gives every ramp length the same share
of the false alarms (a per-length Bonferroni) instead of spending most of them on the short ramps,
where noise makes most of its excursions. The onset kept is then the one furthest past its own
threshold (its z is ``z``). ``scale_days = 0`` is one threshold for every length.

Suffix sums make one evaluation O(window) — about 20 µs — whatever the number of onsets. The fit
is lazy: an evaluation point only keeps a copy of the bins (a fraction of a microsecond) and the
fit runs when ``z``, ``decline``, ``alarm``... are read, so a caller that reads them once per
batch pays one fit per batch, with the very numbers an eager fit would have given.

>>> from boucle.detectors.decline import GradualDecline
>>> import random
>>> rng, hour = random.Random(3), 3_600_000
>>> det = GradualDecline()
>>> for i in range(24 * 10):                       # ten quiet days, 2 responses an hour
...     for j in range(2):
...         det.update(rng.gauss(4.0, 0.9), i * hour + j * 60_000)
>>> det.alarm
False
>>> for i in range(24 * 10, 24 * 24):              # then 0.8 point lost over 14 days
...     for j in range(2):
...         det.update(rng.gauss(4.0 - 0.8 * (i - 240) / 336, 0.9), i * hour + j * 60_000)
>>> e = det.evidence()
>>> det.alarm, e["decline_z"] <= -4, 0.4 < e["decline"] < 1.2
(True, True, True)

Rebuilt from its :meth:`~GradualDecline.state` with the same parameters it goes on exactly as before;
with a longer window (a ring of another length) it starts afresh, like a new series:

>>> GradualDecline.from_state(det.state()).evidence() == e
True
>>> GradualDecline.from_state(det.state(), window_days=21).evidence()["decline_n"]
0.0
"""

from __future__ import annotations

import math
from array import array
from functools import lru_cache
from statistics import NormalDist
from typing import Any

from boucle.config.times import DAY_MS, HOUR_MS
from boucle.detectors.protocol import RiverDrift

__all__ = ["GradualDecline"]



class GradualDecline(RiverDrift):
    """Hinge (flat then falling) regression on daily means over a window, plus a history block."""

    scale_days = 0.0  # (states pickled before it had none: one threshold)

    def __init__(
        self,
        window_days: int = 16,
        z_threshold: float = 4.0,
        min_decline: float = 0.3,
        min_ramp_days: float = 7.0,
        min_flat_days: float = 3.0,
        min_n: float = 30.0,
        min_history: float = 60.0,
        history_half_life_days: float = 42.0,
        day_sd: float = 0.08,
        sd_floor: float = 0.5,
        eval_every_hours: float = 1.0,
        utc_offset_hours: int = 0,
        scale_days: float = 0.0,
    ):
        if window_days < 3:
            raise ValueError("window_days must be at least 3")
        self.window_days = int(window_days)
        self.z_threshold = z_threshold
        self.min_decline = min_decline
        self.min_ramp_days = min_ramp_days
        self.min_flat_days = min_flat_days
        self.min_n = min_n
        self.min_history = min_history
        self.history_half_life_days = history_half_life_days
        self.day_sd = day_sd
        self.sd_floor = sd_floor
        self.eval_every_hours = eval_every_hours
        self.utc_offset_hours = utc_offset_hours
        self.scale_days = scale_days
        self.bins = array("d", bytes(8 * 3 * self.window_days))  # per day: n, sum, sum of squares
        self.day: int | None = None  # index of the newest day (local days since the epoch)
        self.first_day: int | None = None
        # Older days merged: decayed count, sum, sum of squares and number of days.
        self.h_n = self.h_s = self.h_ss = self.h_days = 0.0
        self.t_ms: int | None = None
        self.next_eval_ms = 0
        self._fit = (sd_floor, 0.0, 0.0, 0.0, 0.0)  # sd, n_window, z, decline, onset_days
        self._pending: tuple | None = None  # the state at the latest evaluation point, not fitted yet

    # -- learning ------------------------------------------------------------------------------
    def _day_of(self, t_ms: int) -> int:
        return int((t_ms + self.utc_offset_hours * HOUR_MS) // DAY_MS)

    def _retire(self, slot: int) -> None:
        """Merge one ring slot into the history block and empty it."""
        bins, i = self.bins, 3 * slot
        if bins[i] > 0:
            self.h_n += bins[i]
            self.h_s += bins[i + 1]
            self.h_ss += bins[i + 2]
            self.h_days += 1.0
        bins[i] = bins[i + 1] = bins[i + 2] = 0.0

    def _advance(self, day: int) -> None:
        """Move the newest day forward to ``day``: retire the days that leave the window."""
        steps = day - self.day
        w = self.window_days
        f = 2.0 ** (-steps / self.history_half_life_days)
        self.h_n *= f
        self.h_s *= f
        self.h_ss *= f
        self.h_days *= f
        for d in range(self.day + 1, self.day + 1 + min(steps, w)):
            self._retire(d % w)
        self.day = day

    def update(self, x: float, t_ms: int | None = None) -> None:
        """Learn one rating (already free of its seasonal effect if the caller has one).
        Without ``t_ms``, at the newest time seen (river's protocol)."""
        x = float(x)
        if t_ms is None:
            t_ms = self.t_ms or 0
        day = int((t_ms + self.utc_offset_hours * HOUR_MS) // DAY_MS)
        today = self.day
        if today is None:
            self.day = self.first_day = today = day
        elif day > today:
            self._advance(day)
            today = day
            # A day closed: its evaluation is superseded by the one below (a new day is a new hour).
            self._evaluate()
        if day <= today - self.window_days:  # very late: straight into the history
            self.h_n += 1.0
            self.h_s += x
            self.h_ss += x * x
        else:
            bins, i = self.bins, 3 * (day % self.window_days)
            bins[i] += 1.0
            bins[i + 1] += x
            bins[i + 2] += x * x
        if self.t_ms is None or t_ms > self.t_ms:
            self.t_ms = t_ms
        if t_ms >= self.next_eval_ms:
            self._evaluate()
            step = int(self.eval_every_hours * HOUR_MS)
            self.next_eval_ms = t_ms - t_ms % step + step if step > 0 else t_ms

    def update_many(self, xs: list[float], ts: list[int]) -> None:
        """:meth:`update` for each rating in order (the common path with its state in locals)."""
        bins, window, offset = self.bins, self.window_days, self.utc_offset_hours * HOUR_MS
        update = self.update
        for x, t_ms in zip(xs, ts):
            day = int((t_ms + offset) // DAY_MS)
            if day != self.day or t_ms >= self.next_eval_ms or t_ms < (self.t_ms or 0):
                update(x, t_ms)  # a new day, an evaluation point, a late response: the full update
                continue
            x = float(x)
            i = 3 * (day % window)
            bins[i] += 1.0
            bins[i + 1] += x
            bins[i + 2] += x * x
            self.t_ms = t_ms

    # -- the test ------------------------------------------------------------------------------
    def _evaluate(self) -> None:
        """An evaluation point: remember the state; :meth:`_settle` fits it when a result is read."""
        self._pending = (self.bins[:], self.day, self.h_n, self.h_s, self.h_ss, self.h_days)

    def _settle(self) -> tuple[float, float, float, float, float]:
        pending = self._pending
        if pending is not None:
            self._fit = self._hinge_fit(*pending)
            self._pending = None
        return self._fit

    @classmethod
    def _unit_test_params(cls):
        yield {}
        yield {"window_days": 21, "scale_days": 7.0}

    def copy(self) -> "GradualDecline":
        """An independent copy (same state, same future outputs)."""
        new = object.__new__(GradualDecline)
        new.__dict__.update(self.__dict__)
        new.bins = self.bins[:]  # a pending evaluation's copy of the bins is never written: shared
        return new

    def __getstate__(self) -> dict:
        self._settle()
        return self.__dict__

    # -- state as plain data (see detectors/__init__.py) ---------------------------------------
    _FIELDS = ("day", "first_day", "h_n", "h_s", "h_ss", "h_days", "t_ms", "next_eval_ms")

    def state(self) -> dict[str, Any]:
        """What the detector has learnt: the daily ring (``bins``: n, sum, sum of squares per slot),
        the history block, the clock, and the latest fit (``fit``: sd, n_window, z, decline,
        onset_days), no parameter. A pending evaluation is fitted first, as when it is read."""
        d = self.__dict__
        out = {name: d[name] for name in self._FIELDS}
        out["bins"] = self.bins.tolist()
        out["fit"] = self._settle()
        return out

    @classmethod
    def from_state(cls, state: dict[str, Any], **params: Any) -> "GradualDecline":
        """A detector built with ``params`` (the constructor's) that resumes from :meth:`state`.

        The latest fit is kept as it was made: edited thresholds (``z_threshold``, ``min_decline``,
        ``scale_days``) apply to it at once, the other parameters from the next evaluation (within
        ``eval_every_hours`` of event time). A state whose ring has another length than
        ``window_days`` is not used: the detector starts afresh (empty), as a new series would."""
        return cls(**params)._load(state)

    def _load(self, state: dict[str, Any]) -> "GradualDecline":
        bins = state["bins"]
        if len(bins) != len(self.bins):  # another window_days: its slots are other days
            return self
        for name in self._FIELDS:
            setattr(self, name, state[name])
        self.bins = array("d", bins)
        self._fit = tuple(state["fit"])
        return self

    @property
    def sd(self) -> float:
        """Pooled within-day standard deviation at the latest evaluation (floored)."""
        return self._settle()[0]

    @property
    def n_window(self) -> float:
        """Responses in the window at the latest evaluation."""
        return self._settle()[1]

    @property
    def z(self) -> float:
        """Most negative z of the fitted fall (with ``scale_days``: the z of the onset furthest past its
        length's threshold; 0 without enough data)."""
        return self._settle()[2]

    @property
    def decline(self) -> float:
        """Fitted decline so far (rating points) at the onset of that z."""
        return self._settle()[3]

    @property
    def onset_days(self) -> float:
        """Days since the fitted onset."""
        return self._settle()[4]

    def _hinge_fit(self, bins, today: int, h_n: float, h_s: float, h_ss: float, h_days: float
                   ) -> tuple[float, float, float, float, float]:
        """(sd, n_window, z, decline, onset_days) of the hinge regression on one state of the ring."""
        w = self.window_days
        # Pooled within-day variance (days and history), floored.
        n_all, ss_within, dof = h_n, 0.0, 0.0
        if h_n > 1:
            ss_within += h_ss - h_s * h_s / h_n
            dof += h_n - max(h_days, 1.0)
        for k in range(0, 3 * w, 3):
            n = bins[k]
            if n > 1:
                ss_within += bins[k + 2] - bins[k + 1] ** 2 / n
                dof += n - 1
            n_all += n
        var = max(ss_within / dof if dof > 0 else 0.0, self.sd_floor ** 2)
        sd = math.sqrt(var)
        n_window = n_all - h_n
        if n_all < self.min_history or n_window < self.min_n:
            return sd, n_window, 0.0, 0.0, 0.0
        day_var = self.day_sd ** 2
        oldest = max(today - w + 1, self.first_day)
        # Daily means and weights, oldest first (days without responses left out).
        days = []
        for j in range(oldest, today + 1):
            k = 3 * (j % w)
            n = bins[k]
            if n > 0:
                days.append((j, 1.0 / (var / n + day_var), bins[k + 1] / n))
        # Totals over every point (the history block and days before the onset sit at g = 0).
        tw = ty = 0.0
        if h_n > 0:
            wh = 1.0 / (var / h_n + day_var / max(h_days, 1.0))
            tw, ty = wh, wh * h_s / h_n
        for _, wj, y in days:
            tw += wj
            ty += wj * y
        # Suffix sums from the newest day back: Σw, Σw·r, Σw·r², Σw·y, Σw·r·y over days after the onset
        # (r = day - today <= 0). Onset at the end of day j: g = r - r0 with r0 = j - today + 0.5.
        a0 = a1 = a2 = b0 = b1 = 0.0
        best = (0.0, 0.0, 0.0)
        margin = 0.0  # most negative z + threshold(ramp length): which onset is the best evidence
        thresholds = _scale_thresholds(self.z_threshold, self.scale_days) if self.scale_days > 0 else None
        last_onset = today - self.min_ramp_days
        min_flat_days = self.min_flat_days
        sqrt = math.sqrt
        d = len(days) - 1
        for j in range(today, oldest - 2 if h_n > 0 else oldest - 1, -1):
            if j <= last_onset and a0 > 0 and max(j - oldest + 1, 0) + h_days >= min_flat_days:
                r0 = j - today + 0.5
                sg = a1 - r0 * a0
                sgg = a2 - 2 * r0 * a1 + r0 * r0 * a0
                sgy = b1 - r0 * b0
                denominator = sgg - sg * sg / tw
                if denominator > 1e-12:
                    slope = (sgy - sg * ty / tw) / denominator
                    z = slope * sqrt(denominator)
                    if thresholds is None:
                        if z < best[0]:
                            best = (z, slope * r0, -r0)
                    else:
                        m = z + thresholds(-r0)
                        if z < 0 and (m < margin or best[0] == 0.0):
                            margin = m
                            best = (z, slope * r0, -r0)
            if d >= 0 and days[d][0] == j:
                _, wj, y = days[d]
                d -= 1
                r = float(j - today)
                a0 += wj
                a1 += wj * r
                a2 += wj * r * r
                b0 += wj * y
                b1 += wj * r * y
        return (sd, n_window) + best

    # -- verdict -------------------------------------------------------------------------------
    def evidence(self) -> dict[str, float]:
        sd, n_window, z, decline, onset_days = self._settle()
        return {"decline_z": z, "decline": decline, "decline_days": onset_days, "decline_sd": sd,
                "decline_n": n_window}

    def threshold(self, onset_days: float) -> float:
        """The z a ramp of ``onset_days`` days must reach (``z_threshold`` without ``scale_days``)."""
        if self.scale_days <= 0:
            return self.z_threshold
        return _scale_thresholds(self.z_threshold, self.scale_days)(onset_days)

    @property
    def alarm(self) -> bool:
        return self.alarm_of(self._settle())

    def alarm_of(self, fit: tuple[float, float, float, float, float]) -> bool:
        """:attr:`alarm` of a fit (``_settle()``: sd, n_window, z, decline, onset_days)."""
        _, _, z, decline, onset_days = fit
        return z <= -self.threshold(onset_days) and decline >= self.min_decline


_NORMAL = NormalDist()


@lru_cache(maxsize=64)
def _scale_thresholds(z_threshold: float, scale_days: float):
    """``L`` (days) -> threshold: ``z_threshold`` up to ``scale_days``, then the z whose one-sided tail
    is ``L / scale_days`` times larger (see the module docstring)."""
    p0 = _NORMAL.cdf(-z_threshold)

    @lru_cache(maxsize=256)
    def threshold(length_days: float) -> float:
        if length_days <= scale_days or p0 <= 0.0:  # (a z_threshold past ~38 has no float tail)
            return z_threshold
        return -_NORMAL.inv_cdf(min(p0 * length_days / scale_days, 0.5))

    return threshold
