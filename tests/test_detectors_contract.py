"""One contract, every detector: pickle and plain-state round trips, edited parameters, bounded state,
determinism, no aliasing, budget.

Each case says which class and parameters build a detector, how to feed it update *i* from a seeded
random stream, which numbers it outputs and one parameter edit that changes them; the checks below
drive all of them the same way.
"""

from __future__ import annotations

import copy
import inspect
import math
import pickle
import random
from dataclasses import dataclass
from typing import Any, Callable

import pytest
from plain_data import is_plain

from boucle.detectors import (
    AttributeWatch,
    DecayedMoments,
    DownwardTrend,
    GradualDecline,
    Halo,
    KeyDriverImportance,
    PeerComparison,
    PeerGroup,
    SeasonalExpectation,
    SeriesClock,
)
from boucle.detectors.river_adapter import RiverAlarm

MINUTE = 60_000
ATTRS = ("waiting_time", "cleanliness", "staff_friendliness", "store_layout")
SERIES_BUDGET_BYTES = 8 * 1024


def _rating(rng: random.Random) -> float:
    return float(min(5, max(1, round(rng.gauss(3.9, 0.95)))))


def _feed_series(det, i: int, rng: random.Random) -> None:
    det.update(_rating(rng), i * 7 * MINUTE)


def _feed_moments(det, i: int, rng: random.Random) -> None:
    late = rng.random() < 0.01  # a late response now and then
    det.update(_rating(rng), (i - 30 * late) * 7 * MINUTE)


def _feed_watch(det: AttributeWatch, i: int, rng: random.Random) -> None:
    det.update(_rating(rng), i * 7 * MINUTE)
    if i % 50 == 0:
        group = PeerGroup(min_peers=3, min_n=5)
        for j in range(4):
            group.update(f"p{j}", 3.9 + 0.05 * j, 40.0, 0.9)
        det.compare(group, "me")


def _feed_clock(det: SeriesClock, i: int, rng: random.Random) -> None:
    late = rng.random() < 0.01
    det.tick((i - 30 * late) * 7 * MINUTE)


def _feed_thin_watch(det: AttributeWatch, i: int, rng: random.Random) -> None:
    """A series answering about every other day: its detectors run on a slowed clock."""
    det.update(_rating(rng), i * 2 * 1440 * MINUTE + rng.randrange(1440) * MINUTE)


def _response(i: int, rng: random.Random) -> tuple[dict[str, float], float]:
    x = {a: _rating(rng) for a in ATTRS if rng.random() < 0.85}
    y = float(min(10, max(0, round(6 + 1.2 * (x.get("waiting_time", 3.9) - 3.9) + rng.gauss(2, 1.5)))))
    return x, y


def _feed_importance(det: KeyDriverImportance, i: int, rng: random.Random) -> None:
    x, y = _response(i, rng)
    det.learn_one(x, y, i * MINUTE)


def _feed_halo(det: Halo, i: int, rng: random.Random) -> None:
    mood = rng.gauss(0, 0.1)
    late = rng.random() < 0.01
    det.learn([mood + rng.gauss(0, 0.2) for _ in range(rng.randint(1, 7))], (i - 30 * late) * MINUTE)


def _halo_outputs(det: Halo) -> Any:
    return det.rho, det.coefficient(5), det.halos({"a": -0.2, "b": 0.1, "c": 0.0})


def _feed_group(det: PeerGroup, i: int, rng: random.Random) -> None:
    det.update(f"site-{i % 12}", 3.5 + rng.random(), 10 + 50 * rng.random(), 0.9)


def _compare_group(det: PeerGroup) -> dict[str, Any]:
    return det.compare("site-0", 3.4, 40.0, 0.9) or {}


def _peer_outputs(det: PeerComparison) -> dict[str, Any]:
    group = PeerGroup(min_peers=3, min_n=5)
    for j in range(4):
        group.update(f"p{j}", 4.2 + 0.05 * j, 40.0, 0.9)
    return {**det.evidence(group, "me"), "alarm": det.alarm}


@dataclass
class Case:
    name: str
    cls: type
    params: dict[str, Any]
    feed: Callable[[Any, int, random.Random], None]
    outputs: Callable[[Any], Any]
    edit: dict[str, Any]  # an edited parameter that changes the outputs once more data comes
    per_series: bool = True  # held once per (site, attribute): the 8 KB budget applies

    def build(self) -> Any:
        return self.cls(**self.params)


CASES = [
    Case("DecayedMoments", DecayedMoments, {"half_life_ms": 86_400_000}, _feed_moments,
         lambda d: (d.get(), d.var, d.n_eff, d.weight, d.std_err), {"half_life_ms": 3_600_000}),
    Case("SeasonalExpectation", SeasonalExpectation, {"utc_offset_hours": 1}, _feed_series,
         lambda d: ({**d.evidence(), "expected_now": d.expected(d.t_ms or 0)}, d.alarm), {"day_sd": 0.5}),
    Case("DownwardTrend", DownwardTrend, {}, _feed_series, lambda d: (d.evidence(), d.alarm), {"k": 0.1}),
    Case("GradualDecline", GradualDecline, {}, _feed_moments, lambda d: (d.evidence(), d.alarm),
         {"day_sd": 0.3}),
    Case("GradualDecline(scale_days)", GradualDecline, {"scale_days": 7.0}, _feed_moments,
         lambda d: (d.evidence(), d.alarm), {"scale_days": 7.0, "sd_floor": 1.5}),
    Case("PeerComparison", PeerComparison, {}, _feed_series, _peer_outputs, {"half_life_hours": 6.0}),
    Case("AttributeWatch", AttributeWatch, {"expectation": {"utc_offset_hours": 1}}, _feed_watch,
         lambda d: (d.evidence(), d.triggers()), {"trend": {"k": 0.1}}),
    Case("AttributeWatch(thin)", AttributeWatch, {}, _feed_thin_watch,
         lambda d: (d.evidence(), d.triggers(), d.watched, d.needs()), {"clock": {"busy_per_day": 0.1}}),
    Case("SeriesClock", SeriesClock, {}, _feed_clock, lambda d: (d.factor, d.tau_ms),
         {"busy_per_day": 1000.0}),
    Case("KeyDriverImportance", KeyDriverImportance, {"names": ATTRS[:2]}, _feed_importance,
         lambda d: d.evidence(), {"half_life_days": 2.0}, False),
    Case("Halo", Halo, {}, _feed_halo, _halo_outputs, {"half_life_days": 1.0}, False),  # one per site
    Case("PeerGroup", PeerGroup, {}, _feed_group, _compare_group, {"spread_floor": 2.0}, False),
    # river's detectors through the adapter: learnt attributes as plain data, the parameters of the day.
    Case("RiverAlarm(PageHinkley)", RiverAlarm, {"spec": "river:drift.PageHinkley", "params": {"threshold": 5.0}},
         _feed_series, lambda d: (d.evidence(), d.alarm), {"params": {"threshold": 8.0}}),
    Case("RiverAlarm(ADWIN)", RiverAlarm, {"spec": "river:drift.ADWIN", "params": {"delta": 0.9}},
         _feed_series, lambda d: (d.evidence(), d.alarm), {"direction": "both"}),
    Case("RiverAlarm(GaussianScorer)", RiverAlarm, {"spec": "river:anomaly.GaussianScorer",
         "params": {"window_size": 200, "grace_period": 50}}, _feed_series, lambda d: (d.evidence(), d.alarm), {"score_alpha": 0.3}),
    Case("AttributeWatch(river)", AttributeWatch, {"river": [{"spec": "river:drift.PageHinkley", "params": {"mode": "down"}}]},
         _feed_watch, lambda d: (d.evidence(), d.triggers()), {"trend": {"k": 0.1}}),
]


def _run(case: Case, n: int, seed: int = 0, det=None, start: int = 0):
    det = case.build() if det is None else det
    rng = random.Random(seed)
    for i in range(start, start + n):
        case.feed(det, i, rng)
    return det


def _same(a: Any, b: Any) -> bool:
    """Equality that treats nan == nan (outputs are floats)."""
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b


@pytest.fixture(params=CASES, ids=lambda c: c.name)
def case(request) -> Case:
    return request.param


def test_state_round_trip_gives_identical_outputs(case: Case):
    """Exported after N updates and rebuilt with the same parameters, a detector goes on exactly as
    one never interrupted; its state is plain data, survives pickling, and holds no parameter."""
    det = _run(case, 3_000)
    state = det.state()
    assert is_plain(state), state
    # No parameter in it (AttributeWatch's parameters name its parts, whose states are dicts, or lists
    # of dicts for its river alarms).
    values = {key for key, value in state.items() if not isinstance(value, dict)
              and not (isinstance(value, list) and value and all(isinstance(v, dict) for v in value))}
    assert not values & set(inspect.signature(case.cls).parameters)
    clone = case.cls.from_state(pickle.loads(pickle.dumps(state)), **case.params)
    assert _same(case.outputs(clone), case.outputs(det))
    _run(case, 500, seed=1, det=det, start=3_000)
    _run(case, 500, seed=1, det=clone, start=3_000)
    assert _same(case.outputs(clone), case.outputs(det))
    assert _same(clone.state(), det.state())


def test_state_is_a_copy(case: Case):
    """Feeding a detector after exporting its state changes nothing in that state."""
    det = _run(case, 1_000)
    state = det.state()
    kept = copy.deepcopy(state)
    _run(case, 300, seed=1, det=det, start=1_000)
    assert _same(state, kept)


def test_an_edited_parameter_applies_after_a_rebuild(case: Case):
    """Rebuilt from the same state with one parameter edited, the detector follows the edit: its
    outputs part from those of the unedited rebuild once more data comes."""
    det = _run(case, 3_000)
    same = case.cls.from_state(det.state(), **case.params)
    edited = case.cls.from_state(det.state(), **{**case.params, **case.edit})
    for name, value in case.edit.items():
        if not isinstance(value, dict):
            assert getattr(edited, name) == value
    _run(case, 500, seed=1, det=same, start=3_000)
    _run(case, 500, seed=1, det=edited, start=3_000)
    assert not _same(case.outputs(edited), case.outputs(same))


def test_thresholds_edited_on_resume_change_the_decision():
    """After a drop every local detector alarms; rebuilt from the same states under stricter
    thresholds none does, under the same ones each still does."""
    rng = random.Random(13)
    trend, expectation, decline = DownwardTrend(), SeasonalExpectation(), GradualDecline()
    hour = 3_600_000
    for i in range(24 * 30):
        x = rng.gauss(4.0 - (1.2 * (i - 24 * 20) / (24 * 10) if i >= 24 * 20 else 0.0), 0.9)
        for det in (trend, expectation, decline):
            det.update(x, i * hour)
    assert trend.alarm and expectation.alarm and decline.alarm
    strict = {DownwardTrend: {"h": 1e9, "slope_z": 50.0}, SeasonalExpectation: {"z_threshold": 50.0},
              GradualDecline: {"z_threshold": 50.0}}
    for det in (trend, expectation, decline):
        assert type(det).from_state(det.state()).alarm
        assert not type(det).from_state(det.state(), **strict[type(det)]).alarm

    group = PeerGroup(min_peers=3, min_n=5)
    for j in range(4):
        group.update(f"p{j}", 4.2 + 0.05 * j, 40.0, 0.9)
    peer = PeerComparison()
    for i in range(100):
        peer.update(3.0, i * hour)
    peer.evidence(group, "me")
    assert peer.alarm and PeerComparison.from_state(peer.state()).alarm
    assert not PeerComparison.from_state(peer.state(), z_threshold=50.0).alarm


def test_a_reshaped_part_of_the_state_starts_afresh():
    """``block_hours`` (or the site's UTC offset) changes what the seasonal cells mean and
    ``window_days`` the length of the decline's ring: that part starts empty, the rest is kept, and
    the rebuilt detector goes on learning."""
    rng = random.Random(17)
    watch = AttributeWatch(expectation={"utc_offset_hours": 1}, decline={"utc_offset_hours": 1})
    for i in range(3_000):
        watch.update(_rating(rng), i * 7 * MINUTE)
    state = watch.state()
    same = AttributeWatch.from_state(state, expectation={"utc_offset_hours": 1}, decline={"utc_offset_hours": 1})
    assert list(same.expectation.cells) == list(watch.expectation.cells) and same.decline.n_window > 0
    for expectation in ({"utc_offset_hours": 1, "block_hours": 6}, {"utc_offset_hours": 0}):
        wider = AttributeWatch.from_state(state, expectation=expectation, decline={"window_days": 21})
        assert len(wider.expectation.cells) == 3 * 7 * 24 // wider.expectation.block_hours
        assert not any(wider.expectation.cells)
        assert wider.expectation.level.state() == watch.expectation.level.state()
        assert wider.expectation.recent.state() == watch.expectation.recent.state()
        assert wider.trend.state() == watch.trend.state() and wider.peer.state() == watch.peer.state()
        fresh = GradualDecline(window_days=21, utc_offset_hours=wider.decline.utc_offset_hours).state()
        assert wider.decline.state() == fresh and len(wider.decline.bins) == 3 * 21
        for i in range(3_000, 4_000):
            wider.update(_rating(rng), i * 7 * MINUTE)
        assert any(wider.expectation.cells) and wider.decline.n_window > 0


def test_pickle_round_trip_gives_identical_outputs(case: Case):
    det = _run(case, 3_000)
    clone = pickle.loads(pickle.dumps(det))
    assert _same(case.outputs(clone), case.outputs(det))
    _run(case, 500, seed=1, det=det, start=3_000)
    _run(case, 500, seed=1, det=clone, start=3_000)
    assert _same(case.outputs(clone), case.outputs(det))


def test_deterministic_for_a_seed(case: Case):
    assert _same(case.outputs(_run(case, 2_000, seed=7)), case.outputs(_run(case, 2_000, seed=7)))


def test_state_does_not_grow(case: Case):
    det = _run(case, 10_000)
    sizes_10k = len(pickle.dumps(det)), len(pickle.dumps(det.state()))
    _run(case, 90_000, seed=1, det=det, start=10_000)
    sizes_100k = len(pickle.dumps(det)), len(pickle.dumps(det.state()))  # the object, its snapshot
    for at_10k, at_100k in zip(sizes_10k, sizes_100k):
        assert at_100k <= at_10k * 1.02 + 64, (at_10k, at_100k)
        if case.per_series:
            assert at_100k <= SERIES_BUDGET_BYTES


def test_input_is_not_aliased():
    """Mutating what was passed in after the update changes nothing."""
    kda_a, kda_b = KeyDriverImportance(), KeyDriverImportance()
    rng = random.Random(3)
    for i in range(300):
        x, y = _response(i, rng)
        kept = copy.deepcopy(x)
        kda_a.learn_one(x, y, i * MINUTE)
        kda_b.learn_one(kept, y, i * MINUTE)
        x.clear()
        x["cleanliness"] = 1.0
    assert _same(kda_a.evidence(), kda_b.evidence())

    group_a, group_b = PeerGroup(min_peers=2, min_n=1), PeerGroup(min_peers=2, min_n=1)
    for j, values in enumerate([[4.0, 30.0, 0.9], [4.2, 30.0, 0.9], [3.8, 30.0, 0.9]]):
        group_a.update(f"s{j}", *values)
        group_b.update(f"s{j}", *list(values))
        values[0] = 1.0
    assert _same(group_a.compare("x", 3.0, 30, 0.9), group_b.compare("x", 3.0, 30, 0.9))

    watch_a, watch_b = AttributeWatch(), AttributeWatch()
    params = {"k": 0.3}
    watch_c = AttributeWatch(trend=params)
    params["k"] = 5.0  # configuration dicts are not kept either
    assert watch_c.trend.k == 0.3
    for i in range(500):
        value = [float(3 + i % 3)]
        watch_a.update(value[0], i * MINUTE)
        watch_b.update(float(3 + i % 3), i * MINUTE)
        value[0] = 0.0
    assert _same(watch_a.evidence(), watch_b.evidence())


def test_few_responses_are_no_evidence():
    """A site with 3 bad responses today, after a normal history, raises no alarm anywhere."""
    rng = random.Random(11)
    watch = AttributeWatch()
    for i in range(24 * 28):
        watch.update(_rating(rng), i * 3_600_000)
    for i in range(3):
        watch.update(1.0, (24 * 28 + i) * 3_600_000)
    group = PeerGroup(min_peers=3, min_n=5)
    for j in range(5):
        group.update(f"p{j}", 3.75 + 0.05 * j, 60.0, 0.9)  # peers at the site's usual level
    watch.compare(group, "me")
    assert watch.triggers() == []
    assert watch.trend.cusum < watch.trend.h / 2
    assert watch.decline.z > -watch.decline.z_threshold


def test_gradual_decline_is_seen_and_a_flat_series_is_not():
    """0.8 point lost over 14 days at 48 responses a day: the decline detector alarms before the end."""
    rng = random.Random(21)
    flat, sliding = GradualDecline(), GradualDecline()
    alarm_day = None
    for i in range(24 * 26):
        for j in range(2):
            t = i * 3_600_000 + j * MINUTE
            flat.update(rng.gauss(4.0, 0.9), t)
            sliding.update(rng.gauss(4.0 - (0.8 * (i - 240) / 336 if i >= 240 else 0.0), 0.9), t)
        assert not flat.alarm
        if alarm_day is None and sliding.alarm:
            alarm_day = i / 24
    assert alarm_day is not None and 10 < alarm_day < 24


def test_decline_threshold_per_ramp_length():
    """``scale_days``: a ramp of L days needs the z whose tail is L/scale_days times z_threshold's
    (a long ramp is fewer independent looks); off, every length needs ``z_threshold``."""
    from statistics import NormalDist

    scaled, plain = GradualDecline(z_threshold=4.0, scale_days=7.0), GradualDecline(z_threshold=4.0)
    assert scaled.threshold(6.5) == scaled.threshold(7.0) == 4.0 == plain.threshold(14.0)
    assert 3.85 < scaled.threshold(12.5) < 3.87 and scaled.threshold(16.5) < scaled.threshold(12.5)
    tail = NormalDist().cdf
    assert abs(tail(-scaled.threshold(14.0)) / tail(-4.0) - 2.0) < 1e-9
    rng = random.Random(23)
    flat = GradualDecline(scale_days=7.0)
    for i in range(24 * 30):
        flat.update(rng.gauss(4.0, 0.9), i * 3_600_000)
        flat.update(rng.gauss(4.0, 0.9), i * 3_600_000 + MINUTE)
        assert not flat.alarm
    assert pickle.loads(pickle.dumps(flat)).evidence() == flat.evidence()
    # A threshold whose tail underflows (no float below cdf(-38)) stays itself for every length.
    assert GradualDecline(z_threshold=50.0, scale_days=7.0).threshold(14.0) == 50.0


def test_the_seasonal_cell_is_public_and_shared_by_a_sites_series():
    """What the site step computes once per response for all its series (``SeasonalExpectation.cell``)
    gives each series the surprise it would compute itself."""
    rng = random.Random(31)
    a = AttributeWatch(expectation={"utc_offset_hours": 1, "block_hours": 6})
    b = AttributeWatch(expectation={"utc_offset_hours": 1, "block_hours": 6})
    for i in range(400):
        a.update(_rating(rng), i * 37 * MINUTE)
        b.update(_rating(rng), i * 37 * MINUTE)
    for t in range(400 * 37 * MINUTE, 407 * 37 * MINUTE + 24 * 60 * MINUTE, 53 * MINUTE):
        cell = a.expectation.cell(t)
        assert cell == b.expectation.cell(t) and 0 <= cell < 7 * 24 // 6
        assert a.surprise(2.0, t, cell) == a.surprise(2.0, t) is not None
        assert b.surprise(2.0, t, cell) == b.surprise(2.0, t)
        assert a.expectation.effect(t, cell) == a.expectation.effect(t)
