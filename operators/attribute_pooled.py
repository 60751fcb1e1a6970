"""A region's pooled responses to one question, watched like a site's series.

On a thin network most sites are silent on any given day: "half of a region's sites below their
own expectation" cannot happen, so a region-wide drop would never be one regional incident. The
region therefore also watches its *pooled* series per question with the detectors of a site
(:class:`~detectors.AttributeWatch`, on its own clock, so a thin region is judged over months).

Its points are hourly: the responses of each event-time hour are averaged per site, then over the
sites that answered (a busy site cannot outvote the others), so its cost grows with hours, not with
responses or sites. Each site also keeps how its hourly means depart from the pooled expectation,
recently and in the long run: a site whose recent departure fell by ``min_move`` rating points or
more, and by a standard error of its recent hours, *moved*; those are the sites a regional
incident lists.

>>> from boucle.config.settings import Settings
>>> from boucle.operators.attribute_engine import AttributeAlertEngine
>>> import random
>>> rng, day = random.Random(1), 86_400_000
>>> pooled = PooledSeries(AttributeAlertEngine(Settings()), "csat", min_move=0.3)
>>> for i in range(3 * 365):                         # three years, one review a day across 5 hotels
...     drop = 1.0 if i >= 3 * 365 - 90 else 0.0     # a region-wide drop over the last quarter
...     pooled.add(f"h{i % 5}", [min(5, max(1, round(rng.gauss(4.0 - drop, 1.0))))], i * day + 3_600_000)
>>> pooled.alarm, pooled.moved()            # the sites whose own recent reviews fell too
(True, ['h0', 'h1', 'h3'])
>>> again = PooledSeries.from_state(AttributeAlertEngine(Settings()), "csat", pooled.state(), min_move=0.3)
>>> again.alarm, again.moved() == pooled.moved()
(True, True)
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from boucle.config.times import DAY_MS, HOUR_MS
from boucle.detectors import AttributeWatch, DecayedMoments

if TYPE_CHECKING:
    from boucle.operators.attribute_engine import AttributeAlertEngine

__all__ = ["PooledSeries"]

_RECENT_MS = 3 * DAY_MS  # of the region's clock: a site's recent departure
_LONG_MS = 28 * DAY_MS  # its usual departure


class PooledSeries:
    """The pooled series of one question in one region, and each site's departure from it."""

    def __init__(self, engine: AttributeAlertEngine, question: str, min_move: float = 0.3) -> None:
        self.watch: AttributeWatch = engine.new_watch("", question=question)
        self.min_move = min_move
        self.hour: int | None = None  # start (ms) of the event-time hour being gathered
        self.gathered: dict[str, list[float]] = {}  # site -> [sum, count] of that hour
        self.departures: dict[str, tuple[DecayedMoments, DecayedMoments]] = {}  # site -> (recent, long)
        self.alarm = False

    def add(self, site: str, values: list[float], t_ms: int) -> None:
        """One site's ratings of a batch (their newest time ``t_ms``); an hour gathered is learnt
        when a later hour begins."""
        hour = t_ms - t_ms % HOUR_MS
        if self.hour is None:
            self.hour = hour
        elif hour > self.hour:
            self._learn()
            self.hour = hour
        sums = self.gathered.get(site)
        if sums is None:
            self.gathered[site] = [float(sum(values)), float(len(values))]
        else:
            sums[0] += sum(values)
            sums[1] += len(values)

    def _learn(self) -> None:
        gathered, self.gathered = self.gathered, {}
        if not gathered:
            return
        watch = self.watch
        t = self.hour + HOUR_MS - 1
        means = {site: s / n for site, (s, n) in gathered.items()}
        x = sum(means.values()) / len(means)
        expected = watch.expectation.level.mean + watch.expectation.effect(t) if watch.count else x
        watch.update(x, t)
        tau = watch.clock.tau_ms
        for site, mean in means.items():
            pair = self.departures.get(site)
            if pair is None:
                pair = self.departures[site] = (DecayedMoments(_RECENT_MS), DecayedMoments(_LONG_MS))
            pair[0].update(mean - expected, tau)
            pair[1].update(mean - expected, tau)
        self.alarm = watch.watched and watch.local_alarm

    def moved(self) -> list[str]:
        """The sites whose recent departure from the pooled expectation fell by ``min_move`` or more,
        and by a standard error of their recent hours (a thin site's few ratings are noise)."""
        tau = self.watch.clock.tau_ms
        sd = self.watch.expectation.sd
        out = []
        for site, (recent, usual) in self.departures.items():
            n = recent.n_eff
            if recent.weight_at(tau) < 0.5 or n <= 0:
                continue
            if recent.mean - usual.mean <= -max(self.min_move, sd / math.sqrt(n)):
                out.append(site)
        return sorted(out)

    def active(self) -> int:
        """Sites with recent hours in the pool (the ones that could have moved)."""
        tau = self.watch.clock.tau_ms
        return sum(1 for recent, _ in self.departures.values() if recent.weight_at(tau) >= 0.5)

    def evidence(self) -> dict[str, float]:
        return self.watch.evidence()

    # -- state as plain data -------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        return {"watch": self.watch.state(), "hour": self.hour, "alarm": self.alarm,
                "gathered": {site: list(sums) for site, sums in self.gathered.items()},
                "departures": {site: (r.state(), u.state()) for site, (r, u) in self.departures.items()}}

    @classmethod
    def from_state(cls, engine: AttributeAlertEngine, question: str, state: dict[str, Any], min_move: float = 0.3) -> PooledSeries:
        new = cls(engine, question, min_move)
        new.watch = engine.new_watch("", state["watch"], question)
        new.hour, new.alarm = state["hour"], state["alarm"]
        new.gathered = {site: list(sums) for site, sums in state["gathered"].items()}
        new.departures = {site: (DecayedMoments.from_state(r, half_life_ms=_RECENT_MS),
                                 DecayedMoments.from_state(u, half_life_ms=_LONG_MS))
                          for site, (r, u) in state["departures"].items()}
        return new
