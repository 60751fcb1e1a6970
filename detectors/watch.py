"""One (site, attribute) series watched by all the per-series detectors at once.

:class:`AttributeWatch` feeds each rating to the :class:`SeasonalExpectation` first, then to the
:class:`DownwardTrend` with the expected value as its reference (so seasonality is not a trend),
to the :class:`GradualDecline` without its seasonal effect (and, when the caller passes one, without
the respondent's *halo*: the part of the rating that the same respondent's other ratings explain),
and to the :class:`PeerComparison`.
``evidence`` gathers their numbers under one flat dict and ``triggers`` names the detectors in
alarm (a gradual decline is a ``trend``). The peer verdict needs the series' :class:`PeerGroup`,
which the caller (the operator that owns the keys) passes in.

>>> from boucle.detectors.watch import AttributeWatch
>>> import random
>>> rng, hour = random.Random(5), 3_600_000
>>> watch = AttributeWatch()
>>> for i in range(24 * 21):
...     watch.update(rng.gauss(4.0, 0.9), i * hour)
>>> watch.triggers()
[]
>>> for i in range(24 * 21, 24 * 24):
...     watch.update(rng.gauss(3.0, 0.9), i * hour)
>>> watch.triggers()
['trend', 'expectation']
>>> e = watch.evidence()
>>> round(e["baseline"], 1), round(e["level"], 1), e["z"] < -4
(3.8, 3.0, True)

``update_many`` is ``update`` on each rating in turn (the same numbers), at a fraction of the cost:

>>> one, many = AttributeWatch(), AttributeWatch()
>>> ts = [i * hour // 3 - (i % 29 == 0) * 5 * hour for i in range(24 * 3 * 30)]   # some late ones
>>> xs = [min(5, max(1, round(rng.gauss(4.0 - (i > 24 * 3 * 24), 0.9)))) for i in range(len(ts))]
>>> for x, t in zip(xs, ts):
...     one.update(x, t)
>>> for k in range(0, len(xs), 37):
...     many.update_many(xs[k:k + 37], ts[k:k + 37])
>>> one.evidence() == many.evidence(), one.triggers() == many.triggers() == ['trend', 'expectation']
(True, True)

Its :meth:`~AttributeWatch.state` gathers its detectors' states; rebuilt from it with the keyword
dicts of the day, the edited parameters apply (here an expectation test that needs far more evidence):

>>> AttributeWatch.from_state(watch.state()).triggers()
['trend', 'expectation']
>>> AttributeWatch.from_state(watch.state(), expectation={"z_threshold": 100.0}).triggers()
['trend']
"""

from __future__ import annotations

from typing import Any

from boucle.detectors.clock import SeriesClock
from boucle.detectors.decline import GradualDecline
from boucle.detectors.expectation import SeasonalExpectation
from boucle.detectors.fused import update_many as fused_update_many
from boucle.detectors.peer import PeerComparison, PeerGroup, peer_evidence
from boucle.detectors.river_adapter import RiverAlarm
from boucle.detectors.trend import DownwardTrend

__all__ = ["AttributeWatch"]


class AttributeWatch:
    """Trend, decline, expectation and peer detectors of one series (built from keyword dicts).

    ``river``: keyword dicts of :class:`~detectors.river_adapter.RiverAlarm` s, more alarm sources
    (river's detectors) whose alarms raise their ``trigger``; ``own_triggers=False`` leaves the
    local triggers to them (Boucle's detectors still give the evidence: level, baseline, z...)."""

    def __init__(self, trend: dict[str, Any] | None = None, expectation: dict[str, Any] | None = None,
                 peer: dict[str, Any] | None = None, decline: dict[str, Any] | None = None,
                 clock: dict[str, Any] | None = None,
                 river: list[dict[str, Any]] | tuple[dict[str, Any], ...] | None = None, own_triggers: bool = True):
        self.clock = SeriesClock(**(clock or {}))
        self.expectation = SeasonalExpectation(**(expectation or {}))
        self.trend = DownwardTrend(**(trend or {}))
        self.peer = PeerComparison(**(peer or {}))
        decline = dict(decline or {})
        decline.setdefault("utc_offset_hours", self.expectation.utc_offset_hours)
        self.decline = GradualDecline(**decline)
        self.river = [RiverAlarm(**kwargs) for kwargs in river or ()]
        self.own_triggers = own_triggers
        self.t_ms = 0
        self.count = 0
        # The thresholds of a busy series; a thin one's follow its clock (SeriesClock.z, .h).
        self._thresholds = (self.trend.h, self.expectation.z_threshold, self.decline.z_threshold,
                            self.trend.k_margin)

    def update(self, x: float, t_ms: int, halo: float = 0.0) -> None:
        """Learn one rating; ``halo`` (rating points) is the part of it the respondent's other ratings
        explain (see :meth:`surprise`): only the gradual-decline test leaves it out."""
        expectation, trend = self.expectation, self.trend
        tau = self.clock.tick(t_ms)  # the detectors' memories fade on the series' own clock
        expected, seasonal = expectation.learn(x, tau, t_ms)
        trend.update(x, tau, expected if expectation.level.w >= trend.min_history else None)
        self.decline.update(x - seasonal - halo, tau)
        self.peer.update(x, tau)
        for alarm in self.river:
            alarm.update(x, tau)  # its hold, like every memory, on the series' clock
        self.count += 1
        if t_ms > self.t_ms:
            self.t_ms = t_ms
        self._adapt()

    def update_many(self, xs: list[float], ts: list[int], halos: list[float] | None = None) -> None:
        """:meth:`update` for each (rating, ms[, halo]) in order, every detector in one loop
        (:func:`detectors.fused.update_many`); the thresholds follow the clock at the batch's end."""
        if not xs:
            return
        taus = fused_update_many(self, xs, ts, halos)
        for alarm in self.river:
            alarm.update_many(xs, taus)  # its hold, like every memory, on the series' clock
        self.count += len(xs)
        self.t_ms = max(self.t_ms, max(ts))
        self._adapt()

    def _adapt(self) -> None:
        """Set the tests' thresholds for the series' rate (the clock's): a thin series is tested fewer
        times a month, so for the same false alarms a month each test may ask less."""
        clock, trend = self.clock, self.trend
        h, z_expectation, z_decline, k_margin = self._thresholds
        factor = clock.factor
        # The margin for the reference's error goes with the thin thresholds: a busy series' CUSUM
        # threshold was set on busy series, with their (well learnt) references.
        trend.k_margin = k_margin * (1.0 - factor)
        if factor >= 1.0 or not clock.thresholds:
            trend.h, self.expectation.z_threshold, self.decline.z_threshold = h, z_expectation, z_decline
            return
        trend.h = clock.h(h, trend.k)
        self.expectation.z_threshold = clock.z(z_expectation)
        self.decline.z_threshold = clock.z(z_decline)

    def copy(self) -> "AttributeWatch":
        """An independent copy (same state, same future outputs)."""
        new = object.__new__(AttributeWatch)
        new.__dict__.update(self.__dict__)
        new.expectation, new.trend = self.expectation.copy(), self.trend.copy()
        new.peer, new.decline = self.peer.copy(), self.decline.copy()
        new.clock = self.clock.copy()
        if self.river:
            new.river = [alarm.copy() for alarm in self.river]
        return new

    # -- state as plain data (see detectors/__init__.py) ---------------------------------------
    def state(self) -> dict[str, Any]:
        """Each detector's :meth:`state` under its name, and the series' clock and count (and, with
        river alarms, their states in order under ``river``)."""
        out = {"t_ms": self.t_ms, "count": self.count, "expectation": self.expectation.state(),
               "trend": self.trend.state(), "peer": self.peer.state(), "decline": self.decline.state(),
               "clock": self.clock.state()}
        if self.river:
            out["river"] = [alarm.state() for alarm in self.river]
        return out

    @classmethod
    def from_state(cls, state: dict[str, Any], trend: dict[str, Any] | None = None,
                   expectation: dict[str, Any] | None = None, peer: dict[str, Any] | None = None,
                   decline: dict[str, Any] | None = None, clock: dict[str, Any] | None = None,
                   river: list[dict[str, Any]] | None = None, own_triggers: bool = True) -> "AttributeWatch":
        """A watch built with the keyword dicts (the constructor's) that resumes from :meth:`state`;
        each detector follows its own ``from_state`` rules (a reshaped part starts afresh; a river alarm
        takes the state at its place in the list, if any). A state kept before the series had a clock
        resumes on a clock that starts at the calendar."""
        new = cls(trend, expectation, peer, decline, clock, river=river, own_triggers=own_triggers)
        new.t_ms, new.count = state["t_ms"], state["count"]
        if "clock" in state:
            new.clock._load(state["clock"])
        elif new.count:
            new.clock.t_ms = new.clock.tau_ms = state["t_ms"]
        new.expectation._load(state["expectation"])
        new.trend._load(state["trend"])
        new.peer._load(state["peer"])
        new.decline._load(state["decline"])
        new._adapt()
        for alarm, learnt in zip(new.river, state.get("river", ())):
            alarm._load(learnt)
        return new

    def surprise(self, x: float, t_ms: int, cell: int | None = None) -> float | None:
        """``x`` less the rating this series expects at ``t_ms`` (None before ``min_history``): how a
        respondent's rating of this attribute departs from the site's usual, for the halo of the others.
        ``cell``: ``t_ms``'s seasonal cell if known (:meth:`SeasonalExpectation.cell`; the series of one
        site share it)."""
        expectation = self.expectation
        if expectation.level.w < expectation.min_history:
            return None
        return x - expectation.level.mean - expectation.effect(t_ms, cell)

    def compare(self, group: PeerGroup | None, member: str = "") -> None:
        """Refresh the peer verdict against ``group``."""
        self.peer.evidence(group, member)

    def _history_needed(self) -> float:
        """Responses the test closest to its minimum history still needs (each response adds at most
        one to every history, so no local test can fire within fewer)."""
        ex, tr, de = self.expectation, self.trend, self.decline
        if ex.level.w >= ex.min_history or tr.baseline.w >= tr.min_history:
            return 0.0
        decline_n = de.h_n + sum(de.bins[0::3])
        return max(min(ex.min_history - ex.level.w, tr.min_history - tr.baseline.w, de.min_history - decline_n), 0.0)

    @property
    def watched(self) -> bool:
        """Whether a local test has the history it needs (before, the series is *warming up*: no local
        test can fire). The clock makes it a number of responses, whatever the calendar time."""
        return self._history_needed() <= 0.0

    def needs(self) -> float:
        """About how many more responses the series needs to be :attr:`watched` (0 once it is)."""
        return self._history_needed()

    @property
    def local_alarm(self) -> bool:
        """A trigger that needs no peers: trend, gradual decline or expectation (or a river alarm)."""
        if self.own_triggers and (self.trend.alarm or self.decline.alarm or self.expectation.alarm):
            return True
        return any(alarm.alarm for alarm in self.river)

    def triggers(self) -> list[str]:
        own = self.own_triggers
        return self._triggers(own and (self.trend.alarm or self.decline.alarm), own and self.expectation.alarm,
                              self.peer.alarm)

    def _triggers(self, trend: bool, expectation: bool, peer: bool) -> list[str]:
        """The trigger names from the alarms of Boucle's detectors (``trend`` and ``expectation``
        already false without :attr:`own_triggers`) and of the river alarms."""
        out = []
        raised = {alarm.trigger for alarm in self.river if alarm.alarm} if self.river else ()
        if trend or "trend" in raised:
            out.append("trend")
        if expectation or "expectation" in raised:
            out.append("expectation")
        if peer:
            out.append("peer")
        return out

    def verdict(self) -> tuple[list[str], dict[str, float]]:
        """``(triggers(), evidence())`` at once: each detector's numbers are computed once (the
        expectation's z, the trend's slope, the decline's fit) and both are read from them.

        >>> import random
        >>> rng, watch = random.Random(2), AttributeWatch()
        >>> for i in range(24 * 24):
        ...     watch.update(rng.gauss(4.0 - (i > 24 * 21), 0.9), i * 3_600_000)
        >>> watch.verdict() == (watch.triggers(), watch.evidence()), watch.verdict()[0]
        (True, ['trend', 'expectation'])
        """
        expectation, trend, decline = self.expectation, self.trend, self.decline
        ex = expectation.evidence()
        slope = trend.slope()
        fit = decline._settle()
        own = self.own_triggers
        triggers = self._triggers(
            own and (trend.step_alarm or trend.slope_alarm_of(slope) or decline.alarm_of(fit)),
            own and expectation.alarm_of(ex["z"]), self.peer.alarm)
        return triggers, self._evidence(ex, trend.evidence(slope), self.peer.evidence())

    def evidence(self) -> dict[str, float]:
        """Flat numbers: level (recent), baseline (expected), z, n, slope, cusum, peer median..."""
        return self._evidence(self.expectation.evidence(), self.trend.evidence(), self.peer.evidence())

    def _evidence(self, ex: dict[str, float], tr: dict[str, float], pe: dict[str, float]) -> dict[str, float]:
        factor = self.clock.factor  # the detectors count days of the series' clock: back to the calendar
        out = {
            "level": ex["level"],
            "baseline": ex["expected"],
            "z": ex["z"],
            "n": ex["n"],
            "std_err": ex["std_err"],
            "n_history": ex["n_history"],
            "cusum": tr["cusum"],
            "cusum_threshold": tr["threshold"],
            "drop": tr["drop"],
            # The run of low responses the CUSUM is adding up: on a thin series it says what the
            # decayed recent window (``n`` well under one response) no longer can.
            "run_n": tr["n"],
            "run_level": tr["level"] - tr["drop"],
            "run_baseline": tr["level"],
            "slope": tr["slope"] * factor,
            "slope_z": tr["slope_z"],
            "decline": self.decline.decline,
            "decline_z": self.decline.z,
            "decline_days": self.decline.onset_days / factor,
            "peer_level": pe["level"],
            "peer_n": pe["n"],
            "clock": factor,
        }
        out.update(peer_evidence(pe))
        rate = self.clock.rate_per_day
        if rate is not None:  # the message's slope unit follows it (per day, week or month)
            out["rate_per_day"] = rate
        for i, alarm in enumerate(self.river):  # the first river alarm's numbers, then river_1_..., ...
            suffix = f"_{i}" if i else ""
            out.update({f"river{suffix}{key[5:]}": value for key, value in alarm.evidence().items()})
        return out
