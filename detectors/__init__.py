"""Pure online detectors (river style): numbers in, scores out; no bytewax, no I/O.

- :mod:`detectors.decayed` — time-decayed mean/variance with effective n (the building block);
- :mod:`detectors.clock` — a series' own clock, slowed while it is thin (memories count responses);
- :mod:`detectors.trend` — CUSUM below a reference and a decayed regression slope;
- :mod:`detectors.decline` — a slow slide: hinge regression on daily means over two weeks;
- :mod:`detectors.expectation` — level against the site's own seasonal history (z);
- :mod:`detectors.halo` — the part of a rating the respondent's other ratings explain;
- :mod:`detectors.peer` — robust comparison with the sites of a peer group;
- :mod:`detectors.importance` — online key-driver analysis (normalised weights);
- :mod:`detectors.watch` — the per-series detectors of one (site, attribute) together.

Every detector exports what it has *learnt* as plain data and is rebuilt from the parameters of the
day and that state: ``det.state()`` is a dict of numbers, strings, ``None`` and lists/dicts/tuples
of them, never a parameter, and ``type(det).from_state(state, **params)`` takes the constructor's
keyword arguments. Rebuilt with the same parameters, a detector gives exactly the outputs of one
never interrupted; rebuilt with edited ones, the edited ones apply from then on. A part of the state
whose shape a parameter fixes (``SeasonalExpectation.block_hours``, ``GradualDecline.window_days``)
starts afresh when that parameter changes (each class says which). Snapshots of the operators are
built from these states (``tests/test_detectors_contract.py`` drives every detector through it).

>>> from boucle.detectors import DownwardTrend
>>> det = DownwardTrend(h=15.0)
>>> for i in range(100):
...     det.update(4.0 - (i >= 60) * 2.0, i * 3_600_000)
>>> det.alarm, DownwardTrend.from_state(det.state(), h=100.0).alarm   # a higher threshold, same data
(True, False)
"""

from boucle.detectors.clock import SeriesClock
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
    "SeriesClock",
]
