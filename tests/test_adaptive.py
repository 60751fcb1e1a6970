"""Detectors that adapt to volume: a series is judged on its own responses, whatever the calendar."""

import random

import pytest

from boucle.config.loader import load_settings
from boucle.detectors import AttributeWatch
from boucle.detectors.clock import cusum_threshold

DAY = 86_400_000
HOUR = 3_600_000


def _one_score_with_a_drop(settings, score: str, scale: tuple[int, int], mean: float, sd: float, drop: float,
                           seed: int):
    """Hourly batches over 24 days, two responses an hour from each site of one region, that answer
    ``score`` only; the first site drops by ``drop`` from day 20. Returns (sites, batches)."""
    from boucle.operators.decode import Feedback

    sites = [s.id for s in settings.sites if s.region == "ile-de-france"]
    rng, t0 = random.Random(seed), 1_790_812_800_000
    batches = []
    for h in range(24 * 24):
        batch = []
        for k, site in enumerate(sites):
            down = drop if k == 0 and h >= 20 * 24 else 0.0
            for j in range(2):
                t = t0 + h * HOUR + j * 60_000
                value = min(scale[1], max(scale[0], round(rng.gauss(mean - down, sd))))
                batch.append(Feedback(f"{site}-{h}-{j}", t, site, "web", "stay", {score: value}, {}, "", "fr",
                                      {}, t, ""))
        batches.append(batch)
    return sites, batches


def _params(**clock) -> dict:
    """The shipped config's detector parameters (what a user runs), the clock's edited by ``clock``."""
    cfg = load_settings().attribute_alerts
    return {"trend": cfg.trend.model_dump(), "expectation": cfg.expectation.model_dump(),
            "peer": cfg.peer.model_dump(), "decline": cfg.decline.model_dump(),
            "clock": {**cfg.clock.model_dump(), **clock}}


def _rating(rng: random.Random, mean: float) -> int:
    return min(5, max(1, round(rng.gauss(mean, 1.2))))


def _responses_until_watched(gap_days: float, params: dict, limit: int = 400) -> int | None:
    rng = random.Random(3)
    watch = AttributeWatch(**params)
    for i in range(limit):
        watch.update(_rating(rng, 3.8), int(i * gap_days * DAY))
        if watch.watched:
            return i + 1
    return None


@pytest.mark.parametrize("gap_days", [0.5, 3.0, 14.0, 60.0])
def test_a_sparse_series_becomes_watched_after_enough_responses_however_long_that_takes(gap_days):
    needed = _responses_until_watched(gap_days, _params())
    # The trend test needs 40 decayed responses of history: about that many, whether it takes a month or ten years.
    assert needed is not None and 40 <= needed <= 50


def test_without_its_own_clock_a_sparse_series_is_never_watched():
    assert _responses_until_watched(14.0, _params(busy_per_day=0.0)) is None
    assert _responses_until_watched(14.0, _params()) is not None


def test_a_warming_up_series_says_what_it_still_needs():
    watch = AttributeWatch(**_params())
    rng = random.Random(1)
    for i in range(20):
        watch.update(_rating(rng, 4.0), i * 10 * DAY)
    assert not watch.watched and 18 <= watch.needs() <= 21
    for i in range(20, 60):
        watch.update(_rating(rng, 4.0), i * 10 * DAY)
    assert watch.watched and watch.needs() == 0.0


def _sparse_run(seed: int, drop: float, params: dict, per_week: float = 3.0) -> tuple[bool, bool]:
    """(alarm before the change, alarm within half a year after it) on a series of ``per_week``."""
    rng = random.Random(seed)
    watch = AttributeWatch(**params)
    start, end, t = 3 * 365 * DAY, 3 * 365 * DAY + 180 * DAY, 0.0
    before = after = False
    while t < end:
        t += rng.expovariate(per_week / 7) * DAY
        watch.update(_rating(rng, 3.6 - drop * (t >= start)), int(t))
        if watch.local_alarm:
            before |= t < start
            after |= t >= start
    return before, after


def test_a_drop_on_a_sparse_series_is_seen_and_a_flat_one_is_quiet():
    # Six series of 3 a week, 3 years of history then half a year: up to 2 false alarms in these 21
    # series-years (one CUSUM, one gradual decline) on dispersed, clipped ratings (sd 1.2 on 1-5),
    # about what the thin thresholds spend per series; none before a drop that then goes unseen.
    runs = [_sparse_run(seed, 1.0, _params()) for seed in range(6)]
    assert sum(before for before, _ in runs) <= 1
    assert sum(after for _, after in runs) >= 5
    assert not any(_sparse_run(seed, 1.0, _params(busy_per_day=0.0))[1] for seed in range(6))
    assert sum(any(_sparse_run(100 + seed, 0.0, _params())) for seed in range(6)) <= 2


def test_a_burst_of_responses_does_not_make_a_busy_series_noisier():
    """A busy series already runs on the calendar: a burst (a coach party) cannot shorten its memories,
    and ordinary ratings in a burst raise no alarm."""
    params = _params()
    rng = random.Random(2)
    calm, burst = AttributeWatch(**params), AttributeWatch(**params)
    t = 0
    for i in range(24 * 2 * 30):  # a month, 48 responses a day
        t = i * HOUR // 2
        x = _rating(rng, 4.0)
        calm.update(x, t)
        burst.update(x, t)
    assert calm.clock.factor == burst.clock.factor == 1.0
    half_lives = (burst.expectation.level.half_life_ms, burst.trend.baseline.half_life_ms)
    for j in range(400):  # 400 ordinary responses within an hour
        burst.update(_rating(rng, 4.0), t + j * 9_000)
    assert burst.clock.factor == 1.0 and burst.clock.tau_ms == t + 399 * 9_000  # still the calendar
    assert (burst.expectation.level.half_life_ms, burst.trend.baseline.half_life_ms) == half_lives
    assert burst.triggers() == [] and burst.evidence()["z"] > -3


def test_a_csat_only_network_gets_attribute_alerts_on_its_own_scale(settings):
    """Hotels answer one question, CSAT: the headline score is a series like any attribute."""
    from boucle.config.settings import Metric
    from boucle.operators.attribute_engine import AttributeAlertEngine
    from boucle.operators.attribute_replay import replay

    hotels = settings.model_copy(update={"attributes": [], "scores": {
        "csat": Metric(min=1, max=5, bottom_max=2, top_min=4, label_en="CSAT", label_fr="CSAT")}})
    sites, batches = _one_score_with_a_drop(hotels, "csat", (1, 5), 4.2, 0.8, 1.2, seed=4)
    opened = [a for a in replay(AttributeAlertEngine(hotels), batches) if a["status"] == "open"]
    assert [(a["site_id"], a["attribute"]) for a in opened] == [(sites[0], "csat")]
    assert 2.5 < opened[0]["evidence"]["level"] < opened[0]["evidence"]["baseline"] < 4.5
    quiet = hotels.model_copy(update={"attribute_alerts": hotels.attribute_alerts.model_copy(
        update={"watch_scores": False})})
    assert replay(AttributeAlertEngine(quiet), batches) == []


def test_a_score_on_another_scale_is_judged_on_it_and_reported_on_it(settings):
    """NPS (0-10) goes to the detectors on a 1-5 scale, and its alert speaks in NPS points again."""
    from boucle.operators.attribute_engine import AttributeAlertEngine
    from boucle.operators.attribute_replay import replay

    sites, batches = _one_score_with_a_drop(settings, "nps", (0, 10), 8.5, 1.6, 3.0, seed=5)
    opened = [a for a in replay(AttributeAlertEngine(settings), batches) if a["status"] == "open"]
    assert [(a["site_id"], a["attribute"]) for a in opened] == [(sites[0], "nps")]
    evidence = opened[0]["evidence"]
    # In NPS points (on the 1-5 scale the detectors see, no level could pass 5).
    assert 5.0 < evidence["level"] < evidence["baseline"] - 0.5 and 7.5 < evidence["baseline"] < 9.5


def test_the_clock_of_many_times_is_the_clock_of_each():
    from boucle.detectors import SeriesClock

    rng = random.Random(9)
    for busy in (16.0, 1000.0):
        one, many = SeriesClock(busy_per_day=busy), SeriesClock(busy_per_day=busy)
        ts, t = [], 0
        for _ in range(3000):
            t += int(rng.expovariate(1 / 3_600_000)) if rng.random() < 0.97 else 0
            ts.append(t - (rng.random() < 0.02) * 7_200_000)  # some late ones
        expected = [one.tick(x) for x in ts]
        assert [v for k in range(0, len(ts), 37) for v in many.ticks(ts[k:k + 37])] == expected
        assert many.state() == one.state()


def _thin_region(settings, seed: int, drop: float) -> list:
    """Three years of a thin region (each site a review every three weeks or so), then ``drop``
    points on cleanliness at every site for half a year; one batch per day."""
    from boucle.operators.decode import Feedback

    sites = [s.id for s in settings.sites if s.region == "ile-de-france"]
    rng, t0, days = random.Random(seed), 1_700_000_000_000 - 1_700_000_000_000 % DAY, 3 * 365 + 180
    batches = []
    for d in range(days):
        batch = []
        for site in sites:
            if rng.random() < 0.05:
                t = t0 + d * DAY + rng.randrange(8, 20) * HOUR
                shift = drop if d >= 3 * 365 else 0.0
                ratings = {"cleanliness": _rating(rng, 3.8 - shift), "waiting_time": _rating(rng, 3.5)}
                batch.append(Feedback(f"{site}-{d}", t, site, "web", "stay", {}, ratings, "", "fr", {}, t, ""))
        batches.append(batch)
    return batches


def test_a_region_wide_drop_on_a_thin_network_is_one_regional_incident(settings):
    from boucle.operators.attribute_engine import AttributeAlertEngine
    from boucle.operators.attribute_replay import replay

    engine = AttributeAlertEngine(settings)
    opened = [a for a in replay(engine, _thin_region(settings, 1, 1.2)) if a["status"] == "open"]
    regional = [a for a in opened if a["kind"] == "regional_incident"]
    assert [(a["region"], a["attribute"]) for a in regional] == [("ile-de-france", "cleanliness")]
    assert len(regional[0]["evidence"]["sites_down"]) >= 3
    assert not [a for a in opened if a["kind"] == "attribute" and a["attribute"] == "cleanliness"
                and a["event_time"] > regional[0]["event_time"]]  # held: the region's incident speaks for them
    # Without the pooled series, the thin sites never drop together: no regional incident.
    alone = settings.model_copy(update={"attribute_alerts": settings.attribute_alerts.model_copy(
        update={"regional_pooled": False})})
    assert not [a for a in replay(AttributeAlertEngine(alone), _thin_region(settings, 1, 1.2))
                if a["kind"] == "regional_incident"]
    # And the same region without a drop stays quiet.
    assert replay(engine, _thin_region(settings, 2, 0.0)) == []


def test_a_thin_series_is_tested_less_often_so_each_test_may_ask_less():
    """Same false alarms per calendar month: a z whose tail is 1/factor larger, a CUSUM threshold lower
    by ln(1/factor)/2k; a busy series keeps the configured ones."""
    busy, thin = AttributeWatch(**_params()), AttributeWatch(**_params())
    off = AttributeWatch(**_params(thresholds=False))
    rng = random.Random(4)
    for i in range(200):
        busy.update(_rating(rng, 4.0), i * HOUR)
        thin.update(_rating(rng, 4.0), i * 7 * DAY)
        off.update(_rating(rng, 4.0), i * 7 * DAY)
    assert (busy.trend.h, busy.expectation.z_threshold) == (15.0, 4.0)
    assert (off.trend.h, off.expectation.z_threshold) == (15.0, 4.0)
    assert 2.5 <= thin.expectation.z_threshold < 3.0
    # The CUSUM: the busy threshold less ln(1/factor)/2k would be ~9.1; independent responses a week
    # apart ask the threshold of a 10-year run length (arl_years), never below 0.34 of 15.
    assert thin.trend.h == cusum_threshold(0.4, 10 * 365.25 / 7) and 5.1 <= thin.trend.h < 6.0
    loose = AttributeWatch.from_state(thin.state(), **_params(arl_years=0.0))
    assert 8.5 < loose.trend.h < 9.5
    # The thresholds follow the state, not a parameter: a rebuilt watch asks the same.
    again = AttributeWatch.from_state(thin.state(), **_params())
    assert (again.trend.h, again.expectation.z_threshold) == (thin.trend.h, thin.expectation.z_threshold)


def test_a_cusum_on_a_short_history_allows_for_its_reference_error():
    """k widens by k_margin standard errors of the reference: a thin history's reference may be off
    by a tenth of a standard deviation, which would add to every step of the sum; thousands of
    responses make the margin vanish. The batch path adds the same margin response by response."""
    params, narrow = _params(), _params()
    narrow["trend"] = {**narrow["trend"], "k_margin": 0.0}
    assert params["trend"]["k_margin"] == 1.5  # the shipped config's
    rng = random.Random(6)
    wide, narrow, batched = AttributeWatch(**params), AttributeWatch(**narrow), AttributeWatch(**params)
    xs = [_rating(rng, 4.0 - (i >= 50)) for i in range(70)]
    ts = [i * 7 * DAY for i in range(70)]
    for x, t in zip(xs, ts):
        wide.update(x, t)
        narrow.update(x, t)
    for k in range(0, 70, 9):
        batched.update_many(xs[k:k + 9], ts[k:k + 9])
    assert wide.evidence() == batched.evidence()
    base = wide.trend.baseline
    margin = 1.5 * base.w2 ** 0.5 / base.w
    assert 0.1 < margin < 0.25  # a reference of ~70 responses: off by ~1/8 of a standard deviation
    assert wide.evidence()["cusum"] < narrow.evidence()["cusum"]


def test_a_thin_site_is_shrunk_towards_its_peers_not_taken_at_face_value():
    """Empirical Bayes in the peer test: the same raw gap is an alarm on 60 responses, not on 6 (the
    level of 6 is mostly its peers'); a gap far beyond the peers' spread still is on 6."""
    from boucle.detectors.peer import PeerGroup, peer_alarm

    group = PeerGroup(min_peers=4, min_n=5)
    for member, mean in [("a", 4.1), ("b", 4.0), ("c", 3.9), ("d", 4.2), ("e", 4.0)]:
        group.update(member, mean, n=60, sd=0.9)
    busy, thin = group.compare("f", 3.1, 60, 0.9), group.compare("f", 3.1, 6, 0.9)
    assert busy["gap"] == thin["gap"]
    assert peer_alarm(busy, 3.0, 0.3) and not peer_alarm(thin, 3.0, 0.3)
    assert -0.9 < thin["shrunk_gap"] < busy["shrunk_gap"] * 0.2
    far = group.compare("f", 1.2, 6, 0.9)
    assert far["shrunk_gap"] < -0.3 and peer_alarm(far, 2.0, 0.3)


def test_a_headline_score_asks_its_own_cusum_threshold(settings):
    """A score sums every attribute's good and bad days, so its CUSUM asks score_trend_h; an
    attribute keeps trend.h, and without score_trend_h a score does too."""
    from boucle.operators.attribute_engine import AttributeAlertEngine

    site = settings.sites[0].id
    engine = AttributeAlertEngine(settings)
    cfg = settings.attribute_alerts
    assert cfg.score_trend_h is not None and cfg.score_trend_h != cfg.trend.h
    assert engine.new_watch(site, question="nps").trend.h == cfg.score_trend_h
    assert engine.new_watch(site, question="waiting_time").trend.h == cfg.trend.h
    plain = settings.model_copy(update={"attribute_alerts": cfg.model_copy(update={"score_trend_h": None})})
    assert AttributeAlertEngine(plain).new_watch(site, question="nps").trend.h == cfg.trend.h
