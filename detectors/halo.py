"""Halo: the part of a rating that the same respondent's other ratings explain.

A respondent who had a bad visit rates every attribute a little lower (the *halo*), and a site's
bad day lowers all its attributes together. Both are noise for a question about *one* attribute:
"is cleanliness sliding at this site?". Each rating's *surprise* is its departure from what its
series expects at that hour (as a share of the attribute's scale); :class:`Halo` learns how much
two surprises of one response correlate (``rho``, an intraclass correlation, time-decayed, shrunk
towards 0 until ``prior`` responses back it) and predicts each surprise from the mean ``m`` of the
``k`` others by ``b·m`` with ``b = kρ / (1 + (k-1)ρ)`` — the regression coefficient when ratings
of one respondent correlate by ``ρ`` (Spearman-Brown: the mean of many others is a surer guide
than one). Leaving that prediction out keeps an attribute's own movements and removes much of
the shared noise; a drop of one attribute alone is not removed (the others do not move), while a
drop of *every* attribute together is largely removed — the job of the other detectors.

>>> from boucle.detectors.halo import Halo
>>> import random
>>> rng, hour = random.Random(2), 3_600_000
>>> halo = Halo()
>>> for i in range(2000):                      # a shared part (sd 0.5) and an own part (sd 0.8)
...     mood = rng.gauss(0, 0.5)
...     halo.learn([mood + rng.gauss(0, 0.8) for _ in range(6)], i * hour // 10)
>>> 0.2 < halo.rho < 0.35                       # 0.25 / (0.25 + 0.64) = 0.28
True
>>> b = halo.coefficient(5)                     # five other ratings in the response
>>> 0.5 < b < 0.75
True
>>> h = halo.halos({"a": -0.5, "b": -0.5, "c": 0.0})
>>> round(h["c"], 3) == round(halo.coefficient(2) * -0.5, 3), h["a"] < 0
(True, True)
>>> Halo.from_state(halo.state()).rho == halo.rho, Halo.from_state(halo.state(), max_rho=0.1).rho
(True, 0.1)
"""

from __future__ import annotations

from typing import Any

from boucle.config.times import DAY_MS

__all__ = ["Halo"]



class Halo:
    """Time-decayed intraclass correlation of the surprises within a response, and the halos."""

    def __init__(self, half_life_days: float = 28.0, prior: float = 30.0, max_rho: float = 0.9):
        self.half_life_days = half_life_days  # the parameter, under its name (river's convention)
        self.half_life_ms = half_life_days * DAY_MS
        self.prior = prior
        self.max_rho = max_rho
        self.t_ms: int | None = None
        self.n = 0.0  # decayed count of responses with at least two surprises
        self.cross = 0.0  # decayed Σ over responses of Σ_{i≠j} s_i·s_j
        self.square = 0.0  # decayed Σ over responses of (k-1)·Σ s_i²

    def learn(self, surprises: list[float], t_ms: int) -> None:
        """Learn the surprises of one response (at least two are needed to say anything)."""
        k = len(surprises)
        if k < 2:
            return
        total = sq = 0.0
        for s in surprises:
            total += s
            sq += s * s
        w = 1.0
        if self.t_ms is None:
            self.t_ms = t_ms
        elif t_ms > self.t_ms:
            f = 2.0 ** (-(t_ms - self.t_ms) / self.half_life_ms)
            self.n *= f
            self.cross *= f
            self.square *= f
            self.t_ms = t_ms
        elif t_ms < self.t_ms:
            w = 2.0 ** (-(self.t_ms - t_ms) / self.half_life_ms)  # a late response weighs less
        self.n += w
        self.cross += w * (total * total - sq)
        self.square += w * (k - 1) * sq

    @property
    def rho(self) -> float:
        """The correlation of two surprises of one response, shrunk towards 0 by ``prior`` responses."""
        if self.square <= 0:
            return 0.0
        rho = self.cross / self.square * self.n / (self.n + self.prior)
        return min(max(rho, 0.0), self.max_rho)

    def coefficient(self, k: int) -> float:
        """Regression coefficient of a surprise on the mean of ``k`` other surprises."""
        rho = self.rho
        return k * rho / (1.0 + (k - 1) * rho) if k > 0 else 0.0

    def halos(self, surprises: dict[str, float]) -> dict[str, float]:
        """Each attribute's halo (same unit as the surprises) from the others' surprises of a response."""
        k = len(surprises) - 1
        if k <= 0:
            return {name: 0.0 for name in surprises}
        total = sum(surprises.values())
        b = self.coefficient(k) / k
        return {name: b * (total - s) for name, s in surprises.items()}

    def state(self) -> dict[str, Any]:
        """The decayed sums as plain data (no parameter)."""
        return {"t_ms": self.t_ms, "n": self.n, "cross": self.cross, "square": self.square}

    @classmethod
    def from_state(cls, state: dict[str, Any], **params: Any) -> "Halo":
        """A halo built with ``params`` (the constructor's) that resumes from :meth:`state`."""
        return cls(**params)._load(state)

    def _load(self, state: dict[str, Any]) -> "Halo":
        self.t_ms, self.n, self.cross, self.square = state["t_ms"], state["n"], state["cross"], state["square"]
        return self

    def copy(self) -> "Halo":
        new = object.__new__(Halo)
        new.__dict__.update(self.__dict__)
        return new
