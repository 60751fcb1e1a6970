"""Detectors that adapt to volume: a series is judged on its own responses, whatever the calendar."""

import random

import pytest

from boucle.config.settings import Settings
from boucle.detectors import AttributeWatch

DAY = 86_400_000
HOUR = 3_600_000


def _params(**clock) -> dict:
    cfg = Settings().attribute_alerts
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
    # The minimum history is 60 decayed responses: about that many, whether it takes a month or ten years.
    assert needed is not None and 60 <= needed <= 75


def test_without_its_own_clock_a_sparse_series_is_never_watched():
    assert _responses_until_watched(14.0, _params(busy_per_day=0.0)) is None
    assert _responses_until_watched(14.0, _params()) is not None


def test_a_warming_up_series_says_what_it_still_needs():
    watch = AttributeWatch(**_params())
    rng = random.Random(1)
    for i in range(20):
        watch.update(_rating(rng, 4.0), i * 10 * DAY)
    assert not watch.watched and 35 <= watch.needs() <= 41
    for i in range(20, 80):
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
    runs = [_sparse_run(seed, 1.0, _params()) for seed in range(6)]
    assert not any(before for before, _ in runs)
    assert sum(after for _, after in runs) >= 5
    assert not any(_sparse_run(seed, 1.0, _params(busy_per_day=0.0))[1] for seed in range(6))
    assert not any(any(_sparse_run(100 + seed, 0.0, _params())) for seed in range(6))


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
