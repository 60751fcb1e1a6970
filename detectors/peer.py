"""Peer comparison: a site's recent level against sites of the same region (and kind).

Two objects, because the comparison needs cross-site state while detectors know numbers, not sites:

- :class:`PeerGroup` holds, for one group of peers (e.g. one region and attribute), each member's
  recent mean, number of responses and spread, under an opaque member id. It compares one member
  with the *others* robustly: median and MAD (scaled to a standard deviation), and only when at
  least ``min_peers`` peers have ``min_n`` responses each;
- :class:`PeerComparison` watches one series: its recent time-decayed mean (``update``), the
  :meth:`summary` it publishes to its group, and the verdict (``evidence(group, member)``).

The z-score divides the gap to the peer median by the peers' spread (which already holds their own
sampling noise) and the member's own standard error, so a site with few responses is not singled
out. The gap that must reach ``min_gap`` rating points is the member's *shrunk* one (empirical Bayes:
the peers are the prior, of spread ``s``; a member of standard error ``se`` keeps the share
``B = s² / (s² + se²)`` of its raw gap): a thin site's level is pulled towards its peers instead of
being ignored or taken at face value.

>>> from boucle.detectors.peer import PeerComparison, PeerGroup
>>> group = PeerGroup(min_peers=4, min_n=20)
>>> for member, mean in [("a", 4.1), ("b", 4.0), ("c", 3.9), ("d", 4.2), ("e", 4.0)]:
...     group.update(member, mean, n=60, sd=0.9)
>>> site = PeerComparison(half_life_hours=72)
>>> for i in range(60):
...     site.update(3.1, t_ms=i * 3_600_000)
>>> group.update("f", *site.summary())
>>> e = site.evidence(group, "f")
>>> e["peer_median"], e["n_peers"], site.alarm, round(e["gap"], 1)
(4.0, 5.0, True, -0.9)
>>> group.compare("f", 3.1, 2.0, 0.9)["z"] > -3   # the same level on 2 responses: no evidence
True
>>> thin = group.compare("f", 3.1, 6.0, 0.9)       # on 6: the level is shrunk towards the peers
>>> round(thin["gap"], 2), round(thin["shrunk_gap"], 2), peer_alarm(thin, z_threshold=2.0, min_gap=0.3)
(-0.9, -0.13, False)

Both resume from their plain :meth:`~PeerGroup.state` under the parameters of the day:

>>> PeerComparison.from_state(site.state(), min_gap=1.0).alarm        # a 0.9 gap is not enough now
False
>>> PeerGroup.from_state(group.state(), min_peers=6).compare("f", 3.1, 60, 0.9) is None
True
"""

from __future__ import annotations

import math
from bisect import bisect_left, insort
from typing import Any

from boucle.config.times import HOUR_MS
from boucle.detectors.decayed import DecayedMoments
from boucle.detectors.protocol import RiverDrift

__all__ = ["PeerComparison", "PeerGroup", "peer_alarm", "peer_evidence"]

_MAD_TO_SD = 1.4826


_EVIDENCE = ("peer_median", "peer_spread", "n_peers", "gap", "shrunk_gap")


def peer_evidence(comparison: dict[str, float]) -> dict[str, float]:
    """The numbers of a :meth:`PeerGroup.compare` result under an alert's evidence names (its ``z``
    as ``peer_z``); what the result lacks is left out."""
    out = {key: comparison[key] for key in _EVIDENCE if key in comparison}
    if "z" in comparison:
        out["peer_z"] = comparison["z"]
    return out


def peer_alarm(comparison: dict[str, float] | None, z_threshold: float, min_gap: float) -> bool:
    """Whether a :meth:`PeerGroup.compare` result is a peer alarm: z at most ``-z_threshold`` and the
    shrunk gap at most ``-min_gap`` rating points."""
    if comparison is None:
        return False
    return comparison["z"] <= -z_threshold and comparison["shrunk_gap"] <= -min_gap


class PeerGroup:
    """Recent mean, n and spread of each member of a peer group; robust comparisons.

    The means of the members with ``min_n`` responses are also kept sorted, so that a comparison
    (median and MAD of the others) takes a few bisections whatever the group's size, instead of a
    sort of every member: a region of 2,000 thin sites costs a response what one of 5 does. The
    numbers are those of :func:`statistics.median` over the others, to the float.
    """

    def __init__(self, min_peers: int = 5, min_n: float = 20.0, spread_floor: float = 0.1):
        self.min_peers = min_peers
        self.min_n = min_n
        self.spread_floor = spread_floor
        self.members: dict[str, tuple[float, float, float]] = {}
        self._sorted: list[float] = []  # the means of the members with n >= min_n, ascending

    def _eligible(self, values: tuple[float, float, float] | None) -> bool:
        return values is not None and values[1] >= self.min_n and not math.isnan(values[0])

    def update(self, member: str, mean: float, n: float, sd: float = 1.0) -> None:
        member = str(member)
        new = (float(mean), float(n), float(sd))
        old = self.members.get(member)
        self.members[member] = new
        if self._eligible(old):
            del self._sorted[bisect_left(self._sorted, old[0])]
        if self._eligible(new):
            insort(self._sorted, new[0])

    def state(self) -> dict[str, Any]:
        """The members as plain data: ``{"members": {member: (mean, n, sd)}}`` (no parameter)."""
        return {"members": dict(self.members)}  # the values are tuples: a shallow copy is a copy

    @classmethod
    def from_state(cls, state: dict[str, Any], **params: Any) -> "PeerGroup":
        """A group built with ``params`` (the constructor's) that resumes from :meth:`state`."""
        return cls(**params)._load(state)

    def _load(self, state: dict[str, Any]) -> "PeerGroup":
        self.members = {member: tuple(values) for member, values in state["members"].items()}
        self._sorted = sorted(v[0] for v in self.members.values() if self._eligible(v))
        return self

    def remove(self, member: str) -> None:
        old = self.members.pop(member, None)
        if self._eligible(old):
            del self._sorted[bisect_left(self._sorted, old[0])]

    def peers(self, member: str) -> list[float]:
        """Recent means of the other members with enough responses."""
        min_n = self.min_n
        return [m for key, (m, n, _) in self.members.items() if key != member and n >= min_n]

    def compare(self, member: str, mean: float, n: float, sd: float) -> dict[str, float] | None:
        """Gap and robust z of ``mean`` (on ``n`` responses) against the other members, or None."""
        others = _Without(self._sorted, self.members.get(member) if self._eligible(self.members.get(member)) else None)
        if others.n < self.min_peers:
            return None
        med = others.median()
        spread = max(_MAD_TO_SD * others.median_distance(med), self.spread_floor)
        se = sd / math.sqrt(n) if n > 0 else math.inf
        scale = math.sqrt(spread * spread + se * se)
        gap = mean - med
        shrink = spread * spread / (scale * scale)  # empirical Bayes: the peers are the prior
        return {"peer_median": med, "peer_spread": spread, "n_peers": float(others.n), "gap": gap,
                "z": gap / scale, "shrunk_gap": gap * shrink}


class _Without:
    """A sorted list of floats read as if one member's value were not in it: order statistics in
    O(log n) (the median, the median absolute distance to a centre), equal to those of
    :func:`statistics.median` over the plain list.

    >>> values = _Without([1.0, 2.0, 2.0, 4.0, 7.0], (2.0, 0, 0))
    >>> values.n, values.median(), values.median_distance(3.0)   # of 1, 2, 4, 7: distances 2, 1, 1, 4
    (4, 3.0, 1.5)
    """

    __slots__ = ("values", "skip", "n")

    def __init__(self, values: list[float], member: tuple[float, float, float] | None) -> None:
        self.values = values
        self.skip = len(values) if member is None else bisect_left(values, member[0])
        self.n = len(values) - (member is not None)

    def at(self, i: int) -> float:
        return self.values[i if i < self.skip else i + 1]

    def median(self) -> float:
        half = self.n // 2
        return self.at(half) if self.n % 2 else (self.at(half - 1) + self.at(half)) / 2

    def median_distance(self, centre: float) -> float:
        """The median of ``abs(x - centre)`` over the values."""
        half = self.n // 2
        if self.n % 2:
            return self._kth_distance(half, centre)
        return (self._kth_distance(half - 1, centre) + self._kth_distance(half, centre)) / 2

    def _kth_distance(self, k: int, centre: float) -> float:
        """The ``k``-th smallest (from 0) of the distances to ``centre``: those below it, read from
        ``centre`` down, and those at or above it, read up, are two ascending runs; the classic
        selection in two sorted arrays finds how many of the ``k + 1`` smallest come from each."""
        below = bisect_left(self.values, centre)
        below -= self.skip < below  # positions in the list without the member
        above = self.n - below

        def low(i: int) -> float:  # i-th distance below the centre
            return centre - self.at(below - 1 - i)

        def high(j: int) -> float:  # j-th distance at or above it
            return self.at(below + j) - centre

        lo, hi = max(0, k + 1 - above), min(k + 1, below)
        while True:  # i distances from below, k + 1 - i from above
            i = (lo + hi) // 2
            j = k + 1 - i
            if i < below and j > 0 and high(j - 1) > low(i):
                lo = i + 1
            elif i > 0 and j < above and low(i - 1) > high(j):
                hi = i - 1
            else:
                return max(low(i - 1) if i > 0 else -math.inf, high(j - 1) if j > 0 else -math.inf)


class PeerComparison(RiverDrift):
    """One series' recent level, and how it compares with its :class:`PeerGroup`."""

    def __init__(
        self,
        half_life_hours: float = 72.0,
        z_threshold: float = 3.0,
        min_n: float = 20.0,
        min_gap: float = 0.3,
        sd_floor: float = 0.5,
    ):
        self.half_life_hours = half_life_hours
        self.z_threshold = z_threshold
        self.min_n = min_n
        self.min_gap = min_gap
        self.sd_floor = sd_floor
        self.recent = DecayedMoments(half_life_hours * HOUR_MS)
        self.last: dict[str, float] | None = None  # the latest comparison

    def update(self, x: float, t_ms: int | None = None) -> None:
        """Learn one rating (the verdict needs :meth:`evidence` with the group).
        Without ``t_ms``, at the newest time seen (river's protocol)."""
        self.recent.update(x, (self.recent.t_ms or 0) if t_ms is None else t_ms)

    @classmethod
    def _unit_test_params(cls):
        yield {}
        yield {"half_life_hours": 24.0, "min_gap": 0.5}

    def copy(self) -> "PeerComparison":
        """An independent copy (same state, same future outputs; the latest comparison is shared, read-only)."""
        new = object.__new__(PeerComparison)
        new.__dict__.update(self.__dict__)
        new.recent = self.recent.copy()
        return new

    def update_many(self, xs: list[float], ts: list[int]) -> None:
        self.recent.update_many(xs, ts)

    def state(self) -> dict[str, Any]:
        """The recent moments and the latest comparison (a dict of numbers or None), no parameter."""
        return {"recent": self.recent.state(), "last": None if self.last is None else dict(self.last)}

    @classmethod
    def from_state(cls, state: dict[str, Any], **params: Any) -> "PeerComparison":
        """A detector built with ``params`` (the constructor's) that resumes from :meth:`state`; the
        latest comparison is kept, judged against the current thresholds."""
        return cls(**params)._load(state)

    def _load(self, state: dict[str, Any]) -> "PeerComparison":
        self.recent._load(state["recent"])
        last = state["last"]
        self.last = None if last is None else dict(last)
        return self

    def summary(self) -> tuple[float, float, float]:
        """(recent mean, effective n, sd): what the series publishes to its peer group."""
        r = self.recent
        return r.mean, r.n_eff, max(math.sqrt(r.var), self.sd_floor)

    def evidence(self, group: PeerGroup | None = None, member: str = "") -> dict[str, float]:
        """Compare with ``group`` (if given) and remember the result; level, n and the comparison."""
        mean, n, sd = self.summary()
        if group is not None:
            self.last = group.compare(member, mean, n, sd) if n >= self.min_n else None
        out = {"level": mean, "n": n}
        if self.last is not None:
            out.update(self.last)
        return out

    @property
    def alarm(self) -> bool:
        if self.recent.n_eff < self.min_n:
            return False
        return peer_alarm(self.last, self.z_threshold, self.min_gap)
