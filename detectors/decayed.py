"""Time-decayed mean and variance with an effective sample size: river's EWMean, on event time.

``river.stats.EWMean`` fades per *observation*; feedback arrives unevenly (a hypermarket answers
200 times a day, a kiosk 3 times), so here every observation fades with *time*: its weight halves
every ``half_life_ms``. Besides the mean and variance the statistic keeps the sum of squared weights,
which gives the effective number of responses behind the mean (Kish: ``W² / Σw²``) and so its
standard error. ``weight`` is a decayed count: about how many responses fell within the last
``half_life / ln 2``.

An observation older than the newest one (a late response) is weighted as it would have been,
without moving the clock back.

>>> from boucle.detectors.decayed import DecayedMoments
>>> day = 86_400_000
>>> m = DecayedMoments(half_life_ms=day)
>>> for i, x in enumerate([4, 5, 4, 5, 4, 5]):
...     m.update(x, t_ms=i * 3_600_000)
>>> round(m.get(), 2), round(m.n_eff, 1), round(m.std_err, 3)
(4.51, 6.0, 0.224)
>>> m.update(1, t_ms=2 * day)        # two days later: the old responses weigh a quarter each
>>> round(m.get(), 2), round(m.weight, 2)
(3.17, 2.61)

The learnt state is plain data, without the half-life: :meth:`~DecayedMoments.from_state` rebuilds
the statistic under the parameters of the day (here a longer memory from now on).

>>> state = m.state()
>>> sorted(state)
['m2', 'mean', 't_ms', 'w', 'w2']
>>> again = DecayedMoments.from_state(state, half_life_ms=2 * day)
>>> again.get() == m.get(), again.half_life_ms
(True, 172800000)
"""

from __future__ import annotations

import math
from typing import Any

from river import stats

from boucle.config.times import DAY_MS

__all__ = ["DecayedMoments", "decay_factor"]


def decay_factor(elapsed_ms: float, half_life_ms: float) -> float:
    """Weight left to an observation ``elapsed_ms`` old: ``2 ** (-elapsed / half_life)``."""
    if elapsed_ms <= 0:
        return 1.0
    return 2.0 ** (-elapsed_ms / half_life_ms)


class DecayedMoments(stats.base.Univariate):
    """Weighted mean/variance (West's algorithm) whose weights halve every ``half_life_ms``."""

    def __init__(self, half_life_ms: float = 7 * DAY_MS):
        if half_life_ms <= 0:
            raise ValueError("half_life_ms must be positive")
        self.half_life_ms = half_life_ms
        self.t_ms: int | None = None
        self.w = 0.0  # sum of weights (a decayed count)
        self.w2 = 0.0  # sum of squared weights
        self.mean = 0.0
        self.m2 = 0.0  # weighted sum of squared deviations

    def update(self, x: float, t_ms: int | None = None, w: float = 1.0) -> None:
        x = float(x)
        total, total2, m2 = self.w, self.w2, self.m2
        if t_ms is not None:
            last = self.t_ms
            if last is None:
                self.t_ms = t_ms
            elif t_ms > last:
                f = 2.0 ** (-(t_ms - last) / self.half_life_ms)  # decay_factor, inlined (hot)
                total *= f
                total2 *= f * f
                m2 *= f
                self.t_ms = t_ms
            elif t_ms < last:  # late: weigh it as old as it is
                w *= 2.0 ** (-(last - t_ms) / self.half_life_ms)
        if w <= 0.0:
            self.w, self.w2, self.m2 = total, total2, m2
            return
        total += w
        total2 += w * w
        mean = self.mean
        delta = x - mean
        mean += w / total * delta
        self.m2 = m2 + w * delta * (x - mean)
        self.w, self.w2, self.mean = total, total2, mean

    def update_many(self, xs: list[float], ts: list[int]) -> None:
        """``update(x, t)`` for each pair in order (unit weights), with the state held in locals."""
        half_life = self.half_life_ms
        last, total, total2, mean, m2 = self.t_ms, self.w, self.w2, self.mean, self.m2
        for x, t_ms in zip(xs, ts):
            x = float(x)
            w = 1.0
            if last is None:
                last = t_ms
            elif t_ms > last:
                f = 2.0 ** (-(t_ms - last) / half_life)
                total *= f
                total2 *= f * f
                m2 *= f
                last = t_ms
            elif t_ms < last:
                w = 2.0 ** (-(last - t_ms) / half_life)
                if w <= 0.0:
                    continue
            total += w
            total2 += w * w
            delta = x - mean
            mean += w / total * delta
            m2 += w * delta * (x - mean)
        self.t_ms, self.w, self.w2, self.mean, self.m2 = last, total, total2, mean, m2

    def get(self) -> float:
        return self.mean

    # -- state as plain data (see detectors/__init__.py) ---------------------------------------
    def state(self) -> dict[str, Any]:
        """What the statistic has learnt, as plain numbers (no parameter)."""
        return {"t_ms": self.t_ms, "w": self.w, "w2": self.w2, "mean": self.mean, "m2": self.m2}

    @classmethod
    def from_state(cls, state: dict[str, Any], **params: Any) -> "DecayedMoments":
        """A statistic built with ``params`` (the constructor's) that resumes from :meth:`state`."""
        return cls(**params)._load(state)

    def _load(self, state: dict[str, Any]) -> "DecayedMoments":
        self.t_ms, self.w, self.w2 = state["t_ms"], state["w"], state["w2"]
        self.mean, self.m2 = state["mean"], state["m2"]
        return self

    def copy(self) -> "DecayedMoments":
        """An independent copy of the statistic (state included; ``clone`` gives a fresh one)."""
        new = object.__new__(DecayedMoments)
        new.__dict__.update(self.__dict__)
        return new

    @property
    def weight(self) -> float:
        """Decayed number of responses as of the last update."""
        return self.w

    def weight_at(self, t_ms: int) -> float:
        """Decayed number of responses as of ``t_ms`` (fades while nobody answers)."""
        if self.t_ms is None:
            return 0.0
        return self.w * decay_factor(t_ms - self.t_ms, self.half_life_ms)

    @property
    def n_eff(self) -> float:
        """Effective number of independent responses behind :meth:`get`."""
        return self.w * self.w / self.w2 if self.w2 > 0 else 0.0

    @property
    def var(self) -> float:
        """Unbiased (reliability-weights) variance; 0 until two responses."""
        denominator = self.w - self.w2 / self.w if self.w > 0 else 0.0
        return max(self.m2 / denominator, 0.0) if denominator > 1e-12 else 0.0

    @property
    def std_err(self) -> float:
        """Standard error of the decayed mean (inf while empty)."""
        n = self.n_eff
        return math.sqrt(self.var / n) if n > 0 else math.inf
