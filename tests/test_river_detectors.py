"""river in the same harness: Boucle's detectors on river's protocols and checks, river's detectors
through the adapter (``detectors.river_adapter``) and the operator path."""

from __future__ import annotations

import random

import pytest
from river import checks

from boucle.detectors import DownwardTrend, GradualDecline, PeerComparison, SeasonalExpectation

HOUR = 3_600_000
PROTOCOL = (DownwardTrend, GradualDecline, SeasonalExpectation, PeerComparison)


def _river_cases():
    for cls in PROTOCOL:
        for params in cls._unit_test_params():
            yield pytest.param(cls, params, id=f"{cls.__name__}({', '.join(f'{k}={v}' for k, v in params.items())})")


@pytest.mark.parametrize("cls, params", list(_river_cases()))
def test_river_estimator_checks(cls, params):
    """river's own checks (repr, clone, parameters, pickling, mutate, documentation...)."""
    model = cls(**params)
    ran = [check.__name__ for check in checks.yield_checks(model)]
    assert "check_clone_with_new_params_applies" in ran and "check_get_params_matches_signature" in ran
    checks.check_estimator(model)


@pytest.mark.parametrize("cls", [DownwardTrend, GradualDecline, SeasonalExpectation])
def test_drift_protocol_on_a_step_drop(cls):
    """``update(x, t_ms)`` / ``drift_detected``: a full point lost after a month is a drift, the month
    before it is not; ``clone`` is fresh, ``_reset`` forgets what was learnt and keeps the parameters."""
    rng, det = random.Random(3), cls()
    for i in range(24 * 30):
        det.update(rng.gauss(4.0, 0.9), i * HOUR)
        det.update(rng.gauss(4.0, 0.9), i * HOUR + 60_000)
        assert not det.drift_detected
    for i in range(24 * 30, 24 * 36):
        det.update(rng.gauss(3.0, 0.9), i * HOUR)
        det.update(rng.gauss(3.0, 0.9), i * HOUR + 60_000)
    assert det.drift_detected and det.alarm
    assert not det.clone().drift_detected
    params = det._get_params()
    det._reset()
    assert not det.drift_detected and det._get_params() == params and det.state() == cls(**params).state()


def test_timeless_updates_are_at_the_newest_time():
    """river's ``update(x)`` has no clock: the value is learnt at the newest event time seen."""
    a, b = DownwardTrend(), DownwardTrend()
    for i in range(50):
        a.update(4.0, i * HOUR)
        b.update(4.0, i * HOUR)
    a.update(2.0)
    b.update(2.0, 49 * HOUR)
    assert a.state() == b.state()
    timeless = GradualDecline()
    for _ in range(10):
        timeless.update(4.0)
    assert timeless.state()["t_ms"] == 0 and sum(timeless.bins[0::3]) == 10


def test_expectation_scores_ratings_below_expectation():
    """The supervised anomaly face (``learn_one(x, y)``, ``score_one(x, y)``, as river's
    ``anomaly.GaussianScorer``): 0 until ``min_history``, then higher the further below expectation."""
    rng, det = random.Random(5), SeasonalExpectation()
    assert det.score_one(None, 1.0) == 0.0
    for i in range(24 * 14):
        det.learn_one({"t_ms": i * HOUR}, rng.gauss(4.0, 0.9))
    t = {"t_ms": 24 * 14 * HOUR}
    scores = [det.score_one(t, y) for y in (5.0, 4.0, 3.0, 2.0, 1.0)]
    assert scores[0] == 0.0 and scores == sorted(scores) and scores[-1] > 0.95
