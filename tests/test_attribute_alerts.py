"""Attribute alerts: fire on the response that makes evidence sufficient, lifecycle, regional incident."""

from __future__ import annotations

import pickle
import random
from datetime import timedelta

import bytewax.operators as op
from bytewax.dataflow import Dataflow
from bytewax.testing import TestingSink, TestingSource, run_main
from plain_data import is_plain

from boucle.operators.attribute_alerts import _RegionLogic, _SiteLogic, attribute_alerts
from boucle.operators.attribute_engine import AttributeAlertEngine
from boucle.operators.attribute_lifecycle import Lifecycle
from boucle.operators.attribute_regions import RegionState
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
    assert evidence["baseline"] > evidence["level"] and evidence["drop"] > 0.5 and evidence["n"] > 10
    # Every NPS is 8 here: nothing tells what drives it, and the evidence says so (no equal shares).
    assert evidence["importance_status"] == "not_enough_data" and "importance" not in evidence
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


def _engine(settings, **sections) -> AttributeAlertEngine:
    """The engine of ``settings`` with ``[attribute_alerts]`` edited: ``trend={"h": 30.0}``, ``resolve_after=...``."""
    cfg = settings.attribute_alerts
    update = {name: getattr(cfg, name).model_copy(update=value) if isinstance(value, dict) else value
              for name, value in sections.items()}
    return AttributeAlertEngine(settings.model_copy(update={"attribute_alerts": cfg.model_copy(update=update)}))


def _drive(engine, batches, sites: dict | None = None, regions: dict | None = None, resume_at=(), resume_engine=None):
    """:func:`replay` by hand, each state kept in ``sites``/``regions``; at each batch index of
    ``resume_at`` every state goes through a pickled snapshot and is rebuilt with ``resume_engine``
    (the engine from then on), as a bytewax resume does. Returns the alerts."""
    sites = {} if sites is None else sites
    regions = {} if regions is None else regions
    alerts = []
    for i, batch in enumerate(batches):
        if i in resume_at:
            engine = resume_engine or engine
            for key, state in sites.items():
                sites[key] = SiteState.from_snapshot(engine, pickle.loads(pickle.dumps(state.snapshot())))
            for key, state in regions.items():
                regions[key] = RegionState.from_snapshot(engine, pickle.loads(pickle.dumps(state.snapshot())))
        groups: dict[str, list[Feedback]] = {}
        for event in batch:
            groups.setdefault(event.site_id, []).append(event)
        for site_id, events in groups.items():
            summary = sites.setdefault(site_id, SiteState()).add(engine, events)
            if summary is not None:
                region = regions.setdefault(summary.region, RegionState(engine))
                alerts.extend(region.add(engine, summary, summary.t_ms))
    return alerts


def _down_and_back(sites: list[str], seed: int = 4) -> list[list[Feedback]]:
    """Hourly batches: 18 quiet days, ``sites[1]`` 1.5 points down for 3 days, then 6 quiet days."""
    rng = random.Random(seed)
    batches = _history(sites, 21, rng, drop={sites[1]: (18 * 24, 1.5)}, per_hour=1)
    for batch in _history(sites, 6, rng, per_hour=1):
        for e in batch:
            e.ts_ms += 21 * 24 * HOUR
        batches.append(batch)
    return batches


def test_snapshots_are_plain_data_and_resume_gives_the_same_alerts(settings):
    """Every site and region state goes through its plain snapshot at several points (before, during
    and after the alert): the same alerts as a run never interrupted, and each rebuilt state
    snapshots as it was."""
    engine = _engine(settings, resolve_after=timedelta(hours=12))
    sites = _idf_sites(settings)
    batches = _down_and_back(sites)
    straight = replay(engine, batches)
    statuses = [a["status"] for a in straight if a["site_id"] == sites[1]]
    assert statuses[0] == "open" and statuses[-1] == "resolved"
    site_states, region_states = {}, {}
    resumed = _drive(engine, batches, site_states, region_states, resume_at=(10 * 24, 18 * 24 + 7, 20 * 24, 24 * 24 + 5))
    assert resumed == straight
    for state in list(site_states.values()) + list(region_states.values()):
        snapshot = state.snapshot()
        assert is_plain(snapshot)
        assert type(state).from_snapshot(engine, snapshot).snapshot() == snapshot
    region = region_states["ile-de-france"].snapshot()
    assert region["groups"] and region["importance"]["rows"][:len(engine.attribute_names)] == engine.attribute_names


def test_resume_applies_the_edited_detector_parameters(settings):
    """Rebuilt from its snapshot under an edited ``[attribute_alerts.*]``, every series runs with the
    edited parameters (the old ones are not kept anywhere): the alert a threshold allowed before is
    not raised after it is made stricter, and the region's importance forgets at the new pace."""
    engine = _engine(settings)
    sites = _idf_sites(settings)
    batches = _history(sites, 22, random.Random(4), drop={sites[1]: (20 * 24, 1.5)}, per_hour=1)
    assert [a["site_id"] for a in replay(engine, batches) if a["status"] == "open"] == [sites[1]]
    strict = _engine(settings, trend={"h": 1e6, "slope_z": 0.0}, expectation={"z_threshold": 50.0},
                     decline={"z_threshold": 50.0}, importance_half_life=timedelta(days=3))
    site_states, region_states = {}, {}
    alerts = _drive(engine, batches, site_states, region_states, resume_at=(20 * 24,), resume_engine=strict)
    assert alerts == []
    watch = site_states[sites[1]].watches["waiting_time"]
    assert (watch.trend.h, watch.expectation.z_threshold, watch.decline.z_threshold) == (1e6, 50.0, 50.0)
    assert watch.expectation.utc_offset_hours == 1  # still the site's own clock
    assert region_states["ile-de-france"].importance.half_life_days == 3.0
    # The same snapshots rebuilt with the unedited engine raise the alert as an uninterrupted run does.
    assert _drive(engine, batches, resume_at=(20 * 24,)) == replay(engine, batches)


def test_a_reshaping_edit_restarts_that_part_on_resume(settings):
    """``block_hours`` and ``window_days`` edited between runs: the resumed series' seasonal cells and
    decline ring start afresh at their new sizes (level, trend and peers kept), and the run goes on."""
    engine = _engine(settings)
    sites = _idf_sites(settings)[:2]
    batches = _history(sites, 8, random.Random(9), per_hour=1)
    site_states: dict = {}
    _drive(engine, batches[:24 * 6], site_states)
    before = site_states[sites[0]].watches["waiting_time"]
    wider = _engine(settings, expectation={"block_hours": 6}, decline={"window_days": 10})
    after = SiteState.from_snapshot(wider, site_states[sites[0]].snapshot()).watches["waiting_time"]
    assert len(after.expectation.cells) == 3 * 7 * 4 and not any(after.expectation.cells)
    assert len(after.decline.bins) == 3 * 10 and after.decline.state() == wider.new_watch(sites[0]).decline.state()
    assert after.expectation.level.state() == before.expectation.level.state() and after.count == before.count
    assert after.trend.state() == before.trend.state() and after.peer.state() == before.peer.state()
    _drive(engine, batches[24 * 6:], site_states, resume_at=(0,), resume_engine=wider)
    later = site_states[sites[0]].watches["waiting_time"]
    assert any(later.expectation.cells) and later.decline.n_window > 0 and len(later.decline.bins) == 30


def test_states_pickled_whole_by_an_earlier_version_still_load(settings):
    """A recovery store written before the plain snapshots holds pickled states (bytes): they load,
    with the current parameters, into the state a plain snapshot gives; a region's open alerts kept as
    plain dicts (before :class:`Lifecycle`) too."""
    engine = _engine(settings)
    sites = _idf_sites(settings)
    site_states, region_states = {}, {}
    _drive(engine, _history(sites, 22, random.Random(4), drop={sites[1]: (20 * 24, 1.5)}, per_hour=1),
           site_states, region_states)
    region = region_states["ile-de-france"]
    assert (sites[1], "waiting_time") in region.open
    strict = _engine(settings, trend={"h": 99.0})
    site = _SiteLogic(strict, pickle.dumps(site_states[sites[1]])).state
    assert site.snapshot() == site_states[sites[1]].snapshot() and site.watches["waiting_time"].trend.h == 99.0
    old = object.__new__(RegionState)
    old.__dict__.update({**region.__dict__, "open": dict(region.open.alerts), "regional": {}})
    resumed = _RegionLogic(strict, pickle.dumps(old), now=lambda: 0).state
    assert isinstance(resumed.open, Lifecycle) and resumed.open.alerts == region.open.alerts
    assert resumed.snapshot() == region.snapshot()


def test_bytewax_recovery_resumes_with_the_same_alerts(settings, tmp_path):
    """The dataflow aborted mid-stream (an alert open) and resumed from its recovery store emits the
    alerts of an uninterrupted run: the same ids, statuses and numbers (repeats of what followed the
    last committed epoch aside), the resolution included."""
    from bytewax.recovery import RecoveryConfig, init_db_dir

    engine = _engine(settings, resolve_after=timedelta(hours=12))
    sites = _idf_sites(settings)[:5]
    batches = _down_and_back(sites, seed=6)
    # One item per site and six hours: few epochs, each of several responses.
    keyed = [(site, [e for batch in batches[h:h + 6] for e in batch if e.site_id == site])
             for h in range(0, len(batches), 6) for site in sites]
    abort = 4 * 20 * len(sites) + 3  # two days into the drop, a day after the alert opened
    items = keyed[:abort] + [TestingSource.ABORT()] + keyed[abort:]

    def run(source_items, recovery=None) -> list:
        out: list = []
        flow = Dataflow("attribute_alerts_recovery")
        stream = op.input("in", flow, TestingSource(source_items))
        op.output("out", attribute_alerts("attribute", stream, engine, now=lambda: 0).alerts, TestingSink(out))
        run_main(flow, epoch_interval=timedelta(0), recovery_config=recovery)
        return out

    straight = run(keyed)
    db = tmp_path / "recovery"
    db.mkdir()
    init_db_dir(db, 1)
    first = run(items, RecoveryConfig(str(db)))
    second = run(items, RecoveryConfig(str(db)))
    seen: dict = {}
    for alert in first + second:
        seen.setdefault((alert["alert_id"], alert["status"]), alert)
    assert list(seen.values()) == straight
    mine = [(a["status"], a["alert_id"]) for a in straight if a["site_id"] == sites[1]]
    assert mine[0][0] == "open" and mine[-1][0] == "resolved" and len({aid for _, aid in mine}) == 1
    # Opened before the abort, resolved after the resume (from the snapshot, not from the start).
    assert ("open", mine[0][1]) in [(a["status"], a["alert_id"]) for a in first]
    assert ("open", mine[0][1]) not in [(a["status"], a["alert_id"]) for a in second]
    assert ("resolved", mine[0][1]) in [(a["status"], a["alert_id"]) for a in second]


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
