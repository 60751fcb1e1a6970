"""Attribute alerts: fire on the response that makes evidence sufficient, lifecycle, regional incident."""

from __future__ import annotations

import random

import bytewax.operators as op
from bytewax.dataflow import Dataflow
from bytewax.testing import TestingSink, TestingSource, run_main

from boucle.operators.attribute_alerts import attribute_alerts
from boucle.operators.attribute_engine import AttributeAlertEngine
from boucle.operators.attribute_replay import replay
from boucle.operators.attribute_sites import SiteState
from boucle.operators.decode import Feedback

HOUR = 3_600_000
T0 = 1_790_812_800_000  # 2026-10-01T00:00Z


def _event(i: int, site: str, t: int, ratings: dict[str, int]) -> Feedback:
    return Feedback(f"{site}-{i}", t, site, "store", "purchase", {"nps": 8}, ratings, "", "fr", {}, t, "")


def _history(sites: list[str], days: int, rng: random.Random, drop: dict[str, tuple[int, float]] | None = None,
             per_hour: int = 2) -> list[list[Feedback]]:
    """Hourly batches: every site answers ``per_hour`` times an hour; ``drop``: site -> (from hour, points)."""
    drop = drop or {}
    batches = []
    for h in range(days * 24):
        batch = []
        for site in sites:
            for j in range(per_hour):
                shift = drop[site][1] if site in drop and h >= drop[site][0] else 0.0
                value = min(5, max(1, round(rng.gauss(4.0 - shift, 0.9))))
                batch.append(_event(h * per_hour + j, site, T0 + h * HOUR + j * 60_000,
                                    {"waiting_time": value, "cleanliness": min(5, max(1, round(rng.gauss(4, 0.9))))}))
        batches.append(batch)
    return batches


def _idf_sites(settings) -> list[str]:
    return [s.id for s in settings.sites if s.region == "ile-de-france"]


def test_step_drop_opens_one_alert_with_numbers_in_the_site_language(settings):
    engine = AttributeAlertEngine(settings)
    sites = _idf_sites(settings)
    batches = _history(sites, 24, random.Random(1), drop={sites[0]: (20 * 24, 1.2)})
    alerts = replay(engine, batches)
    opened = [a for a in alerts if a["status"] == "open"]
    assert [(a["site_id"], a["attribute"]) for a in opened] == [(sites[0], "waiting_time")]
    alert = opened[0]
    assert alert["kind"] == "attribute" and alert["region"] == "ile-de-france"
    assert set(alert["triggers"]) & {"trend", "expectation"}
    evidence = alert["evidence"]
    assert evidence["baseline"] > evidence["level"] and evidence["drop"] > 0.5 and evidence["n"] > 10 and 0 < evidence["importance"] < 1
    assert "Temps d'attente" in alert["message"] and "/5" in alert["message"]
    # Fired on event time within a day of the drop, and deterministic when replayed.
    assert alert["event_time"] < "2026-10-22T00:00"
    again = replay(engine, _history(sites, 24, random.Random(1), drop={sites[0]: (20 * 24, 1.2)}))
    assert [a["alert_id"] for a in again] == [a["alert_id"] for a in alerts]


def test_resolves_after_back_to_normal(settings):
    settings = settings.model_copy(update={"attribute_alerts": settings.attribute_alerts.model_copy(
        update={"resolve_after": __import__("datetime").timedelta(hours=12)})})
    engine = AttributeAlertEngine(settings)
    sites = _idf_sites(settings)
    rng = random.Random(2)
    down = _history(sites, 23, rng, drop={sites[0]: (20 * 24, 1.5)})
    after = _history(sites, 7, rng)
    for batch in after:
        for e in batch:
            e.ts_ms += 23 * 24 * HOUR
    alerts = replay(engine, down + after)
    statuses = [a["status"] for a in alerts if a["site_id"] == sites[0]]
    assert statuses[0] == "open" and statuses[-1] == "resolved"
    assert len({a["alert_id"] for a in alerts if a["site_id"] == sites[0]}) == 1


def test_region_wide_drop_is_one_regional_incident(settings):
    engine = AttributeAlertEngine(settings)
    sites = _idf_sites(settings)
    batches = _history(sites, 24, random.Random(3), drop={s: (20 * 24, 1.0) for s in sites})
    alerts = [a for a in replay(engine, batches) if a["status"] == "open"]
    regional = [a for a in alerts if a["kind"] == "regional_incident"]
    assert len(regional) == 1 and regional[0]["attribute"] == "waiting_time"
    assert len(regional[0]["evidence"]["sites_down"]) >= 4
    assert not any("peer" in a["triggers"] for a in alerts)
    assert sum(a["kind"] == "attribute" for a in alerts) <= 2


def test_bytewax_operator_matches_the_replay(settings):
    engine = AttributeAlertEngine(settings)
    sites = _idf_sites(settings)
    batches = _history(sites, 22, random.Random(4), drop={sites[1]: (20 * 24, 1.5)}, per_hour=1)
    keyed = [(site, [e for e in batch if e.site_id == site]) for batch in batches for site in sites]
    out: list = []
    flow = Dataflow("attribute_alerts_test")
    stream = op.input("in", flow, TestingSource(keyed))
    op.output("out", attribute_alerts("attribute", stream, engine, now=lambda: 0).alerts, TestingSink(out))
    run_main(flow)
    expected = replay(engine, batches)
    assert [a["alert_id"] for a in out] == [a["alert_id"] for a in expected]
    assert out and out[0]["site_id"] == sites[1]


def _moody_site(settings, halo: bool, days: int = 30, per_day: int = 12, seed: int = 5):
    """One site whose respondents share a strong mood across attributes; waiting time alone slides
    0.6 point over the last 14 days. Returns the site's state after the replay."""
    cfg = settings.attribute_alerts.model_copy(update={"halo": halo})
    engine = AttributeAlertEngine(settings.model_copy(update={"attribute_alerts": cfg}))
    site = _idf_sites(settings)[0]
    rng = random.Random(seed)
    names = ["waiting_time", "cleanliness", "staff_friendliness", "staff_competence", "checkout_speed"]
    state = SiteState()
    for d in range(days):
        slide = 0.6 * max(0, d - (days - 14)) / 14
        batch = []
        for j in range(per_day):
            mood = rng.gauss(0, 0.8)
            ratings = {a: min(5, max(1, round(3.8 + mood + rng.gauss(0, 0.6) - (slide if a == "waiting_time" else 0))))
                       for a in names}
            batch.append(_event(d * per_day + j, site, T0 + d * 24 * HOUR + (8 + j) * HOUR // 2, ratings))
        state.add(engine, batch)
    return state


def test_halo_sharpens_the_decline_test_of_one_attribute(settings):
    """Leaving out what a respondent's other ratings predict removes the shared mood: the slide of
    waiting time alone stands out more, and the site learns how much ratings share."""
    z_plain = z_halo = 0.0
    for seed in (5, 6, 7, 8, 9):
        plain, halo = _moody_site(settings, False, seed=seed), _moody_site(settings, True, seed=seed)
        assert plain.halo.n == 0 and 0.4 < halo.halo.rho < 0.65  # mood 0.64 / (0.64 + 0.36 + rounding)
        assert halo.watches["waiting_time"].decline.sd < 0.85 * plain.watches["waiting_time"].decline.sd
        # The other attributes do not slide, with or without the halo.
        assert all(halo.watches[a].decline.z > -2 for a in ("cleanliness", "staff_friendliness"))
        z_plain += plain.watches["waiting_time"].decline.z
        z_halo += halo.watches["waiting_time"].decline.z
    assert z_halo < z_plain - 1.0 < 0  # summed: one realisation may still be unlucky


def test_region_state_snapshots_round_trip_and_older_ones_load(settings):
    """A region's state resumes from its snapshot with the same open alerts, and a snapshot taken when
    the open alerts were plain dicts (before :class:`Lifecycle`) still loads into the same state."""
    import pickle

    from boucle.operators.attribute_lifecycle import Lifecycle
    from boucle.operators.attribute_regions import RegionState

    engine = AttributeAlertEngine(settings)
    sites = _idf_sites(settings)
    region = RegionState(engine)
    states: dict[str, SiteState] = {}
    for batch in _history(sites, 22, random.Random(4), drop={sites[1]: (20 * 24, 1.5)}, per_hour=1):
        for site in sites:
            summary = states.setdefault(site, SiteState()).add(engine, [e for e in batch if e.site_id == site])
            if summary is not None:
                region.add(engine, summary, summary.t_ms)
    assert (sites[1], "waiting_time") in region.open
    again = pickle.loads(pickle.dumps(region))
    assert again.open.alerts == region.open.alerts and isinstance(again.regional, Lifecycle)
    old = object.__new__(RegionState)
    old.__dict__.update({**region.__dict__, "open": dict(region.open.alerts), "regional": {}})
    resumed = pickle.loads(pickle.dumps(old))
    assert isinstance(resumed.open, Lifecycle) and resumed.open.alerts == region.open.alerts


def test_integer_detector_parameters_reach_the_detectors(settings):
    """``[attribute_alerts.expectation] block_hours = 6`` (an int) builds every series' detector with it;
    the UTC offset still comes from the site's country."""
    cfg = settings.attribute_alerts.model_copy(
        update={"expectation": settings.attribute_alerts.expectation.model_copy(update={"block_hours": 6})})
    engine = AttributeAlertEngine(settings.model_copy(update={"attribute_alerts": cfg}))
    site = _idf_sites(settings)[0]
    state = SiteState()
    for batch in _history([site], 3, random.Random(8)):
        state.add(engine, batch)
    expectation = state.watches["waiting_time"].expectation
    assert expectation.block_hours == 6 and len(expectation.cells) == 3 * 7 * 4
    assert expectation.utc_offset_hours == 1 == state.watches["waiting_time"].decline.utc_offset_hours
