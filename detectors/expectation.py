"""Expectation: is the attribute where the site's own history says it should be right now?

The expected rating at time *t* is the site's long-run level plus the effect of *t*'s cell
(local day of week x block of hours), shrunk towards zero until the cell has seen enough
responses: ``effect = Σ w·(x - level) / (Σ w + shrinkage)``. Waiting time really is worse at
Saturday 18h; a Saturday-evening dip is not a surprise.

Each response's residual (rating - expected) goes into a short, time-decayed *recent window*.
The surprise is the recent mean residual over its standard error, which counts the responses
(``σ/√n_eff``), the uncertainty of the level itself and a between-day variance (``day_sd``:
days differ a little even when nothing is wrong), so a site with 3 responses today is no
evidence: ``alarm`` needs ``z <= -z_threshold`` *and* a recent weight of ``min_n`` responses
*and* a history of ``min_history`` responses.

>>> from boucle.detectors.expectation import SeasonalExpectation
>>> import random
>>> rng, hour = random.Random(1), 3_600_000
>>> det = SeasonalExpectation()
>>> for i in range(24 * 28):                      # four quiet weeks, one response an hour
...     _ = det.update(rng.gauss(4.0, 0.9), i * hour)
>>> det.alarm, round(det.evidence()["expected"], 1)
(False, 4.0)
>>> for i in range(24 * 28, 24 * 30):             # then the attribute drops a full point
...     _ = det.update(rng.gauss(3.0, 0.9), i * hour)
>>> e = det.evidence()
>>> det.alarm, e["z"] < -4, round(e["level"], 1), e["n"] >= 20
(True, True, 3.1, True)

The seasonal cell of a time (local day of week x ``block_hours``), and its effect:

>>> det.cell(0) == det.cell(3 * hour - 1) != det.cell(3 * hour)
True
>>> det.effect(5 * hour) == det.effect(5 * hour, det.cell(5 * hour))
True

Rebuilt from its :meth:`~SeasonalExpectation.state` with other cells (6-hour blocks), it keeps the
level and the recent residuals but starts its seasonal effects afresh: a 3-hour cell is not a
6-hour one.

>>> wider = SeasonalExpectation.from_state(det.state(), block_hours=6)
>>> len(wider.cells) == 3 * 7 * 4, sum(wider.cells), wider.level.mean == det.level.mean
(True, 0.0, True)
"""

from __future__ import annotations

import math
from array import array
from statistics import NormalDist
from typing import Any

from river import base

from boucle.config.times import DAY_MS, HOUR_MS
from boucle.detectors.decayed import DecayedMoments
from boucle.detectors.protocol import RiverDrift

__all__ = ["SeasonalExpectation"]

_PHI = NormalDist().cdf



class SeasonalExpectation(RiverDrift, base.SupervisedAnomalyDetector):
    """Site level + (day of week, hour block) effects, and the recent surprise against them."""

    def __init__(
        self,
        half_life_days: float = 28.0,
        recent_half_life_hours: float = 24.0,
        block_hours: int = 3,
        shrinkage: float = 20.0,
        z_threshold: float = 4.0,
        min_n: float = 15.0,
        min_history: float = 60.0,
        day_sd: float = 0.08,
        sd_floor: float = 0.5,
        utc_offset_hours: int = 0,
    ):
        if 24 % block_hours:
            raise ValueError("block_hours must divide 24")
        self.half_life_days = half_life_days
        self.recent_half_life_hours = recent_half_life_hours
        self.block_hours = block_hours
        self.shrinkage = shrinkage
        self.z_threshold = z_threshold
        self.min_n = min_n
        self.min_history = min_history
        self.day_sd = day_sd
        self.sd_floor = sd_floor
        self.utc_offset_hours = utc_offset_hours
        self._half_life_ms = half_life_days * DAY_MS
        self.level = DecayedMoments(self._half_life_ms)
        self.recent = DecayedMoments(recent_half_life_hours * HOUR_MS)  # of residuals
        # Per cell: decayed weight, decayed sum of residuals against the level, time of last update.
        self.cells = array("d", bytes(8 * 3 * 7 * (24 // block_hours)))
        self.t_ms: int | None = None

    def cell(self, t_ms: int) -> int:
        """The seasonal cell of ``t_ms``: local day of week x block of hours. Series with the same
        ``utc_offset_hours`` and ``block_hours`` (those of one site) share it, so a caller that asks
        several of them about one time may compute it once and pass it to :meth:`effect`."""
        local = t_ms + self.utc_offset_hours * HOUR_MS
        day = local // DAY_MS
        return int(((day + 3) % 7) * (24 // self.block_hours) + (local - day * DAY_MS) // (self.block_hours * HOUR_MS))

    def _effect(self, cell: int) -> float:
        w, s = self.cells[3 * cell], self.cells[3 * cell + 1]
        return s / (w + self.shrinkage) if w > 0 else 0.0

    def effect(self, t_ms: int, cell: int | None = None) -> float:
        """The shrunk seasonal effect of ``t_ms``'s cell (rating points against the level);
        ``cell``: that cell, when the caller already has it (:meth:`cell`)."""
        return self._effect(self.cell(t_ms) if cell is None else cell)

    def expected(self, t_ms: int) -> float:
        """The rating the site's history predicts at ``t_ms`` (level + shrunk cell effect)."""
        return self.level.mean + self._effect(self.cell(t_ms))

    def update(self, x: float, t_ms: int | None = None) -> float:
        """Learn one rating; returns the expected value it was compared with. Without ``t_ms``, at
        the newest time seen (river's protocol)."""
        return self.learn(x, (self.t_ms or 0) if t_ms is None else t_ms)[0]

    # -- river's supervised anomaly protocol: x = {"t_ms": event time} (or None), y = the rating ----
    def learn_one(self, x: dict[str, Any] | None, y: float) -> None:
        """:meth:`update` with the rating ``y`` at ``x["t_ms"]`` (the newest time without it)."""
        self.update(y, (x or {}).get("t_ms"))

    def score_one(self, x: dict[str, Any] | None, y: float) -> float:
        """How far below expectation a rating ``y`` at ``x["t_ms"]`` would be, in [0, 1): ``1 - 2Φ(r/σ)``
        for a residual ``r < 0`` against :meth:`expected`, 0 at or above it and before ``min_history``.

        >>> det = SeasonalExpectation(min_history=5)
        >>> for i in range(50):
        ...     det.learn_one({"t_ms": i * 3_600_000}, 4.0 + (i % 2) * 0.5)
        >>> [round(det.score_one(None, y), 2) for y in (5.0, 4.0, 3.0, 1.0)]
        [0.0, 0.38, 0.99, 1.0]
        """
        if self.level.w < self.min_history:
            return 0.0
        t_ms = (x or {}).get("t_ms")
        residual = float(y) - self.expected((self.t_ms or 0) if t_ms is None else t_ms)
        return max(0.0, 1.0 - 2.0 * _PHI(residual / self.sd)) if residual < 0 else 0.0

    @classmethod
    def _unit_test_params(cls):
        yield {}
        yield {"block_hours": 6, "utc_offset_hours": 1}

    def learn(self, x: float, t_ms: int, cell_t: int | None = None) -> tuple[float, float]:
        """:meth:`update`, returning (expected value, the cell's seasonal effect) before learning.
        ``cell_t``: the calendar time whose cell the rating belongs to when ``t_ms`` is the series'
        own clock (:mod:`detectors.clock`): memories fade on ``t_ms``, seasons follow the calendar."""
        x = float(x)
        level = self.level
        cells, i = self.cells, 3 * self.cell(t_ms if cell_t is None else cell_t)
        weight, total, last = cells[i], cells[i + 1], cells[i + 2]
        effect = total / (weight + self.shrinkage) if weight > 0 else 0.0
        has_level = level.w > 0
        mean = level.mean
        expected = mean + effect if has_level else x
        if level.w >= self.min_history:
            self.recent.update(x - expected, t_ms)
        if has_level:
            if last and t_ms > last:
                f = 2.0 ** (-(t_ms - last) / self._half_life_ms)  # decay_factor, inlined (hot)
                weight *= f
                total *= f
            cells[i] = weight + 1.0
            cells[i + 1] = total + (x - mean)
            if t_ms > last:
                cells[i + 2] = float(t_ms)
        level.update(x, t_ms)
        if self.t_ms is None or t_ms > self.t_ms:
            self.t_ms = t_ms
        return expected, effect

    def copy(self) -> "SeasonalExpectation":
        """An independent copy (same state, same future outputs)."""
        new = object.__new__(SeasonalExpectation)
        new.__dict__.update(self.__dict__)
        new.level, new.recent, new.cells = self.level.copy(), self.recent.copy(), self.cells[:]
        return new

    # -- state as plain data (see detectors/__init__.py) ---------------------------------------
    def state(self) -> dict[str, Any]:
        """What the detector has learnt: the level, the recent residuals, the seasonal cells (a flat
        list of (weight, sum, last update) per cell) and the local clock the cells are indexed on
        (``layout``: UTC offset and hours per block; it tells a rebuild whether they still fit and is
        never applied as a parameter)."""
        return {"t_ms": self.t_ms, "level": self.level.state(), "recent": self.recent.state(),
                "cells": self.cells.tolist(), "layout": (self.utc_offset_hours, self.block_hours)}

    @classmethod
    def from_state(cls, state: dict[str, Any], **params: Any) -> "SeasonalExpectation":
        """A detector built with ``params`` (the constructor's) that resumes from :meth:`state`.

        When ``block_hours`` or ``utc_offset_hours`` differ from those the cells were learnt on, the
        cells no longer describe the same hours: the seasonal effects start afresh (empty, as for a
        new series) while the level and the recent residuals are kept."""
        return cls(**params)._load(state)

    def _load(self, state: dict[str, Any]) -> "SeasonalExpectation":
        self.t_ms = state["t_ms"]
        self.level._load(state["level"])
        self.recent._load(state["recent"])
        cells = state["cells"]
        if tuple(state["layout"]) == (self.utc_offset_hours, self.block_hours) and len(cells) == len(self.cells):
            self.cells = array("d", cells)
        return self

    @property
    def sd(self) -> float:
        return max(math.sqrt(self.level.var), self.sd_floor)

    def evidence(self) -> dict[str, float]:
        """Numbers behind the verdict: level, expected (recent), recent mean, n, standard error, z."""
        recent, level = self.recent, self.level
        n = recent.weight
        residual = recent.mean if n > 0 else 0.0
        sd = self.sd
        if n > 0 and level.w > 0:
            se = math.sqrt(sd * sd * recent.w2 / (recent.w * recent.w) + sd * sd / max(level.n_eff, 1.0)
                           + self.day_sd**2)
            z = residual / se
        else:
            se, z = math.inf, 0.0
        expected_recent = level.mean  # the recent mean is level + seasonal + residual
        return {
            "level": level.mean + residual,
            "expected": expected_recent,
            "residual": residual,
            "n": n,
            "n_history": level.w,
            "std_err": se,
            "z": z,
        }

    @property
    def alarm(self) -> bool:
        return self.alarm_of(None)

    def alarm_of(self, z: float | None) -> bool:
        """:attr:`alarm`; ``z``: that of :meth:`evidence`, when the caller has it."""
        if self.level.w < self.min_history or self.recent.weight < self.min_n:
            return False
        return (self.evidence()["z"] if z is None else z) <= -self.z_threshold
