"""river's face of Boucle's detectors: ``update`` / ``drift_detected``, ``clone``, ``_unit_test_params``.

The series detectors (:class:`~detectors.DownwardTrend`, :class:`~detectors.GradualDecline`,
:class:`~detectors.SeasonalExpectation`, :class:`~detectors.PeerComparison`) are
:class:`river.base.DriftDetector` s: a downward change of the level is their drift, and
``drift_detected`` is their ``alarm``. Unlike river's detectors, which reset once they have
signalled, theirs is a state: it holds while the evidence does (an open alert needs that). Their
constructor parameters are attributes of the same names, so river's ``clone``, ``_get_params``,
``repr`` and :func:`river.checks.check_estimator` work on them (``tests/test_river_detectors.py``).

``update(x)`` without an event time places the value at the newest time seen (nothing fades
between two timeless updates): river's protocol knows no clock, Boucle's detectors fade with time.

>>> from boucle.detectors import DownwardTrend
>>> det = DownwardTrend(h=15.0)
>>> for i in range(100):
...     det.update(4.0 - (i >= 60) * 2.0, i * 3_600_000)
>>> det.drift_detected, det.clone().drift_detected, det.clone({"h": 1e9}).h
(True, False, 1000000000.0)
"""

from __future__ import annotations

from river import base

__all__ = ["RiverDrift"]


class RiverDrift(base.DriftDetector, base.Estimator):
    """Mixin: ``drift_detected`` is ``alarm``; ``_reset`` forgets what was learnt, keeps the parameters.
    An :class:`river.base.Estimator` too, so that :func:`river.checks.check_estimator` takes it (river's
    own drift detectors are not, and that function refuses them)."""

    @property
    def drift_detected(self) -> bool:
        """Whether the series is in alarm after the last update (held while the evidence holds)."""
        return self.alarm

    def _reset(self) -> None:
        fresh = type(self)(**self._get_params())
        self.__dict__.clear()
        self.__dict__.update(fresh.__dict__)
