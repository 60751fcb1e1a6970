"""Pure online detectors (river style): numbers in, scores out; no bytewax, no I/O.

- :mod:`detectors.decayed` — time-decayed mean/variance with effective n (the building block);
- :mod:`detectors.trend` — CUSUM below a reference and a decayed regression slope;
- :mod:`detectors.decline` — a slow slide: hinge regression on daily means over two weeks;
- :mod:`detectors.expectation` — level against the site's own seasonal history (z);
- :mod:`detectors.halo` — the part of a rating the respondent's other ratings explain;
- :mod:`detectors.peer` — robust comparison with the sites of a peer group;
- :mod:`detectors.importance` — online key-driver analysis (normalised weights);
- :mod:`detectors.watch` — the per-series detectors of one (site, attribute) together.
"""

from boucle.detectors.decayed import DecayedMoments
from boucle.detectors.decline import GradualDecline
from boucle.detectors.expectation import SeasonalExpectation
from boucle.detectors.halo import Halo
from boucle.detectors.importance import KeyDriverImportance
from boucle.detectors.peer import PeerComparison, PeerGroup
from boucle.detectors.trend import DownwardTrend
from boucle.detectors.watch import AttributeWatch

__all__ = [
    "AttributeWatch",
    "DecayedMoments",
    "DownwardTrend",
    "GradualDecline",
    "Halo",
    "KeyDriverImportance",
    "PeerComparison",
    "PeerGroup",
    "SeasonalExpectation",
]
