"""A batch of one series' ratings through every detector of an :class:`~detectors.AttributeWatch`
in one loop.

The site step hands each series its few ratings of an hour (four on the demo): what costs is not
the arithmetic but each detector's loop set-up (its state into locals and back), the lists passed
from one to the next and the calls. :func:`update_many` runs the series' clock, then one loop in
which each rating goes through the :class:`~detectors.SeasonalExpectation` (level, seasonal cell,
recent residuals), the :class:`~detectors.DownwardTrend` (CUSUM with its allowance ``k + k_margin ·
√Σw² / Σw``, decayed regression), the :class:`~detectors.GradualDecline` (its daily ring; an
evaluation point, a new day or a late rating take its full :meth:`~detectors.GradualDecline.update`)
and the :class:`~detectors.PeerComparison`'s recent moments, each state held in locals, with the
very operations of each detector's own ``update``, in the same order: the same floats.

The river alarms learn the batch after the loop, on the same clock times. The thresholds a thin
series' clock sets (:meth:`AttributeWatch._adapt`, ``k_margin`` among them) are those of the batch's
start, and move at its end.

>>> from boucle.detectors import AttributeWatch
>>> import random
>>> rng, hour = random.Random(4), 3_600_000
>>> one, many = AttributeWatch(trend={"k_margin": 1.5}), AttributeWatch(trend={"k_margin": 1.5})
>>> ts = [i * 7 * hour - (i % 11 == 0) * 30 * hour for i in range(600)]   # thin, some late
>>> xs = [min(5, max(1, round(rng.gauss(4.0 - (i > 500), 1.0)))) for i in range(600)]
>>> for x, t in zip(xs, ts):
...     one.update(x, t)
>>> for x, t in zip(xs, ts):
...     many.update_many([x], [t])
>>> one.state() == many.state()
True
"""

from __future__ import annotations

import math
from typing import Any

from boucle.config.times import DAY_MS, HOUR_MS

__all__ = ["update_many"]


def update_many(watch: Any, xs: list[float], ts: list[int], halos: list[float] | None = None
                ) -> list[int]:
    """Learn each (rating, ms[, halo]) of ``xs``/``ts`` in order in ``watch``'s (an AttributeWatch) clock, expectation, trend,
    decline and peer detectors; returns the ratings' times on the series' clock."""
    taus = watch.clock.ticks(ts)
    ex, trend, decline = watch.expectation, watch.trend, watch.decline
    # The expectation: level, seasonal cells, recent residuals.
    level, recent, cells = ex.level, ex.recent, ex.cells
    shrinkage, ex_min_history, cell_half_life = ex.shrinkage, ex.min_history, ex._half_life_ms
    ex_offset, per_day, block_ms = ex.utc_offset_hours * HOUR_MS, 24 // ex.block_hours, ex.block_hours * HOUR_MS
    level_half_life, recent_half_life = level.half_life_ms, recent.half_life_ms
    level_t, level_w, level_w2, level_mean, level_m2 = level.t_ms, level.w, level.w2, level.mean, level.m2
    recent_t, recent_w, recent_w2, recent_mean, recent_m2 = recent.t_ms, recent.w, recent.w2, recent.mean, recent.m2
    newest = ex.t_ms
    # The trend: CUSUM on its baseline, decayed regression.
    base = trend.baseline
    base_half_life = base.half_life_ms
    base_t, base_w, base_w2, base_mean, base_m2 = base.t_ms, base.w, base.w2, base.mean, base.m2
    min_history, sd_floor, max_step, k = trend.min_history, trend.sd_floor, trend.max_step, trend.k
    k_margin, slope_half_life = trend.k_margin, trend.slope_half_life_days
    cusum, run_n, run_shortfall, first_ms = trend.cusum, trend.run_n, trend.run_shortfall, trend.first_ms
    origin, sw, st, sx, stt, stx = trend.t_ms, trend.sw, trend.st, trend.sx, trend.stt, trend.stx
    # The decline's ring; the peer comparison's recent moments.
    bins, window, decline_offset, decline_update = decline.bins, decline.window_days, \
        decline.utc_offset_hours * HOUR_MS, decline.update
    peer = watch.peer.recent
    peer_half_life = peer.half_life_ms
    peer_t, peer_w, peer_w2, peer_mean, peer_m2 = peer.t_ms, peer.w, peer.w2, peer.mean, peer.m2
    sqrt = math.sqrt
    for j, (raw, tau, cell_t) in enumerate(zip(xs, taus, ts)):
        x = float(raw)
        # -- SeasonalExpectation.learn(x, tau, cell_t) --
        local = cell_t + ex_offset
        day = local // DAY_MS
        i = 3 * int(((day + 3) % 7) * per_day + (local - day * DAY_MS) // block_ms)  # cell()
        weight, total, last = cells[i], cells[i + 1], cells[i + 2]
        effect = total / (weight + shrinkage) if weight > 0 else 0.0
        has_level = level_w > 0
        mean = level_mean
        expected = mean + effect if has_level else x
        if level_w >= ex_min_history:  # recent.update(x - expected, tau)
            r = x - expected
            w = 1.0
            if recent_t is None:
                recent_t = tau
            elif tau > recent_t:
                f = 2.0 ** (-(tau - recent_t) / recent_half_life)
                recent_w *= f
                recent_w2 *= f * f
                recent_m2 *= f
                recent_t = tau
            elif tau < recent_t:
                w = 2.0 ** (-(recent_t - tau) / recent_half_life)
            if w > 0.0:
                recent_w += w
                recent_w2 += w * w
                delta = r - recent_mean
                recent_mean += w / recent_w * delta
                recent_m2 += w * delta * (r - recent_mean)
        if has_level:
            if last and tau > last:
                f = 2.0 ** (-(tau - last) / cell_half_life)
                weight *= f
                total *= f
            cells[i] = weight + 1.0
            cells[i + 1] = total + (x - mean)
            if tau > last:
                cells[i + 2] = float(tau)
        w = 1.0  # level.update(x, tau)
        if level_t is None:
            level_t = tau
        elif tau > level_t:
            f = 2.0 ** (-(tau - level_t) / level_half_life)
            level_w *= f
            level_w2 *= f * f
            level_m2 *= f
            level_t = tau
        elif tau < level_t:
            w = 2.0 ** (-(level_t - tau) / level_half_life)
        if w > 0.0:
            level_w += w
            level_w2 += w * w
            delta = x - level_mean
            level_mean += w / level_w * delta
            level_m2 += w * delta * (x - level_mean)
        if newest is None or tau > newest:
            newest = tau
        # -- DownwardTrend.update(x, tau, expected once the level has min_history) --
        if base_w >= min_history:
            reference = base_mean if level_w < min_history else expected
            denominator = base_w - base_w2 / base_w if base_w > 0 else 0.0  # sd: DecayedMoments.var
            var = max(base_m2 / denominator, 0.0) if denominator > 1e-12 else 0.0
            sd = max(sqrt(var), sd_floor)
            cusum += min((reference - x) / sd, max_step) - (k + k_margin * sqrt(base_w2) / base_w if k_margin else k)
            if cusum <= 0.0:
                cusum, run_n, run_shortfall = 0.0, 0, 0.0
            else:
                run_n += 1
                run_shortfall += reference - x
        seasonal = expected - base_mean if level_w >= min_history and base_w > 0 else 0.0
        w = 1.0  # base.update(x, tau)
        if base_t is None:
            base_t = tau
        elif tau > base_t:
            f = 2.0 ** (-(tau - base_t) / base_half_life)
            base_w *= f
            base_w2 *= f * f
            base_m2 *= f
            base_t = tau
        elif tau < base_t:
            w = 2.0 ** (-(base_t - tau) / base_half_life)
        if w > 0.0:
            base_w += w
            base_w2 += w * w
            delta = x - base_mean
            base_mean += w / base_w * delta
            base_m2 += w * delta * (x - base_mean)
        y = x - seasonal  # _regress(x - seasonal, tau)
        if origin is None:
            origin = tau
        t = (tau - origin) / DAY_MS
        if t > 0:
            d = t
            stt += -2 * d * st + d * d * sw
            stx -= d * sx
            st -= d * sw
            f = 2.0 ** (-d / slope_half_life)
            sw *= f
            st *= f
            sx *= f
            stt *= f
            stx *= f
            origin = tau
            t = 0.0
            w = 1.0
        else:
            w = 2.0 ** (t / slope_half_life)
        sw += w
        st += w * t
        sx += w * y
        stt += w * t * t
        stx += w * t * y
        if first_ms is None or tau < first_ms:
            first_ms = tau
        # -- GradualDecline.update(x - seasonal effect - halo, tau) --
        y = raw - effect if halos is None else raw - effect - halos[j]
        day = int((tau + decline_offset) // DAY_MS)
        if day != decline.day or tau >= decline.next_eval_ms or tau < (decline.t_ms or 0):
            decline_update(y, tau)  # a new day, an evaluation point, a late rating: the full update
        else:
            i = 3 * (day % window)
            bins[i] += 1.0
            bins[i + 1] += y
            bins[i + 2] += y * y
            decline.t_ms = tau
        # -- PeerComparison.update(x, tau): its recent moments --
        w = 1.0
        if peer_t is None:
            peer_t = tau
        elif tau > peer_t:
            f = 2.0 ** (-(tau - peer_t) / peer_half_life)
            peer_w *= f
            peer_w2 *= f * f
            peer_m2 *= f
            peer_t = tau
        elif tau < peer_t:
            w = 2.0 ** (-(peer_t - tau) / peer_half_life)
        if w > 0.0:
            peer_w += w
            peer_w2 += w * w
            delta = x - peer_mean
            peer_mean += w / peer_w * delta
            peer_m2 += w * delta * (x - peer_mean)
    level.t_ms, level.w, level.w2, level.mean, level.m2 = level_t, level_w, level_w2, level_mean, level_m2
    recent.t_ms, recent.w, recent.w2, recent.mean, recent.m2 = recent_t, recent_w, recent_w2, recent_mean, recent_m2
    ex.t_ms = newest
    base.t_ms, base.w, base.w2, base.mean, base.m2 = base_t, base_w, base_w2, base_mean, base_m2
    trend.cusum, trend.run_n, trend.run_shortfall, trend.first_ms = cusum, run_n, run_shortfall, first_ms
    trend.t_ms, trend.sw, trend.st, trend.sx, trend.stt, trend.stx = origin, sw, st, sx, stt, stx
    peer.t_ms, peer.w, peer.w2, peer.mean, peer.m2 = peer_t, peer_w, peer_w2, peer_mean, peer_m2
    return taus
