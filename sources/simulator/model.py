"""The response model: how attributes are rated and how they drive NPS, CSAT and CES.

Each response has a latent satisfaction ``s ~ N(0, 1)``. The quality of attribute *j*, on a 1-5
scale, is ``base_j + site effects + LOADING * s + NOISE * e_j`` (plus seasonality and incidents);
its rating is that quality rounded and clipped. NPS, CSAT and CES are driven by the attribute
ratings with different weights, plus noise, so attributes really drive the headline scores.

>>> model = QuestionModel.from_names(["waiting_time", "store_layout", "mystery"])
>>> model.w_nps.round(2).tolist()
[0.65, 0.12, 0.24]
>>> round(expected_rating(5.0, 0.9) - expected_rating(2.0, 0.9), 2)
2.61
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = [
    "ATTRIBUTE_DEFAULTS",
    "LOADING",
    "NOISE",
    "QuestionModel",
    "expected_rating",
    "shift_for_drop",
]

LOADING = 0.5  # how much the latent satisfaction moves every attribute
NOISE = 0.8  # attribute-specific noise (what lets weights show up as different correlations)

# name: (base quality on 1-5, answer probability, weight in NPS, in CSAT, in CES)
ATTRIBUTE_DEFAULTS: dict[str, tuple[float, float, float, float, float]] = {
    "waiting_time": (3.55, 0.93, 0.22, 0.14, 0.26),
    "staff_friendliness": (4.10, 0.90, 0.20, 0.16, 0.06),
    "staff_competence": (3.90, 0.82, 0.15, 0.18, 0.08),
    "cleanliness": (4.05, 0.78, 0.06, 0.10, 0.04),
    "product_availability": (3.70, 0.85, 0.12, 0.20, 0.12),
    "checkout_speed": (3.65, 0.88, 0.11, 0.10, 0.26),
    "price_perception": (3.40, 0.72, 0.10, 0.09, 0.03),
    "store_layout": (3.90, 0.62, 0.04, 0.03, 0.15),
}
_UNKNOWN = (3.80, 0.75, 0.08, 0.08, 0.08)


@dataclass(frozen=True)
class QuestionModel:
    """Per-attribute constants of the network, in the order of ``settings.attributes``."""

    names: tuple[str, ...]
    base: np.ndarray
    answer_p: np.ndarray
    w_nps: np.ndarray
    w_csat: np.ndarray
    w_ces: np.ndarray
    loading: float = LOADING
    noise: float = NOISE

    @classmethod
    def from_names(cls, names, *, answer_p=None, base_shift: float = 0.0, loading: float | None = None,
                   noise: float | None = None) -> "QuestionModel":
        """The defaults of :data:`ATTRIBUTE_DEFAULTS`; a network profile may replace the answer
        probabilities, shift every base quality and set its own halo (``loading``) and noise."""
        names = tuple(names)
        rows = np.array([ATTRIBUTE_DEFAULTS.get(n, _UNKNOWN) for n in names], dtype=float).reshape(-1, 5)

        def norm(w):
            total = w.sum()
            return w / total if total > 0 else w

        answer = rows[:, 1] if answer_p is None else np.asarray(answer_p, dtype=float)
        return cls(names, rows[:, 0] + base_shift, answer, norm(rows[:, 2]), norm(rows[:, 3]), norm(rows[:, 4]),
                   LOADING if loading is None else float(loading), NOISE if noise is None else float(noise))

    @property
    def latent_sd(self) -> float:
        return math.sqrt(self.loading**2 + self.noise**2)

    def index(self, name: str) -> int:
        return self.names.index(name)


def _phi(x: float) -> float:
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


def expected_rating(mu: float, sd: float, lo: int = 1, hi: int = 5) -> float:
    """Mean of ``clip(round(N(mu, sd)), lo, hi)``."""
    total = 0.0
    for k in range(lo, hi + 1):
        upper = 1.0 if k == hi else _phi((k + 0.5 - mu) / sd)
        lower = 0.0 if k == lo else _phi((k - 0.5 - mu) / sd)
        total += k * (upper - lower)
    return total


def shift_for_drop(mu: float, sd: float, drop: float) -> float:
    """The shift of the latent quality that lowers the mean *rating* by ``drop`` (bisection).

    Rounding and clipping at 1 and 5 damp a shift; incidents are labelled with the drop a
    detector can observe, so they move the latent quality by this larger amount.

    >>> round(shift_for_drop(4.0, 0.95, 1.0), 2) > 1.0
    True
    """
    target = expected_rating(mu, sd) - drop
    lo, hi = 0.0, 6.0
    for _ in range(40):
        mid = (lo + hi) / 2
        if expected_rating(mu - mid, sd) > target:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2
