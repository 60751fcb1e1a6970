"""river in the same harness: Boucle's detectors on river's protocols and checks, river's detectors
through the adapter (``detectors.river_adapter``) and the operator path."""

from __future__ import annotations

import random

import pytest
from plain_data import is_plain
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


# -- river's detectors through the adapter and the operator path ------------------------------------
from test_attribute_alerts import _drive, _history, _idf_sites  # noqa: E402

from boucle.config.loader import SHIPPED_CONFIG, ConfigError, settings_from_dict  # noqa: E402
from boucle.operators.attribute_engine import AttributeAlertEngine, with_river_detector  # noqa: E402
from boucle.operators.attribute_replay import replay  # noqa: E402

PAGE_HINKLEY = 'river:drift.PageHinkley(mode="down", threshold=80.0)'


def _river_engine(settings, option: str = PAGE_HINKLEY, **entry) -> AttributeAlertEngine:
    return AttributeAlertEngine(with_river_detector(settings, option, questions=["waiting_time"], **entry))


def test_a_river_detector_alone_raises_the_alert_of_a_step_drop(settings):
    """PageHinkley in place of Boucle's local triggers on waiting_time: the step drop at one site is
    one alert there, raised by the river detector (its numbers in the evidence); the quiet sites and
    the other attribute (no river detector, Boucle's triggers) raise none."""
    engine = _river_engine(settings)
    sites = _idf_sites(settings)
    batches = _history(sites, 24, random.Random(1), drop={sites[0]: (20 * 24, 1.2)})
    opened = [a for a in replay(engine, batches) if a["status"] == "open"]
    assert [(a["site_id"], a["attribute"]) for a in opened] == [(sites[0], "waiting_time")]
    alert = opened[0]
    assert "trend" in alert["triggers"] and alert["evidence"]["river_drifts"] >= 1
    assert alert["evidence"]["river_alarm"] == 1.0 and alert["event_time"] >= "2026-10-21"
    # Boucle's own triggers were off there: with a river detector that never drifts, no alert.
    never = _river_engine(settings, "river:drift.NoDrift")
    assert [a for a in replay(never, batches) if a["status"] == "open"] == []


def test_river_detector_state_survives_snapshot_and_restore(settings):
    """Every state goes through its plain snapshot before, during and after the drop: the same alerts as
    a run never interrupted (ADWIN's Rust window included)."""
    sites = _idf_sites(settings)
    batches = _history(sites, 24, random.Random(1), drop={sites[0]: (20 * 24, 1.2)})
    for option in (PAGE_HINKLEY, "river:drift.ADWIN(delta=0.001)"):
        engine = _river_engine(settings, option)
        straight = replay(engine, batches)
        assert any(a["status"] == "open" for a in straight), option
        site_states: dict = {}
        resumed = _drive(engine, batches, site_states, {}, resume_at=(10 * 24, 20 * 24 + 5, 21 * 24, 22 * 24 + 3))
        assert resumed == straight, option
        snapshot = site_states[sites[0]].snapshot()
        assert is_plain(snapshot) and snapshot["watches"]["waiting_time"]["river"]
        assert "river" not in snapshot["watches"]["cleanliness"]  # no river detector there: state as before


def _with_detectors(settings, detectors: list[dict]) -> dict:
    """The shipped config's data with ``[[attribute_alerts.detectors]]``."""
    import tomllib

    data = tomllib.loads(SHIPPED_CONFIG.read_text(encoding="utf-8"))
    data.setdefault("attribute_alerts", {})["detectors"] = detectors
    return data


@pytest.mark.parametrize("entry, where, why", [
    ({"use": "river:drift.PageHinkly"}, "attribute_alerts.detectors[0].use", "no detector 'PageHinkly'"),
    ({"use": "river:nowhere.X"}, "attribute_alerts.detectors[0].use", "no module 'nowhere'"),
    ({"use": "river:linear_model.LinearRegression"}, "attribute_alerts.detectors[0].use", "no detector"),
    ({"use": "river:drift.ADWIN", "params": {"delt": 0.1}}, "attribute_alerts.detectors[0].params.delt",
     "no parameter 'delt'"),
    ({"use": "river:drift.PageHinkley", "params": {"mode": "sideways"}}, "attribute_alerts.detectors[0].params",
     "Invalid 'mode'"),
    ({"use": "river:anomaly.HalfSpaceTrees"}, "attribute_alerts.detectors[0].use", "cannot be kept in a snapshot"),
])
def test_a_bad_river_detector_fails_at_start_with_its_key(settings, entry, where, why):
    loaded = settings_from_dict(_with_detectors(settings, [entry]))  # the shape is fine...
    with pytest.raises(ConfigError) as error:  # ...the class or its parameters are not: the engine says so
        AttributeAlertEngine(loaded)
    assert str(error.value).startswith(f"{where}: ") and why in str(error.value)


@pytest.mark.parametrize("entry, where", [
    ({"use": "drift.PageHinkley"}, "attribute_alerts.detectors[0].use"),
    ({"use": "river:drift.ADWIN", "questions": ["waiting_time", "wating_time"]},
     "attribute_alerts.detectors[0].questions[1]"),
    ({"use": "river:drift.ADWIN", "hold_days": 0}, "attribute_alerts.detectors[0].hold_days"),
    ({"use": "river:drift.ADWIN", "trigger": "peer"}, "attribute_alerts.detectors[0].trigger"),
])
def test_a_malformed_entry_fails_at_load_with_its_key(settings, entry, where):
    with pytest.raises(ConfigError) as error:
        settings_from_dict(_with_detectors(settings, [entry]), source="boucle.toml")
    assert f"boucle.toml: {where}: " in str(error.value)


def test_the_command_line_form_is_checked(settings):
    with pytest.raises(ConfigError, match=r"--detector river:drift\.ADWIN\(delt=1\): .*no parameter 'delt'"):
        with_river_detector(settings, "river:drift.ADWIN(delt=1)")
    with pytest.raises(ConfigError, match="cannot read"):
        with_river_detector(settings, "river:drift.ADWIN(0.1)")
