"""Key-driver importance that says when it knows (issue #14, item 4), and messages on each
question's scale with a slope unit fit for the series' volume (item 7)."""

from __future__ import annotations

import random

import pytest

from boucle.config.settings import Attribute
from boucle.detectors.importance import NOT_ENOUGH_DATA, KeyDriverImportance
from boucle.operators.attribute_engine import AttributeAlertEngine
from boucle.operators.attribute_lifecycle import OpenAlert
from boucle.operators.attribute_regions import RegionState
from boucle.operators.attribute_sites import SiteSummary

MINUTE = 60_000
NAMES = ["waiting_time", "cleanliness", "rare"]


def _responses(rng: random.Random, n: int, rare_every: int = 0, drivers=(1.2, 0.5)):
    """Ratings 1-5 and an NPS that the first two drive; ``rare`` (answered every ``rare_every``
    responses) is noise: any weight it gets is chance."""
    out = []
    for i in range(n):
        a, b = rng.randint(1, 5), rng.randint(1, 5)
        y = min(10, max(0, round(drivers[0] * a + drivers[1] * b + rng.gauss(0, 2))))
        x = {"waiting_time": a, "cleanliness": b}
        if rare_every and i % rare_every == 0:
            x["rare"] = rng.randint(1, 5)
        out.append((x, float(y)))
    return out


def _learnt(responses, **params) -> KeyDriverImportance:
    kda = KeyDriverImportance(names=NAMES, **params)
    for i, (x, y) in enumerate(responses):
        kda.learn_one(x, y, t_ms=i * MINUTE)
    return kda


def test_a_question_answered_by_few_respondents_does_not_win_by_chance():
    # 300 responses, the noise question answered by 6 of them: without shrinkage it wins on some
    # seeds (up to all of the weight); shrunk by its own n it stays small on every seed.
    raw, shrunk = [], []
    for seed in range(60):
        responses = _responses(random.Random(seed), 300, rare_every=50)
        raw.append(_learnt(responses, prior_strength=0.0).estimate().weights["rare"])
        estimate = _learnt(responses).estimate()
        assert estimate.answered["rare"] == pytest.approx(6, abs=0.5)
        shrunk.append(estimate.weights["rare"])
        assert estimate.weights["rare"] < estimate.weights["waiting_time"]
    assert max(raw) > 0.5  # the reported case: a question of 6 respondents got 51 %
    assert max(shrunk) < 0.1


def test_not_enough_data_is_a_status_not_equal_shares():
    kda = _learnt(_responses(random.Random(1), 20), min_n=50)
    estimate = kda.estimate()
    assert estimate.status == NOT_ENOUGH_DATA and not estimate.known and estimate.weights == {}
    assert kda.evidence()["status"] == NOT_ENOUGH_DATA and "waiting_time" not in kda.evidence()
    # min_n is a parameter: the same 20 responses are enough under a lower bar.
    assert _learnt(_responses(random.Random(1), 20), min_n=10).estimate().status == "learnt"


def test_a_thin_region_leans_on_the_network_prior_and_its_own_evidence_takes_over():
    rng = random.Random(7)
    network = _learnt(_responses(rng, 2000, drivers=(1.5, 0.2)))  # the network: waiting time drives NPS
    reversed_drivers = _responses(rng, 2000, drivers=(0.2, 1.5))  # this region: cleanliness does
    expected = _learnt(reversed_drivers, prior_strength=0.0).estimate().weights["cleanliness"]
    thin = _learnt(reversed_drivers[:20])
    alone = thin.estimate()
    assert alone.status == NOT_ENOUGH_DATA  # 20 < min_n and no network
    leaning = thin.estimate(prior=network)
    assert leaning.status == "network" and leaning.weights["waiting_time"] > leaning.weights["cleanliness"]
    own = _learnt(reversed_drivers).estimate(prior=network)
    assert own.status == "learnt" and own.weights["cleanliness"] > own.weights["waiting_time"]
    # Shrunk by the region's n (2000) against the prior's strength (30): close to its own answer.
    assert own.weights["cleanliness"] == pytest.approx(expected, abs=0.05)
    # ... and a stronger prior pulls it further towards the network's.
    strong = _learnt(reversed_drivers, prior_strength=5000.0).estimate(prior=network)
    assert strong.weights["cleanliness"] < own.weights["cleanliness"] - 0.1


def test_the_network_pools_its_regions_moments():
    rng = random.Random(3)
    north, south = _responses(rng, 300), _responses(rng, 300)
    pooled = KeyDriverImportance(names=NAMES)
    a, b = KeyDriverImportance(names=NAMES), KeyDriverImportance(names=NAMES)
    a.learn_many(north, 0)
    b.learn_many(south, 0)
    pooled.add(a)
    pooled.add(b)
    both = KeyDriverImportance(names=NAMES)
    both.learn_many(north + south, 0)
    assert pooled.n == both.n == 600
    assert pooled.estimate().weights == pytest.approx(both.estimate().weights)


def _summary(site: str, region: str, t_ms: int, responses) -> SiteSummary:
    return SiteSummary(site, region, t_ms, {}, list(responses))


def test_the_region_snapshot_says_not_enough_data_then_learns(settings):
    engine = AttributeAlertEngine(settings)
    region = RegionState(engine)
    rng = random.Random(2)
    site = next(s for s in settings.sites if s.region == "belgium").id
    region.roll_importance(engine, _summary(site, "belgium", 0, ()))
    region.add(engine, _summary(site, "belgium", 0, _responses(rng, 10)), 0)
    early = region.importance_snapshot(engine)
    assert early.status == NOT_ENOUGH_DATA and set(early.weights.values()) == {0.0}
    # The network's responses (fed by the flow) carry the thin region...
    network = KeyDriverImportance(**engine.importance_params)
    network.learn_many(_responses(rng, 500), 0)
    region.learn_network(network)
    carried = region.importance_snapshot(engine)
    assert carried.status == "network" and sum(carried.weights.values()) == pytest.approx(1.0)
    # ... until it has its own evidence; the prior survives a snapshot.
    region.add(engine, _summary(site, "belgium", MINUTE, _responses(rng, 100)), 0)
    again = RegionState.from_snapshot(engine, region.snapshot())
    assert again.importance_snapshot(engine).status == "learnt"
    assert again.network.n == pytest.approx(region.network.n)


# ---- messages (item 7) ----

def _evidence(**extra) -> dict:
    return {"level": 6.1, "baseline": 7.9, "n": 40.0, "z": -3.4, "slope": -0.02, "n_history": 900.0, **extra}


def _message(engine: AttributeAlertEngine, site: str, attr: str, evidence: dict) -> dict:
    return engine.site_alert(OpenAlert("id", "high", 0), "open", site, attr, ["trend"], evidence, 0, 0)


def test_a_question_on_a_ten_point_scale_prints_its_scale(settings):
    settings = settings.model_copy(update={"attributes": [*settings.attributes, Attribute(
        name="value_for_money", min=1, max=10, bottom_max=4, top_min=8, label_en="Value for money")]})
    engine = AttributeAlertEngine(settings)
    site = next(s for s in settings.sites if s.language == "en")
    alert = _message(engine, site.id, "value_for_money", _evidence())
    assert "6.1/10 recently" in alert["message"] and "/5" not in alert["message"]
    assert "/10 recently" in _message(engine, site.id, "nps", _evidence())["message"]
    assert "/5 recently" in _message(engine, site.id, "waiting_time", _evidence(level=3.1))["message"]


def test_a_thin_series_alert_says_the_run_it_stands_on(settings):
    """A review every few weeks: the recent window has decayed to nothing (n=0, z=0 read as "no
    evidence"), so the message gives the CUSUM's run of low responses instead, in the site's language."""
    engine = AttributeAlertEngine(settings)
    fr, en = (next(s for s in settings.sites if s.language == lang) for lang in ("fr", "en"))
    thin = _evidence(level=3.9, baseline=3.9, n=0.2, z=0.0, run_n=6.0, run_level=2.6, run_baseline=3.9)
    message = _message(engine, en.id, "waiting_time", thin)["message"]
    assert "2.6/5 over the last 6 responses (expected 3.9, trend" in message and "n=0" not in message
    assert "2,6/5 sur les 6 dernières réponses (attendu 3,9" in _message(engine, fr.id, "waiting_time", thin)["message"]
    busy = _message(engine, en.id, "waiting_time", _evidence(level=3.1, run_n=6.0, run_level=2.6, run_baseline=3.9))
    assert "3.1/5 recently (expected 7.9, n=40, z=-3.4" in busy["message"]  # a busy series keeps its window


@pytest.mark.parametrize("rate,unit,slope", [(22.0, "/day", "-0.02"), (0.2, "/week", "-0.14"),
                                            (1 / 30, "/month", "-0.60"), (None, "/day", "-0.02")])
def test_the_slope_unit_follows_the_series_volume(settings, rate, unit, slope):
    # a busy series (~22 a day), one of a review every 5 days, one of about one a month; a series
    # without a rate yet (one response) keeps the detectors' unit
    engine = AttributeAlertEngine(settings)
    site = next(s for s in settings.sites if s.language == "en")
    evidence = _evidence(level=3.1)
    if rate is not None:
        evidence["rate_per_day"] = rate
    alert = _message(engine, site.id, "waiting_time", evidence)
    assert f"trend {slope}{unit})" in alert["message"]
    assert alert["evidence"]["slope"] == -0.02  # the evidence keeps its unit: rating points per day


@pytest.mark.parametrize("every_days,unit", [(0.02, "/day"), (3.0, "/week"), (12.0, "/month")])
def test_a_series_own_clock_gives_the_slope_unit(settings, every_days, unit):
    """The series' detectors know its rate (its clock): the message's slope unit follows it."""
    engine = AttributeAlertEngine(settings)
    site = next(s for s in settings.sites if s.language == "en")
    watch = engine.new_watch(site.id, question="waiting_time")
    step = int(every_days * 86_400_000)
    for i in range(60):
        watch.update(4.0, i * step)
    evidence = watch.evidence()
    assert evidence["rate_per_day"] == pytest.approx(1 / every_days, rel=1e-6)
    assert f"{unit})" in _message(engine, site.id, "waiting_time", evidence)["message"]
