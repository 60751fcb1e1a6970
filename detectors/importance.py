"""Importance: online key-driver analysis — how much each attribute drives NPS (or CSAT).

Respondents skip questions, so the statistic keeps time-decayed *pairwise-complete* moments:
for every pair of variables (the target and each attribute), the decayed count, sums, sums of
squares and cross-products over the responses that answered both. From them come the correlation
of each attribute with the target and between attributes; a ridge-regularised regression on that
correlation matrix gives standardised coefficients β, and the driver weights are Pratt's measure
``β_j · r_j`` (its share of the explained variance), clipped at zero and normalised to sum to 1.

It says when it knows (:meth:`~KeyDriverImportance.estimate`):

- every correlation is shrunk towards a prior by the number of responses behind *it*
  (empirical Bayes: ``r' = (n·r + s·r₀) / (n + s)`` with ``s`` = ``prior_strength``, the
  precision weighting of a correlation whose sampling variance falls as ``1/n``), so a question
  answered by 6 respondents cannot win by a chance correlation;
- the prior ``r₀`` is the network's pooled statistic when one is given (a region's weights lean on
  the network's until the region has its own evidence), else 0 (no effect);
- the status is ``learnt`` (``min_n`` responses of its own), ``network`` (fewer, the network's
  evidence carries it) or ``not_enough_data`` (neither has ``min_n``): then there are no weights.

State is four small square matrices (attributes + 1), fixed once the catalogue is known: keep one
instance per region and one for the network (:meth:`~KeyDriverImportance.add` pools them).

>>> from boucle.detectors.importance import KeyDriverImportance
>>> import random
>>> rng = random.Random(3)
>>> kda = KeyDriverImportance()
>>> kda.estimate().status
'not_enough_data'
>>> for i in range(2000):
...     wait, clean, layout = (rng.gauss(0, 1) for _ in range(3))
...     x = {"waiting_time": wait, "cleanliness": clean, "store_layout": layout}
...     if i % 3 == 0:
...         del x["store_layout"]               # a skipped question
...     kda.learn_one(x, 3 * wait + 1 * clean + rng.gauss(0, 1), t_ms=i * 60_000)
>>> w = kda.weights()
>>> round(sum(w.values()), 6), max(w, key=w.get), w["store_layout"] < 0.05
(1.0, 'waiting_time', True)
>>> kda.estimate().status
'learnt'

Its :meth:`~KeyDriverImportance.state` is the rows' names and the four matrices as lists; rebuilt under
other parameters (a shorter memory), it goes on from the same sums, and a name of the current
catalogue it had not seen is added after the others:

>>> again = KeyDriverImportance.from_state(kda.state(), half_life_days=7.0, names=["cleanliness", "parking"])
>>> again.n == kda.n, again.half_life_days, again.names
(True, 7.0, ['waiting_time', 'cleanliness', 'store_layout', 'parking'])
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from boucle.config.times import DAY_MS
from boucle.detectors.decayed import decay_factor

__all__ = ["ImportanceEstimate", "KeyDriverImportance", "NOT_ENOUGH_DATA"]

NOT_ENOUGH_DATA = "not_enough_data"
Status = Literal["learnt", "network", "not_enough_data"]


@dataclass(frozen=True, slots=True)
class ImportanceEstimate:
    """What the statistic knows: ``weights`` (sum to 1; empty when ``not_enough_data``), the shrunk
    correlation of each attribute with the target, ``n`` (decayed responses with a target) and
    ``answered`` (decayed responses that answered both the attribute and the target)."""

    status: Status
    weights: dict[str, float]
    correlations: dict[str, float]
    n: float
    answered: dict[str, float] = field(default_factory=dict)

    @property
    def known(self) -> bool:
        return self.status != NOT_ENOUGH_DATA


class KeyDriverImportance:
    """Decayed pairwise moments of (target, attributes) and normalised driver weights."""

    def __init__(self, half_life_days: float = 30.0, ridge: float = 0.05, min_n: float = 50.0,
                 prior_strength: float = 30.0, names: list[str] | tuple[str, ...] = ()):
        self.half_life_days = half_life_days
        self.ridge = ridge
        self.min_n = min_n
        self.prior_strength = prior_strength
        self.names: list[str] = []
        self.index: dict[str, int] = {}
        size = 1
        self.w = np.zeros((size, size))
        self.s = np.zeros((size, size))  # s[i, j]: sum of x_i over responses answering i and j
        self.ss = np.zeros((size, size))  # sum of x_i² over the same
        self.sxy = np.zeros((size, size))  # sum of x_i x_j
        self.t_ms: int | None = None
        for name in names:
            self._add(name)

    def _add(self, name: str) -> int:
        i = len(self.names) + 1  # 0 is the target
        self.names.append(name)
        self.index[name] = i
        for attr in ("w", "s", "ss", "sxy"):
            old = getattr(self, attr)
            new = np.zeros((i + 1, i + 1))
            new[:i, :i] = old
            setattr(self, attr, new)
        return i

    def learn_one(self, x: dict[str, float], y: float, t_ms: int | None = None) -> None:
        """Learn one response: attribute ratings ``x`` (missing ones absent) and target ``y``."""
        self.learn_many([(x, y)], t_ms)

    def learn_many(self, responses: list[tuple[dict[str, float], float]], t_ms: int | None = None) -> None:
        """Learn responses ``(x, y)`` of one event time at once: the same sums as ``learn_one`` on each.

        Every pairwise sum receives the responses' terms one by one in their order, so the result is
        exactly that of the loop (one call per response), at a fraction of its cost.
        """
        if not responses:
            return
        weight = 1.0
        if t_ms is not None:
            if self.t_ms is None:
                self.t_ms = t_ms
            elif t_ms > self.t_ms:
                f = decay_factor(t_ms - self.t_ms, self.half_life_days * DAY_MS)
                for m in (self.w, self.s, self.ss, self.sxy):
                    m *= f
                self.t_ms = t_ms
            else:
                weight = decay_factor(self.t_ms - t_ms, self.half_life_days * DAY_MS)
        index = self.index
        rows = []  # per response: (variable, value) answered, the target first (variable 0)
        for x, y in responses:
            row = [(0, float(y))]
            for name, value in x.items():
                if value is None:
                    continue
                i = index.get(name)
                if i is None:
                    i = self._add(name)
                row.append((i, float(value)))
            rows.append(row)
        size = len(self.names) + 1
        answered = np.zeros((len(rows), size), dtype=bool)
        v = np.zeros((len(rows), size))
        for r, row in enumerate(rows):
            for i, value in row:
                answered[r, i] = True
                v[r, i] = value
        # Each response's terms on the pairs it answered (0 elsewhere, which adds nothing), added to
        # the sums response after response: every cell gets its terms in order.
        both = answered[:, :, None] & answered[:, None, :]
        vi = v[:, :, None]
        terms = (np.where(both, weight, 0.0), np.where(both, weight * vi, 0.0),
                 np.where(both, weight * (vi * vi), 0.0), np.where(both, weight * (vi * v[:, None, :]), 0.0))
        for r in range(len(rows)):
            for total, term in zip((self.w, self.s, self.ss, self.sxy), terms):
                total += term[r]

    # -- state as plain data (see detectors/__init__.py) ---------------------------------------
    def state(self) -> dict[str, Any]:
        """``rows``: the attribute of each matrix row after the target's (row 0, the names learnt so
        far, the catalogue's first), and the decayed pairwise sums as nested lists; no parameter."""
        return {"t_ms": self.t_ms, "rows": list(self.names), "w": self.w.tolist(), "s": self.s.tolist(),
                "ss": self.ss.tolist(), "sxy": self.sxy.tolist()}

    @classmethod
    def from_state(cls, state: dict[str, Any], **params: Any) -> "KeyDriverImportance":
        """A statistic built with ``params`` (the constructor's) that resumes from :meth:`state`. The
        state's names keep their rows; names of ``params`` it lacks are added after them (as an
        attribute first answered now would be), names it has that ``params`` lacks are kept."""
        return cls(**params)._load(state)

    def _load(self, state: dict[str, Any]) -> "KeyDriverImportance":
        rows = state["rows"]
        extra = [name for name in self.names if name not in rows]
        self.names = list(rows)
        self.index = {name: i + 1 for i, name in enumerate(self.names)}
        for attr in ("w", "s", "ss", "sxy"):
            setattr(self, attr, np.array(state[attr], dtype=float).reshape(len(self.names) + 1, -1))
        self.t_ms = state["t_ms"]
        for name in extra:
            self._add(name)
        return self

    @property
    def n(self) -> float:
        """Decayed number of responses with a target."""
        return float(self.w[0, 0])

    def correlations(self) -> np.ndarray:
        """Pairwise-complete correlation matrix, target first (0 where undetermined)."""
        w = np.where(self.w > 0, self.w, 1.0)
        mean_i = self.s / w
        mean_j = self.s.T / w
        cov = self.sxy / w - mean_i * mean_j
        var_i = np.maximum(self.ss / w - mean_i**2, 0.0)
        var_j = var_i.T
        denominator = np.sqrt(var_i * var_j)
        r = np.where((denominator > 1e-12) & (self.w >= 2), cov / np.where(denominator > 0, denominator, 1.0), 0.0)
        np.fill_diagonal(r, 1.0)
        return np.clip(r, -1.0, 1.0)

    def add(self, other: "KeyDriverImportance") -> None:
        """Pool ``other``'s moments into this one (the network = the sum of its regions), each decayed
        to the later of the two times; names it has that this lacks are added."""
        if other.t_ms is None:
            return
        for name in other.names:
            if name not in self.index:
                self._add(name)
        weight = 1.0
        if self.t_ms is None:
            self.t_ms = other.t_ms
        elif other.t_ms > self.t_ms:
            f = decay_factor(other.t_ms - self.t_ms, self.half_life_days * DAY_MS)
            for m in (self.w, self.s, self.ss, self.sxy):
                m *= f
            self.t_ms = other.t_ms
        else:
            weight = decay_factor(self.t_ms - other.t_ms, self.half_life_days * DAY_MS)
        rows = np.array([0] + [self.index[name] for name in other.names])
        cells = np.ix_(rows, rows)
        for attr in ("w", "s", "ss", "sxy"):
            getattr(self, attr)[cells] += weight * getattr(other, attr)

    def shrunk_correlations(self, prior: "KeyDriverImportance | None" = None) -> np.ndarray:
        """:meth:`correlations` shrunk towards ``prior``'s (its own shrunk towards 0) by the decayed
        number of responses behind each: ``(n·r + s·r₀) / (n + s)``, ``s`` = ``prior_strength``."""
        r = self.correlations()
        r0 = np.eye(len(r))
        if prior is not None:
            p = prior.shrunk_correlations()
            rows = [0] + [prior.index.get(name, -1) for name in self.names]
            for a, pa in enumerate(rows):
                for b, pb in enumerate(rows):
                    if pa >= 0 and pb >= 0:
                        r0[a, b] = p[pa, pb]
        s = self.prior_strength
        if s <= 0:
            return r
        out = (self.w * r + s * r0) / (self.w + s)
        np.fill_diagonal(out, 1.0)
        return out

    def estimate(self, prior: "KeyDriverImportance | None" = None) -> ImportanceEstimate:
        """The weights with what they rest on (see the module): ``prior`` is the network's statistic."""
        k = len(self.names)
        answered = {name: float(self.w[0, i + 1]) for i, name in enumerate(self.names)}
        if self.n >= self.min_n:
            status: Status = "learnt"
        elif prior is not None and prior.n >= self.min_n:
            status = "network"
        else:
            return ImportanceEstimate(NOT_ENOUGH_DATA, {}, {name: 0.0 for name in self.names}, self.n, answered)
        r = self.shrunk_correlations(prior)
        rxx, rxy = r[1:, 1:], r[1:, 0]
        correlations = {name: float(rxy[i]) for i, name in enumerate(self.names)}
        # An attribute nobody here answered with the target takes the network's evidence, if any.
        usable = np.diag(self.w)[1:] >= 2
        if prior is not None:
            usable |= np.array([prior.w[0, prior.index[name]] >= 2 if name in prior.index else False
                                for name in self.names], dtype=bool)
        beta = np.zeros(k)
        if usable.any():
            sub = np.ix_(usable, usable)
            beta[usable] = np.linalg.solve(rxx[sub] + self.ridge * np.eye(int(usable.sum())), rxy[usable])
        share = np.clip(beta * rxy, 0.0, None)
        total = share.sum()
        if not math.isfinite(total) or total <= 0:
            return ImportanceEstimate(NOT_ENOUGH_DATA, {}, correlations, self.n, answered)
        weights = {name: float(share[i] / total) for i, name in enumerate(self.names)}
        return ImportanceEstimate(status, weights, correlations, self.n, answered)

    def weights(self, prior: "KeyDriverImportance | None" = None) -> dict[str, float]:
        """Normalised importance of each attribute (sums to 1); equal shares while the
        :meth:`estimate` is ``not_enough_data`` (for ranking only: :meth:`estimate` says so)."""
        k = len(self.names)
        if k == 0:
            return {}
        estimate = self.estimate(prior)
        return estimate.weights if estimate.known else {name: 1.0 / k for name in self.names}

    def evidence(self, prior: "KeyDriverImportance | None" = None) -> dict[str, Any]:
        """Weights (absent when not known), the shrunk correlation of each attribute with the
        target (prefixed ``r_``), ``n`` and the ``status``."""
        estimate = self.estimate(prior)
        out: dict[str, Any] = {"n": self.n, "status": estimate.status, **estimate.weights}
        out.update({f"r_{name}": value for name, value in estimate.correlations.items()})
        return out
