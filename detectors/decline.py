"""Decline: a slow slide of an attribute at a site, tested on daily means against a ramp.

A gradual decline (0.5 point over two weeks) hides from the step detectors: the CUSUM allowance
absorbs each day's small shortfall and every decayed baseline follows the slide. This detector
keeps the last ``window_days`` *daily* aggregates (count, sum, sum of squares) in a ring, and the
older days merged into one decayed history block. Whenever it evaluates (at most once per
``eval_every_hours`` of event time, and when a day closes) it fits, by weighted least squares on
the daily means, the model "flat, then falling linearly from day τ" for every onset τ in the
window (a hinge regression; τ at the oldest day is a plain slope) at least ``min_ramp_days`` ago
and with ``min_flat_days`` of data before it, and keeps the most negative z of the fall. The pre-onset level is estimated from the history block and the days before τ, so
the site's longer history anchors the reference (shrinkage towards it is automatic: a short
window cannot move a long history).

Each daily mean's variance is ``sd²/n + day_sd²``: responses of one day are not independent (the
whole site has good and bad days), so a hypermarket's 150 responses a day cannot make a 0.05-point
wobble significant. ``alarm`` needs ``z <= -z_threshold``, a fitted decline so far of at least
``min_decline`` rating points, ``min_n`` responses in the window and ``min_history`` in all.

Suffix sums make one evaluation O(window) — about 20 µs — whatever the number of onsets.

>>> from detectors.decline import GradualDecline
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
"""

from __future__ import annotations

import math
from array import array

__all__ = ["GradualDecline"]

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS


class GradualDecline:
    """Hinge (flat then falling) regression on daily means over a window, plus a history block."""

    def __init__(
        self,
        window_days: int = 16,
        z_threshold: float = 4.0,
        min_decline: float = 0.3,
        min_ramp_days: float = 4.0,
        min_flat_days: float = 3.0,
        min_n: float = 30.0,
        min_history: float = 60.0,
        history_half_life_days: float = 42.0,
        day_sd: float = 0.08,
        sd_floor: float = 0.5,
        eval_every_hours: float = 1.0,
        utc_offset_hours: int = 0,
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
        self.bins = array("d", bytes(8 * 3 * self.window_days))  # per day: n, sum, sum of squares
        self.day: int | None = None  # index of the newest day (local days since the epoch)
        self.first_day: int | None = None
        # Older days merged: decayed count, sum, sum of squares and number of days.
        self.h_n = self.h_s = self.h_ss = self.h_days = 0.0
        self.t_ms: int | None = None
        self.next_eval_ms = 0
        self.z = 0.0
        self.decline = 0.0
        self.onset_days = 0.0  # days since the fitted onset
        self.n_window = 0.0
        self.sd = sd_floor

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

    def update(self, x: float, t_ms: int) -> None:
        """Learn one rating (already free of its seasonal effect if the caller has one)."""
        x = float(x)
        day = self._day_of(t_ms)
        if self.day is None:
            self.day = self.first_day = day
        elif day > self.day:
            self._advance(day)
            self._evaluate()  # a day closed
        if day <= self.day - self.window_days:  # very late: straight into the history
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

    # -- the test ------------------------------------------------------------------------------
    def _evaluate(self) -> None:
        bins, w, today = self.bins, self.window_days, self.day
        # Pooled within-day variance (days and history), floored.
        n_all, ss_within, dof = self.h_n, 0.0, 0.0
        if self.h_n > 1:
            ss_within += self.h_ss - self.h_s * self.h_s / self.h_n
            dof += self.h_n - max(self.h_days, 1.0)
        for k in range(w):
            n = bins[3 * k]
            if n > 1:
                ss_within += bins[3 * k + 2] - bins[3 * k + 1] ** 2 / n
                dof += n - 1
            n_all += n
        var = max(ss_within / dof if dof > 0 else 0.0, self.sd_floor ** 2)
        self.sd = math.sqrt(var)
        self.n_window = n_all - self.h_n
        self.z, self.decline, self.onset_days = 0.0, 0.0, 0.0
        if n_all < self.min_history or self.n_window < self.min_n:
            return
        day_var = self.day_sd ** 2
        oldest = max(today - w + 1, self.first_day)
        # Totals over every point (the history block and days before the onset sit at g = 0).
        tw = ty = 0.0
        if self.h_n > 0:
            wh = 1.0 / (var / self.h_n + day_var / max(self.h_days, 1.0))
            tw, ty = wh, wh * self.h_s / self.h_n
        for j in range(oldest, today + 1):
            k = 3 * (j % w)
            n = bins[k]
            if n > 0:
                wj = 1.0 / (var / n + day_var)
                tw += wj
                ty += wj * bins[k + 1] / n
        # Suffix sums from the newest day back: Σw, Σw·r, Σw·r², Σw·y, Σw·r·y over days after the onset
        # (r = day - today <= 0). Onset at the end of day j: g = r - r0 with r0 = j - today + 0.5.
        a0 = a1 = a2 = b0 = b1 = 0.0
        best = (0.0, 0.0, 0.0)
        last_onset = today - self.min_ramp_days
        for j in range(today, oldest - 2 if self.h_n > 0 else oldest - 1, -1):
            flat_days = max(j - oldest + 1, 0) + self.h_days
            if j <= last_onset and a0 > 0 and flat_days >= self.min_flat_days:
                r0 = j - today + 0.5
                sg = a1 - r0 * a0
                sgg = a2 - 2 * r0 * a1 + r0 * r0 * a0
                sgy = b1 - r0 * b0
                denominator = sgg - sg * sg / tw
                if denominator > 1e-12:
                    slope = (sgy - sg * ty / tw) / denominator
                    z = slope * math.sqrt(denominator)
                    if z < best[0]:
                        best = (z, slope * r0, -r0)
            if j < oldest:
                break
            k = 3 * (j % w)
            n = bins[k]
            if n > 0:
                r = float(j - today)
                wj = 1.0 / (var / n + day_var)
                y = bins[k + 1] / n
                a0 += wj
                a1 += wj * r
                a2 += wj * r * r
                b0 += wj * y
                b1 += wj * r * y
        self.z, self.decline, self.onset_days = best

    # -- verdict -------------------------------------------------------------------------------
    def evidence(self) -> dict[str, float]:
        return {"decline_z": self.z, "decline": self.decline, "decline_days": self.onset_days,
                "decline_sd": self.sd, "decline_n": self.n_window}

    @property
    def alarm(self) -> bool:
        return self.z <= -self.z_threshold and self.decline >= self.min_decline
